//! Every store, and a durable queue, in one SQLite file (WAL mode,
//! `synchronous=FULL`, so a committed enqueue survives a crash). Each port
//! method is one transaction: nothing is ever half-written.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::intent::Intent;
use crate::mapping::{MappingChange, MappingRow, MappingTable, Mappings};
use crate::model::{EntryKey, Source};
use crate::ports::*;
use crate::state::{EntryState, Status};

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    source TEXT NOT NULL, workspace TEXT NOT NULL, user_id TEXT NOT NULL,
    week_start TEXT NOT NULL,
    work_date TEXT,
    status TEXT NOT NULL,
    revision INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_week ON entries(source, workspace, user_id, week_start);
CREATE INDEX IF NOT EXISTS entries_status ON entries(status, updated_at);
CREATE TABLE IF NOT EXISTS entry_versions (
    key TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    received_at TEXT NOT NULL,
    version TEXT NOT NULL,
    PRIMARY KEY (key, updated_at, content_hash)
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS mappings (
    tbl TEXT NOT NULL, key TEXT NOT NULL, row TEXT NOT NULL, PRIMARY KEY (tbl, key)
);
CREATE TABLE IF NOT EXISTS mapping_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, key TEXT NOT NULL, change TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, batch_id TEXT NOT NULL, key TEXT NOT NULL, record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_batch ON journal(batch_id);
CREATE INDEX IF NOT EXISTS journal_key ON journal(key);
CREATE TABLE IF NOT EXISTS intents (
    id TEXT PRIMARY KEY, key TEXT NOT NULL, open INTEGER NOT NULL,
    opened_at TEXT NOT NULL, intent TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS intents_open ON intents(open, key);
CREATE TABLE IF NOT EXISTS dirty_weeks (
    week TEXT PRIMARY KEY, marked_at TEXT NOT NULL, why TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt TEXT,
    enqueued_at TEXT NOT NULL
);
-- Receive walks the queue in `seq` (rowid) order and skips the few
-- messages in flight; an index on visible_at would make it sort them all.
DROP INDEX IF EXISTS queue_visible;
CREATE INDEX IF NOT EXISTS queue_receipt ON queue(receipt);
CREATE TABLE IF NOT EXISTS dead_letters (
    id TEXT PRIMARY KEY, body TEXT NOT NULL, reason TEXT NOT NULL, code TEXT,
    receive_count INTEGER NOT NULL, parked_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS watermarks (name TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL, who TEXT NOT NULL, role TEXT NOT NULL,
    action TEXT NOT NULL, entry TEXT, detail TEXT NOT NULL
);
"#;

/// The embedded store. Cheap to clone; all clones share one connection
/// for reads and the worker's writes, and one group-commit writer for the
/// ingest queue.
///
/// Durability: enqueues go through `Enqueuer` on a connection with
/// `synchronous=FULL`, so a message is on disk before `send_batch` returns
/// (and before a webhook answers 2xx); concurrent enqueues share one
/// commit. The main connection uses `synchronous=NORMAL` (WAL): after a
/// power loss its last commits may be missing, which replays the messages
/// they settled — safe, because ledger calls are idempotent by key.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    enqueuer: Option<Arc<Enqueuer>>,
    /// Whether intents are synced to disk before the ledger call (a remote
    /// ledger; see [`SqliteStore::set_durable_intents`]).
    durable_intents: Arc<std::sync::atomic::AtomicBool>,
    /// How many entries the key migration re-keyed when this store was
    /// opened (see `migrate_entry_keys`).
    rekeyed: usize,
    /// Whether the whole-file check ran when this store was opened.
    checked_whole: bool,
}

/// One enqueue request waiting for the group commit.
struct EnqueueJob {
    rows: Vec<(String, String)>,
    reply: tokio::sync::oneshot::Sender<Result<(), String>>,
}

/// Group commit: a thread with its own connection takes every enqueue
/// request waiting at the moment and writes them in one transaction.
struct Enqueuer {
    tx: std::sync::mpsc::Sender<EnqueueJob>,
}

impl Enqueuer {
    const MAX_GROUP: usize = 2048;

    fn start(path: &Path) -> StoreResult<Self> {
        let conn = Connection::open(path).map_err(backend)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.busy_handler(Some(busy_wait)).map_err(backend)?;
        let (tx, rx) = std::sync::mpsc::channel::<EnqueueJob>();
        std::thread::Builder::new()
            .name("timepost-enqueue".into())
            .spawn(move || Self::run(conn, rx))
            .map_err(backend)?;
        Ok(Self { tx })
    }

    fn run(mut conn: Connection, rx: std::sync::mpsc::Receiver<EnqueueJob>) {
        // Ends when every store clone (every sender) is gone.
        while let Ok(first) = rx.recv() {
            let mut jobs = vec![first];
            let mut n = jobs[0].rows.len();
            while n < Self::MAX_GROUP {
                match rx.try_recv() {
                    Ok(j) => {
                        n += j.rows.len();
                        jobs.push(j);
                    }
                    Err(_) => break,
                }
            }
            let result = Self::write(&mut conn, &jobs).map_err(|e| e.to_string());
            for j in jobs {
                let _ = j.reply.send(result.clone());
            }
        }
    }

    fn write(conn: &mut Connection, jobs: &[EnqueueJob]) -> rusqlite::Result<()> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let now = now_ms();
            let at = Utc::now().to_rfc3339();
            let mut stmt = tx.prepare_cached(
                "INSERT INTO queue (id, body, visible_at, enqueued_at) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (id, body) in jobs.iter().flat_map(|j| &j.rows) {
                stmt.execute(params![id, body, now, at])?;
            }
        }
        tx.commit()
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The enqueue writer waiting for the worker's write lock: poll every
/// 100 µs (up to ~10 s) rather than SQLite's default back-off of up to
/// 100 ms a sleep, which would dominate webhook tail latency under load.
fn busy_wait(count: i32) -> bool {
    std::thread::sleep(Duration::from_micros(100));
    count < 100_000
}

/// The largest store (file and WAL) that gets SQLite's whole-file
/// `quick_check` every time it is opened: about half a second of reading on
/// the 2-core reference machine. See [`SqliteStore::open`].
pub const WHOLE_CHECK_BYTES: u64 = 64 << 20;

/// Run `build` once per store, in one transaction, unless the one-row
/// table `marker` says it already ran (`build` writes that row).
fn build_once(
    conn: &mut Connection,
    marker: &str,
    build: impl FnOnce(&rusqlite::Transaction) -> StoreResult<()>,
) -> StoreResult<()> {
    let built: bool = conn
        .prepare(&format!("SELECT 1 FROM {marker}"))
        .and_then(|mut s| s.exists([]))
        .map_err(backend)?;
    if built {
        return Ok(());
    }
    let tx = conn.transaction().map_err(backend)?;
    build(&tx)?;
    tx.commit().map_err(backend)
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl SqliteStore {
    /// Open (creating if needed) the store at `path`.
    ///
    /// - The store holds people's names, hours and rates: a new store file
    ///   is created readable by its owner only (0600; SQLite gives its
    ///   `-wal` and `-shm` files the same mode), in a directory created
    ///   0700. An existing store file (or `-wal` / `-shm`) open to group or
    ///   others is narrowed to 0600, with a warning.
    /// - `PRAGMA quick_check` runs first on a store file (with its WAL) of
    ///   up to [`WHOLE_CHECK_BYTES`]: a damaged store is refused with its
    ///   path and a sentence, so nothing is accepted into it. The check
    ///   reads every page, so a larger store gets it where its cost is paid
    ///   once — when `timepost serve` starts ([`SqliteStore::check_whole`])
    ///   — and otherwise a check that its header and schema read; SQLite
    ///   still verifies each page a command reads or writes, and refuses a
    ///   damaged one with an error instead of using it.
    /// - A store timepost cannot write (read-only file or directory) is
    ///   refused with its path.
    pub fn open(path: &Path) -> StoreResult<Self> {
        files::prepare(path)?;
        let conn = Connection::open(path)
            .map_err(|e| backend(format!("cannot open the store {}: {e}", path.display())))?;
        let whole = integrity::whole_due(path);
        integrity::check(&conn, path, whole)?;
        let mut store = Self::init(conn, "NORMAL").map_err(|e| integrity::explain(e, path))?;
        store.checked_whole = whole;
        store.enqueuer = Some(Arc::new(
            Enqueuer::start(path).map_err(|e| integrity::explain(e, path))?,
        ));
        files::narrow_companions(path);
        Ok(store)
    }

    /// SQLite's `quick_check` over every page of the store, unless it ran
    /// when the store was opened: a damaged store is refused with the same
    /// sentence as at open. `timepost serve` runs it when it starts, so a
    /// long-running process never takes in work on a damaged store that was
    /// too large for the check at open.
    pub fn check_whole(&self, path: &Path) -> StoreResult<()> {
        if self.checked_whole {
            return Ok(());
        }
        integrity::check(&self.lock(), path, true)
    }

    /// A private in-memory store (tests, benchmarks).
    pub fn in_memory() -> StoreResult<Self> {
        Self::init(Connection::open_in_memory().map_err(backend)?, "FULL")
    }

    fn init(conn: Connection, synchronous: &str) -> StoreResult<Self> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", synchronous)
            .map_err(backend)?;
        // Each entry settled is a dozen small commits here (claims, intent,
        // ledger, state with its aggregates, journal, queue), about 60
        // pages of WAL. At SQLite's default (a checkpoint every 1,000
        // pages, each with two fsyncs) an import checkpointed every few
        // entries and copied the same hot pages back again and again; at
        // 10,000 pages (≈ 40 MB of WAL) the same pages are copied once per
        // checkpoint. Durability is unchanged: a commit is as durable as
        // `synchronous` says whatever the checkpoint interval.
        conn.pragma_update(None, "wal_autocheckpoint", 10_000)
            .map_err(backend)?;
        // 16 MiB of page cache (SQLite's default is 2 MiB): the interior
        // pages of the entry, index and aggregate B-trees of a store of a
        // million entries stay in memory.
        conn.pragma_update(None, "cache_size", -16_384)
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        // The worker is background work: let it back off (SQLite's default)
        // so the enqueue writer, which a webhook is waiting on, goes first.
        conn.busy_timeout(Duration::from_secs(30))
            .map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        conn.execute_batch(aggregates::SCHEMA).map_err(backend)?;
        conn.execute_batch(keyindex::SCHEMA).map_err(backend)?;
        migrate_work_date(&conn).map_err(backend)?;
        keyindex::migrate(&conn).map_err(backend)?;
        period::migrate(&conn).map_err(backend)?;
        sandbox::create_schema(&conn).map_err(backend)?;
        let rekeyed = migrate_entry_keys(&conn)?;
        let mut conn = conn;
        aggregates::build_if_missing(&mut conn)?;
        keyindex::build_if_missing(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            enqueuer: None,
            durable_intents: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            rekeyed,
            checked_whole: false,
        })
    }

    /// How many entries were re-keyed to the escaped key form when this
    /// store was opened (0 once a store is migrated).
    pub fn rekeyed_at_open(&self) -> usize {
        self.rekeyed
    }

    /// Sync each write-ahead intent to disk before its ledger call: for a
    /// ledger outside this file (QuickBooks, Xero), whose records would
    /// survive a power loss that took the intent with it.
    pub fn set_durable_intents(&self, on: bool) {
        self.durable_intents
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// Drop the claims of local processes that are no longer running (an
    /// owner named `pid:<pid>:…` whose process is gone): a restarted
    /// `timepost serve` takes over its dead predecessor's worker-weeks at
    /// once instead of waiting for the claims to expire. Returns how many.
    pub fn release_dead_claims(&self) -> StoreResult<usize> {
        let conn = self.lock();
        let owners: Vec<String> = {
            let mut stmt = conn
                .prepare("SELECT DISTINCT owner FROM claims")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)?
        };
        let mut n = 0;
        for owner in owners {
            if owner_is_dead(&owner) {
                n += conn
                    .execute("DELETE FROM claims WHERE owner = ?1", [&owner])
                    .map_err(backend)?;
            }
        }
        Ok(n)
    }

    /// Drop every claim `owner` holds (a worker known to be gone).
    pub fn release_owner(&self, owner: &str) -> StoreResult<usize> {
        self.lock()
            .execute("DELETE FROM claims WHERE owner = ?1", [owner])
            .map_err(backend)
    }

    /// The connection, for adapters that live in the same file (the sandbox
    /// ledger). A poisoned lock means a panic mid-transaction, which SQLite
    /// rolled back; the connection itself is still sound.
    pub fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replace every mapping from a list of changes already computed (used
    /// by `apply`, inside its transaction).
    fn apply_changes(
        tx: &rusqlite::Transaction<'_>,
        mut changes: Vec<MappingChange>,
    ) -> rusqlite::Result<Vec<MappingChange>> {
        for c in &mut changes {
            tx.execute(
                "INSERT INTO mapping_changes (tbl, key, change) VALUES (?1, ?2, '{}')",
                params![c.table.as_str(), c.key],
            )?;
            c.seq = tx.last_insert_rowid() as u64;
            let json = serde_json::to_string(&c)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            tx.execute(
                "UPDATE mapping_changes SET change = ?1 WHERE seq = ?2",
                params![json, c.seq as i64],
            )?;
            match &c.after {
                Some(row) => {
                    let json = serde_json::to_string(row)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                    tx.execute(
                        "INSERT INTO mappings (tbl, key, row) VALUES (?1, ?2, ?3)
                         ON CONFLICT (tbl, key) DO UPDATE SET row = excluded.row",
                        params![c.table.as_str(), c.key, json],
                    )?;
                }
                None => {
                    tx.execute(
                        "DELETE FROM mappings WHERE tbl = ?1 AND key = ?2",
                        params![c.table.as_str(), c.key],
                    )?;
                }
            }
        }
        Ok(changes)
    }
}

/// Who may read the store's files (see [`SqliteStore::open`]).
mod aggregates;
mod bulk;
mod keyindex;
mod period;
mod sandbox;

mod files {
    use std::path::{Path, PathBuf};

    use super::backend;
    use crate::ports::StoreResult;

    /// The store file's companions (WAL and shared memory).
    fn companions(path: &Path) -> [PathBuf; 2] {
        ["-wal", "-shm"].map(|suffix| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            PathBuf::from(p)
        })
    }

    /// Create the directory (0700) and the file (0600) if missing; narrow
    /// an existing file open to group or others.
    #[cfg(unix)]
    pub fn prepare(path: &Path) -> StoreResult<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .map_err(|e| backend(format!("cannot create {}: {e}", dir.display())))?;
            }
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                narrow(path);
                Ok(())
            }
            // A read-only directory, a missing parent we could not make…:
            // SQLite would fail with less to say.
            Err(e) => Err(backend(format!(
                "cannot create the store {}: {e}",
                path.display()
            ))),
        }
    }

    #[cfg(not(unix))]
    pub fn prepare(path: &Path) -> StoreResult<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        Ok(())
    }

    /// Narrow `-wal` / `-shm` left by an older timepost or another tool.
    pub fn narrow_companions(path: &Path) {
        for p in companions(path) {
            narrow(&p);
        }
    }

    /// Make `p` 0600 if it exists and group or others may use it.
    #[cfg(unix)]
    fn narrow(p: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(p) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            return;
        }
        match std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)) {
            Ok(()) => tracing::warn!(
                path = %p.display(),
                "store file was mode {mode:o}; narrowed to 600 (readable by its owner only)"
            ),
            Err(e) => tracing::warn!(
                path = %p.display(),
                error = %e,
                "store file is mode {mode:o} (readable by others) and cannot be narrowed; chmod 600 it"
            ),
        }
    }

    #[cfg(not(unix))]
    fn narrow(_p: &Path) {}
}

/// Refuse a store that is damaged or that timepost cannot write.
mod integrity {
    use std::path::Path;

    use rusqlite::Connection;

    use super::backend;
    use crate::ports::{StoreError, StoreResult};

    /// Whether the store at `path` is small enough for the whole-file
    /// check at every open ([`super::WHOLE_CHECK_BYTES`], the file and its
    /// WAL together; a file that cannot be measured is checked whole).
    pub fn whole_due(path: &Path) -> bool {
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len());
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        match size(path) {
            Ok(db) => db + size(Path::new(&wal)).unwrap_or(0) <= super::WHOLE_CHECK_BYTES,
            Err(_) => true,
        }
    }

    /// `whole`: `PRAGMA quick_check` (structure of every page, without the
    /// slower index cross-checks of `integrity_check`); otherwise the
    /// header and the schema must read. Then writability.
    pub fn check(conn: &Connection, path: &Path, whole: bool) -> StoreResult<()> {
        let sql = if whole {
            "PRAGMA quick_check(5)"
        } else {
            "SELECT 'ok' FROM (SELECT count(*) FROM sqlite_schema)"
        };
        let problems: Result<Vec<String>, rusqlite::Error> = conn
            .prepare(sql)
            .and_then(|mut stmt| stmt.query_map([], |r| r.get::<_, String>(0))?.collect());
        match problems {
            Ok(rows) if rows.iter().all(|r| r == "ok") => {}
            Ok(rows) => return Err(damaged(path, &rows.join("; "))),
            Err(e) => return Err(damaged(path, &e.to_string())),
        }
        if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
            return Err(read_only(path));
        }
        Ok(())
    }

    fn damaged(path: &Path, detail: &str) -> StoreError {
        // SQLite's report, on one line and short.
        let detail: Vec<&str> = detail
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("***"))
            .take(3)
            .collect();
        backend(format!(
            "the store {} is damaged, and timepost will not read or write a damaged store. \
             Stop every timepost using it, move the file (with its -wal and -shm files) aside \
             and restore the last backup, or start a new store and replay the trackers \
             (SQLite found: {})",
            path.display(),
            detail.join("; ")
        ))
    }

    fn read_only(path: &Path) -> StoreError {
        backend(format!(
            "the store {} is read-only: timepost must write to its store (check the permissions \
             and owner of the file and its directory)",
            path.display()
        ))
    }

    /// An error while setting the store up, with the store's path and,
    /// for the usual causes, what they mean.
    pub fn explain(e: StoreError, path: &Path) -> StoreError {
        let text = match &e {
            StoreError::Backend(m) => m.clone(),
            other => other.to_string(),
        };
        if text.contains("readonly") || text.contains("read-only") {
            return read_only(path);
        }
        if text.contains("malformed") || text.contains("not a database") {
            return damaged(path, &text);
        }
        if text.contains(&path.display().to_string()) {
            return e;
        }
        backend(format!("the store {}: {text}", path.display()))
    }
}

/// Whether `table` has the column `column` (a migration's question).
pub(crate) fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    conn.prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .exists([table, column])
}

/// Stores created before `work_date` was a column get it (filled from the
/// stored state) and its index.
fn migrate_work_date(conn: &Connection) -> rusqlite::Result<()> {
    if !has_column(conn, "entries", "work_date")? {
        conn.execute_batch(
            "ALTER TABLE entries ADD COLUMN work_date TEXT;
             UPDATE entries SET work_date = json_extract(state, '$.entry.work_date');",
        )?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS entries_date ON entries(source, workspace, work_date);",
    )
}

/// The schema version (`PRAGMA user_version`) from which entry keys are
/// stored in their escaped text form (`EntryKey`'s `Display`: `%` → `%25`,
/// `:` → `%3A` inside the workspace and the id).
const ESCAPED_KEYS_VERSION: i64 = 1;

/// Stores written before [`ESCAPED_KEYS_VERSION`] keyed entries by
/// `source:workspace:id` unescaped. Each entry's key is recomputed from the
/// identity its own document holds (`state.entry.key`), each journal record
/// and intent from its own, and the tables that only hold the old text
/// (claims, the audit log's `entry`, the sandbox ledger's `entry_key`)
/// follow the entries' renames. Keys whose parts hold neither `:` nor `%`
/// are unchanged, so on most stores this rewrites nothing. One
/// transaction: either every key is migrated and the version set, or
/// nothing changed. Returns how many entries were re-keyed.
///
/// Two entries that had already collided under the old form were one row:
/// the migration cannot bring the overwritten one back (replay it from its
/// tracker: `timepost ingest`, or a redelivery).
fn migrate_entry_keys(conn: &Connection) -> StoreResult<usize> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(backend)?;
    if version >= ESCAPED_KEYS_VERSION {
        return Ok(0);
    }
    let tx = conn.unchecked_transaction().map_err(backend)?;
    let renamed = rekey(&tx).map_err(backend)?;
    tx.pragma_update(None, "user_version", ESCAPED_KEYS_VERSION)
        .map_err(backend)?;
    tx.commit().map_err(backend)?;
    if !renamed.is_empty() {
        tracing::info!(
            entries = renamed.len(),
            "store migrated: entry keys holding `:` or `%` are now escaped"
        );
    }
    Ok(renamed.len())
}

/// The renames of [`migrate_entry_keys`]: old text → new text.
fn rekey(tx: &Connection) -> rusqlite::Result<std::collections::HashMap<String, String>> {
    use std::collections::HashMap;
    /// Which key a row's JSON document names (None: not readable, left as is).
    fn key_of<T: serde::de::DeserializeOwned>(
        json: &str,
        f: impl Fn(T) -> EntryKey,
    ) -> Option<String> {
        serde_json::from_str::<T>(json)
            .ok()
            .map(|v| f(v).to_string())
    }
    let rows = |sql: &str| -> rusqlite::Result<Vec<(String, String)>> {
        let mut stmt = tx.prepare(sql)?;
        let out = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
            .collect();
        out
    };
    // Only a text with more than two `:` or with a `%` can change (any
    // other's parts hold neither), so only those rows are read.
    const MAY_CHANGE: &str =
        "(instr(key, '%') > 0 OR length(key) - length(replace(key, ':', '')) > 2)";
    // Entries: through a temporary name, so a new key equal to another
    // row's old text (an id that really held `%3A`) never clashes.
    let mut renamed: HashMap<String, String> = HashMap::new();
    for (old, json) in rows(&format!(
        "SELECT key, state FROM entries WHERE {MAY_CHANGE}"
    ))? {
        if let Some(new) = key_of(&json, |st: EntryState| st.entry.key) {
            if new != old {
                renamed.insert(old, new);
            }
        }
    }
    for old in renamed.keys() {
        tx.execute(
            "UPDATE entries SET key = ?1 WHERE key = ?2",
            params![format!("\u{1}{old}"), old],
        )?;
    }
    for (old, new) in &renamed {
        tx.execute(
            "UPDATE entries SET key = ?1 WHERE key = ?2",
            params![new, format!("\u{1}{old}")],
        )?;
    }
    // The KPI samples follow their entries, the same way.
    for old in renamed.keys() {
        tx.execute(
            "UPDATE kpi_samples SET key = ?1 WHERE key = ?2",
            params![format!("\u{1}{old}"), old],
        )?;
    }
    for (old, new) in &renamed {
        tx.execute(
            "UPDATE kpi_samples SET key = ?1 WHERE key = ?2",
            params![new, format!("\u{1}{old}")],
        )?;
    }
    // Journal records and intents carry their own identity.
    for (seq, json) in rows(&format!(
        "SELECT CAST(seq AS TEXT), record FROM journal WHERE {MAY_CHANGE}"
    ))? {
        if let Some(new) = key_of(&json, |r: JournalRecord| r.key) {
            tx.execute(
                "UPDATE journal SET key = ?1 WHERE seq = CAST(?2 AS INTEGER) AND key <> ?1",
                params![new, seq],
            )?;
        }
    }
    for (id, json) in rows(&format!(
        "SELECT id, intent FROM intents WHERE {MAY_CHANGE}"
    ))? {
        if let Some(new) = key_of(&json, |i: Intent| i.key) {
            tx.execute(
                "UPDATE intents SET key = ?1 WHERE id = ?2 AND key <> ?1",
                params![new, id],
            )?;
        }
    }
    // The rest only holds the old text: follow the entries. A claim is a
    // lease that lapses anyway; it is dropped rather than moved.
    for (old, new) in &renamed {
        tx.execute("DELETE FROM claims WHERE key = ?1", [old])?;
        tx.execute(
            "UPDATE audit SET entry = ?1 WHERE entry = ?2",
            params![new, old],
        )?;
        tx.execute(
            "UPDATE sandbox_records SET entry_key = ?1 WHERE entry_key = ?2",
            params![new, old],
        )?;
    }
    Ok(renamed)
}

fn decode<T: serde::de::DeserializeOwned>(json: &str) -> StoreResult<T> {
    serde_json::from_str(json).map_err(|e| backend(format!("corrupt record: {e}")))
}

fn encode<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(backend)
}

fn states(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> StoreResult<Vec<EntryState>> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map(p, |r| r.get::<_, String>(0))
        .map_err(backend)?;
    rows.map(|r| decode(&r.map_err(backend)?)).collect()
}

/// One entry-state write inside the caller's transaction: the revision
/// check, the aggregates moved from the stored state to the new one, the
/// row itself. `put` runs it in a transaction of its own;
/// [`SqliteStore::put_many`] runs it for many states in one.
fn put_in(tx: &Connection, state: &EntryState) -> StoreResult<u64> {
    let mut stored = state.clone();
    stored.revision = state.revision + 1;
    let json = encode(&stored)?;
    let e = &state.entry;
    let current: Option<(i64, String)> = tx
        .prepare_cached("SELECT revision, state FROM entries WHERE key = ?1")
        .and_then(|mut st| {
            st.query_row([e.key.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(backend)?;
    if current.as_ref().map_or(0, |c| c.0) as u64 != state.revision {
        return Err(StoreError::Conflict(e.key.to_string()));
    }
    // The aggregates move with the state, in this transaction.
    let before: Option<EntryState> = current.map(|c| decode(&c.1)).transpose()?;
    aggregates::on_write(tx, before.as_ref(), Some(&stored)).map_err(backend)?;
    keyindex::on_write(tx, before.as_ref(), Some(&stored)).map_err(backend)?;
    tx.prepare_cached(
        "INSERT INTO entries (key, source, workspace, user_id, week_start, status, revision, updated_at, state, work_date)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (key) DO UPDATE SET source = excluded.source, workspace = excluded.workspace,
           user_id = excluded.user_id, week_start = excluded.week_start, status = excluded.status,
           revision = excluded.revision, updated_at = excluded.updated_at, state = excluded.state,
           work_date = excluded.work_date",
    )
    .and_then(|mut st| {
        st.execute(params![
            e.key.to_string(),
            e.key.source.as_str(),
            e.key.workspace,
            e.worker.tracker_user_id,
            e.week_start().to_string(),
            stored.status().as_str(),
            stored.revision as i64,
            stored.updated_at.to_rfc3339(),
            json,
            e.work_date.to_string()
        ])
    })
    .map_err(backend)?;
    Ok(stored.revision)
}

impl SqliteStore {
    /// Write many entry states in one transaction, each exactly as `put`
    /// writes it (revision check, aggregates kept by the same code): all
    /// are written or, on the first conflict or error, none. For building
    /// large stores (`scale-bench`); the engine writes one state at a time.
    pub fn put_many(&self, states: &[EntryState]) -> StoreResult<Vec<u64>> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let revisions = states
            .iter()
            .map(|s| put_in(&tx, s))
            .collect::<StoreResult<Vec<_>>>()?;
        tx.commit().map_err(backend)?;
        Ok(revisions)
    }
}

#[async_trait]
impl EntryStore for SqliteStore {
    async fn get(&self, key: &EntryKey) -> StoreResult<Option<EntryState>> {
        let conn = self.lock();
        let json: Option<String> = conn
            .prepare_cached("SELECT state FROM entries WHERE key = ?1")
            .and_then(|mut s| s.query_row([key.to_string()], |r| r.get(0)).optional())
            .map_err(backend)?;
        json.map(|j| decode(&j)).transpose()
    }

    async fn put(&self, state: &EntryState) -> StoreResult<u64> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let revision = put_in(&tx, state)?;
        tx.commit().map_err(backend)?;
        Ok(revision)
    }

    async fn week(&self, week: &WorkerWeek) -> StoreResult<Vec<EntryState>> {
        states(
            &self.lock(),
            "SELECT state FROM entries WHERE source = ?1 AND workspace = ?2 AND user_id = ?3 AND week_start = ?4",
            params![
                week.source.as_str(),
                week.workspace,
                week.user_id,
                week.week_start.to_string()
            ],
        )
    }

    async fn by_status(&self, status: Status, limit: usize) -> StoreResult<Vec<EntryState>> {
        states(
            &self.lock(),
            "SELECT state FROM entries WHERE status = ?1 ORDER BY updated_at, key LIMIT ?2",
            params![status.as_str(), limit as i64],
        )
    }

    async fn by_status_after(
        &self,
        status: Status,
        after: Option<&crate::ports::StatusCursor>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        let Some(a) = after else {
            return self.by_status(status, limit).await;
        };
        // `updated_at` in the text `put` writes, so the comparison follows
        // the index's order.
        states(
            &self.lock(),
            "SELECT state FROM entries WHERE status = ?1
               AND (updated_at > ?2 OR (updated_at = ?2 AND key > ?3))
             ORDER BY updated_at, key LIMIT ?4",
            params![
                status.as_str(),
                a.updated_at.to_rfc3339(),
                a.key,
                limit as i64
            ],
        )
    }

    async fn all(&self) -> StoreResult<Vec<EntryState>> {
        states(&self.lock(), "SELECT state FROM entries ORDER BY key", [])
    }

    async fn aggregates(
        &self,
        grain: crate::aggregates::Grain,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> StoreResult<Vec<(crate::aggregates::AggKey, crate::aggregates::AggVals)>> {
        aggregates::read(&self.lock(), grain, from, to)
    }

    async fn kpi_samples(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> StoreResult<Vec<crate::aggregates::Sample>> {
        aggregates::samples(&self.lock(), from, to)
    }

    async fn page(&self, after: Option<&EntryKey>, limit: usize) -> StoreResult<Vec<EntryState>> {
        states(
            &self.lock(),
            "SELECT state FROM entries WHERE key > ?1 ORDER BY key LIMIT ?2",
            params![
                after.map(|k| k.to_string()).unwrap_or_default(),
                limit as i64
            ],
        )
    }

    async fn newest_work_date(&self) -> StoreResult<Option<NaiveDate>> {
        aggregates::newest_day(&self.lock())
    }

    async fn rebuild_aggregates(&self) -> StoreResult<crate::aggregates::Rebuild> {
        self.rebuild_aggregates_now()
    }

    async fn by_mapped_keys(
        &self,
        keys: &[crate::mapping::MappedKey],
        after: Option<&EntryKey>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        self.by_mapped_keys_now(keys, after, limit)
    }

    async fn by_mapped_keys_dated(
        &self,
        keys: &[crate::mapping::MappedKey],
        from: NaiveDate,
        to: NaiveDate,
        after: Option<&EntryKey>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        self.by_mapped_keys_in(keys, Some((from, to)), after, limit)
    }

    async fn count_by_mapped_keys(&self, keys: &[crate::mapping::MappedKey]) -> StoreResult<usize> {
        self.count_by_mapped_keys_now(keys)
    }

    async fn rebuild_key_index(&self) -> StoreResult<crate::mapping::keys::IndexRebuild> {
        self.rebuild_key_index_now()
    }

    async fn by_source_dates(
        &self,
        source: Source,
        workspace: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<EntryState>> {
        states(
            &self.lock(),
            "SELECT state FROM entries WHERE source = ?1 AND workspace = ?2
               AND work_date >= ?3 AND work_date <= ?4 ORDER BY key",
            params![source.as_str(), workspace, from.to_string(), to.to_string()],
        )
    }

    async fn by_work_dates(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        after: Option<&PeriodCursor>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        period::page(&self.lock(), from, to, after, limit)
    }

    fn period_page(&self) -> usize {
        PERIOD_PAGE
    }

    async fn claim(&self, key: &EntryKey, owner: &str, ttl: Duration) -> StoreResult<bool> {
        let now = now_ms();
        let expires = now + ttl.as_millis() as i64;
        let conn = self.lock();
        // Take the claim if free, expired, or already ours.
        let n = conn
            .execute(
                "INSERT INTO claims (key, owner, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
                 WHERE claims.expires_at <= ?4 OR claims.owner = excluded.owner",
                params![key.to_string(), owner, expires, now],
            )
            .map_err(backend)?;
        Ok(n == 1)
    }

    async fn release(&self, key: &EntryKey, owner: &str) -> StoreResult<()> {
        self.lock()
            .execute(
                "DELETE FROM claims WHERE key = ?1 AND owner = ?2",
                params![key.to_string(), owner],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn record_version(
        &self,
        entry: &crate::model::NormalisedEntry,
        received_at: chrono::DateTime<Utc>,
    ) -> StoreResult<()> {
        let v = crate::ports::ReceivedVersion {
            received_at,
            entry: entry.clone(),
        };
        self.lock()
            .execute(
                "INSERT OR IGNORE INTO entry_versions (key, updated_at, content_hash, received_at, version)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    entry.key.to_string(),
                    entry.version.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    entry.version.content_hash,
                    received_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                    encode(&v)?,
                ],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn versions(&self, key: &EntryKey) -> StoreResult<Vec<crate::ports::ReceivedVersion>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT version FROM entry_versions WHERE key = ?1 ORDER BY updated_at, received_at, content_hash",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([key.to_string()], |r| r.get::<_, String>(0))
            .map_err(backend)?;
        rows.map(|r| decode(&r.map_err(backend)?)).collect()
    }
}

#[async_trait]
impl MappingStore for SqliteStore {
    async fn snapshot(&self) -> StoreResult<Mappings> {
        let conn = self.lock();
        let version: i64 = conn
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM mapping_changes",
                [],
                |r| r.get(0),
            )
            .map_err(backend)?;
        let mut stmt = conn
            .prepare_cached("SELECT row FROM mappings")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(backend)?;
        let rows: Vec<MappingRow> = rows
            .map(|r| decode(&r.map_err(backend)?))
            .collect::<StoreResult<_>>()?;
        Ok(Mappings::from_rows(rows, version as u64))
    }

    async fn version(&self) -> StoreResult<u64> {
        let v: i64 = self
            .lock()
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM mapping_changes",
                [],
                |r| r.get(0),
            )
            .map_err(backend)?;
        Ok(v as u64)
    }

    async fn apply(&self, changes: Vec<MappingChange>) -> StoreResult<Vec<MappingChange>> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let applied = Self::apply_changes(&tx, changes).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(applied)
    }

    async fn history(
        &self,
        table: Option<MappingTable>,
        key: Option<&str>,
    ) -> StoreResult<Vec<MappingChange>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT change FROM mapping_changes
                 WHERE (?1 IS NULL OR tbl = ?1) AND (?2 IS NULL OR key = ?2) ORDER BY seq",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![table.map(|t| t.as_str()), key], |r| {
                r.get::<_, String>(0)
            })
            .map_err(backend)?;
        rows.map(|r| decode(&r.map_err(backend)?)).collect()
    }
}

#[async_trait]
impl Journal for SqliteStore {
    async fn append(&self, mut record: JournalRecord) -> StoreResult<u64> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(backend)?;
        tx.execute(
            "INSERT INTO journal (batch_id, key, record) VALUES (?1, ?2, '{}')",
            params![record.batch_id, record.key.to_string()],
        )
        .map_err(backend)?;
        record.seq = tx.last_insert_rowid() as u64;
        tx.execute(
            "UPDATE journal SET record = ?1 WHERE seq = ?2",
            params![encode(&record)?, record.seq as i64],
        )
        .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(record.seq)
    }

    async fn by_batch(&self, batch_id: &str) -> StoreResult<Vec<JournalRecord>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT record FROM journal WHERE batch_id = ?1 ORDER BY seq")
            .map_err(backend)?;
        let rows = stmt
            .query_map([batch_id], |r| r.get::<_, String>(0))
            .map_err(backend)?;
        rows.map(|r| decode(&r.map_err(backend)?)).collect()
    }

    async fn by_entry(&self, key: &EntryKey) -> StoreResult<Vec<JournalRecord>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT record FROM journal WHERE key = ?1 ORDER BY seq")
            .map_err(backend)?;
        let rows = stmt
            .query_map([key.to_string()], |r| r.get::<_, String>(0))
            .map_err(backend)?;
        rows.map(|r| decode(&r.map_err(backend)?)).collect()
    }

    async fn open_intent(&self, intent: &Intent) -> StoreResult<()> {
        let conn = self.lock();
        // Written ahead of a call to a remote ledger: on disk before the
        // call, even across a power loss (the main connection's NORMAL
        // sync could lose its last commits). The sandbox ledger lives in
        // this file, so its records can never outlive the intent.
        let durable = self
            .durable_intents
            .load(std::sync::atomic::Ordering::Relaxed);
        if durable {
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(backend)?;
        }
        let written = conn.execute(
            "INSERT INTO intents (id, key, open, opened_at, intent) VALUES (?1, ?2, 1, ?3, ?4)",
            params![
                intent.id,
                intent.key.to_string(),
                intent.opened_at.to_rfc3339(),
                encode(intent)?
            ],
        );
        if durable {
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(backend)?;
        }
        written.map_err(backend)?;
        Ok(())
    }

    async fn close_intent(&self, intent: &Intent) -> StoreResult<()> {
        self.lock()
            .execute(
                "UPDATE intents SET open = 0, intent = ?2 WHERE id = ?1",
                params![intent.id, encode(intent)?],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn open_intents(&self, key: &EntryKey) -> StoreResult<Vec<Intent>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT intent FROM intents WHERE open = 1 AND key = ?1 ORDER BY opened_at, id",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([key.to_string()], |r| r.get::<_, String>(0))
            .map_err(backend)?;
        rows.map(|r| decode(&r.map_err(backend)?)).collect()
    }

    async fn stale_intents(&self, before: DateTime<Utc>, limit: usize) -> StoreResult<Vec<Intent>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT intent FROM intents WHERE open = 1 AND opened_at < ?1 ORDER BY opened_at, id LIMIT ?2",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![before.to_rfc3339(), limit as i64], |r| {
                r.get::<_, String>(0)
            })
            .map_err(backend)?;
        rows.map(|r| decode(&r.map_err(backend)?)).collect()
    }

    async fn mark_dirty(&self, week: &WorkerWeek, why: &str) -> StoreResult<()> {
        self.lock()
            .execute(
                "INSERT INTO dirty_weeks (week, marked_at, why) VALUES (?1, ?2, ?3)
                 ON CONFLICT (week) DO UPDATE SET why = excluded.why",
                params![encode(week)?, Utc::now().to_rfc3339(), why],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn dirty_weeks(&self, limit: usize) -> StoreResult<Vec<WorkerWeek>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached("SELECT week FROM dirty_weeks ORDER BY marked_at, week LIMIT ?1")
            .map_err(backend)?;
        let rows = stmt
            .query_map([limit as i64], |r| r.get::<_, String>(0))
            .map_err(backend)?;
        rows.map(|r| decode(&r.map_err(backend)?)).collect()
    }

    async fn clear_dirty(&self, week: &WorkerWeek) -> StoreResult<()> {
        self.lock()
            .execute("DELETE FROM dirty_weeks WHERE week = ?1", [encode(week)?])
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl Queue for SqliteStore {
    async fn send_batch(&self, messages: &[QueueMessage]) -> StoreResult<Vec<String>> {
        if let Some(enq) = &self.enqueuer {
            let mut rows = Vec::with_capacity(messages.len());
            for m in messages {
                rows.push((uuid::Uuid::new_v4().to_string(), encode(m)?));
            }
            let ids = rows.iter().map(|(id, _)| id.clone()).collect();
            let (reply, done) = tokio::sync::oneshot::channel();
            enq.tx
                .send(EnqueueJob { rows, reply })
                .map_err(|_| backend("the enqueue writer has stopped"))?;
            done.await
                .map_err(|_| backend("the enqueue writer has stopped"))?
                .map_err(backend)?;
            return Ok(ids);
        }
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(backend)?;
        let now = now_ms();
        let at = Utc::now().to_rfc3339();
        let mut ids = Vec::with_capacity(messages.len());
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO queue (id, body, visible_at, enqueued_at) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(backend)?;
            for m in messages {
                let id = uuid::Uuid::new_v4().to_string();
                stmt.execute(params![id, encode(m)?, now, at])
                    .map_err(backend)?;
                ids.push(id);
            }
        }
        tx.commit().map_err(backend)?;
        Ok(ids)
    }

    async fn receive(&self, max: usize, visibility: Duration) -> StoreResult<Vec<Received>> {
        let now = now_ms();
        let until = now + visibility.as_millis() as i64;
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let picked: Vec<(i64, String, String, i64)> = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT seq, id, body, receive_count FROM queue WHERE visible_at <= ?1 ORDER BY seq LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![now, max as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(backend)?;
            rows.collect::<Result<_, _>>().map_err(backend)?
        };
        let mut out = Vec::with_capacity(picked.len());
        for (seq, id, body, count) in picked {
            let receipt = uuid::Uuid::new_v4().to_string();
            tx.execute(
                "UPDATE queue SET visible_at = ?1, receive_count = receive_count + 1, receipt = ?2 WHERE seq = ?3",
                params![until, receipt, seq],
            )
            .map_err(backend)?;
            match serde_json::from_str(&body) {
                Ok(message) => out.push(Received {
                    id,
                    receipt,
                    message,
                    receive_count: count as u32 + 1,
                }),
                Err(e) => {
                    // A body this version cannot read is parked, never dropped.
                    tx.execute(
                        "INSERT OR REPLACE INTO dead_letters (id, body, reason, code, receive_count, parked_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            id,
                            body,
                            format!("message cannot be read: {e}"),
                            crate::exceptions::ExceptionCode::UnreadableMessage.as_str(),
                            count + 1,
                            Utc::now().to_rfc3339()
                        ],
                    )
                    .map_err(backend)?;
                    tx.execute("DELETE FROM queue WHERE seq = ?1", [seq])
                        .map_err(backend)?;
                }
            }
        }
        tx.commit().map_err(backend)?;
        Ok(out)
    }

    async fn delete(&self, receipt: &str) -> StoreResult<()> {
        self.lock()
            .execute("DELETE FROM queue WHERE receipt = ?1", [receipt])
            .map_err(backend)?;
        Ok(())
    }

    async fn retry_later(&self, receipt: &str, delay: Duration) -> StoreResult<()> {
        self.lock()
            .execute(
                "UPDATE queue SET visible_at = ?1 WHERE receipt = ?2",
                params![now_ms() + delay.as_millis() as i64, receipt],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn retry_uncounted(&self, receipt: &str, delay: Duration) -> StoreResult<()> {
        self.lock()
            .execute(
                "UPDATE queue SET visible_at = ?1, receive_count = MAX(receive_count - 1, 0) WHERE receipt = ?2",
                params![now_ms() + delay.as_millis() as i64, receipt],
            )
            .map_err(backend)?;
        Ok(())
    }

    async fn dead_letter(
        &self,
        receipt: &str,
        reason: &str,
        code: Option<&str>,
    ) -> StoreResult<()> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(backend)?;
        let n = tx
            .execute(
                "INSERT OR REPLACE INTO dead_letters (id, body, reason, code, receive_count, parked_at)
                 SELECT id, body, ?2, ?3, receive_count, ?4 FROM queue WHERE receipt = ?1",
                params![receipt, reason, code, Utc::now().to_rfc3339()],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "message with receipt {receipt}"
            )));
        }
        tx.execute("DELETE FROM queue WHERE receipt = ?1", [receipt])
            .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    async fn dead_letter_count(&self) -> StoreResult<usize> {
        let n: i64 = self
            .lock()
            .query_row("SELECT COUNT(*) FROM dead_letters", [], |r| r.get(0))
            .map_err(backend)?;
        Ok(n as usize)
    }

    async fn dead_letters(&self, limit: usize) -> StoreResult<Vec<DeadLetter>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, body, reason, code, receive_count, parked_at FROM dead_letters ORDER BY parked_at, id LIMIT ?1",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, body, reason, code, count, at) = row.map_err(backend)?;
            let Ok(message) = serde_json::from_str(&body) else {
                continue;
            };
            out.push(DeadLetter {
                id,
                message,
                reason,
                code,
                receive_count: count as u32,
                parked_at: DateTime::parse_from_rfc3339(&at)
                    .map(|d| d.with_timezone(&Utc))
                    .unwrap_or_default(),
            });
        }
        Ok(out)
    }

    async fn redrive(&self, id: &str) -> StoreResult<()> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(backend)?;
        let n = tx
            .execute(
                "INSERT INTO queue (id, body, visible_at, enqueued_at)
                 SELECT id, body, ?2, ?3 FROM dead_letters WHERE id = ?1",
                params![id, now_ms(), Utc::now().to_rfc3339()],
            )
            .map_err(backend)?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("dead letter {id}")));
        }
        tx.execute("DELETE FROM dead_letters WHERE id = ?1", [id])
            .map_err(backend)?;
        tx.commit().map_err(backend)
    }

    async fn depth(&self) -> StoreResult<usize> {
        let n: i64 = self
            .lock()
            .query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))
            .map_err(backend)?;
        Ok(n as usize)
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record(&self, r: AuditRecord) -> StoreResult<u64> {
        let conn = self.lock();
        conn.execute(
            "INSERT INTO audit (at, who, role, action, entry, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![r.at.to_rfc3339(), r.who, r.role, r.action, r.entry, r.detail],
        )
        .map_err(backend)?;
        Ok(conn.last_insert_rowid() as u64)
    }

    async fn recent(&self, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, at, who, role, action, entry, detail FROM audit ORDER BY seq DESC LIMIT ?1",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    AuditRecord {
                        seq: 0,
                        at: DateTime::<Utc>::MIN_UTC,
                        who: r.get(2)?,
                        role: r.get(3)?,
                        action: r.get(4)?,
                        entry: r.get(5)?,
                        detail: r.get(6)?,
                    },
                ))
            })
            .map_err(backend)?;
        rows.map(|row| {
            let (seq, at, mut rec) = row.map_err(backend)?;
            rec.seq = seq as u64;
            rec.at = DateTime::parse_from_rfc3339(&at)
                .map_err(|e| backend(format!("corrupt audit time: {e}")))?
                .with_timezone(&Utc);
            Ok(rec)
        })
        .collect()
    }
}

#[async_trait]
impl WatermarkStore for SqliteStore {
    async fn get_watermark(&self, name: &str) -> StoreResult<Option<DateTime<Utc>>> {
        let at: Option<String> = self
            .lock()
            .query_row("SELECT at FROM watermarks WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)?;
        at.map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|d| d.with_timezone(&Utc))
                .map_err(backend)
        })
        .transpose()
    }

    async fn set_watermark(&self, name: &str, at: DateTime<Utc>) -> StoreResult<()> {
        self.lock()
            .execute(
                "INSERT INTO watermarks (name, at) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET at = excluded.at",
                params![name, at.to_rfc3339()],
            )
            .map_err(backend)?;
        Ok(())
    }
}

/// Whether `owner` names a local process that is no longer running (Linux:
/// no `/proc/<pid>`). Owners of other forms, and this process, are live.
pub fn owner_is_dead(owner: &str) -> bool {
    let mut parts = owner.split(':');
    let (Some("pid"), Some(pid)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    if pid == std::process::id() || !std::path::Path::new("/proc/self").exists() {
        return false;
    }
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::{harvest, ParseContext};

    const PAGE: &str = include_str!("../../../tests/fixtures/harvest/time_entries_page.json");

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_store_is_private_to_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/nested/timepost.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        store
            .put(&EntryState::new(entries()[0].clone(), Utc::now()))
            .await
            .unwrap();
        assert_eq!(mode(&dir.path().join("new")), 0o700);
        assert_eq!(mode(&dir.path().join("new/nested")), 0o700);
        assert_eq!(mode(&path), 0o600);
        for companion in ["timepost.sqlite-wal", "timepost.sqlite-shm"] {
            let p = dir.path().join("new/nested").join(companion);
            assert!(p.exists(), "{companion}");
            assert_eq!(mode(&p), 0o600, "{companion}");
        }
    }

    #[test]
    fn a_damaged_store_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timepost.sqlite");
        drop(SqliteStore::open(&path).unwrap());
        // The enqueue thread closes its connection once the store is gone;
        // then everything is checkpointed into the file.
        std::thread::sleep(Duration::from_millis(300));
        let c = Connection::open(&path).unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
        drop(c);
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len > 4096);
        let mut bytes = std::fs::read(&path).unwrap();
        for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
            *b = (i * 31 + 7) as u8;
        }
        std::fs::write(&path, &bytes).unwrap();
        let err = SqliteStore::open(&path).err().expect("refused").to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains("is damaged"),
            "{err}"
        );
    }

    fn entries() -> Vec<crate::model::NormalisedEntry> {
        let mut ctx = ParseContext::new(chrono_tz::UTC);
        ctx.harvest_account_id = Some("987654".into());
        harvest::parse_page(PAGE.as_bytes(), &ctx).unwrap().entries
    }

    #[tokio::test]
    async fn put_many_writes_as_put_does_and_all_or_nothing() {
        let store = SqliteStore::in_memory().unwrap();
        let states: Vec<EntryState> = entries()
            .into_iter()
            .map(|e| EntryState::new(e, Utc::now()))
            .collect();
        assert!(states.len() >= 2);
        let revisions = store.put_many(&states).unwrap();
        assert_eq!(revisions, vec![1; states.len()]);
        for s in &states {
            let got = store.get(&s.entry.key).await.unwrap().unwrap();
            assert_eq!(got.revision, 1);
        }
        // The aggregates were kept by the same write: a rebuild finds
        // nothing to correct.
        let r = store.rebuild_aggregates_now().unwrap();
        assert_eq!((r.entries, r.differed), (states.len(), 0));
        // A stale revision in the batch writes none of it.
        let mut next: Vec<EntryState> = states.clone();
        next[0].revision = 1;
        next[0].note = Some("changed".into());
        next[1].note = Some("stale".into());
        assert!(matches!(
            store.put_many(&next),
            Err(StoreError::Conflict(_))
        ));
        let first = store.get(&states[0].entry.key).await.unwrap().unwrap();
        assert_eq!((first.revision, first.note), (1, None));
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn entries_by_source_workspace_and_work_date() {
        let store = SqliteStore::in_memory().unwrap();
        let es = entries();
        for e in &es {
            store
                .put(&EntryState::new(e.clone(), Utc::now()))
                .await
                .unwrap();
        }
        let dates: Vec<NaiveDate> = es.iter().map(|e| e.work_date).collect();
        let (lo, hi) = (*dates.iter().min().unwrap(), *dates.iter().max().unwrap());
        let all = store
            .by_source_dates(Source::Harvest, "987654", lo, hi)
            .await
            .unwrap();
        assert_eq!(all.len(), es.len());
        let none = store
            .by_source_dates(Source::Harvest, "other", lo, hi)
            .await
            .unwrap();
        assert!(none.is_empty());
        let none = store
            .by_source_dates(Source::Toggl, "987654", lo, hi)
            .await
            .unwrap();
        assert!(none.is_empty());
        let before = store
            .by_source_dates(
                Source::Harvest,
                "987654",
                d("2000-01-01"),
                lo.pred_opt().unwrap(),
            )
            .await
            .unwrap();
        assert!(before.is_empty());
    }

    #[tokio::test]
    async fn a_store_without_the_work_date_column_is_migrated() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE entries (key TEXT PRIMARY KEY, source TEXT NOT NULL, workspace TEXT NOT NULL,
               user_id TEXT NOT NULL, week_start TEXT NOT NULL, status TEXT NOT NULL,
               revision INTEGER NOT NULL, updated_at TEXT NOT NULL, state TEXT NOT NULL);",
        )
        .unwrap();
        let e = entries().remove(0);
        let mut state = EntryState::new(e.clone(), Utc::now());
        state.revision = 1;
        conn.execute(
            "INSERT INTO entries VALUES (?1, 'harvest', '987654', 'u', '2026-03-02', 'ignored', 1, ?2, ?3)",
            params![e.key.to_string(), Utc::now().to_rfc3339(), encode(&state).unwrap()],
        )
        .unwrap();
        let store = SqliteStore::init(conn, "FULL").unwrap();
        let found = store
            .by_source_dates(Source::Harvest, "987654", e.work_date, e.work_date)
            .await
            .unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].entry.key, e.key);
    }

    /// A store written by a timepost that joined key parts unescaped is
    /// re-keyed when opened: the entry, its journal and its audit rows are
    /// found under the escaped key; a plain key is untouched; the second
    /// open changes nothing.
    #[tokio::test]
    async fn a_store_with_unescaped_keys_is_migrated_at_open() {
        use crate::model::{EntryKey, Source};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timepost.sqlite");
        let mut colon = entries().remove(0);
        colon.key = EntryKey::new(Source::Csv, "acme", "row:1");
        let mut plain = entries().remove(1);
        plain.key = EntryKey::new(Source::Csv, "acme", "row-2");
        {
            let store = SqliteStore::open(&path).unwrap();
            for e in [&colon, &plain] {
                store
                    .put(&EntryState::new(e.clone(), Utc::now()))
                    .await
                    .unwrap();
            }
            store
                .append(JournalRecord {
                    seq: 0,
                    batch_id: "b1".into(),
                    key: colon.key.clone(),
                    version: colon.version.clone(),
                    operation: "create".into(),
                    request_id: "r1".into(),
                    records: vec![],
                    lines: vec![],
                    ledger: "sandbox".into(),
                    at: Utc::now(),
                    intent: String::new(),
                })
                .await
                .unwrap();
            // What an older timepost wrote: the parts joined as they are.
            let conn = store.lock();
            let legacy = "csv:acme:row:1";
            let escaped = colon.key.to_string();
            assert_eq!(escaped, "csv:acme:row%3A1");
            conn.execute(
                "UPDATE entries SET key = ?1 WHERE key = ?2",
                params![legacy, escaped],
            )
            .unwrap();
            conn.execute(
                "UPDATE journal SET key = ?1 WHERE key = ?2",
                params![legacy, escaped],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO audit (at, who, role, action, entry, detail) VALUES ('2026-03-02T00:00:00Z', 'ann', 'finance', 'redrive', ?1, '')",
                [legacy],
            )
            .unwrap();
            conn.pragma_update(None, "user_version", 0).unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let found = store.get(&colon.key).await.unwrap().expect("re-keyed");
        assert_eq!(found.entry.key, colon.key);
        assert!(store.get(&plain.key).await.unwrap().is_some());
        assert_eq!(store.by_entry(&colon.key).await.unwrap().len(), 1);
        let (keys, audit_entry, version): (Vec<String>, String, i64) = {
            let conn = store.lock();
            let mut stmt = conn
                .prepare("SELECT key FROM entries ORDER BY key")
                .unwrap();
            let keys = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let audit = conn
                .query_row("SELECT entry FROM audit", [], |r| r.get(0))
                .unwrap();
            let v = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            (keys, audit, v)
        };
        assert_eq!(keys, vec!["csv:acme:row%3A1", "csv:acme:row-2"]);
        assert_eq!(audit_entry, "csv:acme:row%3A1");
        assert_eq!(version, ESCAPED_KEYS_VERSION);
        drop(store);
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(migrate_entry_keys(&again.lock()).unwrap(), 0);
    }

    /// Two entries whose identities the unescaped form confused are two
    /// rows.
    #[tokio::test]
    async fn entries_with_colliding_unescaped_keys_are_two_rows() {
        use crate::model::{EntryKey, Source};
        let store = SqliteStore::in_memory().unwrap();
        let mut a = entries().remove(0);
        a.key = EntryKey::new(Source::Csv, "ws:x", "y");
        let mut b = entries().remove(1);
        b.key = EntryKey::new(Source::Csv, "ws", "x:y");
        for e in [&a, &b] {
            store
                .put(&EntryState::new(e.clone(), Utc::now()))
                .await
                .unwrap();
        }
        assert_eq!(store.get(&a.key).await.unwrap().unwrap().entry.key, a.key);
        assert_eq!(store.get(&b.key).await.unwrap().unwrap().entry.key, b.key);
        assert_eq!(store.all().await.unwrap().len(), 2);
    }
}
