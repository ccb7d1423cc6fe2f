//! timepost: moves approved time entries from time trackers into accounting
//! software and keeps the two in agreement.
//!
//! This crate holds the adapters and the composition roots around the
//! application layer (`timepost_app`) and the pure decision core
//! (`timepost_core`), both re-exported below under the paths they always
//! had (`timepost::model`, `timepost::engine`, `timepost::app`, …):
//!
//! - adapters, each behind the feature a Lambda function names when it
//!   runs it (the CLI, the admin function and the tests take them all):
//!   SQLite and files in `local` (`sqlite`), AWS in `aws` (`aws`; the SNS
//!   notifier `sns`), the ledgers in [`ledger`] (the sandbox's books:
//!   `sqlite`; QuickBooks and Xero: `clients`), the trackers' pollers in
//!   `poll` (`clients`), the notifiers in `notify` (`alerts`), OpenID
//!   sign-in in `oidc` (`oidc`), the shared HTTP client plumbing in
//!   [`net`];
//! - composition roots: [`stack`] (`Stack`; `LocalStack` from a config,
//!   feature `stack`) and `aws::AwsStack` (`stack`) / `aws::AwsPorts`
//!   (from the Lambda environment); and what runs on a local stack:
//!   `demo`, `dry_run`, `schedules` (`stack`).
//!
//! The HTTP layer is `timepost-web` (`web/`), on top of this crate; entry
//! points (`cli/`, `functions/*`) build a stack and call in. See
//! `docs/architecture.md` for the codemap.
//!
//! **May depend on:** `timepost-core`, `timepost-app`, tokio, and behind
//! features rusqlite, reqwest, lettre, jsonwebtoken, the AWS SDK and
//! hyper's HTTP/1 client (`aws`: a function's start-up error to the
//! Lambda runtime API). **May not:** axum, hyper's server or any HTTP
//! server crate (the router is `timepost-web`'s), the CLI, the functions,
//! the test kit or the Lambda runtime crates.

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
#[cfg(feature = "stack")]
pub mod demo;
#[cfg(feature = "stack")]
pub mod dry_run;
pub mod ledger;
#[cfg(feature = "sqlite")]
pub mod local;
pub mod net;
#[cfg(feature = "alerts")]
pub mod notify;
#[cfg(feature = "oidc")]
pub mod oidc;
#[cfg(feature = "clients")]
pub mod poll;
#[cfg(feature = "stack")]
pub mod schedules;
pub mod stack;
