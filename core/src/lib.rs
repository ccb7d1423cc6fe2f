//! timepost's decision core: what a time entry is ([`model`]), how each
//! tracker's payload becomes one ([`sources`]), the firm's rules
//! ([`rules`]), the mapping to ledger codes ([`mapping`]), the pure decision
//! that turns an entry into posting lines or an exception ([`pipeline`]),
//! what timepost remembers of an entry ([`state`]) and of a posting it
//! started ([`intent`]), the reports computed from that memory
//! ([`report`], [`kpis`], [`aggregates`], [`impact`]), and the ports every
//! adapter implements ([`ports`], [`ledger::Ledger`]).
//!
//! **May depend on:** serde, chrono, rust_decimal, csv, the hashing crates,
//! `async-trait` for the port traits. **May not:** tokio, axum, hyper,
//! rusqlite, reqwest or any AWS SDK crate — the decision is pure, and Cargo
//! holds it so: this crate cannot name a runtime, a database or the
//! network. The adapters, the engine that drives the ports, the HTTP layer
//! and the entry points are built on it in the `timepost` crate
//! (`shared/`) and above.

pub mod aggregates;
pub mod csv_out;
pub mod exceptions;
pub mod figures;
pub mod impact;
pub mod intent;
pub mod kpis;
pub mod ledger;
pub mod mapping;
pub mod model;
pub mod money;
pub mod period_report;
pub mod pipeline;
pub mod ports;
pub mod report;
pub mod rules;
pub mod sources;
pub mod state;
pub mod week_claim;

/// The sandbox example's configuration and mappings, as the unit tests read
/// them (the `timepost` crate's `demo` module embeds the same files).
#[cfg(test)]
pub(crate) mod fixtures {
    pub const CONFIG: &str = include_str!("../../examples/sandbox/timepost.toml");
    pub const MAPPINGS: &str = include_str!("../../examples/sandbox/mappings.csv");

    /// The `[rules]` of the sandbox configuration.
    pub fn rules() -> crate::rules::Rules {
        #[derive(serde::Deserialize)]
        struct File {
            rules: crate::rules::Rules,
        }
        toml::from_str::<File>(CONFIG).expect("sandbox rules").rules
    }
}
