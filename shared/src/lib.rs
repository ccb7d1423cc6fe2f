//! timepost: moves approved time entries from time trackers into accounting
//! software and keeps the two in agreement.
//!
//! The crate is the whole of timepost's logic. Entry points (`cli/`,
//! `functions/*`) only build adapters and call in. See `docs/architecture.md`
//! for the codemap.

pub mod aggregates;
pub mod alerts;
pub mod archive;
#[cfg(feature = "aws")]
pub mod aws;
pub mod books_watch;
pub mod config;
pub mod csv_out;
pub mod demo;
pub mod dry_run;
pub mod engine;
pub mod exceptions;
pub mod exports;
pub mod http;
pub mod impact;
pub mod intake;
pub mod intent;
pub mod kpis;
pub mod ledger;
pub mod local;
pub mod mapping;
pub mod model;
pub mod money;
pub mod oidc;
pub mod pipeline;
pub mod poll;
pub mod ports;
pub mod reconcile;
pub mod report;
pub mod review;
pub mod rollback;
pub mod rules;
pub mod schedules;
pub mod sources;
pub mod state;
pub mod summary;
pub mod week_claim;
pub mod worker;
