//! `timepost`: the local all-in-one runtime and the operator commands.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad input.

mod commands;
mod listener;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sync approved time from trackers into the books, and keep them agreeing.
#[derive(Parser)]
#[command(name = "timepost", version, about, propagate_version = true)]
struct Cli {
    /// The configuration file.
    #[arg(
        long,
        global = true,
        env = "TIMEPOST_CONFIG",
        default_value = "timepost.toml"
    )]
    config: PathBuf,
    /// A store directory (what `archive restore` writes): the same as
    /// `--config DIR/timepost.toml`.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Which stack to operate: `local` (the store named in the config file)
    /// or `aws` (a deployed stack: resource names from `TIMEPOST_TABLE`,
    /// `TIMEPOST_QUEUE_URL`, `TIMEPOST_DLQ_URL`, `TIMEPOST_BUCKET`, the rules
    /// config from the bucket, the standard AWS credentials and region).
    #[arg(
        long,
        global = true,
        env = "TIMEPOST_BACKEND",
        value_enum,
        default_value = "local"
    )]
    backend: commands::backend::BackendKind,
    /// Log as JSON lines (as in Lambda) instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bundled sandbox through the whole pipeline and print what
    /// would be posted.
    Demo {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Keep the demo's store in this directory (default: a temporary one).
        #[arg(long)]
        keep: Option<PathBuf>,
    },
    /// Start the local stack: webhooks, admin API, queue worker, schedules.
    Serve {
        /// Listen address (overrides `server.bind`).
        #[arg(long)]
        bind: Option<String>,
    },
    /// Feed tracker payloads or exports through the same path as a webhook.
    Ingest(commands::ingest::Args),
    /// Poll a tracker's API once now (Harvest, or Toggl as a fallback to
    /// its webhooks) and process what it enqueued.
    Poll(commands::poll::Args),
    /// Import, export and list mapping tables.
    #[command(subcommand)]
    Mappings(commands::mappings::Cmd),
    /// Show where every entry stands: the outcome report of the store.
    Status {
        #[arg(long)]
        json: bool,
        /// One period from the maintained aggregates (`all`, `2026`,
        /// `2026-03`, `2026-W10`, `2026-03-02`) instead of the full outcome
        /// report.
        #[arg(long)]
        period: Option<String>,
        /// The full outcome report: every entry state and the comparison
        /// with the ledger's read-back (reads the whole store). Without it,
        /// the store's totals come from the maintained aggregates and the
        /// held, waiting and exception entries from bounded reads.
        #[arg(long, conflicts_with = "period")]
        full: bool,
    },
    /// Maintain the entry store (the local file, or the DynamoDB table
    /// with `--backend aws`): `rebuild-aggregates` recomputes and verifies
    /// the dashboard's aggregates, `rebuild-key-index` the mapped-key index.
    #[command(subcommand)]
    Store(commands::store::Cmd),
    /// Explain an exception code (or all of them) in plain words.
    Explain {
        /// e.g. UNMAPPED_PROJECT
        code: Option<String>,
        /// Every code, as a Markdown quick reference.
        #[arg(long)]
        all: bool,
    },
    /// Re-evaluate entries after a fix: one entry, held ones, or a
    /// dead-lettered message.
    Redrive(commands::redrive::Args),
    /// Post what is queued to the configured ledger (`--dry-run`: print the
    /// exact requests instead, sending nothing).
    Sync(commands::sync::Args),
    /// Compare the tracker, timepost and the books for a period (`history`:
    /// the stored runs; `resolve`: act on one break).
    Reconcile(commands::reconcile::Args),
    /// Undo one import batch in the books.
    Rollback(commands::rollback::Args),
    /// Post a period's labour-cost accrual (QBO JournalEntry).
    Accrue(commands::accrue::Args),
    /// Upload the rules config to a deployed stack, or download it
    /// (`--backend aws`).
    #[command(subcommand)]
    Config(commands::config::Cmd),
    /// Move entries stored by an older timepost under an unescaped key (a
    /// `:` or `%` inside a workspace or tracker id) to their escaped key:
    /// locally every open does it; `--backend aws` migrates the DynamoDB
    /// table (run once after upgrading, with the sync function paused).
    MigrateKeys,
    /// Console tokens: make one (`new`) or hash one you have (`hash`),
    /// printing the `[[console.users]]` lines for timepost.toml.
    #[command(subcommand)]
    Token(commands::token::Cmd),
    /// Check a deployed stack's after-deploy steps in order (`--backend
    /// aws`): resources, rules file, secrets, mappings, queue depths.
    /// Exit 0 when every required step is done, 1 otherwise.
    Doctor {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Period snapshots: run, list, verify, restore, purge (`[retention]`).
    #[command(subcommand)]
    Archive(commands::archive::Cmd),
    /// Write everything the store holds to a directory, in the archive
    /// format (`docs/archive-format.md`): `--all DIR`; or one period's
    /// finance CSVs: `period --period P --out DIR`.
    Export(commands::alerts::ExportCmd),
    /// Alert rules (`[alerts]`): `check` evaluates them now; `--send`
    /// records the alert state and sends what is due.
    #[command(subcommand)]
    Alerts(commands::alerts::Cmd),
    /// Load a directory `export --all` wrote into a fresh local store.
    Import(commands::archive::ImportArgs),
}

/// An error with the exit code it deserves.
pub enum Failure {
    /// Bad usage or bad input: exit 2.
    Input(anyhow::Error),
    /// Everything else: exit 1.
    Runtime(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Runtime(e.into())
    }
}

pub type CliResult = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_json, matches!(cli.command, Command::Serve { .. }));
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if matches!(cli.command, Command::Serve { .. }) {
        // The HTTP handlers read the SQLite store on the thread they run
        // on: more threads than cores, so a console page over a big store
        // does not hold up the webhooks (the queue worker and the
        // schedules run on a runtime of their own, see `serve`).
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        builder.worker_threads((cores * 2).max(4));
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let g = commands::backend::Global {
        config: cli
            .data_dir
            .map(|d| d.join("timepost.toml"))
            .unwrap_or(cli.config),
        backend: cli.backend,
    };
    let result = rt.block_on(async {
        use commands::backend::local_only;
        match cli.command {
            Command::Demo { json, keep } => {
                local_only(&g, "demo", "the sandbox runs on this machine")?;
                commands::demo::run(json, keep).await
            }
            Command::Serve { bind } => {
                local_only(
                    &g,
                    "serve",
                    "in AWS the webhook, sync and poller functions are the server",
                )?;
                commands::serve::run(&g.config, bind).await
            }
            Command::Ingest(args) => commands::ingest::run(&g, args).await,
            Command::Poll(args) => {
                local_only(
                    &g,
                    "poll",
                    "in AWS the scheduled poller function polls the trackers",
                )?;
                commands::poll::run(&g.config, args).await
            }
            Command::Mappings(cmd) => commands::mappings::run(&g, cmd).await,
            Command::Status { json, period, full } => {
                commands::status::run(&g, json, period, full).await
            }
            Command::Store(cmd) => commands::store::run(&g, cmd).await,
            Command::Explain { code, all } => commands::explain::run(code, all),
            Command::Redrive(args) => commands::redrive::run(&g, args).await,
            Command::Sync(args) => commands::sync::run(&g, args).await,
            Command::Reconcile(args) => commands::reconcile::run(&g, args).await,
            Command::Rollback(args) => commands::rollback::run(&g, args).await,
            Command::Accrue(args) => {
                local_only(&g, "accrue", "run it against a local copy of the config")?;
                commands::accrue::run(&g.config, args).await
            }
            Command::Config(cmd) => commands::config::run(&g, cmd).await,
            Command::MigrateKeys => commands::migrate_keys::run(&g).await,
            Command::Token(cmd) => commands::token::run(&g, cmd).await,
            Command::Doctor { json } => commands::doctor::run(&g, json).await,
            Command::Archive(cmd) => commands::archive::run(&g, cmd).await,
            Command::Export(args) => commands::alerts::export(&g, args).await,
            Command::Alerts(cmd) => commands::alerts::run(&g, cmd).await,
            Command::Import(args) => commands::archive::import(&g, args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Input(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(json: bool, serving: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if serving { "info" } else { "warn" };
    let filter =
        EnvFilter::try_from_env("TIMEPOST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
