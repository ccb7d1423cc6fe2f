//! Property and fuzz tests of the pure core.
//!
//! One test binary per crate: every module below links against the same
//! build of the workspace, so the test command links three integration
//! binaries instead of one per file. Run one module with
//! `cargo test -p <crate> --test it <module>::`.

mod entry_key_props;
mod rules_props;
mod sources_fuzz;
mod sources_minimisation;
mod sources_props;
