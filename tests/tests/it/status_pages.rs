//! Listings by status a page at a time (`EntryStore::by_status_after`): the
//! SQLite page walk equals the whole status (and the port's default) for
//! every page size, ties in the change time included; the exceptions and
//! approvals pages list at most a page of each status, their "Next page"
//! links reach every entry exactly once, their totals come from the
//! aggregates, and a damaged link is a 400 naming its field. The DynamoDB
//! adapter's walk is checked in `aws_dynamo::week_status_all_and_date_queries`.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use timepost::local::SqliteStore;
use timepost::model::{EntryKey, NormalisedEntry, Source};
use timepost::ports::{EntryStore, ReceivedVersion, StatusCursor, StoreResult, WorkerWeek};
use timepost::stack::LocalStack;
use timepost::state::{EntryState, Status};
use timepost_tests::kit::{call_router, sandbox_stack_with_admin, E};

const TOKEN: &str = "status-pages-admin-token-0123456789abcdef";

/// `inner` with the port's default `by_status_after` (a filter of the
/// whole status): the reference the SQLite page is compared with.
struct ByDefault(SqliteStore);

#[async_trait]
impl EntryStore for ByDefault {
    async fn get(&self, key: &EntryKey) -> StoreResult<Option<EntryState>> {
        self.0.get(key).await
    }
    async fn put(&self, state: &EntryState) -> StoreResult<u64> {
        self.0.put(state).await
    }
    async fn week(&self, week: &WorkerWeek) -> StoreResult<Vec<EntryState>> {
        self.0.week(week).await
    }
    async fn by_status(&self, status: Status, limit: usize) -> StoreResult<Vec<EntryState>> {
        self.0.by_status(status, limit).await
    }
    async fn all(&self) -> StoreResult<Vec<EntryState>> {
        self.0.all().await
    }
    async fn by_source_dates(
        &self,
        source: Source,
        workspace: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> StoreResult<Vec<EntryState>> {
        self.0.by_source_dates(source, workspace, from, to).await
    }
    async fn claim(&self, key: &EntryKey, owner: &str, ttl: Duration) -> StoreResult<bool> {
        self.0.claim(key, owner, ttl).await
    }
    async fn release(&self, key: &EntryKey, owner: &str) -> StoreResult<()> {
        self.0.release(key, owner).await
    }
    async fn record_version(
        &self,
        entry: &NormalisedEntry,
        received_at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.0.record_version(entry, received_at).await
    }
    async fn versions(&self, key: &EntryKey) -> StoreResult<Vec<ReceivedVersion>> {
        self.0.versions(key).await
    }
}

/// When entry `i` last changed: whole seconds, milliseconds and
/// nanoseconds mixed (the stored text's width varies with them), and runs
/// of equal times (the key breaks the tie).
fn changed(i: usize) -> DateTime<Utc> {
    let base = Utc.with_ymd_and_hms(2026, 3, 9, 10, 0, 0).unwrap();
    let nanos = match i % 4 {
        0 => 0,
        1 => 250_000_000,
        2 => 123_456_789,
        _ => 7,
    };
    base + chrono::Duration::seconds((i / 8) as i64) + chrono::Duration::nanoseconds(nanos)
}

/// `n` entries of `status` (ids `<prefix>-<i>`), written through `put` so
/// the aggregates count them.
async fn seed(store: &dyn EntryStore, status: Status, prefix: &str, n: usize) {
    for i in 0..n {
        let day = 2 + (i % 20) as u32;
        let e = E::new(
            &format!("{prefix}-{i:04}"),
            &format!("u-{}", i % 7),
            &format!("2026-03-{day:02}"),
            "09:00",
            "10:00",
        )
        .build();
        let mut st = EntryState::new(e, changed(i));
        st.set_status(status, st.updated_at);
        st.updated_at = changed(i);
        store.put(&st).await.expect("put");
    }
}

fn keys(v: &[EntryState]) -> Vec<String> {
    v.iter().map(|s| s.entry.key.to_string()).collect()
}

async fn walk(store: &dyn EntryStore, status: Status, size: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<StatusCursor> = None;
    loop {
        let page = store
            .by_status_after(status, after.as_ref(), size)
            .await
            .expect("page");
        assert!(page.len() <= size);
        let full = page.len() == size;
        after = StatusCursor::after(&page);
        out.extend(keys(&page));
        if !full {
            return out;
        }
    }
}

#[tokio::test]
async fn the_sqlite_status_page_walk_equals_the_whole_status_for_every_page_size() {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(&dir.path().join("s.sqlite")).expect("store");
    seed(&store, Status::Held, "h", 61).await;
    seed(&store, Status::Exception, "x", 5).await;
    let reference = ByDefault(store.clone());
    let whole = keys(
        &store
            .by_status(Status::Held, usize::MAX)
            .await
            .expect("all"),
    );
    assert_eq!(whole.len(), 61);
    for size in [1, 2, 7, 8, 60, 61, 62, 1000] {
        assert_eq!(walk(&store, Status::Held, size).await, whole, "size {size}");
        assert_eq!(
            walk(&reference, Status::Held, size).await,
            whole,
            "default, size {size}"
        );
    }
    // The cursor's text form round-trips, and a damaged one is refused.
    let c = StatusCursor::of(&store.by_status(Status::Held, 3).await.expect("3")[2]);
    assert_eq!(c.to_string().parse::<StatusCursor>().expect("parse"), c);
    for bad in [
        "",
        "x",
        "2026-03-09T10:00:00Z",
        "yesterday|csv:ws:1",
        "2026-03-09T10:00:00Z|nokey",
    ] {
        assert!(bad.parse::<StatusCursor>().is_err(), "{bad}");
    }
}

async fn stack(dir: &std::path::Path) -> LocalStack {
    sandbox_stack_with_admin(dir, TOKEN).await
}

async fn get(s: &LocalStack, path: &str) -> (u16, String) {
    call_router(s, TOKEN, "GET", path).await
}

/// The `data-key` of every row of a page, and its "Next page" link.
fn rows_and_next(page: &str) -> (Vec<String>, Option<String>) {
    let rows = page
        .split("<tr data-key=\"")
        .skip(1)
        .filter_map(|r| r.split('"').next())
        .map(str::to_string)
        .collect();
    let next = page
        .split("<a class=\"next\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .map(|h| h.replace("&amp;", "&"));
    (rows, next)
}

/// Follow a page's "Next page" links from `first`; every row seen, and
/// the largest page.
async fn follow(s: &LocalStack, first: &str) -> (Vec<String>, usize) {
    let mut seen = Vec::new();
    let mut largest = 0;
    let mut path = Some(first.to_string());
    let mut pages = 0;
    while let Some(p) = path {
        let (st, body) = get(s, &p).await;
        assert_eq!(st, 200, "{p}: {body}");
        let (rows, next) = rows_and_next(&body);
        largest = largest.max(rows.len());
        seen.extend(rows);
        path = next;
        pages += 1;
        assert!(pages < 50, "the links go round");
    }
    (seen, largest)
}

#[tokio::test]
async fn the_exceptions_and_approvals_pages_list_a_page_at_a_time_and_reach_every_entry() {
    let dir = tempfile::tempdir().expect("dir");
    let s = stack(dir.path()).await;
    seed(&s.store, Status::Exception, "x", 450).await;
    seed(&s.store, Status::Held, "h", 230).await;
    seed(&s.store, Status::AwaitingApproval, "a", 410).await;
    let page_rows = 200;

    let (_, first) = get(&s, "/console/exceptions").await;
    assert!(first.contains("680 entries could not be posted"), "{first}");
    assert!(first.contains("This page lists 400 of them"), "{first}");
    let (seen, largest) = follow(&s, "/console/exceptions").await;
    assert!(largest <= 2 * page_rows, "{largest} rows on one page");
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an entry listed twice");
    let mut want: BTreeSet<String> = BTreeSet::new();
    for st in [Status::Exception, Status::Held] {
        want.extend(keys(&s.store.by_status(st, usize::MAX).await.expect("all")));
    }
    assert_eq!(unique.into_iter().cloned().collect::<BTreeSet<_>>(), want);

    let (_, first) = get(&s, "/console/approvals").await;
    assert!(first.contains("410 entries awaiting approval"), "{first}");
    let (seen, largest) = follow(&s, "/console/approvals").await;
    assert!(largest <= page_rows, "{largest} rows on one page");
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "an entry listed twice");
    let want: BTreeSet<String> = keys(
        &s.store
            .by_status(Status::AwaitingApproval, usize::MAX)
            .await
            .expect("all"),
    )
    .into_iter()
    .collect();
    assert_eq!(unique, want);

    // The bulk CSV still holds every open entry, not a page.
    let (st, csv) = get(&s, "/console/exceptions.csv").await;
    assert_eq!(st, 200);
    assert_eq!(csv.lines().count(), 1 + 680, "header and every open entry");

    // The admin API pages a status the same way: `after` is the previous
    // page's last entry as `<updated_at>|<key>`; `GET /api/approvals` is
    // the waiting status's listing (it used to stop at 10,000).
    for (base, status) in [
        ("/api/entries?status=held&limit=64", Status::Held),
        ("/api/approvals?limit=64", Status::AwaitingApproval),
    ] {
        let seen = api_walk(&s, base, 64).await;
        let want = keys(&s.store.by_status(status, usize::MAX).await.expect("all"));
        assert_eq!(seen, want, "{base}");
    }

    // A damaged link is refused, naming the field.
    for (path, field) in [
        ("/console/exceptions?after_held=garbage", "after_held"),
        (
            "/console/exceptions?after_exception=2026|x",
            "after_exception",
        ),
        ("/console/approvals?after=nope", "after"),
        ("/api/entries?status=held&after=csv%3Aws%3A1", "after"),
        ("/api/approvals?after=yesterday", "after"),
    ] {
        let (st, body) = get(&s, path).await;
        assert_eq!(st, 400, "{path}: {body}");
        assert!(body.contains(field), "{path}: {body}");
    }
}

/// Every entry `base` lists, following `after` a page of `limit` at a time.
async fn api_walk(s: &LocalStack, base: &str, limit: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut path = base.to_string();
    loop {
        let (st, body) = get(s, &path).await;
        assert_eq!(st, 200, "{path}: {body}");
        let page: Vec<EntryState> = serde_json::from_str(&body).expect("states");
        assert!(page.len() <= limit, "{path}: {} rows", page.len());
        seen.extend(keys(&page));
        let Some(c) = StatusCursor::after(&page) else {
            return seen;
        };
        if page.len() < limit {
            return seen;
        }
        path = format!("{base}&after={}", url_escape(&c.to_string()));
    }
}

fn url_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
