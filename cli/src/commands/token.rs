//! `timepost token new|hash`: console tokens and the `[[console.users]]`
//! lines that name them. A token is kept in `timepost.toml` only as its
//! `token_hmac`, keyed with the `token_key` secret (created here on first
//! use: locally in the secrets file, mode 0600; with `--backend aws` in
//! Secrets Manager), so the config file alone lets nobody test guesses.
//! A token too short or too predictable is refused
//! (`timepost_web::tokens::check_strength`).

use std::io::Read;
use std::sync::Arc;

use anyhow::anyhow;
use clap::Subcommand;
use timepost::ports::Secrets;
use timepost_web::auth::Role;
use timepost_web::tokens;

use super::backend::{BackendKind, Global};
use crate::{CliResult, Failure};

#[derive(Subcommand)]
pub enum Cmd {
    /// Make a new random token for a console user: prints the token (give
    /// it to the user; it is shown once) and the lines to add to
    /// timepost.toml.
    New {
        /// The user's name (as the audit log shows it).
        #[arg(long)]
        user: String,
        /// admin, manager, finance, auditor or viewer.
        #[arg(long)]
        role: Role,
    },
    /// Hash a token you already have (read from standard input, never from
    /// the command line): prints the lines to add to timepost.toml. A
    /// weak token is refused.
    Hash {
        #[arg(long)]
        user: String,
        #[arg(long)]
        role: Role,
    },
}

pub async fn run(g: &Global, cmd: Cmd) -> CliResult {
    let (user, role, token, shown) = match cmd {
        Cmd::New { user, role } => (user, role, tokens::generate(), true),
        Cmd::Hash { user, role } => {
            let mut input = String::new();
            std::io::stdin().read_to_string(&mut input).map_err(|e| {
                Failure::Input(anyhow!("cannot read the token from standard input: {e}"))
            })?;
            let token = input.trim().to_string();
            tokens::check_strength(&token).map_err(|e| Failure::Input(anyhow!(e)))?;
            (user, role, token, false)
        }
    };
    if user.trim().is_empty() || user.contains(['"', '\\', '\n']) {
        return Err(Failure::Input(anyhow!(
            "--user must be a plain name (no quotes, backslashes or line breaks)"
        )));
    }
    let secrets = secrets(g).await?;
    let (key, created) = timepost_web::ensure_token_key(secrets.as_ref()).await?;
    if created {
        eprintln!("created the token_key secret ({})", where_(g));
    }
    if shown {
        eprintln!("the token for {user} (shown once; give it to them over a private channel):");
        println!("{token}");
        eprintln!("add to timepost.toml:");
    }
    println!(
        "\n[[console.users]]\nname = \"{user}\"\nrole = \"{}\"\ntoken_hmac = \"{}\"",
        role.as_str(),
        tokens::hmac_hex(&key, &token)
    );
    Ok(())
}

fn where_(g: &Global) -> String {
    match g.backend {
        BackendKind::Local => "in the local secrets file".into(),
        BackendKind::Aws => "in Secrets Manager".into(),
    }
}

async fn secrets(g: &Global) -> Result<Arc<dyn Secrets>, Failure> {
    match g.backend {
        BackendKind::Local => {
            let cfg = super::backend::load_local_config(&g.config)?;
            // Beside the store, in its private directory (as `serve` makes it).
            if let Some(dir) = cfg.store.secrets_file.parent().filter(|d| !d.exists()) {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(|e| {
                            Failure::Runtime(anyhow!("cannot create {}: {e}", dir.display()))
                        })?;
                }
                #[cfg(not(unix))]
                std::fs::create_dir_all(dir).map_err(|e| {
                    Failure::Runtime(anyhow!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let file = timepost::local::SecretsFile::open(&cfg.store.secrets_file)
                .map_err(|e| Failure::Runtime(anyhow!(e)))?;
            Ok(Arc::new(file))
        }
        BackendKind::Aws => aws_secrets().await,
    }
}

#[cfg(not(feature = "aws"))]
async fn aws_secrets() -> Result<Arc<dyn Secrets>, Failure> {
    Err(super::backend::without_aws())
}

#[cfg(feature = "aws")]
async fn aws_secrets() -> Result<Arc<dyn Secrets>, Failure> {
    let settings = super::backend::aws::settings()?;
    let sdk = timepost::aws::sdk_config().await;
    let clients = timepost::aws::AwsClients::from_sdk(&sdk, settings.s3_path_style);
    Ok(Arc::new(timepost::aws::SecretsManagerStore::new(
        clients.secrets,
        &settings.secret_prefix,
        std::time::Duration::ZERO,
    )))
}
