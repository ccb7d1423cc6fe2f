//! The sandbox ledger's tables (`crate::ledger::sandbox`) in the store
//! file: its records and its idempotency keys, created and migrated when
//! the store is opened, like every other table of the file.

use rusqlite::Connection;

pub(crate) fn create_schema(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        r#"
        CREATE TABLE IF NOT EXISTS sandbox_records (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            entry_key TEXT NOT NULL, tier TEXT NOT NULL,
            sync_token INTEGER NOT NULL, line TEXT NOT NULL, active INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS sandbox_records_entry ON sandbox_records(entry_key);
        CREATE TABLE IF NOT EXISTS sandbox_requests (
            idempotency_key TEXT PRIMARY KEY, request_hash TEXT NOT NULL, response TEXT NOT NULL
        );
        "#,
    )?;
    // The fingerprint marker of the intent that last wrote the record (the
    // description suffix a cloud ledger carries); stores made before
    // intents get the column.
    if !super::has_column(conn, "sandbox_records", "fingerprint")? {
        conn.execute_batch("ALTER TABLE sandbox_records ADD COLUMN fingerprint TEXT")?;
    }
    // When the record was last created, changed or deleted (milliseconds
    // since the epoch): the sandbox's change feed. Records of stores made
    // before it have none and count as unchanged since.
    if !super::has_column(conn, "sandbox_records", "modified_at")? {
        conn.execute_batch(
            "ALTER TABLE sandbox_records ADD COLUMN modified_at INTEGER;
             CREATE INDEX IF NOT EXISTS sandbox_records_modified ON sandbox_records(modified_at);",
        )?;
    }
    Ok(())
}
