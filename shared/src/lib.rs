//! timepost: moves approved time entries from time trackers into accounting
//! software and keeps the two in agreement.
//!
//! This crate holds everything around the pure decision core
//! (`timepost_core`, re-exported below under the paths it always had): the
//! engine that sequences I/O around the decision ([`engine`], [`worker`]),
//! the application services every entry point shares ([`app`], [`review`]),
//! the adapters (SQLite and files in [`local`], AWS in `aws` behind the
//! feature of that name, the ledgers in [`ledger`], the trackers' pollers in
//! [`poll`]) and the HTTP layer ([`http`], [`oidc`]). Entry points (`cli/`,
//! `functions/*`) only build a stack and call in. See
//! `docs/architecture.md` for the codemap.
//!
//! **May depend on:** `timepost-core`, tokio, axum, rusqlite, reqwest,
//! lettre, jsonwebtoken, and the AWS SDK behind `aws`. **May not:** the
//! CLI, the functions, the test kit or the Lambda runtime crates.

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
