//! timepost: moves approved time entries from time trackers into accounting
//! software and keeps the two in agreement.
//!
//! The crate is the whole of timepost's logic. Entry points (`cli/`,
//! `functions/*`) only build adapters and call in. See `docs/architecture.md`
//! for the codemap.

pub mod model;
pub mod rules;
pub mod sources;
