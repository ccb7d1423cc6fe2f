//! Integration tests of the adapters, fakes, engine and simulation.
//!
//! One test binary per crate: every module below links against the same
//! build of the workspace, so the test command links three integration
//! binaries instead of one per file. Run one module with
//! `cargo test -p <crate> --test it <module>::`.

mod alerts;
mod archive;
mod aws_aggregates;
mod aws_archive;
mod aws_dynamo;
mod aws_e2e;
mod aws_pending;
mod aws_poller;
mod aws_ratelimit;
mod aws_reconcile;
mod aws_s3;
mod aws_secrets;
mod aws_sqs;
mod books_qbo;
mod books_xero;
mod codemap;
mod console_identity;
mod convergence;
mod convergent_posting;
mod demo_golden;
mod dry_run_from;
mod engine;
mod engine_qbo;
mod mapping_index;
mod memory_contracts;
mod module_cycles;
mod oidc;
mod period_reads;
mod pollers;
mod qbo;
mod qbo_contract;
mod qbo_vendor;
mod reconcile;
mod routes;
mod sim;
mod status_pages;
mod store_contracts;
mod template;
mod xero;
