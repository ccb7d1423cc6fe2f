//! The impact of a proposed mapping change, before it is saved: every
//! stored entry the change can touch (read by `crate::review` over the
//! mapped-key index, with whole worker-weeks) replayed through the pure
//! decision twice — with the current mappings and with the proposed ones —
//! counting the entries whose outcome would differ (other posting lines, or another state: postable, held,
//! exception…) whatever their work date, and listing those of a period.
//! The count over all stored entries is what decides whether a change needs
//! a second admin (`crate::review`); the period only limits the list. No
//! ledger call, no write, no clock: the same inputs always give the same
//! preview, so a preview saved with a change is an honest record of what
//! the approver was shown.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::ledger::{Party, PostingLine};
use crate::mapping::Mappings;
use crate::model::WorkerWeek;
use crate::pipeline::{self, Decision, EntryPlan};
use crate::rules::Rules;
use crate::state::{EntryState, Status};

/// One posting line as a bookkeeper reads it in a preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineView {
    pub tier: String,
    pub minutes: i64,
    pub account: String,
    /// `employee E-100` or `vendor V-200`.
    pub party: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_item: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payroll_item: Option<String>,
}

impl LineView {
    pub fn of(l: &PostingLine) -> Self {
        Self {
            tier: l.tier.clone(),
            minutes: l.minutes,
            account: l.account.clone(),
            party: match &l.party {
                Party::Employee { id } => format!("employee {id}"),
                Party::Vendor { id, .. } => format!("vendor {id}"),
            },
            customer: l.customer.clone(),
            service_item: l.service_item.clone(),
            class: l.class.clone(),
            department: l.department.clone(),
            payroll_item: l.payroll_item.clone(),
        }
    }
}

/// Where an entry would end up, with what it would post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Outcome {
    /// In the books with these lines (posted, updated, or unchanged).
    Postable {
        lines: Vec<LineView>,
    },
    /// Parked until a mapping exists.
    Held {
        code: String,
        message: String,
    },
    /// Finance must act.
    Exception {
        code: String,
        message: String,
    },
    AwaitingApproval {
        why: String,
    },
    /// Nothing in the books (ignored, or removed from them).
    NotPosted {
        why: String,
    },
}

impl Outcome {
    /// The state's name (`postable`, `held`, `exception`,
    /// `awaiting_approval`, `not_posted`).
    pub fn state(&self) -> &'static str {
        match self {
            Outcome::Postable { .. } => "postable",
            Outcome::Held { .. } => "held",
            Outcome::Exception { .. } => "exception",
            Outcome::AwaitingApproval { .. } => "awaiting_approval",
            Outcome::NotPosted { .. } => "not_posted",
        }
    }

    /// The outcome of `decision` for `state` (an unchanged decision keeps
    /// the lines the books hold).
    pub fn of(state: &EntryState, decision: Decision) -> Self {
        let lines = |l: &[PostingLine]| l.iter().map(LineView::of).collect();
        match decision {
            Decision::Post(l) | Decision::Update(l) => Outcome::Postable { lines: lines(&l) },
            Decision::Unchanged => Outcome::Postable {
                lines: lines(&state.posted_lines),
            },
            Decision::Void => Outcome::NotPosted {
                why: "removed from the books".into(),
            },
            Decision::Ignore(r) => Outcome::NotPosted {
                why: r.describe().into(),
            },
            Decision::AwaitApproval(why) => Outcome::AwaitingApproval { why },
            Decision::Hold(e) => Outcome::Held {
                code: e.code.as_str().into(),
                message: e.message,
            },
            Decision::Exception(e) => Outcome::Exception {
                code: e.code.as_str().into(),
                message: e.message,
            },
        }
    }

    fn lines(&self) -> &[LineView] {
        match self {
            Outcome::Postable { lines } => lines,
            _ => &[],
        }
    }
}

/// One entry whose outcome the change would alter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryImpact {
    pub key: String,
    pub work_date: NaiveDate,
    /// The worker as the tracker names them.
    pub worker: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub before: Outcome,
    pub after: Outcome,
    /// What differs, in words: `state`, `account`, `employee/vendor`,
    /// `customer`, `service item`, `class`, `department`, `payroll item`,
    /// `hours`.
    pub differs: Vec<String>,
}

/// The preview of one proposed change: its reach counted over the mapped-key
/// index, its effect replayed and listed over one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImpactPreview {
    /// The work dates whose changed entries are listed.
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// The mapping version the preview was computed against: a change
    /// approved later must still apply to this version.
    pub mapping_version: u64,
    /// Entries of the period replayed (those the change can touch, with
    /// their worker-weeks; every entry for a GL account, payroll item or
    /// `*` row).
    pub entries_checked: usize,
    /// Entries of the period whose outcome would differ (lines or state),
    /// by date.
    pub changed: Vec<EntryImpact>,
    /// Every entry replayed, whatever its work date (ignored ones aside):
    /// those of the period the change can touch with their whole
    /// worker-weeks, which may reach outside the period.
    #[serde(default)]
    pub entries_replayed: usize,
    /// The replayed entries whose outcome would differ (those of the
    /// period, and of the rest of their weeks).
    #[serde(default)]
    pub entries_affected: usize,
    /// Every stored entry the change can touch, whatever its work date and
    /// state: those indexed under the changed rows' keys (every stored
    /// entry for a GL account, payroll item or `*` row), counted without
    /// being read. Only they can post differently (a week's overtime split
    /// follows its worker's row alone), so this bounds how many would:
    /// what the review threshold counts. 0 in previews saved before it was
    /// counted ([`ImpactPreview::in_reach`] falls back to what they
    /// replayed).
    #[serde(default)]
    pub entries_in_reach: usize,
}

impl ImpactPreview {
    /// How many stored entries the change can touch, in every period:
    /// what the approval threshold counts (never fewer than would post
    /// differently).
    pub fn in_reach(&self) -> usize {
        self.entries_in_reach
            .max(self.entries_affected)
            .max(self.changed.len())
    }

    /// How many entries of the listed period would change.
    pub fn changed_count(&self) -> usize {
        self.changed.len()
    }

    /// How many of the listed ones would move between states (e.g. held →
    /// postable).
    pub fn moved_count(&self) -> usize {
        self.changed
            .iter()
            .filter(|c| c.before.state() != c.after.state())
            .count()
    }
}

/// The fields in which two outcomes differ.
pub fn differences(before: &Outcome, after: &Outcome) -> Vec<String> {
    let mut out = Vec::new();
    if before.state() != after.state() {
        out.push("state".to_string());
    }
    let (b, a) = (before.lines(), after.lines());
    type Field = fn(&LineView) -> Option<String>;
    let fields: [(&str, Field); 7] = [
        ("account", |l| Some(l.account.clone())),
        ("employee/vendor", |l| Some(l.party.clone())),
        ("customer", |l| l.customer.clone()),
        ("service item", |l| l.service_item.clone()),
        ("class", |l| l.class.clone()),
        ("department", |l| l.department.clone()),
        ("payroll item", |l| l.payroll_item.clone()),
    ];
    if !b.is_empty() && !a.is_empty() {
        for (name, f) in fields {
            let vb: BTreeSet<Option<String>> = b.iter().map(f).collect();
            let va: BTreeSet<Option<String>> = a.iter().map(f).collect();
            if vb != va {
                out.push(name.to_string());
            }
        }
    }
    let hours = |ls: &[LineView]| {
        let mut m: BTreeMap<String, i64> = BTreeMap::new();
        for l in ls {
            *m.entry(l.tier.clone()).or_default() += l.minutes;
        }
        m
    };
    if hours(b) != hours(a) {
        out.push("hours".to_string());
    }
    if out.is_empty() && before != after {
        // Same fields, other words (e.g. another exception message).
        out.push("details".to_string());
    }
    out
}

/// Replay every entry of `entries` against `current` and `proposed`:
/// count each one whose outcome would differ, whatever its work date, and
/// list those whose work date is in `from..=to`. Each worker-week is
/// planned whole, as the engine does, since overtime depends on the
/// worker's mapping. Ignored entries (running timers, discards) are
/// planned but neither counted nor listed: the engine never re-decides
/// them.
pub fn preview(
    entries: &[EntryState],
    from: NaiveDate,
    to: NaiveDate,
    current: &Mappings,
    proposed: &Mappings,
    rules: &Rules,
) -> ImpactPreview {
    let mut weeks: HashMap<WorkerWeek, Vec<EntryState>> = HashMap::new();
    for st in entries {
        weeks
            .entry(WorkerWeek::of(&st.entry))
            .or_default()
            .push(st.clone());
    }
    let mut replay = Replay::new(Some((from, to)), current, proposed, rules);
    for week in weeks.values() {
        replay.week(week);
    }
    replay.finish()
}

/// A preview built one worker-week at a time, so a caller can read the
/// weeks a change touches (or every week, page by page) without holding
/// every entry: [`preview`] is this over all of them.
pub struct Replay<'a> {
    period: Option<(NaiveDate, NaiveDate)>,
    current: &'a Mappings,
    proposed: &'a Mappings,
    rules: &'a Rules,
    dates: Option<(NaiveDate, NaiveDate)>,
    checked: usize,
    replayed: usize,
    affected: usize,
    changed: Vec<EntryImpact>,
}

impl<'a> Replay<'a> {
    /// `period`: the work dates to list (None: every date, the preview's
    /// `from`..`to` then spanning the entries replayed).
    pub fn new(
        period: Option<(NaiveDate, NaiveDate)>,
        current: &'a Mappings,
        proposed: &'a Mappings,
        rules: &'a Rules,
    ) -> Self {
        Self {
            period,
            current,
            proposed,
            rules,
            dates: None,
            checked: 0,
            replayed: 0,
            affected: 0,
            changed: Vec::new(),
        }
    }

    /// Replay one whole worker-week (every entry of it, as
    /// `EntryStore::week` returns them).
    pub fn week(&mut self, week: &[EntryState]) {
        let refs: Vec<_> = week.iter().map(|st| &st.entry).collect();
        let plan_now = pipeline::plan_week(&refs, self.current, self.rules);
        let plan_new = pipeline::plan_week(&refs, self.proposed, self.rules);
        for st in week.iter().filter(|st| st.status() != Status::Ignored) {
            self.replayed += 1;
            let d = st.entry.work_date;
            self.dates = Some(match self.dates {
                None => (d, d),
                Some((lo, hi)) => (lo.min(d), hi.max(d)),
            });
            let listed = self.period.is_none_or(|(from, to)| d >= from && d <= to);
            if listed {
                self.checked += 1;
            }
            let key = &st.entry.key;
            // The engine's own decision (holding override included).
            let decide = |plan: Option<&EntryPlan>, m: &Mappings| {
                pipeline::decide_current(st, plan, m, self.rules, &mut pipeline::NoTrace)
            };
            let before = Outcome::of(st, decide(plan_now.get(key), self.current));
            let after = Outcome::of(st, decide(plan_new.get(key), self.proposed));
            if before == after {
                continue;
            }
            self.affected += 1;
            if !listed {
                continue;
            }
            self.changed.push(EntryImpact {
                key: key.to_string(),
                work_date: d,
                worker: st
                    .entry
                    .worker
                    .name
                    .clone()
                    .or_else(|| st.entry.worker.email.clone())
                    .unwrap_or_else(|| st.entry.worker.tracker_user_id.clone()),
                project: st.entry.project.as_ref().map(|p| p.label().to_string()),
                differs: differences(&before, &after),
                before,
                after,
            });
        }
    }

    pub fn finish(mut self) -> ImpactPreview {
        self.changed
            .sort_by(|a, b| (a.work_date, &a.key).cmp(&(b.work_date, &b.key)));
        let today = chrono::Utc::now().date_naive();
        let (from, to) = self.period.or(self.dates).unwrap_or((today, today));
        ImpactPreview {
            from,
            to,
            mapping_version: self.current.version,
            entries_checked: self.checked,
            changed: self.changed,
            entries_replayed: self.replayed,
            entries_affected: self.affected,
            entries_in_reach: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{MappingRow, MappingTable};
    use crate::model::*;
    use chrono::{DateTime, Utc};

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap_or_default()
    }

    fn rules() -> Rules {
        let mut r = crate::fixtures::rules();
        r.approval.required = false;
        r
    }

    fn mappings() -> Mappings {
        let rows = crate::mapping::csv_io::read(crate::fixtures::MAPPINGS.as_bytes()).expect("csv");
        Mappings::from_rows(rows, 7)
    }

    /// `user` works `hours` on `date` on `project` (not billable).
    fn state(id: &str, user: &str, date: &str, hours: i64, project: &str) -> EntryState {
        let entry = NormalisedEntry {
            key: EntryKey::new(Source::Csv, "ws", id),
            version: Version {
                updated_at: at("2026-03-09T00:00:00Z"),
                content_hash: String::new(),
            },
            worker: Worker {
                tracker_user_id: user.into(),
                email: None,
                name: Some(format!("Worker {user}")),
                kind: None,
                form_1099: None,
            },
            time_zone: chrono_tz::UTC,
            work_date: date.parse().unwrap_or_default(),
            start: None,
            end: None,
            duration_secs: hours * 3600,
            project: Some(Ref::new(project, None)),
            client: None,
            task: None,
            tags: vec![],
            billable: false,
            rate: None,
            notes: String::new(),
            approval: ApprovalStatus::Approved,
            attachments: vec![],
            origin: Origin::Web,
            deleted: false,
            already_rounded: false,
        };
        let mut s = EntryState::new(entry.seal(), at("2026-03-09T00:00:00Z"));
        s.set_status(Status::Posted, s.updated_at);
        s
    }

    fn run(entries: &[EntryState], proposed: &Mappings) -> ImpactPreview {
        let r = rules();
        preview(
            entries,
            "2026-03-01".parse().unwrap_or_default(),
            "2026-03-31".parse().unwrap_or_default(),
            &mappings(),
            proposed,
            &r,
        )
    }

    #[test]
    fn a_changed_customer_lists_only_the_entries_of_that_project() {
        let entries = vec![
            state("1", "u-ann", "2026-03-03", 2, "p-acme-web"),
            state("2", "u-bob", "2026-03-04", 3, "p-acme-web"),
            state("3", "u-ann", "2026-03-05", 1, "p-globex-erp"),
            // Outside the period: not replayed.
            state("4", "u-ann", "2026-04-02", 1, "p-acme-web"),
        ];
        let mut proposed = mappings();
        proposed.insert(MappingRow::new(
            MappingTable::Project,
            "p-acme-web",
            "C-NEW",
        ));
        let p = run(&entries, &proposed);
        assert_eq!(p.entries_checked, 3);
        assert_eq!(p.mapping_version, 7);
        let keys: Vec<&str> = p.changed.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["csv:ws:1", "csv:ws:2"]);
        // The April entry is not listed, but it is counted: the count is
        // over every entry replayed, the period only limits the list.
        assert_eq!((p.entries_replayed, p.entries_affected), (4, 3));
        assert_eq!((p.in_reach(), p.changed_count()), (3, 2));
        let c = &p.changed[0];
        assert_eq!(c.differs, ["customer"]);
        assert_eq!(c.before.lines()[0].customer.as_deref(), Some("C-ACME"));
        assert_eq!(c.after.lines()[0].customer.as_deref(), Some("C-NEW"));
        // Class stays: it is mapped by project key, unchanged here.
        assert_eq!(c.after.lines()[0].class.as_deref(), Some("CL-PRODUCT"));
        assert_eq!(p.moved_count(), 0);
    }

    #[test]
    fn a_removed_row_moves_entries_to_held_and_an_added_one_back() {
        let entries = vec![state("1", "u-ann", "2026-03-03", 2, "p-acme-web")];
        let mut proposed = mappings();
        proposed.remove(MappingTable::Project, "p-acme-web");
        let p = run(&entries, &proposed);
        assert_eq!(p.changed_count(), 1);
        assert_eq!(p.moved_count(), 1);
        let c = &p.changed[0];
        assert_eq!((c.before.state(), c.after.state()), ("postable", "held"));
        assert_eq!(c.differs, ["state", "hours"]);
        assert!(matches!(&c.after, Outcome::Held { code, .. } if code == "UNMAPPED_PROJECT"));
        // An unmapped project in the books today, mapped by the proposal.
        let orphan = vec![state("9", "u-ann", "2026-03-03", 2, "p-new")];
        let mut proposed = mappings();
        proposed.insert(MappingRow::new(MappingTable::Project, "p-new", "C-ACME"));
        let p = run(&orphan, &proposed);
        assert_eq!(p.changed[0].before.state(), "held");
        assert_eq!(p.changed[0].after.state(), "postable");
    }

    #[test]
    fn overtime_follows_the_worker_mapping_of_the_whole_week() {
        // u-hal is under us-flsa (40 h a week): 5 × 9 h gives 5 h overtime
        // on the last day. Remapping him as a contractor removes the split.
        let entries: Vec<EntryState> = (2..=6)
            .map(|d| {
                state(
                    &format!("h{d}"),
                    "u-hal",
                    &format!("2026-03-0{d}"),
                    9,
                    "p-acme-web",
                )
            })
            .collect();
        let mut proposed = mappings();
        proposed.remove(MappingTable::Employee, "u-hal");
        proposed.insert(MappingRow::new(MappingTable::Vendor, "u-hal", "V-300"));
        let p = run(&entries, &proposed);
        assert_eq!(p.changed_count(), 5);
        let last = p.changed.last().expect("the Friday entry");
        assert!(last.differs.contains(&"employee/vendor".to_string()));
        assert!(last.differs.contains(&"hours".to_string()), "{last:?}");
        assert!(last.before.lines().iter().any(|l| l.tier == "overtime"));
        assert!(last.after.lines().iter().all(|l| l.tier == "regular"));
    }

    #[test]
    fn held_and_exception_entries_outside_the_period_are_counted() {
        // Old held entries (January) and one after the period: nothing is
        // listed for March, yet all three count toward review.
        let mut held = state("1", "u-ann", "2026-01-05", 2, "p-new");
        held.set_status(Status::Held, held.updated_at);
        let mut exception = state("2", "u-bob", "2026-01-06", 1, "p-new");
        exception.set_status(Status::Exception, exception.updated_at);
        let later = state("3", "u-ann", "2026-06-01", 1, "p-new");
        let mut proposed = mappings();
        proposed.insert(MappingRow::new(MappingTable::Project, "p-new", "C-ACME"));
        let p = run(&[held, exception, later], &proposed);
        assert_eq!((p.entries_checked, p.changed_count()), (0, 0));
        assert_eq!(p.in_reach(), 3, "{p:?}");
        // An empty period lists nothing and counts the same.
        let r = rules();
        let d = |s: &str| s.parse().unwrap_or_default();
        let empty = preview(
            &[state("4", "u-ann", "2025-12-01", 1, "p-new")],
            d("2030-01-01"),
            d("2030-01-01"),
            &mappings(),
            &proposed,
            &r,
        );
        assert_eq!((empty.entries_checked, empty.in_reach()), (0, 1));
    }

    #[test]
    fn no_change_means_an_empty_preview() {
        let entries = vec![state("1", "u-ann", "2026-03-03", 2, "p-acme-web")];
        let p = run(&entries, &mappings());
        assert_eq!(p.entries_checked, 1);
        assert!(p.changed.is_empty());
        assert_eq!(p.in_reach(), 0);
        // Discarded (ignored) entries are not replayed.
        let mut discarded = entries[0].clone();
        discarded.set_status(Status::Ignored, discarded.updated_at);
        let mut proposed = mappings();
        proposed.remove(MappingTable::Project, "p-acme-web");
        let p = run(&[discarded], &proposed);
        assert_eq!((p.entries_checked, p.in_reach()), (0, 0));
    }

    #[test]
    fn differences_name_each_field() {
        let line = LineView {
            tier: "regular".into(),
            minutes: 60,
            account: "5000".into(),
            party: "employee E1".into(),
            customer: Some("C1".into()),
            service_item: Some("S1".into()),
            class: None,
            department: None,
            payroll_item: Some("PI".into()),
        };
        let b = Outcome::Postable {
            lines: vec![line.clone()],
        };
        let a = Outcome::Postable {
            lines: vec![LineView {
                account: "6000".into(),
                class: Some("CL".into()),
                minutes: 90,
                ..line
            }],
        };
        assert_eq!(differences(&b, &a), ["account", "class", "hours"]);
        assert!(differences(&b, &b).is_empty());
        let held = Outcome::Held {
            code: "X".into(),
            message: "a".into(),
        };
        let held2 = Outcome::Held {
            code: "X".into(),
            message: "b".into(),
        };
        assert_eq!(differences(&held, &held2), ["details"]);
    }
}
