//! timepost: moves approved time entries from time trackers into accounting
//! software and keeps the two in agreement.
//!
//! The crate is the whole of timepost's logic. Entry points (`cli/`,
//! `functions/*`) only build adapters and call in. See `docs/architecture.md`
//! for the codemap.

// The decision core, re-exported under the paths the rest of the crate and
// its users have always named.
pub use timepost_core::{
    aggregates, csv_out, exceptions, impact, intent, kpis, mapping, model, money, pipeline, ports,
    rules, sources, state, week_claim,
};

pub mod alerts;
pub mod app;
pub mod archive;
#[cfg(feature = "aws")]
pub mod aws;
pub mod books_watch;
pub mod config;
pub mod demo;
pub mod dry_run;
pub mod engine;
pub mod exports;
pub mod http;
pub mod intake;
pub mod ledger;
pub mod local;
pub mod oidc;
pub mod poll;
pub mod reconcile;
pub mod report;
pub mod review;
pub mod rollback;
pub mod schedules;
pub mod summary;
pub mod worker;
