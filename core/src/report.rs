//! The outcome report: what was posted (grouped by account, employee,
//! project and customer), what is held, waiting or refused and why, and a
//! reconciliation of tracker hours against what the ledger holds. Built from
//! the entry states and the ledger's own read-back, so a disagreement
//! between timepost's memory and the books shows up as a difference.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::exceptions::Exception;
use crate::ledger::{Party, PostingLine};
use crate::money::{sum_i64, Tally};
use crate::state::{EntryState, Status};

use crate::figures::{add_amount, add_line, exact_hours, hours, project_label, worker_label};
pub use crate::figures::{Counts, Group};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ledger: String,
    pub posted: Posted,
    pub held: Vec<Item>,
    pub awaiting_approval: Vec<Item>,
    pub exceptions: Vec<Item>,
    /// Posted entries routed to the holding (suspense) account: in the
    /// books, but still to be reclassified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_holding: Vec<Item>,
    pub voided: Vec<Item>,
    pub ignored: Vec<Item>,
    pub duplicates_ignored: Vec<String>,
    pub stale_versions_ignored: Vec<String>,
    pub reconciliation: Reconciliation,
    pub kpis: BTreeMap<String, Decimal>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Posted {
    pub entries: usize,
    pub lines: usize,
    pub hours: Decimal,
    pub by_account: Vec<Group>,
    pub by_employee: Vec<Group>,
    pub by_project: Vec<Group>,
    pub by_customer: Vec<Group>,
    pub by_tier: Vec<Group>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub entry: String,
    pub worker: String,
    pub date: String,
    pub hours: Decimal,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Exception>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct RecRow {
    pub name: String,
    /// Worked hours in the tracker (current versions, exact).
    pub tracker_hours: Decimal,
    /// Hours the ledger holds.
    pub ledger_hours: Decimal,
    /// Posted minus worked, for posted entries (the rounding rule's effect).
    pub rounding_hours: Decimal,
    pub held_hours: Decimal,
    pub awaiting_hours: Decimal,
    pub exception_hours: Decimal,
    /// Edited after posting, new version not in the books yet.
    pub pending_edit_hours: Decimal,
    /// tracker − (ledger − rounding) − held − awaiting − exception − pending.
    /// Zero when the books and the tracker agree.
    pub difference: Decimal,
}

#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct CurrencyRow {
    /// The tracker's currency.
    pub currency: String,
    pub billable_hours: Decimal,
    /// Billable hours × tracker rate, in the tracker's currency.
    pub tracker_amount: Decimal,
    /// What the ledger holds, per ledger currency.
    pub ledger_amount: BTreeMap<String, Decimal>,
    /// What timepost recorded as posted, per ledger currency.
    pub expected_amount: BTreeMap<String, Decimal>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Reconciliation {
    pub by_employee: Vec<RecRow>,
    pub by_project: Vec<RecRow>,
    pub billable_by_currency: Vec<CurrencyRow>,
    pub totals: RecRow,
    /// True when every difference is zero and the ledger's amounts equal
    /// what timepost recorded.
    pub agrees: bool,
}

/// One entry as the report lists it.
pub fn item_of(s: &EntryState) -> Item {
    item(s)
}

fn item(s: &EntryState) -> Item {
    Item {
        entry: s.entry.key.to_string(),
        worker: worker_label(&s.entry),
        date: s.entry.work_date.to_string(),
        hours: exact_hours(&s.entry),
        project: s.entry.project.as_ref().map(|p| p.label().to_string()),
        reason: s.reason.clone(),
        note: s.note.clone(),
    }
}

/// Inputs the report is built from.
pub struct ReportInput<'a> {
    pub ledger: &'a str,
    pub states: &'a [EntryState],
    /// The ledger's read-back: (entry key, line). `None` when the ledger
    /// cannot be read back; the state's posted lines stand in.
    pub ledger_records: Option<&'a [(String, PostingLine)]>,
    pub duplicates: Vec<String>,
    pub stale: Vec<String>,
    pub counters: BTreeMap<&'static str, u64>,
    pub dead_letters: usize,
}

pub fn build(input: ReportInput<'_>) -> Report {
    let mut posted = Posted::default();
    let (mut by_account, mut by_employee, mut by_project, mut by_customer, mut by_tier) = (
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
    );
    let mut report = Report {
        ledger: input.ledger.to_string(),
        posted: Posted::default(),
        held: vec![],
        awaiting_approval: vec![],
        exceptions: vec![],
        in_holding: vec![],
        voided: vec![],
        ignored: vec![],
        duplicates_ignored: input.duplicates,
        stale_versions_ignored: input.stale,
        reconciliation: Reconciliation::default(),
        kpis: BTreeMap::new(),
    };
    let mut ledger_by_entry: HashMap<&str, Vec<&PostingLine>> = HashMap::new();
    if let Some(recs) = input.ledger_records {
        for (k, l) in recs {
            ledger_by_entry.entry(k.as_str()).or_default().push(l);
        }
    }
    // Every sum below saturates instead of panicking; `t` counts overflows.
    let mut t = Tally::new();
    let mut rec_emp: BTreeMap<String, RecRow> = BTreeMap::new();
    let mut rec_proj: BTreeMap<String, RecRow> = BTreeMap::new();
    let mut cur: BTreeMap<String, CurrencyRow> = BTreeMap::new();
    for s in input.states {
        let e = &s.entry;
        match s.status() {
            Status::Posted => {
                if let Some(h) = &s.holding {
                    let mut it = item(s);
                    it.note = Some(format!("routed to the holding account by {}", h.by));
                    it.reason = h.reason.clone();
                    report.in_holding.push(it);
                }
                posted.entries += 1;
                for l in &s.posted_lines {
                    posted.lines += 1;
                    t.add_to(&mut posted.hours, hours(l.minutes));
                    add_line(&mut by_account, &l.account, l, &mut t);
                    let who = match &l.party {
                        Party::Employee { id } => format!("{} (employee {id})", worker_label(e)),
                        Party::Vendor { id, .. } => format!("{} (vendor {id})", worker_label(e)),
                    };
                    add_line(&mut by_employee, &who, l, &mut t);
                    add_line(&mut by_project, &project_label(e), l, &mut t);
                    add_line(
                        &mut by_customer,
                        l.customer.as_deref().unwrap_or("(no customer)"),
                        l,
                        &mut t,
                    );
                    add_line(&mut by_tier, &l.tier, l, &mut t);
                }
            }
            Status::Held => report.held.push(item(s)),
            Status::AwaitingApproval => report.awaiting_approval.push(item(s)),
            Status::Exception => report.exceptions.push(item(s)),
            Status::Voided => report.voided.push(item(s)),
            Status::Ignored => report.ignored.push(item(s)),
        }

        // Reconciliation.
        let key = e.key.to_string();
        let tracker = exact_hours(e);
        let state_posted = sum_i64(s.posted_lines.iter().map(|l| l.minutes));
        let in_books = !s.records.is_empty();
        let ledger_lines: Vec<&PostingLine> = match input.ledger_records {
            Some(_) => ledger_by_entry
                .get(key.as_str())
                .cloned()
                .unwrap_or_default(),
            None if in_books => s.posted_lines.iter().collect(),
            None => Vec::new(),
        };
        let ledger_min = sum_i64(ledger_lines.iter().map(|l| l.minutes));
        let mut row = RecRow {
            tracker_hours: tracker,
            ledger_hours: hours(ledger_min),
            ..RecRow::default()
        };
        match (s.status(), in_books) {
            (Status::Posted, _) => row.rounding_hours = t.sub(hours(state_posted), tracker),
            (_, true) => row.pending_edit_hours = t.sub(tracker, hours(state_posted)),
            (Status::Held, false) => row.held_hours = tracker,
            (Status::AwaitingApproval, false) => row.awaiting_hours = tracker,
            (Status::Exception, false) => row.exception_hours = tracker,
            _ => {}
        }
        row.difference = {
            let booked = t.sub(row.ledger_hours, row.rounding_hours);
            let mut d = t.sub(row.tracker_hours, booked);
            for h in [
                row.held_hours,
                row.awaiting_hours,
                row.exception_hours,
                row.pending_edit_hours,
            ] {
                d = t.sub(d, h);
            }
            d
        };
        for (map, name) in [
            (&mut rec_emp, worker_label(e)),
            (&mut rec_proj, project_label(e)),
        ] {
            let r = map.entry(name.clone()).or_insert_with(|| RecRow {
                name,
                ..RecRow::default()
            });
            add_row(r, &row, &mut t);
        }

        // Billable amounts by the tracker's currency.
        if let (Some(rate), true) = (&e.rate, e.billable && in_books) {
            let c = cur
                .entry(rate.currency.to_string())
                .or_insert_with(|| CurrencyRow {
                    currency: rate.currency.to_string(),
                    ..CurrencyRow::default()
                });
            for l in s.posted_lines.iter().filter(|l| l.billable) {
                t.add_to(&mut c.billable_hours, hours(l.minutes));
                let amount = t.mul(hours(l.minutes), rate.amount).round_dp(2);
                t.add_to(&mut c.tracker_amount, amount);
                add_amount(&mut c.expected_amount, l, &mut t);
            }
            for l in &ledger_lines {
                add_amount(&mut c.ledger_amount, l, &mut t);
            }
        }
    }
    // Ledger records for entries timepost does not know are a difference too.
    let known: std::collections::HashSet<String> = input
        .states
        .iter()
        .map(|s| s.entry.key.to_string())
        .collect();
    let mut orphans = RecRow {
        name: "(in the ledger, unknown to timepost)".into(),
        ..RecRow::default()
    };
    for (k, lines) in &ledger_by_entry {
        if !known.contains(*k) {
            let h = t.sum(lines.iter().map(|l| hours(l.minutes)));
            t.add_to(&mut orphans.ledger_hours, h);
            orphans.difference = t.sub(orphans.difference, h);
        }
    }
    if orphans.ledger_hours != Decimal::ZERO {
        rec_emp.insert(orphans.name.clone(), orphans.clone());
        rec_proj.insert(orphans.name.clone(), orphans);
    }

    let mut totals = RecRow {
        name: "total".into(),
        ..RecRow::default()
    };
    for r in rec_emp.values() {
        add_row(&mut totals, r, &mut t);
    }
    let amounts_agree = cur.values().all(|c| c.ledger_amount == c.expected_amount);
    // A figure that saturated is not a figure: the books cannot be said
    // to agree.
    let agrees = amounts_agree
        && t.overflows() == 0
        && rec_emp.values().all(|r| r.difference.is_zero())
        && rec_proj.values().all(|r| r.difference.is_zero());
    report.reconciliation = Reconciliation {
        by_employee: rec_emp.into_values().collect(),
        by_project: rec_proj.into_values().collect(),
        billable_by_currency: cur.into_values().collect(),
        totals,
        agrees,
    };
    posted.by_account = by_account.into_values().collect();
    posted.by_employee = by_employee.into_values().collect();
    posted.by_project = by_project.into_values().collect();
    posted.by_customer = by_customer.into_values().collect();
    posted.by_tier = by_tier.into_values().collect();
    report.posted = posted;
    report.kpis = kpis(&report, input.states, &input.counters, input.dead_letters);
    if t.overflows() > 0 {
        tracing::warn!(
            overflows = t.overflows(),
            "report: some amounts are too large to compute; shown at the Decimal bound"
        );
        report
            .kpis
            .insert("amount_overflows".into(), Decimal::from(t.overflows()));
    }
    report
}

/// `r += row`, column by column, saturating.
fn add_row(r: &mut RecRow, row: &RecRow, t: &mut Tally) {
    t.add_to(&mut r.tracker_hours, row.tracker_hours);
    t.add_to(&mut r.ledger_hours, row.ledger_hours);
    t.add_to(&mut r.rounding_hours, row.rounding_hours);
    t.add_to(&mut r.held_hours, row.held_hours);
    t.add_to(&mut r.awaiting_hours, row.awaiting_hours);
    t.add_to(&mut r.exception_hours, row.exception_hours);
    t.add_to(&mut r.pending_edit_hours, row.pending_edit_hours);
    t.add_to(&mut r.difference, row.difference);
}

fn kpis(
    r: &Report,
    states: &[EntryState],
    counters: &BTreeMap<&'static str, u64>,
    dead_letters: usize,
) -> BTreeMap<String, Decimal> {
    let unmapped = states
        .iter()
        .filter(|s| {
            s.reason
                .as_ref()
                .is_some_and(|e| e.missing_mapping.is_some())
        })
        .count();
    kpis_of(
        &Counts {
            known: states.len(),
            posted: r.posted.entries,
            lines: r.posted.lines,
            held: r.held.len(),
            awaiting: r.awaiting_approval.len(),
            exceptions: r.exceptions.len(),
            unmapped,
            duplicates: r.duplicates_ignored.len(),
        },
        counters,
        dead_letters,
    )
}

/// The report's KPIs from its counts, the engine's counters and the
/// dead-letter count.
pub fn kpis_of(
    c: &Counts,
    counters: &BTreeMap<&'static str, u64>,
    dead_letters: usize,
) -> BTreeMap<String, Decimal> {
    let mut k: BTreeMap<String, Decimal> = counters
        .iter()
        .map(|(n, v)| (n.to_string(), Decimal::from(*v)))
        .collect();
    let decided = c.posted + c.held + c.exceptions;
    let ratio = |n: usize, d: usize| {
        if d == 0 {
            Decimal::ZERO
        } else {
            (Decimal::from(n) / Decimal::from(d)).round_dp(4)
        }
    };
    k.insert("entries_known".into(), Decimal::from(c.known));
    k.insert("entries_posted".into(), Decimal::from(c.posted));
    k.insert("posting_lines".into(), Decimal::from(c.lines));
    k.insert("entries_held".into(), Decimal::from(c.held));
    k.insert(
        "entries_awaiting_approval".into(),
        Decimal::from(c.awaiting),
    );
    k.insert("entries_in_exception".into(), Decimal::from(c.exceptions));
    k.insert("dead_letters".into(), Decimal::from(dead_letters));
    k.insert(
        "mapped_share".into(),
        ratio(decided - c.unmapped.min(decided), decided),
    );
    k.insert("unmapped_rate".into(), ratio(c.unmapped, decided));
    let received = counters.get("messages_received").copied().unwrap_or(0) as usize;
    k.insert("duplicate_frequency".into(), ratio(c.duplicates, received));
    k
}

/// The report as text for a terminal.
pub fn render_text(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "timepost — outcome on the {} ledger\n", r.ledger);
    let _ = writeln!(
        o,
        "POSTED: {} entries as {} lines, {} h",
        r.posted.entries,
        r.posted.lines,
        r.posted.hours.normalize()
    );
    for (title, groups) in [
        ("by ledger account", &r.posted.by_account),
        ("by employee / vendor", &r.posted.by_employee),
        ("by project", &r.posted.by_project),
        ("by customer / job", &r.posted.by_customer),
        ("by pay tier", &r.posted.by_tier),
    ] {
        let _ = writeln!(o, "  {title}:");
        for g in groups.iter() {
            let _ = writeln!(o, "{}", g.text_line(3, 9));
        }
    }
    let list = |o: &mut String, title: &str, items: &[Item]| {
        let _ = writeln!(o, "\n{title}: {}", items.len());
        for i in items {
            let _ = writeln!(
                o,
                "  {} · {} · {} · {} h",
                i.date,
                i.worker,
                i.project.as_deref().unwrap_or("(no project)"),
                i.hours.round_dp(2)
            );
            if let Some(e) = &i.reason {
                let _ = writeln!(o, "    {}: {}", e.code, e.message);
                let _ = writeln!(o, "    fix: {}", e.fix_hint);
                if let Some(v) = &e.vendor_message {
                    let _ = writeln!(o, "    ledger said: {v}");
                }
            }
            if let Some(n) = &i.note {
                let _ = writeln!(o, "    {n}");
            }
        }
    };
    list(&mut o, "HELD (post by themselves once mapped)", &r.held);
    list(&mut o, "WAITING FOR APPROVAL", &r.awaiting_approval);
    list(
        &mut o,
        "EXCEPTIONS (finance to fix and redrive)",
        &r.exceptions,
    );
    list(
        &mut o,
        "DELETED IN THE TRACKER (nothing of them in the books)",
        &r.voided,
    );
    list(&mut o, "NOT POSTABLE", &r.ignored);
    let _ = writeln!(
        o,
        "\nDUPLICATES IGNORED: {}   STALE VERSIONS IGNORED: {}",
        r.duplicates_ignored.len(),
        r.stale_versions_ignored.len()
    );
    let rec = &r.reconciliation;
    let _ = writeln!(
        o,
        "\nRECONCILIATION (hours): {}",
        if rec.agrees {
            "tracker and ledger agree"
        } else {
            "DIFFERENCES FOUND"
        }
    );
    for (title, rows) in [
        ("per employee", &rec.by_employee),
        ("per project", &rec.by_project),
    ] {
        let _ = writeln!(
            o,
            "  {title:<36} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6}",
            "tracker", "ledger", "rounding", "held", "waiting", "except.", "edits", "diff"
        );
        for r in rows.iter().chain(std::iter::once(&rec.totals)) {
            let _ = writeln!(
                o,
                "  {:<36} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6}",
                r.name,
                r.tracker_hours.round_dp(2),
                r.ledger_hours.round_dp(2),
                r.rounding_hours.round_dp(2),
                r.held_hours.round_dp(2),
                r.awaiting_hours.round_dp(2),
                r.exception_hours.round_dp(2),
                r.pending_edit_hours.round_dp(2),
                r.difference.round_dp(2)
            );
        }
    }
    let _ = writeln!(o, "  billable by tracker currency:");
    for c in &rec.billable_by_currency {
        let fmt = |m: &BTreeMap<String, Decimal>| {
            m.iter()
                .map(|(k, v)| format!("{} {k}", v.round_dp(2)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            o,
            "    {}: {} h, tracker {} {}, ledger {} (expected {})",
            c.currency,
            c.billable_hours.round_dp(2),
            c.tracker_amount.round_dp(2),
            c.currency,
            fmt(&c.ledger_amount),
            fmt(&c.expected_amount)
        );
    }
    let _ = writeln!(o, "\nKPIs:");
    for (k, v) in &r.kpis {
        let _ = writeln!(o, "  {k:<28} {}", v.normalize());
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::RecordRef;
    use crate::model::*;
    use crate::pipeline::{self, Decision, NoTrace};
    use crate::state::EntryState;
    use chrono::{NaiveDate, Utc};
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    fn entry(id: usize, secs: i64, billable: bool, rate: Option<Money>) -> NormalisedEntry {
        NormalisedEntry {
            key: EntryKey::new(Source::Csv, "w", id.to_string()),
            version: Version {
                updated_at: Utc::now(),
                content_hash: format!("h{id}"),
            },
            worker: Worker {
                tracker_user_id: "u-ann".into(),
                email: None,
                name: Some("Ann".into()),
                kind: None,
                form_1099: None,
            },
            time_zone: chrono_tz::UTC,
            work_date: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default(),
            start: None,
            end: None,
            duration_secs: secs,
            project: Some(Ref::new("p-acme-web", Some("Acme".into()))),
            client: None,
            task: None,
            tags: vec![],
            billable,
            rate,
            notes: String::new(),
            approval: ApprovalStatus::Approved,
            attachments: vec![],
            origin: Origin::Import,
            deleted: false,
            already_rounded: false,
        }
    }

    fn line(minutes: i64, billable: bool, rate: Option<Money>) -> PostingLine {
        PostingLine {
            tier: "regular".into(),
            party: Party::Employee { id: "E-100".into() },
            txn_date: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default(),
            minutes,
            customer: Some("C-ACME".into()),
            service_item: None,
            class: None,
            department: None,
            payroll_item: None,
            account: "4000".into(),
            billable,
            hourly_rate: rate,
            original_rate: None,
            fx_rate: None,
            fx_date: None,
            description: String::new(),
        }
    }

    fn usd(amount: Decimal) -> Money {
        Money::new(
            amount,
            "USD".parse().unwrap_or_else(|e: String| panic!("{e}")),
        )
    }

    fn posted(id: usize, e: NormalisedEntry, lines: Vec<PostingLine>) -> EntryState {
        let mut s = EntryState::new(e, Utc::now());
        s.set_status(Status::Posted, s.updated_at);
        s.records = vec![RecordRef {
            id: format!("r{id}"),
            sync_token: "0".into(),
            tier: "regular".into(),
        }];
        s.posted_lines = lines;
        s
    }

    fn input<'a>(
        states: &'a [EntryState],
        ledger: Option<&'a [(String, PostingLine)]>,
    ) -> ReportInput<'a> {
        ReportInput {
            ledger: "sandbox",
            states,
            ledger_records: ledger,
            duplicates: vec![],
            stale: vec![],
            counters: BTreeMap::new(),
            dead_letters: 0,
        }
    }

    #[test]
    fn the_largest_rate_already_in_the_books_does_not_take_the_report_down() {
        let huge = usd(Decimal::MAX);
        let states = vec![
            posted(
                1,
                entry(1, 36_000, true, Some(huge.clone())),
                vec![
                    line(600, true, Some(huge.clone())),
                    line(600, true, Some(huge.clone())),
                ],
            ),
            posted(
                2,
                entry(2, 3_600, true, Some(usd(Decimal::from(150)))),
                vec![line(60, true, Some(usd(Decimal::from(150))))],
            ),
        ];
        let ledger: Vec<(String, PostingLine)> = vec![
            ("csv:w:1".into(), line(i64::MAX, true, Some(huge.clone()))),
            ("csv:w:9".into(), line(i64::MAX, true, Some(huge))),
        ];
        let r = build(input(&states, Some(&ledger)));
        assert!(r.kpis["amount_overflows"] > Decimal::ZERO);
        assert!(!r.reconciliation.agrees);
        assert_eq!(r.posted.entries, 2);
        let _ = render_text(&r);
        let _ = serde_json::to_string(&r).unwrap_or_default();
        let (by_project, _) = crate::kpis::hours(&states, &crate::kpis::Filter::default());
        assert_eq!(by_project[0].billable["USD"], Decimal::MAX);
        // An ordinary report has no overflow KPI.
        let r = build(input(&states[1..], None));
        assert!(!r.kpis.contains_key("amount_overflows"));
        assert!(r.reconciliation.agrees, "{:?}", r.reconciliation);
    }

    fn decimal() -> impl Strategy<Value = Decimal> {
        prop_oneof![
            Just(Decimal::MAX),
            Just(Decimal::MIN),
            Just(Decimal::ZERO),
            (0i64..1_000_000, 0u32..4).prop_map(|(n, s)| Decimal::new(n, s)),
            (
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                any::<bool>(),
                0u32..=28
            )
                .prop_map(|(lo, mid, hi, neg, scale)| Decimal::from_parts(lo, mid, hi, neg, scale)),
        ]
    }

    fn minutes() -> impl Strategy<Value = i64> {
        prop_oneof![
            Just(i64::MAX),
            Just(i64::MIN),
            -100_000i64..100_000,
            any::<i64>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// No rate and duration, whether decided now or already stored
        /// (posted before bounds existed) or read back from the ledger,
        /// makes the report, the dashboard figures or their text panic.
        #[test]
        fn no_rate_or_duration_makes_the_report_panic(
            cases in proptest::collection::vec((decimal(), minutes(), minutes(), any::<bool>()), 1..6),
        ) {
            let mut rules = crate::rules::minimal(
                "USD".parse().unwrap_or_else(|e: String| panic!("{e}")),
            );
            rules.approval.required = false;
            let mappings = crate::mapping::Mappings::from_rows(
                crate::mapping::csv_io::read(crate::fixtures::MAPPINGS.as_bytes())
                    .unwrap_or_default(),
                1,
            );
            let mut states = Vec::new();
            let mut ledger = Vec::new();
            for (i, (amount, mins, secs, billable)) in cases.into_iter().enumerate() {
                let rate = Some(usd(amount));
                let e = entry(i, secs, billable, rate.clone());
                // What the pipeline decides for it now: never a line from
                // an implausible rate.
                let prior = EntryState::new(e.clone(), Utc::now());
                let d = pipeline::reevaluate(&e, None, &mappings, &rules, Some(&prior), &mut NoTrace);
                if let Decision::Post(lines) = &d {
                    for l in lines {
                        if let Some(r) = &l.hourly_rate {
                            prop_assert!(r.amount >= Decimal::ZERO);
                            prop_assert!(r.amount <= rules.bounds.max_hourly_rate);
                        }
                        prop_assert!(l.checked_billable_amount().is_ok());
                    }
                    states.push(posted(1000 + i, entry(1000 + i, secs, billable, rate.clone()), lines.clone()));
                }
                // And what an older timepost may have stored.
                states.push(posted(i, e, vec![line(mins, billable, rate.clone()), line(mins, true, rate.clone())]));
                ledger.push((format!("csv:w:{i}"), line(mins, true, rate)));
            }
            let r = build(input(&states, Some(&ledger)));
            let _ = render_text(&r);
            prop_assert!(serde_json::to_string(&r).is_ok());
            let f = crate::kpis::Filter::default();
            let _ = crate::kpis::hours(&states, &f);
            let _ = crate::kpis::by_day(&states, &f);
            let _ = build(input(&states, None));
        }
    }
}
