//! Cross-reference tables between tracker objects and ledger objects.
//!
//! - [`table`]: the tables, their rows, and [`Mappings`], the read-only
//!   snapshot the pipeline looks things up in;
//! - [`change`]: versioned changes with who / when / why / before / after;
//! - [`csv_io`]: import and export of mapping tables as CSV;
//! - [`keys`]: the keys an entry is looked up by (what the stores index).

pub mod change;
pub mod csv_io;
pub mod keys;
pub mod table;

pub use change::{diff, MappingChange};
pub use keys::{keys_of, KeyKind, MappedKey};
pub use table::{MappingRow, MappingTable, Mappings};
