//! Mapping tables and the snapshot the pipeline reads.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The cross-reference tables. The key column of each is a tracker value;
/// the target is a ledger id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MappingTable {
    /// Tracker user id or e-mail → ledger employee id. Attributes:
    /// `time_zone`, `jurisdiction`.
    Employee,
    /// Tracker user id or e-mail → ledger vendor id (contractors). Attributes:
    /// `form_1099`, `time_zone`.
    Vendor,
    /// Tracker project id or name → ledger customer / job id.
    Project,
    /// Tracker task id or name, or a tag, or `*` → ledger service item id.
    ServiceItem,
    /// Tracker project id or name → ledger class id (optional).
    Class,
    /// Tracker project id or name → ledger department / location id (optional).
    Department,
    /// Account role (`labour_expense`, `billable_income`,
    /// `payroll_liabilities`, `holding`) → ledger account id.
    GlAccount,
    /// Pay tier (`regular`, `overtime`, `double_time`…) → payroll item id.
    PayrollItem,
}

impl MappingTable {
    pub const ALL: &'static [MappingTable] = &[
        MappingTable::Employee,
        MappingTable::Vendor,
        MappingTable::Project,
        MappingTable::ServiceItem,
        MappingTable::Class,
        MappingTable::Department,
        MappingTable::GlAccount,
        MappingTable::PayrollItem,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MappingTable::Employee => "employee",
            MappingTable::Vendor => "vendor",
            MappingTable::Project => "project",
            MappingTable::ServiceItem => "service_item",
            MappingTable::Class => "class",
            MappingTable::Department => "department",
            MappingTable::GlAccount => "gl_account",
            MappingTable::PayrollItem => "payroll_item",
        }
    }
}

impl fmt::Display for MappingTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MappingTable {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MappingTable::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s.trim())
            .ok_or_else(|| {
                let names: Vec<_> = MappingTable::ALL.iter().map(|t| t.as_str()).collect();
                format!(
                    "unknown mapping table `{s}` (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

/// One mapping: `key` in `table` maps to `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingRow {
    pub table: MappingTable,
    pub key: String,
    pub target: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, String>,
}

impl MappingRow {
    pub fn new(table: MappingTable, key: &str, target: &str) -> Self {
        Self {
            table,
            key: normalise_key(key),
            target: target.trim().to_string(),
            attrs: BTreeMap::new(),
        }
    }
    pub fn with_attr(mut self, k: &str, v: &str) -> Self {
        self.attrs.insert(k.to_string(), v.to_string());
        self
    }
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).map(String::as_str)
    }
}

/// Keys compare trimmed; e-mail addresses compare case-insensitively.
pub fn normalise_key(key: &str) -> String {
    let k = key.trim();
    if k.contains('@') {
        k.to_ascii_lowercase()
    } else {
        k.to_string()
    }
}

/// A read-only snapshot of every mapping table at one version.
#[derive(Debug, Clone, Default)]
pub struct Mappings {
    rows: HashMap<MappingTable, HashMap<String, MappingRow>>,
    /// The change-log sequence number this snapshot reflects.
    pub version: u64,
}

impl Mappings {
    pub fn from_rows(rows: impl IntoIterator<Item = MappingRow>, version: u64) -> Self {
        let mut m = Mappings {
            rows: HashMap::new(),
            version,
        };
        for r in rows {
            m.insert(r);
        }
        m
    }

    pub fn insert(&mut self, row: MappingRow) {
        self.rows
            .entry(row.table)
            .or_default()
            .insert(row.key.clone(), row);
    }

    pub fn remove(&mut self, table: MappingTable, key: &str) -> Option<MappingRow> {
        self.rows.get_mut(&table)?.remove(key)
    }

    pub fn get(&self, table: MappingTable, key: &str) -> Option<&MappingRow> {
        let t = self.rows.get(&table)?;
        t.get(key).or_else(|| {
            if key.contains('@') {
                t.get(&key.to_ascii_lowercase())
            } else {
                None
            }
        })
    }

    /// The first key of `keys` found in `table`.
    pub fn find<'a>(
        &self,
        table: MappingTable,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> Option<&MappingRow> {
        keys.into_iter()
            .filter(|k| !k.is_empty())
            .find_map(|k| self.get(table, k))
    }

    /// Every row, sorted by table then key (stable output for exports).
    pub fn rows(&self) -> Vec<&MappingRow> {
        let mut all: Vec<&MappingRow> = self.rows.values().flat_map(|t| t.values()).collect();
        all.sort_by(|a, b| (a.table, &a.key).cmp(&(b.table, &b.key)));
        all
    }

    pub fn len(&self) -> usize {
        self.rows.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_keys_match_case_insensitively() {
        let m = Mappings::from_rows(
            [MappingRow::new(
                MappingTable::Employee,
                "Ann@Example.com",
                "E1",
            )],
            1,
        );
        assert_eq!(
            m.get(MappingTable::Employee, "ANN@example.COM")
                .unwrap()
                .target,
            "E1"
        );
        assert!(m.get(MappingTable::Vendor, "ann@example.com").is_none());
    }

    #[test]
    fn find_takes_the_first_key_present() {
        let m = Mappings::from_rows(
            [
                MappingRow::new(MappingTable::ServiceItem, "*", "DEFAULT"),
                MappingRow::new(MappingTable::ServiceItem, "design", "ITEM-D"),
            ],
            1,
        );
        let hit = m
            .find(MappingTable::ServiceItem, ["t-9", "design", "*"])
            .unwrap();
        assert_eq!(hit.target, "ITEM-D");
        let fallback = m.find(MappingTable::ServiceItem, ["t-9", "*"]).unwrap();
        assert_eq!(fallback.target, "DEFAULT");
    }

    #[test]
    fn table_names_parse() {
        for t in MappingTable::ALL {
            assert_eq!(t.as_str().parse::<MappingTable>().unwrap(), *t);
        }
        assert!("projects".parse::<MappingTable>().is_err());
    }
}
