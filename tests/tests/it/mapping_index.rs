//! The mapped-key index (`timepost::mapping::keys`) on the local store: the
//! impact preview read over it lists exactly what a replay of every stored
//! entry lists, and its reach (what the review threshold counts) is never
//! below the number of stored entries a full replay finds posting
//! differently (random stores, random changes, `*` and global rows
//! included); the maintained index equals a rebuild; the re-check
//! after a mapping change re-decides only the held entries the change can
//! release; listings by worker and project page over it.

use std::collections::BTreeSet;

use proptest::prelude::*;
use timepost::impact;
use timepost::mapping::{keys::filter_key, KeyKind, MappingRow, MappingTable, Mappings};
use timepost::model::{EntryKey, Ref};

use timepost::ports::{EntryStore, MappingStore};
use timepost::review::{draft, MappingReview, Period};
use timepost::state::{EntryState, Status};
use timepost_tests::kit::{deliver, sandbox_stack, stack_with, E};

/// One random entry: worker, e-mail, project, task, tags, day, hours.
#[derive(Debug, Clone)]
struct Spec {
    user: usize,
    project: usize,
    task: usize,
    tag: usize,
    day: u32,
    hours: u32,
}

const USERS: &[(&str, Option<&str>)] = &[
    ("u-ann", None),
    ("u-hal", None),
    ("u-ivy", None),
    ("u-zed", None),
    ("u-cat", Some("Cat.Wong@Example.com")),
    ("u-new", Some("new@example.com")),
];
const PROJECTS: &[Option<(&str, Option<&str>)>] = &[
    Some(("p-acme-web", Some("Acme website"))),
    Some(("p-globex-erp", None)),
    Some(("p-new", Some("Umbrella Support"))),
    Some(("p-zzz", None)),
    None,
];
const TASKS: &[Option<(&str, Option<&str>)>] = &[
    Some(("t-dev", Some("Development"))),
    Some(("t-design", None)),
    Some(("t-new", None)),
    None,
];
const TAGS: &[&[&str]] = &[&[], &["support"], &["x"]];

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..USERS.len(),
        0..PROJECTS.len(),
        0..TASKS.len(),
        0..TAGS.len(),
        0u32..19,
        1u32..11,
    )
        .prop_map(|(user, project, task, tag, day, hours)| Spec {
            user,
            project,
            task,
            tag,
            day,
            hours,
        })
}

fn entry(i: usize, s: &Spec) -> timepost::model::NormalisedEntry {
    let (user, email) = USERS[s.user];
    let date = chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default()
        + chrono::Duration::days(s.day as i64);
    let to = format!("{:02}:00", 8 + s.hours);
    E::new(&format!("e{i}"), user, &date.to_string(), "08:00", &to)
        .with(|e| {
            e.worker.email = email.map(str::to_string);
            e.project = PROJECTS[s.project].map(|(id, n)| Ref::new(id, n.map(str::to_string)));
            e.task = TASKS[s.task].map(|(id, n)| Ref::new(id, n.map(str::to_string)));
            e.tags = TAGS[s.tag].iter().map(|t| t.to_string()).collect();
            e.billable = s.project.is_multiple_of(2);
        })
        .build()
}

/// The keys a changed row may have, per table.
fn keys_for(t: MappingTable) -> &'static [&'static str] {
    match t {
        MappingTable::Employee | MappingTable::Vendor => &[
            "u-ann",
            "u-hal",
            "u-ivy",
            "u-zed",
            "u-cat",
            "cat.wong@example.com",
            "new@example.com",
        ],
        MappingTable::Project | MappingTable::Class | MappingTable::Department => &[
            "p-acme-web",
            "Acme website",
            "p-new",
            "Umbrella Support",
            "p-zzz",
        ],
        MappingTable::ServiceItem => &["t-dev", "t-new", "Development", "support", "x", "*"],
        MappingTable::GlAccount => &["labour_expense", "billable_income", "holding"],
        MappingTable::PayrollItem => &["regular", "overtime"],
    }
}

/// A random row change: table, key, and set (with or without overtime
/// jurisdiction) or remove.
#[derive(Debug, Clone)]
struct Change {
    table: MappingTable,
    key: usize,
    action: usize,
}

fn change() -> impl Strategy<Value = Change> {
    (
        proptest::sample::select(MappingTable::ALL.to_vec()),
        0usize..8,
        0usize..3,
    )
        .prop_map(|(table, key, action)| Change { table, key, action })
}

/// Both previews of `change` over the stack's store: a replay of every
/// stored entry (the old way) and the review's indexed one.
async fn both(
    s: &timepost::stack::LocalStack,
    c: &Change,
    period: Period,
) -> Option<(impact::ImpactPreview, impact::ImpactPreview)> {
    let current = s.store.snapshot().await.expect("snapshot");
    let keys = keys_for(c.table);
    let key = keys[c.key % keys.len()];
    let after = match c.action {
        0 => None,
        1 => Some(MappingRow::new(c.table, key, "NEW-1")),
        _ => Some(MappingRow::new(c.table, key, "NEW-2").with_attr("jurisdiction", "us-flsa")),
    };
    let change = match draft(&current, "ann", c.table, key, after, "test") {
        Ok(Some(ch)) => ch,
        _ => return None,
    };
    let review = MappingReview {
        entries: &s.store,
        mappings: &s.store,
        audit: &s.store,
        pending: None,
        engine: &s.engine,
        threshold: 0,
    };
    let new = review
        .preview(&current, std::slice::from_ref(&change), Some(period))
        .await
        .expect("indexed preview");
    let mut proposed: Mappings = current.clone();
    timepost::mapping::change::apply(&mut proposed, std::slice::from_ref(&change));
    let all = s.store.all().await.expect("all");
    let old = impact::preview(
        &all,
        period.from,
        period.to,
        &current,
        &proposed,
        &s.engine.rules,
    );
    Some((old, new))
}

fn d(s: &str) -> chrono::NaiveDate {
    s.parse().unwrap_or_default()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Over a random store (some entries moved to another project or
    /// worker by a later version), every random row change — employee,
    /// vendor, project, class, department, service item (`*` included),
    /// GL account, payroll item — lists the same entries read over the
    /// index as replayed over every stored entry, and counts in its reach
    /// at least every stored entry the full replay finds posting
    /// differently (whatever its date: the threshold cannot be slipped
    /// under by choosing the period), at most every stored entry; and the
    /// maintained index equals a rebuild of it.
    #[test]
    fn the_indexed_preview_lists_what_a_full_replay_lists_and_its_reach_bounds_the_count(
        specs in proptest::collection::vec(spec(), 1..40),
        moved in proptest::collection::vec((0usize..40, spec()), 0..6),
        changes in proptest::collection::vec(change(), 1..6),
    ) {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let dir = tempfile::tempdir().expect("dir");
            let s = sandbox_stack(dir.path()).await;
            let entries: Vec<_> = specs.iter().enumerate().map(|(i, sp)| entry(i, sp)).collect();
            deliver(&s, &entries).await;
            // Later versions: another worker, project, task, date.
            let later: Vec<_> = moved
                .iter()
                .filter(|(i, _)| *i < specs.len())
                .map(|(i, sp)| {
                    let mut e = entry(*i, sp);
                    e.version.updated_at += chrono::Duration::hours(1);
                    e
                })
                .collect();
            deliver(&s, &later).await;
            let r = s.store.rebuild_key_index_now().expect("rebuild");
            prop_assert_eq!(r.differed, 0, "the maintained index was wrong: {:?}", r);
            let stored = s.store.all().await.expect("all").len();
            for c in &changes {
                for period in [
                    Period { from: d("2026-03-01"), to: d("2026-03-31") },
                    Period { from: d("2026-03-09"), to: d("2026-03-15") },
                ] {
                    let Some((old, new)) = both(&s, c, period).await else { continue };
                    prop_assert_eq!(&new.changed, &old.changed, "{:?}", c);
                    prop_assert!(
                        new.in_reach() >= old.entries_affected,
                        "reach {} below the {} entries posting differently: {:?}",
                        new.in_reach(), old.entries_affected, c
                    );
                    prop_assert!(new.in_reach() <= stored, "{:?}", c);
                    prop_assert!(new.entries_replayed <= old.entries_replayed);
                }
            }
            Ok(())
        })?;
    }
}

/// `n` two-hour entries, entry `i` on day `i` by the user and project
/// `who(i)` names (task 0, tag 1).
fn one_a_day(n: usize, who: fn(usize) -> (usize, usize)) -> Vec<timepost::model::NormalisedEntry> {
    (0..n)
        .map(|i| {
            let (user, project) = who(i);
            entry(
                i,
                &Spec {
                    user,
                    project,
                    task: 0,
                    tag: 1,
                    day: i as u32,
                    hours: 2,
                },
            )
        })
        .collect()
}

#[tokio::test]
async fn a_store_without_the_index_gets_it_at_open_and_a_rebuild_repairs_it() {
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    let entries = one_a_day(6, |i| (i % 3, i % 4));
    deliver(&s, &entries).await;
    let ann = [filter_key(KeyKind::User, "u-ann")];
    assert_eq!(s.store.count_by_mapped_keys(&ann).await.expect("count"), 2);
    {
        // As a store written before the index existed: no rows, no mark.
        let conn = s.store.lock();
        conn.execute_batch("DELETE FROM entry_keys; DELETE FROM entry_keys_built;")
            .expect("drop");
    }
    assert_eq!(s.store.count_by_mapped_keys(&ann).await.expect("count"), 0);
    let path = s.config.store.path.clone();
    drop(s);
    let reopened = timepost::local::sqlite::SqliteStore::open(&path).expect("reopen");
    assert_eq!(reopened.count_by_mapped_keys(&ann).await.expect("count"), 2);
    {
        let conn = reopened.lock();
        conn.execute("DELETE FROM entry_keys WHERE entry LIKE '%e0'", [])
            .expect("damage");
        conn.execute(
            "INSERT INTO entry_keys (kind, k, entry) VALUES ('user', 'u-x', 'csv:ws:gone')",
            [],
        )
        .expect("damage");
    }
    let r = reopened.rebuild_key_index_now().expect("rebuild");
    assert_eq!((r.entries, r.differed), (6, 2), "{r:?}");
    assert_eq!(reopened.rebuild_key_index_now().expect("again").differed, 0);
    assert_eq!(reopened.count_by_mapped_keys(&ann).await.expect("count"), 2);
}

/// An index written before its rows carried the work date gets the column
/// at open, filled from the entries, so a period's part of a key is read
/// over it; a wrong date is what a rebuild repairs.
#[tokio::test]
async fn an_index_without_work_dates_gets_them_at_open() {
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    let entries = one_a_day(6, |_| (0, 0));
    deliver(&s, &entries).await;
    async fn dated(st: &timepost::local::sqlite::SqliteStore) -> Vec<String> {
        let ann = [filter_key(KeyKind::User, "u-ann")];
        let got = st
            .by_mapped_keys_dated(&ann, d("2026-03-03"), d("2026-03-05"), None, 100)
            .await
            .expect("dated");
        got.iter().map(|s| s.entry.work_date.to_string()).collect()
    }
    let want = ["2026-03-03", "2026-03-04", "2026-03-05"];
    assert_eq!(dated(&s.store).await, want);
    {
        // As an index written before the column existed.
        let conn = s.store.lock();
        conn.execute_batch(
            "DROP INDEX entry_keys_dated; ALTER TABLE entry_keys DROP COLUMN work_date;",
        )
        .expect("old layout");
    }
    let path = s.config.store.path.clone();
    drop(s);
    let reopened = timepost::local::sqlite::SqliteStore::open(&path).expect("reopen");
    assert_eq!(dated(&reopened).await, want);
    assert_eq!(
        reopened.rebuild_key_index_now().expect("rebuild").differed,
        0
    );
    {
        let conn = reopened.lock();
        conn.execute(
            "UPDATE entry_keys SET work_date = '2020-01-01' WHERE entry LIKE '%e3'",
            [],
        )
        .expect("damage");
    }
    assert_eq!(dated(&reopened).await, ["2026-03-03", "2026-03-04"]);
    assert_eq!(
        reopened.rebuild_key_index_now().expect("rebuild").differed,
        1
    );
    assert_eq!(dated(&reopened).await, want);
}

#[tokio::test]
async fn adding_one_employee_row_rechecks_only_that_workers_held_entries() {
    let dir = tempfile::tempdir().expect("dir");
    // Time of an unmapped worker is held (the sandbox blocks it).
    let config = timepost::demo::CONFIG.replace("employee = \"block\"", "employee = \"hold\"");
    assert_ne!(config, timepost::demo::CONFIG);
    let s = stack_with(dir.path(), &config, "").await;
    // Held: `u-new` (no employee row) and `u-zed` (none either), and a
    // project nobody mapped for u-ann.
    let mut entries = Vec::new();
    for (i, (user, project)) in [(5, 0), (5, 1), (5, 0), (3, 0), (3, 1), (0, 3), (0, 0)]
        .into_iter()
        .enumerate()
    {
        entries.push(entry(
            i,
            &Spec {
                user,
                project,
                task: 0,
                tag: 0,
                day: i as u32,
                hours: 2,
            },
        ));
    }
    deliver(&s, &entries).await;
    let held = |st: &[EntryState], user: &str| {
        st.iter()
            .filter(|x| x.status() == Status::Held && x.entry.worker.tracker_user_id == user)
            .map(|x| x.entry.key.clone())
            .collect::<BTreeSet<EntryKey>>()
    };
    let before = s.store.all().await.expect("all");
    let new_held = held(&before, "u-new");
    let others: Vec<EntryState> = before
        .iter()
        .filter(|x| x.status() == Status::Held && x.entry.worker.tracker_user_id != "u-new")
        .cloned()
        .collect();
    assert_eq!(new_held.len(), 3, "u-new's entries wait for a row");
    assert!(
        others.len() >= 3,
        "u-zed's and the unmapped project's wait too"
    );

    // The row is keyed by the e-mail, in another case than the entries'.
    let current = s.store.snapshot().await.expect("snapshot");
    let change = draft(
        &current,
        "ann",
        MappingTable::Employee,
        "NEW@example.com",
        Some(MappingRow::new(
            MappingTable::Employee,
            "NEW@example.com",
            "E-900",
        )),
        "hired",
    )
    .expect("draft")
    .expect("a change");
    let applied = s.store.apply(vec![change]).await.expect("apply");
    let released = timepost::engine::held_released_by(&s.store, &applied)
        .await
        .expect("released");
    assert_eq!(
        released.keys().cloned().collect::<BTreeSet<_>>(),
        new_held,
        "only u-new's held entries are candidates"
    );
    let out = s
        .engine
        .recheck_held_for(&applied, "b-test")
        .await
        .expect("recheck");
    let decided: BTreeSet<EntryKey> = out.iter().map(|o| o.key.clone()).collect();
    assert_eq!(decided, new_held, "re-decided: u-new's held entries only");
    for k in &new_held {
        let st = s.store.get(k).await.expect("get").expect("entry");
        assert_ne!(
            st.status(),
            Status::Held,
            "{k}: nothing held for the row stays held"
        );
    }
    for o in &others {
        let st = s
            .store
            .get(&o.entry.key)
            .await
            .expect("get")
            .expect("entry");
        assert_eq!(
            (st.status(), st.revision),
            (Status::Held, o.revision),
            "{}: untouched",
            o.entry.key
        );
    }
}

#[tokio::test]
async fn entries_list_by_worker_and_project_in_pages() {
    let dir = tempfile::tempdir().expect("dir");
    let s = sandbox_stack(dir.path()).await;
    let entries: Vec<_> = (0..25)
        .map(|i| {
            entry(
                i,
                &Spec {
                    user: i % 2,
                    project: i % 3,
                    task: 0,
                    tag: 0,
                    day: (i % 19) as u32,
                    hours: 1,
                },
            )
        })
        .collect();
    deliver(&s, &entries).await;
    let all = s.store.all().await.expect("all");
    for (key, want) in [
        (
            filter_key(KeyKind::User, "u-ann"),
            all.iter()
                .filter(|x| x.entry.worker.tracker_user_id == "u-ann")
                .count(),
        ),
        (
            filter_key(KeyKind::Project, "Acme website"),
            all.iter()
                .filter(|x| {
                    x.entry
                        .project
                        .as_ref()
                        .is_some_and(|p| p.id == "p-acme-web")
                })
                .count(),
        ),
    ] {
        let mut seen: Vec<String> = Vec::new();
        let mut after: Option<EntryKey> = None;
        loop {
            let page = s
                .store
                .by_mapped_keys(std::slice::from_ref(&key), after.as_ref(), 4)
                .await
                .expect("page");
            assert!(page.len() <= 4);
            let Some(last) = page.last() else { break };
            after = Some(last.entry.key.clone());
            seen.extend(page.iter().map(|x| x.entry.key.to_string()));
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(seen, sorted, "key order, no repeats");
        assert_eq!(seen.len(), want, "{key:?}");
        assert_eq!(
            s.store.count_by_mapped_keys(&[key]).await.expect("count"),
            want
        );
    }
}

/// The DynamoDB adapter keeps the same index as SQLite: the same writes
/// (new entries, a move to another project and worker, a state written
/// before the index existed, a purge) list and count the same entries by
/// key, in pages; the rebuild gives an old state its items.
#[tokio::test]
async fn dynamodb_keeps_the_same_index_as_sqlite() {
    use timepost::archive::retention::PurgeStore;
    let Some(config) = timepost_tests::moto::sdk_config().await else {
        return;
    };
    let dynamo = timepost::aws::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&config),
        timepost_tests::moto::unique("tp"),
    );
    dynamo.create_table().await.expect("create table");
    let sqlite = timepost::local::sqlite::SqliteStore::in_memory().expect("sqlite");
    let stores: [&dyn EntryStore; 2] = [&dynamo, &sqlite];
    let t0: chrono::DateTime<chrono::Utc> = "2026-03-09T00:00:00Z".parse().expect("t0");
    for store in stores {
        for i in 0..9 {
            let e = entry(
                i,
                &Spec {
                    user: i % 3,
                    project: i % 4,
                    task: i % 3,
                    tag: i % 3,
                    day: i as u32,
                    hours: 1,
                },
            );
            store.put(&EntryState::new(e, t0)).await.expect("put");
        }
        // e1 moves to u-cat (with an e-mail) and another project.
        let mut st = store
            .get(
                &entry(
                    1,
                    &Spec {
                        user: 0,
                        project: 0,
                        task: 0,
                        tag: 0,
                        day: 0,
                        hours: 1,
                    },
                )
                .key,
            )
            .await
            .expect("get")
            .expect("e1");
        st.entry.worker.tracker_user_id = "u-cat".into();
        st.entry.worker.email = Some("Cat.Wong@Example.com".into());
        st.entry.project = Some(Ref::new("p-zzz", None));
        st.revision = store.put(&st).await.expect("move");
        // A status change keeps the keys.
        st.set_status(Status::Held, st.updated_at);
        store.put(&st).await.expect("status");
    }
    // e8 purged from both.
    let e8 = entry(
        8,
        &Spec {
            user: 0,
            project: 0,
            task: 0,
            tag: 0,
            day: 0,
            hours: 1,
        },
    )
    .key;
    assert_eq!(
        dynamo
            .purge_entries(std::slice::from_ref(&e8))
            .await
            .expect("purge"),
        1
    );
    assert_eq!(
        sqlite
            .purge_entries(std::slice::from_ref(&e8))
            .await
            .expect("purge"),
        1
    );
    let queries: Vec<Vec<timepost::mapping::MappedKey>> = vec![
        vec![filter_key(KeyKind::User, "u-ann")],
        vec![filter_key(KeyKind::User, "cat.wong@example.com")],
        vec![filter_key(KeyKind::User, "Cat.Wong@Example.com")],
        vec![
            filter_key(KeyKind::Project, "p-zzz"),
            filter_key(KeyKind::Project, "Acme website"),
        ],
        vec![
            (KeyKind::Task, "t-dev".to_string()),
            (KeyKind::Task, "support".to_string()),
        ],
        vec![filter_key(KeyKind::User, "u-nobody")],
    ];
    for q in &queries {
        let mut by_store = Vec::new();
        for store in stores {
            let mut seen = Vec::new();
            let mut after: Option<EntryKey> = None;
            loop {
                let page = store
                    .by_mapped_keys(q, after.as_ref(), 2)
                    .await
                    .expect("page");
                let Some(last) = page.last() else { break };
                after = Some(last.entry.key.clone());
                seen.extend(page.iter().map(|x| x.entry.key.to_string()));
            }
            assert_eq!(
                store.count_by_mapped_keys(q).await.expect("count"),
                seen.len(),
                "{q:?}"
            );
            by_store.push(seen);
        }
        assert_eq!(by_store[0], by_store[1], "{q:?}");
    }
    assert_eq!(
        dynamo
            .count_by_mapped_keys(&[filter_key(KeyKind::User, "u-cat")])
            .await
            .expect("count"),
        1
    );
    let r = dynamo.rebuild_key_index().await.expect("rebuild");
    assert_eq!((r.entries, r.differed), (8, 0), "{r:?}");
}
