//! DynamoDB: entry state, claims, mappings and their change log, the
//! posting journal, watermarks, the audit log and reconciliation runs, in one table (the SAM
//! template's: `pk`/`sk`, three overloaded GSIs, TTL on `expires_at`).
//!
//! Each port lives in its own module (`codec.rs` keys, `io.rs` paginated
//! queries, 100-key batch reads / 25-item batch writes with unprocessed items
//! retried, counters); the item layout and every access pattern are listed
//! below. The pending mapping changes are `super::dynamo_pending` on the same
//! table; the shared rate limit's item is `super::ratelimit`'s.
//!
//! # Keys
//!
//! One table: `pk`/`sk`, GSIs `gsi1`..`gsi3` (projecting ALL), TTL on
//! `expires_at`. Key parts are escaped (`%`→`%25`, `#`→`%23`); sequence
//! numbers are zero-padded to 20 digits so they sort as numbers. `<key>` is
//! an entry key's text (`EntryKey`'s `Display`, whose parts escape `:` and
//! `%`) so escaped again. A table written before entry keys escaped `:` is
//! migrated by `timepost --backend aws migrate-keys` (`rekey.rs`: every
//! `entry#…` partition whose text changed is moved — state, journal, intents,
//! week membership; claims dropped; idempotent; see `docs/security.md`).
//!
//! # Access patterns
//!
//! | port method | item / key condition |
//! | --- | --- |
//! | `EntryStore::get` | GetItem `entry#<key>` / `state` (consistent) |
//! | `put` (revision check) | new entry: TransactWriteItems (Put `entry#<key>` / `state` if `attribute_not_exists(pk)`, Put membership `week#<source>#<workspace>#<user>#<week_start>` / `entry#<key>`, the KPI sample, an Update `ADD` per aggregate row, a Put per mapped-key item `mkey#<kind>#<value>` / `<entry key>`); otherwise GetItem `state` (consistent) first, then — when neither the week, the aggregate rows, the KPI sample nor the mapped keys (`mkeys`, on the state item) change — PutItem `state` if `revision = :r`, else TransactWriteItems (Put `state` if `revision = :r`, new membership + Delete old one (week changed, or an item from before membership items), sample Put / Delete, an Update `ADD` per changed row, Put the new and Delete the old mapped-key items (up to 40; an entry with more gets the rest by BatchWriteItem right after)) (`aggregates.rs`; past 100 actions the rest is parked in `aggpending` and applied chunk by chunk, exactly once); failure → `Conflict`; a cancel by `TransactionConflict` alone is retried |
//! | `by_mapped_keys` / `count_by_mapped_keys` | per key: Query `pk = mkey#<kind>#<value> AND sk > :after` (consistent, `Limit`), merged in key order; then a consistent BatchGetItem of the states, re-checked against the keys (count: the distinct `sk`s); `by_mapped_keys_dated` is the port's default, those pages filtered by work date |
//! | `rebuild_key_index` (`store rebuild-key-index --backend aws`) | every state (Query `gsi2` per status, BatchGetItem); one without `mkeys` / `pkeys` or with other keys gets its mapped-key and work-date items (BatchWriteItem) and both attributes (UpdateItem, condition `revision = :r`); then Put the marker `meta` / `period-index` |
//! | `by_work_dates(from, to, after, limit)` (`periodindex.rs`) | GetItem `meta` / `period-index` (once per process; absent and any entry in `gsi2` → refused, naming `store rebuild-key-index`; absent and no entry → Put it); per month of the period: Query `pk = wdate#<yyyy-mm>`, `sk BETWEEN <date>#<key> AND <to>#\u{10FFFF}` (consistent, `Limit`); then Query `wbook#<yyyy-mm>` (entries with posted lines dated in that month other than their work date; `sk` = key); the states by consistent BatchGetItem, re-checked against the period. `put` keeps these items (listed on the state as `pkeys`) in its transaction, before the mapped-key items |
//! | `by_status_after(status, cursor, limit)` | Query `gsi2`: `gsi2pk = status#<status>`, `gsi2sk > <updated_at µs>#<key>` with `Limit`, then the states by consistent BatchGetItem; a state that has moved on is dropped and the read goes on until the page is full |
//! | `aggregates(grain, from, to)` | Query `agg#day#<yyyy-mm>` (day rows), `agg#week#<yyyy>` / `agg#month#<yyyy>`, `agg#year`, `sk BETWEEN <from> AND <to>$` (`sk` = `<period>#<kind>#<status>#<project>#<employee>#<currency>#<billable>#<original currency>`; consistent), one Query per partition the period touches; rows whose sums are 0 are skipped |
//! | `kpi_samples(from, to)` | Query `kpi#<yyyy-mm>` / `<work date>#entry#<key>` (`resolve`, `latency`) per month of the period |
//! | `newest_work_date` | Query `agg#year`, then `agg#month#<yyyy>` of that year, then `agg#day#<yyyy-mm>` of that month, each backwards with `Limit` 50 to the first non-empty entry row |
//! | `page(after, limit)` | Query `gsi1`: `gsi1pk = entries`, `gsi1sk > <key text>` with `Limit`, then the states by consistent BatchGetItem |
//! | `rebuild_aggregates` (`--backend aws store rebuild-aggregates`) | drain `aggpending`; give older state items `gsi1pk = entries`; `all()`; Scan `agg#…`, `kpi#…` (filter); Put the rows and samples that differ, Delete the extra and empty ones |
//! | `week` | Query `pk = week#<source>#<workspace>#<user>#<week_start>` (consistent) → members' states by consistent BatchGetItem |
//! | `by_status` (oldest first, limit) | Query `gsi2`: `gsi2pk = status#<status>`, `gsi2sk = <updated_at µs>#<key>` ascending |
//! | `all` (key order) | Query `gsi2` for each of the six statuses, sorted by key (no table scan) |
//! | `by_source_dates` | Query `gsi3`: `gsi3pk = date#<source>#<workspace>`, `gsi3sk BETWEEN <from> AND <to>$` |
//! | `claim` | PutItem `entry#<key>` / `claim` (`owner`, `expires_ms`, TTL `expires_at`), condition `attribute_not_exists(pk) OR expires_ms <= :now OR owner = :me`; failure → `false`. A worker-week's claim is the same item under its synthetic key |
//! | `release` | DeleteItem `entry#<key>` / `claim`, condition `owner = :me`; not the owner → nothing happens |
//! | `MappingStore::version` | GetItem `map#head` / `head` (`version`) |
//! | `apply` | BatchWrite staged log items `map#log` / `<seq>#<import>`; then one TransactWriteItems: head `version = :v → :v+n` + Put `map#commit` / `<v+1>` (`import`, `first`, `last`); lost race → remove staged items, renumber, retry |
//! | `snapshot`, `history` | head, then Query `map#commit` and `map#log` (`sk < <version+1>`, consistent); keep log items a commit names (seq in its range, same import); fold / filter oldest first |
//! | `EntryStore::record_version` / `versions` | PutItem `entry#<key>` / `version#<updated_at>#<content hash>` (the `ReceivedVersion` JSON), condition `attribute_not_exists(pk)` (a redelivery: nothing) / Query `pk = entry#<key> AND begins_with(sk, version#)` (consistent) |
//! | `Journal::append` | counter `seq#journal` (UpdateItem ADD), PutItem `entry#<key>` / `journal#<seq>` with `gsi1pk = journal#<batch>`, `gsi1sk = <seq>` |
//! | `by_entry` / `by_batch` | Query `pk = entry#<key> AND begins_with(sk, journal#)` (consistent) / Query `gsi1`: `gsi1pk = journal#<batch>` |
//! | `PurgeStore::purge_entries` (`archive purge --backend aws`) | per entry: Query `pk = entry#<key>` (consistent); TransactWriteItems (Delete `state`, condition `revision = :r AND status = :s` (what was just read; an open entry is never tried), the KPI sample's Delete, an Update `ADD` subtracting each aggregate row), failure → kept; then BatchWriteItem deletes of its `journal#…`, `version#…`, closed `intent#…` (`open = 0`) and `claim` items, its week membership item, its mapped-key items (`mkeys`) and its work-date items (`pkeys`) |
//! | `load_bundle` / `holds_no_records` (`bundle.rs`, `--backend aws import --bundle`) | the items every port writes, 25 to a BatchWriteItem after a consistent BatchGetItem of the batch's keys proves none exists (else the import stops, naming the item); counters `seq#journal`, `seq#audit`, `seq#pending` raised to the highest loaded; the mapping log through the staged, conditional publish of `apply` / a consistent Scan of `pk` until an item of a record partition (`entry#`, `week#`, `audit#`, `map#`, `pending#`) turns up |
//! | watermarks | GetItem / PutItem `wm#<name>` / `wm` |
//! | console sessions (`SessionStore`) | PutItem / GetItem (consistent) / DeleteItem `session#<SHA-256 of the cookie>` / `session` (`doc`, TTL `expires_at`; an expired one is refused before TTL removes it) |
//! | `AuditLog::record` / `recent` | counter `seq#audit`, PutItem `audit#log` / `<seq>`; Query `audit#log` backwards with `Limit` |
//! | `PendingChanges::propose` / `proposal` | counter `seq#pending`, PutItem `pending#<id>` / `pending` (`doc`, `status`, `gsi1pk = pending#<status>`, `gsi1sk = <id>`); GetItem (consistent) |
//! | `proposals` / `settle` | Query `gsi1` `pending#<status>` backwards, each item re-read consistently and re-checked; PutItem with condition `status = :expected` (failure → `Conflict`) |
//! | `ReconcileStore::save_run` | counter `seq#recon`; BatchWrite the breaks `recon#breaks#<seq>` / `<pos>` (one item each: a run's breaks may pass 400 KB), then PutItem `recon#runs` / `<seq>` (publishes the run) |
//! | `runs` / `run_breaks` | Query `recon#runs` backwards with `Limit` / Query `recon#breaks#<seq>` (consistent) |
//! | `add_resolution` / `resolutions` | counter `seq#recon_resolution`, PutItem `recon#resolutions` / `<seq>` (`break_id`); Query the partition, filtered by `break_id` |
//! | `AlertStore::put_alert` / `active_alerts` / `alert_history` | PutItem `alerts` / `<condition key>` (`doc`, `active`; a cleared state carries `expires_at` 30 days on); Query the partition (consistent), filtered / sorted in code |
//! | `SharedPacer::reserve` / `pause` (`DynamoPacer`, `super::ratelimit`) | GetItem `rate#<company>` / `rate` (consistent), then UpdateItem `next_ms`, condition `next_ms = :old` (or `attribute_not_exists(pk)`), re-read on conflict / UpdateItem `paused_until_ms` if later; `expires_at` a day on |
//!
//! `gsi1` serves the journal by batch (rollback), the open intents, the
//! proposals and the key-ordered entry listing (`gsi1pk = entries` on every
//! state item, `gsi1sk` the key's text; a table written before it gets it
//! from `store rebuild-aggregates`). The aggregate rows and KPI samples are
//! kept in the transaction of the state write that changes them
//! (`aggregates.rs` explains the layout, the 100-action limit and
//! the write cost); a row whose sums went back to 0 stays until a rebuild. A
//! table written before them has none: run `timepost --backend aws store
//! rebuild-aggregates` once, with the sync function paused. A worker-week's
//! members are base-table items written in the same transaction as the
//! state that puts an entry in the week (and deleted in the one that moves
//! it out), read with a strongly consistent Query: an entry written a
//! moment ago is always listed, which the overtime split depends on. Index reads are eventually consistent, so
//! `by_status`, `all` and `by_source_dates` use the index only to find
//! *which* entries, then read their documents with a consistent BatchGetItem
//! and re-check them against the query (an entry that just moved status
//! appears once, with its current state). An entry written a moment ago may
//! still be missing from those index reads. A state item written by a build
//! before membership items existed has none until its next write, so such a
//! table needs a one-off backfill (one membership item per state item) before
//! this build runs on it; none is provided. A state item written before the
//! mapped-key index existed has no `mkeys`: its next write adds its index
//! items (the conditional PutItem fails on `mkeys` and the transaction path
//! writes them), and `timepost --backend aws store rebuild-key-index` gives
//! every such item its items at once; until then the preview, the held
//! re-check after a change and `/api/entries?worker=|project=` do not see
//! it. Mapping imports larger than the 100-action transaction limit
//! stay all-or-nothing: staged log items are invisible until the commit that
//! names them is published with the head in one transaction; a crashed
//! import's leftovers are never named, so never read. `snapshot` folds the
//! whole published log (mapping changes are rare; the engine caches the
//! snapshot until `version()` moves).
//!
//! Write-ahead intents are items `entry#<key>` / `intent#<id>` (`intent`,
//! `open`), indexed in `gsi1` under `intents#open` by opening time while open
//! (the sweep's query; closing rewrites the item without the index
//! attributes); dirty worker-weeks are items of partition `dirty#weeks`.
//!
//! Expiry: only claims, console sessions, cleared alert states and the rate
//! items carry `expires_at` (claimants compare `expires_ms` themselves, and
//! an expired session is refused, since TTL deletion runs late). Entry state,
//! the change log, the journal, watermarks and the audit log are the books'
//! history and never expire.

mod aggregates;
mod alerts;
mod audit;
mod bundle;
mod codec;
mod entries;
mod io;
mod journal;
mod keyindex;
mod mappings;
mod periodindex;
mod purge;
mod reconcile;
mod rekey;
mod sessions;
mod table;
mod watermarks;

use crate::ports::StoreResult;
pub use bundle::BundleLoad;
pub use rekey::KeyMigration;

/// Every store of the AWS stack on one DynamoDB table. Cheap to clone (the
/// SDK client is shared).
#[derive(Clone)]
pub struct DynamoStore {
    pub(crate) client: aws_sdk_dynamodb::Client,
    pub(crate) table: String,
    /// Set once this process knows the work-date index covers every state
    /// (`periodindex`).
    pub(crate) period_index: std::sync::Arc<std::sync::OnceLock<()>>,
}

impl DynamoStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            period_index: Default::default(),
        }
    }

    /// The table this store reads and writes.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Create the table as the SAM template declares it (tests, local
    /// emulators): on-demand, `pk`/`sk`, GSIs `gsi1`..`gsi3` projecting
    /// everything, TTL on `expires_at`. Waits until it is ACTIVE. Does
    /// nothing when it exists.
    pub async fn create_table(&self) -> StoreResult<()> {
        table::create(self).await
    }
}
