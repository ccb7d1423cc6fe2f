//! The ledger adapters: one file per accounting system, on the request and
//! the port of `timepost_core::ledger` (re-exported here). [`sandbox`] is the
//! strict local ledger used by `timepost demo`, the tests and previews.
//!
//! - [`qbo`] (+ [`qbo_faults`]): QuickBooks Online TimeActivity via batch;
//! - [`xero`]: Xero Projects time entries;
//! - [`transport`], [`oauth`] (and `crate::net`'s rate limiter): what both
//!   cloud adapters share;
//! - [`cloud`]: their configuration and assembly; [`recording`]: the
//!   dry-run ledger; [`journal_entry`]: the labour-cost accrual.

pub mod cloud;
pub mod journal_entry;
pub mod oauth;
pub mod qbo;
pub mod qbo_faults;
pub mod recording;
pub mod sandbox;
pub mod transport;
pub mod xero;
pub mod xero_timezone;

// The request and the port are the core's (`timepost_core::ledger`); this
// module adds the adapters.
pub use timepost_core::ledger::*;
