//! Period reads (`EntryStore::by_work_dates`): the SQLite page equals the
//! port's default (a filter of every state) for every page size, an entry
//! re-dated after posting is found in the period its posted lines are
//! dated in, and reconciliation, the period export and the accrual read
//! only their period's entries (a store wrapper counts the states each
//! read returns).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use timepost::local::SqliteStore;
use timepost::model::{EntryKey, NormalisedEntry, Source};
use timepost::ports::{EntryStore, PeriodCursor, ReceivedVersion, StoreResult, WorkerWeek};
use timepost::reconcile::gather::Reconciler;
use timepost::reconcile::{Period, ReconcileConfig};
use timepost::stack::LocalStack;
use timepost::state::{EntryState, Status};

/// `inner`, counting the states every read returns (and calls of `all`).
/// With `default_period`, the period read is the port's default (which
/// filters `all`): the reference the SQLite page is compared with.
struct Counting {
    inner: SqliteStore,
    states: AtomicUsize,
    all_calls: AtomicUsize,
    default_period: bool,
}

impl Counting {
    fn new(inner: SqliteStore, default_period: bool) -> Self {
        Self {
            inner,
            states: AtomicUsize::new(0),
            all_calls: AtomicUsize::new(0),
            default_period,
        }
    }

    fn n(&self, v: Vec<EntryState>) -> Vec<EntryState> {
        self.states.fetch_add(v.len(), Ordering::SeqCst);
        v
    }

    fn read(&self) -> usize {
        self.states.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl EntryStore for Counting {
    async fn get(&self, key: &EntryKey) -> StoreResult<Option<EntryState>> {
        let s = self.inner.get(key).await?;
        self.states
            .fetch_add(usize::from(s.is_some()), Ordering::SeqCst);
        Ok(s)
    }
    async fn put(&self, state: &EntryState) -> StoreResult<u64> {
        self.inner.put(state).await
    }
    async fn week(&self, week: &WorkerWeek) -> StoreResult<Vec<EntryState>> {
        Ok(self.n(self.inner.week(week).await?))
    }
    async fn by_status(&self, status: Status, limit: usize) -> StoreResult<Vec<EntryState>> {
        Ok(self.n(self.inner.by_status(status, limit).await?))
    }
    async fn all(&self) -> StoreResult<Vec<EntryState>> {
        self.all_calls.fetch_add(1, Ordering::SeqCst);
        Ok(self.n(self.inner.all().await?))
    }
    async fn aggregates(
        &self,
        grain: timepost::aggregates::Grain,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> StoreResult<Vec<(timepost::aggregates::AggKey, timepost::aggregates::AggVals)>> {
        self.inner.aggregates(grain, from, to).await
    }
    fn period_page(&self) -> usize {
        self.inner.period_page()
    }
    async fn by_work_dates(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        after: Option<&PeriodCursor>,
        limit: usize,
    ) -> StoreResult<Vec<EntryState>> {
        if self.default_period {
            // The port's default, over this wrapper's `all`.
            let mut all: Vec<EntryState> = self
                .inner
                .all()
                .await?
                .into_iter()
                .filter(|s| PeriodCursor::touches(s, from, to))
                .collect();
            let order = |s: &EntryState| PeriodCursor::of(s, from, to).order();
            all.sort_by_key(order);
            let after = after.map(PeriodCursor::order);
            return Ok(all
                .into_iter()
                .filter(|s| after.as_ref().is_none_or(|a| order(s) > *a))
                .take(limit)
                .collect());
        }
        Ok(self.n(self.inner.by_work_dates(from, to, after, limit).await?))
    }
    async fn by_source_dates(
        &self,
        source: Source,
        workspace: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<EntryState>> {
        Ok(self.n(self
            .inner
            .by_source_dates(source, workspace, from, to)
            .await?))
    }
    async fn claim(&self, key: &EntryKey, owner: &str, ttl: Duration) -> StoreResult<bool> {
        self.inner.claim(key, owner, ttl).await
    }
    async fn release(&self, key: &EntryKey, owner: &str) -> StoreResult<()> {
        self.inner.release(key, owner).await
    }
    async fn record_version(
        &self,
        entry: &NormalisedEntry,
        received_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.inner.record_version(entry, received_at).await
    }
    async fn versions(&self, key: &EntryKey) -> StoreResult<Vec<ReceivedVersion>> {
        self.inner.versions(key).await
    }
}

fn d(s: &str) -> NaiveDate {
    s.parse().expect("date")
}

/// The sandbox demo's store (March 2026), plus copies of its entries
/// moved a year back (2025: outside every period the tests read), and one
/// posted entry re-dated to April after posting (its lines stay dated in
/// March). Returns the store's directory and the stack.
async fn demo_store() -> (tempfile::TempDir, LocalStack) {
    let dir = tempfile::tempdir().expect("dir");
    timepost::demo::run(dir.path()).await.expect("demo");
    let mut config =
        timepost::config::Config::parse(timepost::demo::CONFIG, "sandbox").expect("config");
    config.store.path = dir.path().join("timepost.sqlite");
    config.store.archive_dir = dir.path().join("archive");
    config.store.secrets_file = dir.path().join("secrets.toml");
    let store = SqliteStore::open(&config.store.path).expect("store");
    let all = store.all().await.expect("all");
    for s in &all {
        let mut old = s.clone();
        old.revision = 0;
        old.entry.key = EntryKey::new(
            s.entry.key.source,
            &s.entry.key.workspace,
            format!("old-{}", s.entry.key.id),
        );
        old.entry.work_date = s.entry.work_date - chrono::Duration::days(365);
        for l in &mut old.posted_lines {
            l.txn_date = old.entry.work_date;
        }
        store.put(&old).await.expect("old copy");
    }
    let mut moved = all
        .iter()
        .find(|s| s.status() == Status::Posted && !s.posted_lines.is_empty())
        .expect("a posted entry")
        .clone();
    moved.entry.work_date = d("2026-04-15");
    store.put(&moved).await.expect("re-dated");
    (dir, LocalStack::with_store(config, store).expect("stack"))
}

fn keys(v: &[EntryState]) -> Vec<String> {
    v.iter().map(|s| s.entry.key.to_string()).collect()
}

async fn paged(store: &dyn EntryStore, from: NaiveDate, to: NaiveDate, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<PeriodCursor> = None;
    loop {
        let page = store
            .by_work_dates(from, to, after.as_ref(), n)
            .await
            .expect("page");
        assert!(page.len() <= n);
        out.extend(keys(&page));
        if page.len() < n {
            return out;
        }
        after = PeriodCursor::after(&page, from, to);
    }
}

#[tokio::test]
async fn the_sqlite_period_page_equals_a_filter_of_every_state() {
    let (_dir, s) = demo_store().await;
    let sqlite = Counting::new(s.store.clone(), false);
    let reference = Counting::new(s.store.clone(), true);
    for (from, to) in [
        ("2026-03-01", "2026-03-31"),
        ("2026-03-02", "2026-03-08"),
        ("2026-03-09", "2026-03-09"),
        ("2026-04-01", "2026-04-30"),
        ("2025-01-01", "2026-12-31"),
        ("2027-01-01", "2027-12-31"),
        ("2026-03-08", "2026-03-02"),
    ] {
        let (from, to) = (d(from), d(to));
        for n in [1, 3, 7, 500] {
            assert_eq!(
                paged(&sqlite, from, to, n).await,
                paged(&reference, from, to, n).await,
                "{from}..{to} by {n}"
            );
        }
    }
    // The re-dated entry: in April by its work date, in March by its
    // posted lines (after every entry worked in March).
    let march = paged(&sqlite, d("2026-03-01"), d("2026-03-31"), 500).await;
    let april = paged(&sqlite, d("2026-04-01"), d("2026-04-30"), 500).await;
    assert_eq!(april.len(), 1);
    assert_eq!(march.last(), april.first());
    // Nothing of 2025 in March.
    assert!(march.iter().all(|k| !k.contains("old-")));
}

#[tokio::test]
async fn a_store_from_before_the_period_columns_gets_them_filled_at_open() {
    let (dir, s) = demo_store().await;
    let before = paged(&s.store, d("2026-03-01"), d("2026-03-31"), 500).await;
    drop(s);
    let path = dir.path().join("timepost.sqlite");
    {
        let older = SqliteStore::open(&path).expect("open");
        older
            .lock()
            .execute_batch(
                "DROP TRIGGER entries_booked_insert; DROP TRIGGER entries_booked_update;
             DROP INDEX entries_booked; DROP INDEX entries_work_date;
             ALTER TABLE entries DROP COLUMN booked_lo; ALTER TABLE entries DROP COLUMN booked_hi;",
            )
            .expect("an older store");
    }
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(
        paged(&store, d("2026-03-01"), d("2026-03-31"), 500).await,
        before
    );
}

fn touching(all: &[EntryState], from: NaiveDate, to: NaiveDate) -> usize {
    all.iter()
        .filter(|s| PeriodCursor::touches(s, from, to))
        .count()
}

#[tokio::test]
async fn reconciliation_reads_only_its_period() {
    let (_dir, s) = demo_store().await;
    let all = s.store.all().await.expect("all");
    let week = Period {
        from: d("2026-03-02"),
        to: d("2026-03-08"),
    };
    let counting = Arc::new(Counting::new(s.store.clone(), false));
    let rec = |entries: Arc<dyn EntryStore>| Reconciler {
        entries,
        ledger: s.ledger.clone(),
        store: Arc::new(s.store.clone()),
        config: ReconcileConfig::default(),
    };
    let (sides, _) = rec(counting.clone())
        .sides(&week, None)
        .await
        .expect("sides");
    let n = touching(&all, week.from, week.to);
    assert!(n > 0 && n < all.len() / 2, "{n} of {}", all.len());
    assert_eq!(counting.read(), n, "only the week's states are read");
    assert_eq!(counting.all_calls.load(Ordering::SeqCst), 0);
    assert_eq!(sides.timepost.len(), n);
}

#[tokio::test]
async fn the_period_export_reads_only_its_period() {
    let (dir, s) = demo_store().await;
    let all = s.store.all().await.expect("all");
    let march = Period {
        from: d("2026-03-01"),
        to: d("2026-03-31"),
    };
    let counting = Counting::new(s.store.clone(), false);
    let sink = timepost::local::archive::DirArchive::new(dir.path().join("exports"));
    let written = timepost::exports::export(&counting, &s.store, &sink, "", &march)
        .await
        .expect("export");
    let n = touching(&all, march.from, march.to);
    assert_eq!(counting.read(), n, "only March's states are read");
    assert_eq!(counting.all_calls.load(Ordering::SeqCst), 0);
    assert!(n < all.len());
    // Worked in March: every touching entry but the re-dated one.
    assert_eq!(written.entries, n - 1);
    assert!(written.exceptions > 0);
    // The same files as a fold over every state would give.
    let reference = Counting::new(s.store.clone(), true);
    let sink2 = timepost::local::archive::DirArchive::new(dir.path().join("exports2"));
    timepost::exports::export(&reference, &s.store, &sink2, "", &march)
        .await
        .expect("reference export");
    for f in timepost::exports::FILES {
        let k = format!("{}/{f}", timepost::exports::folder(&march));
        assert_eq!(
            timepost::ports::Archive::get(&sink, &k).await.expect("get"),
            timepost::ports::Archive::get(&sink2, &k)
                .await
                .expect("get"),
            "{f}"
        );
    }
}

#[tokio::test]
async fn the_accrual_reads_only_its_period() {
    let (_dir, s) = demo_store().await;
    let all = s.store.all().await.expect("all");
    let mappings = timepost::mapping::Mappings::from_rows(
        timepost::mapping::csv_io::read(timepost::demo::MAPPINGS.as_bytes()).expect("mappings"),
        1,
    );
    let (from, to) = (d("2026-03-09"), d("2026-03-15"));
    let counting = Counting::new(s.store.clone(), false);
    let accrual = timepost::ledger::journal_entry::accrue_from(
        &counting,
        from,
        to,
        &mappings,
        &s.config.rules,
    )
    .await
    .expect("accrual");
    let n = touching(&all, from, to);
    assert!(n > 0 && n < all.len() / 2, "{n} of {}", all.len());
    assert_eq!(counting.read(), n, "only the week's states are read");
    assert_eq!(counting.all_calls.load(Ordering::SeqCst), 0);
    let reference =
        timepost::ledger::journal_entry::accrue(from, to, &all, &mappings, &s.config.rules)
            .expect("reference");
    assert_eq!(accrual.total, reference.total);
    assert_eq!(accrual.skipped, reference.skipped);
}

#[tokio::test]
async fn the_summary_reads_the_aggregates_and_at_most_a_listing_per_status() {
    let (_dir, s) = demo_store().await;
    let full = timepost::demo::report_for(&s, &[])
        .await
        .expect("full report");
    let counting = Counting::new(s.store.clone(), false);
    let limit = 2;
    let r = timepost::summary::collect_listing(&counting, "sandbox", &s.store, limit)
        .await
        .expect("summary");
    assert_eq!(counting.all_calls.load(Ordering::SeqCst), 0);
    assert!(counting.read() <= 3 * limit, "{}", counting.read());
    assert_eq!(r.posted.entries, full.posted.entries);
    assert_eq!(r.posted.lines, full.posted.lines);
    assert_eq!(r.posted.hours.normalize(), full.posted.hours.normalize());
    for (l, items) in [
        (&r.held, &full.held),
        (&r.awaiting_approval, &full.awaiting_approval),
        (&r.exceptions, &full.exceptions),
    ] {
        assert_eq!(l.total, items.len());
        assert_eq!(l.items.len(), items.len().min(limit));
        assert_eq!(l.more, items.len() - l.items.len());
    }
    assert!(
        r.exceptions.more > 0,
        "the demo store has more than two exceptions"
    );
    let text = timepost::summary::render_text(&r);
    assert!(
        text.contains(&format!("… and {} more", r.exceptions.more)),
        "{text}"
    );
}

/// `archive run` without a period finds its periods in the aggregates'
/// entry rows, and the purge plan reads each archived period's entries
/// over the period index: neither reads every state, and both say what a
/// read of every state says.
#[tokio::test]
async fn the_archive_finds_its_periods_and_plans_a_purge_without_reading_every_state() {
    use std::collections::BTreeSet;
    use timepost::archive::{retention, snapshot, Period, PeriodKind, RetentionConfig};
    let (_dir, s) = demo_store().await;
    let all = s.store.all().await.expect("all");
    for kind in [PeriodKind::Month, PeriodKind::Week] {
        let counting = Counting::new(s.store.clone(), false);
        let periods = snapshot::periods_with_entries(&counting, kind)
            .await
            .expect("periods");
        assert_eq!(counting.all_calls.load(Ordering::SeqCst), 0);
        assert_eq!(counting.read(), 0, "no entry state read");
        let want: BTreeSet<_> = all
            .iter()
            .map(|st| Period::of(st.entry.work_date, kind))
            .collect();
        assert_eq!(periods, want.into_iter().collect::<Vec<_>>(), "{kind:?}");
    }

    // Close what is open, archive every period, then plan a purge.
    for mut st in all.clone() {
        if retention::is_open(&st) {
            st.set_status(Status::Ignored, st.updated_at);
            s.store.put(&st).await.expect("close");
        }
    }
    let ret = RetentionConfig {
        period: PeriodKind::Month,
        grace_days: 0,
        live_days: Some(30),
        ..RetentionConfig::default()
    };
    let today = d("2026-12-01");
    let now = Utc::now();
    let src = snapshot::Sources {
        entries: &s.store,
        journal: &s.store,
        mappings: &s.store,
        audit: &s.store,
        pending: &s.store,
        queue: &s.store,
        ledger: s.ledger.as_ref(),
        rules_toml: snapshot::rules_toml(&s.config).expect("rules"),
    };
    snapshot::run(&src, s.archive.as_ref(), None, &ret, today, now)
        .await
        .expect("archive run");
    // An entry changed after its snapshot keeps its period live.
    let mut changed = s
        .store
        .all()
        .await
        .expect("all")
        .into_iter()
        .find(|st| st.entry.work_date.to_string().starts_with("2026-03"))
        .expect("a March entry");
    changed.note = Some("changed after the snapshot".into());
    s.store.put(&changed).await.expect("change");

    let counting = Counting::new(s.store.clone(), false);
    let plan = retention::plan(&counting, &s.store, s.archive.as_ref(), &ret, today)
        .await
        .expect("plan");
    assert_eq!(counting.all_calls.load(Ordering::SeqCst), 0);
    let got: Vec<(String, usize, bool)> = plan
        .iter()
        .map(|p| (p.period.clone(), p.entries, p.kept_because.is_some()))
        .collect();
    let per = |label: &str| {
        all.iter()
            .filter(|st| Period::of(st.entry.work_date, PeriodKind::Month).label() == label)
            .count()
    };
    assert!(!got.is_empty());
    for (label, entries, kept) in &got {
        if label == "2026-03" {
            assert!(*kept, "March changed since its snapshot: {got:?}");
        } else {
            assert!(!kept, "{got:?}");
            assert_eq!(*entries, per(label), "{label}");
        }
    }
}
