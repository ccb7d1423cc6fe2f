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

#[cfg(feature = "clients")]
pub mod cloud;
#[cfg(feature = "clients")]
pub mod journal_entry;
#[cfg(feature = "clients")]
pub mod oauth;
#[cfg(feature = "clients")]
pub mod qbo;
#[cfg(feature = "clients")]
pub mod qbo_faults;
#[cfg(feature = "clients")]
pub mod recording;
#[cfg(feature = "sqlite")]
pub mod sandbox;
#[cfg(feature = "clients")]
pub mod transport;
#[cfg(feature = "clients")]
pub mod xero;
#[cfg(feature = "clients")]
pub mod xero_timezone;

// The request and the port are the core's (`timepost_core::ledger`); this
// module adds the adapters.
pub use timepost_core::ledger::*;
