//! timepost's application layer: what happens to a time entry between the
//! tracker and the books, on the core's ports.
//!
//! - [`config`]: `timepost.toml`, every section's settings;
//! - [`engine`] (with its [`engine::books_watch`]) and [`worker`]: the I/O
//!   sequenced around the core's pure decision, and the queue consumer;
//! - [`services`]: the application services every entry point shares
//!   (redrive, discard, route to holding, approve time, re-check held
//!   entries) and [`review`], the mapping change review;
//! - [`intake`], [`rollback`]: receiving entries and undoing a batch;
//! - [`reconcile`], [`archive`], [`alerts`], [`exports`], [`report`],
//!   [`summary`]: reconciliation, period archives, alerts, exports and
//!   reports, each on ports;
//! - [`identity`]: who is asking, and in which role.
//!
//! The core's modules are re-exported under the paths this code has always
//! named (`crate::model`, `crate::ports`, …).
//!
//! **May depend on:** `timepost-core`, tokio (timers, tasks), serde, chrono,
//! rust_decimal, csv, flate2. **May not:** rusqlite, reqwest, axum, hyper,
//! lettre, jsonwebtoken or an AWS SDK crate — the adapters, the HTTP layer
//! and the composition roots are `timepost-shared`'s (`shared/`), which
//! depends on this crate. Cargo holds that line: none of them is a
//! dependency here.

pub use timepost_core::{
    aggregates, csv_out, exceptions, figures, impact, intent, kpis, ledger, mapping, model, money,
    period_report, pipeline, ports, rules, sources, state, week_claim,
};

pub mod alerts;
pub mod archive;
pub mod config;
pub mod engine;
pub mod exports;
pub mod identity;
pub mod intake;
pub mod reconcile;
pub mod report;
pub mod review;
pub mod rollback;
pub mod services;
pub mod summary;
pub mod worker;
