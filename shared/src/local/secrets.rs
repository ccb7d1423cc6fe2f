//! Secrets in a local TOML file (`name = "value"`) that only its owner may
//! read: a file readable by group or others is refused at start, so a
//! misconfigured machine fails loudly instead of leaking tokens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::ports::{Secrets, StoreError, StoreResult};

#[derive(Debug, thiserror::Error)]
pub enum SecretsFileError {
    #[error("{path}: permissions are {mode:o}; secrets must be readable by their owner only (chmod 600 {path})")]
    TooOpen { path: String, mode: u32 },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

/// Secrets in a 0600 TOML file. Writes replace the file atomically
/// (write to a temporary file, then rename), so a crash mid-write cannot
/// lose the previous token.
pub struct SecretsFile {
    path: PathBuf,
    values: Mutex<BTreeMap<String, String>>,
}

impl std::fmt::Debug for SecretsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the values.
        f.debug_struct("SecretsFile")
            .field("path", &self.path)
            .finish()
    }
}

impl SecretsFile {
    /// Open the file; a missing file is an empty store (created on first
    /// write with mode 0600).
    pub fn open(path: &Path) -> Result<Self, SecretsFileError> {
        let invalid = |message: String| SecretsFileError::Invalid {
            path: path.display().to_string(),
            message,
        };
        let values = match std::fs::read_to_string(path) {
            Ok(text) => {
                check_mode(path)?;
                toml::from_str(&text).map_err(|e| invalid(e.message().to_string()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(invalid(e.to_string())),
        };
        Ok(Self {
            path: path.to_path_buf(),
            values: Mutex::new(values),
        })
    }

    fn write(&self, values: &BTreeMap<String, String>) -> std::io::Result<()> {
        let text = toml::to_string(values).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("tmp");
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.path)
    }
}

#[cfg(unix)]
fn check_mode(path: &Path) -> Result<(), SecretsFileError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| SecretsFileError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretsFileError::TooOpen {
            path: path.display().to_string(),
            mode,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_path: &Path) -> Result<(), SecretsFileError> {
    Ok(())
}

#[async_trait]
impl Secrets for SecretsFile {
    async fn get(&self, name: &str) -> StoreResult<Option<String>> {
        let values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        Ok(values.get(name).cloned())
    }

    async fn put(&self, name: &str, value: &str) -> StoreResult<()> {
        let mut values = self.values.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = values.clone();
        next.insert(name.to_string(), value.to_string());
        self.write(&next)
            .map_err(|e| StoreError::Backend(format!("cannot write secrets file: {e}")))?;
        *values = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn refuses_a_world_readable_file_and_writes_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.toml");
        let s = SecretsFile::open(&path).unwrap();
        s.put("toggl_webhook_secret", "s3cret").await.unwrap();
        let again = SecretsFile::open(&path).unwrap();
        assert_eq!(
            again.get("toggl_webhook_secret").await.unwrap().as_deref(),
            Some("s3cret")
        );
        assert!(!format!("{again:?}").contains("s3cret"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = SecretsFile::open(&path).unwrap_err().to_string();
            assert!(err.contains("chmod 600"), "{err}");
        }
    }
}
