//! The local family of adapters: one SQLite file holds every store and a
//! durable queue; a directory holds archives; a 0600 file holds secrets.
//! This is what `timepost serve`, `timepost demo` and the tests run on.

pub mod alerts;
pub mod archive;
pub mod pending;
pub mod reconcile;
pub mod restore;
pub mod secrets;
pub mod sqlite;

pub use archive::DirArchive;
pub use restore::restore_period;
pub use secrets::SecretsFile;
pub use sqlite::SqliteStore;
