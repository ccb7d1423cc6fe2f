//! End-to-end tests that run the real `timepost` binary.
//!
//! One test binary per crate: every module below links against the same
//! build of the workspace, so the test command links three integration
//! binaries instead of one per file. Run one module with
//! `cargo test -p <crate> --test it <module>::`.

mod alerts;
mod archive;
mod aws_backend;
mod browser;
mod cli;
mod commands;
mod common;
mod console;
mod console_archives;
mod console_dashboard;
mod console_detail;
mod console_entries_filter;
mod console_holding;
mod console_preview;
mod console_reconciliation;
mod crash_serve;
mod docs;
mod hardening;
mod serve_lifecycle;
mod webhooks;
