//! timepost: moves approved time entries from time trackers into accounting
//! software and keeps the two in agreement.
//!
//! This crate holds the adapters and the composition roots around the
//! application layer (`timepost_app`) and the pure decision core
//! (`timepost_core`), both re-exported below under the paths they always
//! had (`timepost::model`, `timepost::engine`, `timepost::app`, …):
//!
//! - adapters: SQLite and files in [`local`], AWS in `aws` behind the
//!   feature of that name, the ledgers in [`ledger`], the trackers' pollers
//!   in [`poll`], the notifiers in [`notify`], OpenID sign-in in [`oidc`],
//!   the shared HTTP client plumbing in [`net`];
//! - composition roots: [`stack`] (`LocalStack`, from a config) and
//!   `aws::AwsStack` / `aws::AwsPorts` (from the Lambda environment); and
//!   what runs on a local stack: [`demo`], [`dry_run`], [`schedules`].
//!
//! The HTTP layer is `timepost-web` (`web/`), on top of this crate; entry
//! points (`cli/`, `functions/*`) build a stack and call in. See
//! `docs/architecture.md` for the codemap.
//!
//! **May depend on:** `timepost-core`, `timepost-app`, tokio, rusqlite,
//! reqwest, lettre, jsonwebtoken, and the AWS SDK behind `aws`. **May
//! not:** axum, hyper or any HTTP server crate (the router is
//! `timepost-web`'s), the CLI, the functions, the test kit or the Lambda
//! runtime crates.

// The decision core, re-exported under the paths the rest of the crate and
// its users have always named.
pub use timepost_core::{
    aggregates, csv_out, exceptions, figures, impact, intent, kpis, mapping, model, money,
    period_report, pipeline, ports, rules, sources, state, week_claim,
};

// The application layer (`timepost_app`), re-exported likewise.
pub use timepost_app::engine::books_watch;
pub use timepost_app::{
    alerts, archive, config, engine, exports, identity, intake, reconcile, report, review,
    rollback, services as app, summary, worker,
};

#[cfg(feature = "aws")]
pub mod aws;
pub mod demo;
pub mod dry_run;
pub mod ledger;
pub mod local;
pub mod net;
pub mod notify;
pub mod oidc;
pub mod poll;
pub mod schedules;
pub mod stack;
