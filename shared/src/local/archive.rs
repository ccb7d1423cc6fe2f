//! Archives and reports as files under a local directory, keyed like S3
//! objects (`snapshots/2026-03/…`). Snapshot files (`snapshots/…`) are
//! left read-only: a snapshot is never rewritten.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;

use crate::ports::{Archive, StoreError, StoreResult};

pub struct DirArchive {
    root: PathBuf,
}

impl DirArchive {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The file for `key`; keys that would escape the root are refused.
    fn path(&self, key: &str) -> StoreResult<PathBuf> {
        let rel = Path::new(key);
        if key.is_empty() || rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(StoreError::Backend(format!("invalid archive key `{key}`")));
        }
        Ok(self.root.join(rel))
    }
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

#[async_trait]
impl Archive for DirArchive {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let tmp = path.with_extension("part");
        tokio::fs::write(&tmp, bytes).await.map_err(io)?;
        if key.starts_with(crate::archive::format::SNAPSHOTS) {
            let mut perms = tokio::fs::metadata(&tmp).await.map_err(io)?.permissions();
            perms.set_readonly(true);
            tokio::fs::set_permissions(&tmp, perms).await.map_err(io)?;
        }
        tokio::fs::rename(&tmp, &path).await.map_err(io)
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        match tokio::fs::read(self.path(key)?).await {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(mut rd) = tokio::fs::read_dir(&dir).await else {
                continue;
            };
            while let Some(ent) = rd.next_entry().await.map_err(io)? {
                let p = ent.path();
                if ent.file_type().await.map_err(io)?.is_dir() {
                    stack.push(p);
                } else if let Ok(rel) = p.strip_prefix(&self.root) {
                    let key = rel.to_string_lossy().replace('\\', "/");
                    if key.starts_with(prefix) {
                        out.push(key);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn puts_gets_lists_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let a = DirArchive::new(dir.path());
        a.put("snapshots/2026-03/a.json", b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(
            a.get("snapshots/2026-03/a.json").await.unwrap().unwrap(),
            b"{}"
        );
        assert_eq!(
            a.list("snapshots/").await.unwrap(),
            vec!["snapshots/2026-03/a.json"]
        );
        assert!(a.get("missing").await.unwrap().is_none());
        let meta = std::fs::metadata(dir.path().join("snapshots/2026-03/a.json")).unwrap();
        assert!(
            meta.permissions().readonly(),
            "snapshot files are read-only"
        );
        a.put("reports/r.json", b"{}".to_vec()).await.unwrap();
        let meta = std::fs::metadata(dir.path().join("reports/r.json")).unwrap();
        assert!(!meta.permissions().readonly());
        assert!(a.put("../escape", vec![]).await.is_err());
    }
}
