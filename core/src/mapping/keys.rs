//! The mapped keys of an entry: the values the pipeline looks each mapping
//! table up by (`crate::pipeline`), grouped by what they name — the worker
//! (employee and vendor tables: tracker user id, e-mail), the project
//! (project, class and department tables: project id, name) and the task
//! (service item table: task id, name, tags). The stores keep an index of
//! them ([`crate::ports::EntryStore::by_mapped_keys`]), written from
//! [`keys_of`]; the impact preview, the held re-check and the listings
//! filtered by worker or project look rows up in it with [`keys_of_row`]
//! and [`touched`]. One function on each side, so the index and its
//! lookups cannot disagree.
//!
//! A row of the GL account or payroll item table, and the `*` service item
//! row, are looked up by every entry (by account role, pay tier, or as the
//! fallback of every entry's service item): they have no key in the index
//! ([`keys_of_row`] is None) and whoever looks them up reads the whole
//! store (bounded pages, see `crate::review`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{MappingChange, MappingTable};
use crate::model::NormalisedEntry;

/// What an indexed key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// Tracker user id or e-mail (employee and vendor tables).
    User,
    /// Tracker project id or name (project, class, department tables).
    Project,
    /// Task id or name, or a tag (service item table, `*` aside).
    Task,
}

impl KeyKind {
    pub const ALL: &'static [KeyKind] = &[KeyKind::User, KeyKind::Project, KeyKind::Task];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::User => "user",
            KeyKind::Project => "project",
            KeyKind::Task => "task",
        }
    }

    /// The kind of key `table` is looked up by; None for the tables every
    /// entry looks up by something other than its own values (GL account,
    /// payroll item).
    pub fn of(table: MappingTable) -> Option<KeyKind> {
        match table {
            MappingTable::Employee | MappingTable::Vendor => Some(KeyKind::User),
            MappingTable::Project | MappingTable::Class | MappingTable::Department => {
                Some(KeyKind::Project)
            }
            MappingTable::ServiceItem => Some(KeyKind::Task),
            MappingTable::GlAccount | MappingTable::PayrollItem => None,
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown key kind `{s}` (expected user, project or task)"))
    }
}

/// One indexed key: a kind and the value.
pub type MappedKey = (KeyKind, String);

/// Every key the pipeline may look `e` up by in a table with a key kind,
/// sorted and without duplicates. `Mappings::get` finds a row by the
/// value itself or, for a value with `@`, by its lower-case form: both are
/// listed, so a row with key `K` is looked up by `e` exactly when
/// `(kind, K)` is here. Empty values (never looked up) and the `*` service
/// item (looked up by every entry) are left out.
pub fn keys_of(e: &NormalisedEntry) -> Vec<MappedKey> {
    let mut out: Vec<MappedKey> = Vec::new();
    let mut add = |kind: KeyKind, v: &str| {
        if v.is_empty() || (kind == KeyKind::Task && v == "*") {
            return;
        }
        out.push((kind, v.to_string()));
        if v.contains('@') {
            out.push((kind, v.to_ascii_lowercase()));
        }
    };
    add(KeyKind::User, &e.worker.tracker_user_id);
    if let Some(m) = &e.worker.email {
        add(KeyKind::User, m);
    }
    if let Some(p) = &e.project {
        add(KeyKind::Project, &p.id);
        if let Some(n) = &p.name {
            add(KeyKind::Project, n);
        }
    }
    if let Some(t) = &e.task {
        add(KeyKind::Task, &t.id);
        if let Some(n) = &t.name {
            add(KeyKind::Task, n);
        }
    }
    for tag in &e.tags {
        add(KeyKind::Task, tag);
    }
    out.sort();
    out.dedup();
    out
}

/// The indexed key a row of `table` with key `key` is looked up by; None
/// when every entry may look it up (GL account, payroll item, the `*`
/// service item).
pub fn keys_of_row(table: MappingTable, key: &str) -> Option<MappedKey> {
    let kind = KeyKind::of(table)?;
    if kind == KeyKind::Task && key == "*" {
        return None;
    }
    Some((kind, key.to_string()))
}

/// The indexed keys of the rows `changes` add, change or remove (the key
/// of each change and of its rows before and after), sorted; None when one
/// of them is looked up by every entry.
pub fn touched(changes: &[MappingChange]) -> Option<Vec<MappedKey>> {
    let mut out = Vec::new();
    for c in changes {
        let keys = std::iter::once(c.key.as_str())
            .chain(c.before.iter().map(|r| r.key.as_str()))
            .chain(c.after.iter().map(|r| r.key.as_str()));
        for k in keys {
            out.push(keys_of_row(c.table, k)?);
        }
    }
    out.sort();
    out.dedup();
    Some(out)
}

/// The index value a listing filter names: a worker (tracker user id or
/// e-mail) or a project (id or name), compared as mapping keys are
/// (trimmed; e-mail case-insensitively).
pub fn filter_key(kind: KeyKind, value: &str) -> MappedKey {
    (kind, super::table::normalise_key(value))
}

/// What rebuilding a store's mapped-key index found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRebuild {
    /// Entry states read.
    pub entries: usize,
    /// Index rows (items) after the rebuild.
    pub keys: usize,
    /// Entries whose index rows were missing, extra or different before
    /// it (0: the maintained index was right).
    pub differed: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{MappingRow, Mappings};
    use crate::model::*;
    use proptest::prelude::*;

    fn entry(
        user: &str,
        email: Option<&str>,
        project: Option<(&str, Option<&str>)>,
        task: Option<(&str, Option<&str>)>,
        tags: &[&str],
    ) -> NormalisedEntry {
        let t0 = chrono::DateTime::<chrono::Utc>::default();
        NormalisedEntry {
            key: EntryKey::new(Source::Csv, "ws", "1"),
            version: Version {
                updated_at: t0,
                content_hash: String::new(),
            },
            worker: Worker {
                tracker_user_id: user.into(),
                email: email.map(str::to_string),
                name: None,
                kind: None,
                form_1099: None,
            },
            time_zone: chrono_tz::UTC,
            work_date: t0.date_naive(),
            start: None,
            end: None,
            duration_secs: 3600,
            project: project.map(|(i, n)| Ref::new(i, n.map(str::to_string))),
            client: None,
            task: task.map(|(i, n)| Ref::new(i, n.map(str::to_string))),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            billable: false,
            rate: None,
            notes: String::new(),
            approval: ApprovalStatus::Approved,
            attachments: vec![],
            origin: Origin::Web,
            deleted: false,
            already_rounded: false,
        }
    }

    /// Keys drawn from a small alphabet, e-mail addresses with mixed case
    /// among them, so rows and entries collide often.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("u1".to_string()),
            Just("u2".to_string()),
            Just("Ann@X.com".to_string()),
            Just("ann@x.com".to_string()),
            Just("ANN@x.COM".to_string()),
            Just("p1".to_string()),
            Just("Design".to_string()),
            Just("*".to_string()),
            Just("".to_string()),
        ]
    }

    proptest! {
        /// A row is found by the pipeline's lookup for an entry exactly
        /// when its indexed key is among the entry's keys.
        #[test]
        fn the_index_agrees_with_the_lookup(
            user in value(), email in proptest::option::of(value()),
            pid in value(), pname in proptest::option::of(value()),
            tid in value(), tname in proptest::option::of(value()),
            tag in value(),
            row_key in value(),
            table in proptest::sample::select(MappingTable::ALL.to_vec()),
        ) {
            let e = entry(&user, email.as_deref(), Some((&pid, pname.as_deref())), Some((&tid, tname.as_deref())), &[&tag]);
            let row = MappingRow::new(table, &row_key, "T");
            let m = Mappings::from_rows([row.clone()], 1);
            let looked_up: Vec<&str> = match KeyKind::of(table) {
                Some(KeyKind::User) => vec![&user, email.as_deref().unwrap_or("")],
                Some(KeyKind::Project) => vec![&pid, pname.as_deref().unwrap_or("")],
                Some(KeyKind::Task) => vec![&tid, tname.as_deref().unwrap_or(""), &tag, "*"],
                None => vec![],
            };
            let found = m.find(table, looked_up).is_some();
            match keys_of_row(table, &row.key) {
                Some(k) => prop_assert_eq!(found, keys_of(&e).contains(&k)),
                // Global rows are never in the index.
                None => prop_assert!(table == MappingTable::ServiceItem && row.key == "*" || KeyKind::of(table).is_none()),
            }
        }
    }

    #[test]
    fn keys_of_lists_every_looked_up_value_once() {
        let e = entry(
            "u1",
            Some("Ann@X.com"),
            Some(("p1", Some("Web"))),
            Some(("t1", None)),
            &["design", "*", ""],
        );
        let keys = keys_of(&e);
        assert_eq!(
            keys,
            vec![
                (KeyKind::User, "Ann@X.com".to_string()),
                (KeyKind::User, "ann@x.com".to_string()),
                (KeyKind::User, "u1".to_string()),
                (KeyKind::Project, "Web".to_string()),
                (KeyKind::Project, "p1".to_string()),
                (KeyKind::Task, "design".to_string()),
                (KeyKind::Task, "t1".to_string()),
            ]
        );
    }

    #[test]
    fn global_rows_have_no_key() {
        assert!(keys_of_row(MappingTable::GlAccount, "labour_expense").is_none());
        assert!(keys_of_row(MappingTable::PayrollItem, "overtime").is_none());
        assert!(keys_of_row(MappingTable::ServiceItem, "*").is_none());
        assert_eq!(
            keys_of_row(MappingTable::Vendor, "u1"),
            Some((KeyKind::User, "u1".to_string()))
        );
    }
}
