//! Mapping changes: every change is a new version with who, when, before,
//! after and why. The change log is append-only; the current tables are the
//! fold of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::table::{MappingRow, MappingTable, Mappings};

/// One change to one mapping key. `before: None` is an addition, `after:
/// None` a removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingChange {
    /// Sequence number in the change log; assigned by the store.
    #[serde(default)]
    pub seq: u64,
    pub table: MappingTable,
    pub key: String,
    pub before: Option<MappingRow>,
    pub after: Option<MappingRow>,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
    pub reason: String,
}

impl MappingChange {
    pub fn describe(&self) -> String {
        match (&self.before, &self.after) {
            (None, Some(a)) => format!("{} `{}` → {} (added)", self.table, self.key, a.target),
            (Some(b), None) => format!("{} `{}` (was {}) removed", self.table, self.key, b.target),
            (Some(b), Some(a)) => {
                format!("{} `{}`: {} → {}", self.table, self.key, b.target, a.target)
            }
            (None, None) => format!("{} `{}`: no-op", self.table, self.key),
        }
    }
}

/// The changes that turn `current` into `incoming`. Rows equal to the current
/// ones produce no change. With `replace`, current rows absent from
/// `incoming` (in the tables `incoming` touches) are removed.
pub fn diff(
    current: &Mappings,
    incoming: &[MappingRow],
    replace: bool,
    who: &str,
    when: DateTime<Utc>,
    reason: &str,
) -> Vec<MappingChange> {
    let mut changes = Vec::new();
    let change =
        |table, key: &str, before: Option<MappingRow>, after: Option<MappingRow>| MappingChange {
            seq: 0,
            table,
            key: key.to_string(),
            before,
            after,
            changed_by: who.to_string(),
            changed_at: when,
            reason: reason.to_string(),
        };
    for row in incoming {
        let before = current.get(row.table, &row.key).cloned();
        if before.as_ref() != Some(row) {
            changes.push(change(row.table, &row.key, before, Some(row.clone())));
        }
    }
    if replace {
        let tables: std::collections::BTreeSet<MappingTable> =
            incoming.iter().map(|r| r.table).collect();
        for old in current.rows() {
            if tables.contains(&old.table)
                && !incoming
                    .iter()
                    .any(|r| r.table == old.table && r.key == old.key)
            {
                changes.push(change(old.table, &old.key, Some(old.clone()), None));
            }
        }
    }
    changes
}

/// Apply changes to a snapshot (what the store does in one transaction).
pub fn apply(mappings: &mut Mappings, changes: &[MappingChange]) {
    for c in changes {
        match &c.after {
            Some(row) => mappings.insert(row.clone()),
            None => {
                mappings.remove(c.table, &c.key);
            }
        }
        mappings.version = mappings.version.max(c.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_finds_additions_edits_and_removals() {
        let current = Mappings::from_rows(
            [
                MappingRow::new(MappingTable::Project, "p1", "C1"),
                MappingRow::new(MappingTable::Project, "p2", "C2"),
            ],
            2,
        );
        let incoming = vec![
            MappingRow::new(MappingTable::Project, "p1", "C1"),
            MappingRow::new(MappingTable::Project, "p2", "C9"),
            MappingRow::new(MappingTable::Project, "p3", "C3"),
        ];
        let now = Utc::now();
        let ch = diff(&current, &incoming, false, "ann", now, "import");
        assert_eq!(ch.len(), 2);
        let ch = diff(&current, &incoming[..1], true, "ann", now, "import");
        assert_eq!(ch.len(), 1);
        assert!(ch[0].after.is_none());
        let mut m = current.clone();
        apply(&mut m, &diff(&current, &incoming, false, "ann", now, "x"));
        assert_eq!(m.get(MappingTable::Project, "p2").unwrap().target, "C9");
        assert_eq!(m.len(), 3);
    }
}
