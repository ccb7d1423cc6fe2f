//! The composition roots: [`Stack`] ([`root`]), the ports of one running
//! stack by name that every entry point takes, and [`LocalStack`], the
//! local runtime it is built from — assembled from a config: one SQLite
//! file for every store and the queue, the sandbox (or a cloud) ledger, the
//! engine. What `serve`, `demo`, `ingest` and the tests run on; the AWS
//! builder is `crate::aws::AwsStack`. The local alert job is
//! [`alert_job`].

#[cfg(all(feature = "stack", feature = "alerts"))]
pub mod alert_job;
#[cfg(feature = "stack")]
mod local;
pub mod root;

#[cfg(feature = "stack")]
pub use local::{LocalStack, StackError};
pub use root::{Stack, StackKind};
