//! The report of the store as it stands, at a cost that does not grow with
//! the store: what `timepost status` and `/api/report` show without a
//! period. Totals per status, posted lines and hours, posted hours by
//! project and by employee / vendor and the KPIs come from the maintained
//! aggregates (the all-time view: the sum of the year rows, as
//! `timepost status --period all`); the entries that need someone (held,
//! waiting for approval, exceptions) are listed from bounded reads of the
//! status index (`EntryStore::by_status`, at most [`LISTED`] each, with how
//! many more there are). The comparison with the ledger's read-back
//! (`crate::report::collect`, which reads every entry state) is what
//! `timepost status --full` and `/api/report?full=true` run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rust_decimal::Decimal;
use serde::Serialize;

use crate::aggregates::Grain;
use crate::period_report::PeriodReport;
use crate::ports::{EntryStore, Queue, StoreResult};
use crate::report::{item_of, Group, Item};
use crate::state::Status;

/// How many entries of each status the summary lists.
pub const LISTED: usize = 50;

/// Entries of one status: the oldest `items`, and how many are not listed.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Listing {
    pub total: usize,
    pub items: Vec<Item>,
    pub more: usize,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct PostedSummary {
    pub entries: usize,
    pub lines: usize,
    pub hours: Decimal,
    pub by_project: Vec<Group>,
    pub by_employee: Vec<Group>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub ledger: String,
    /// Entries per status, and their tracker hours.
    pub entries: BTreeMap<String, usize>,
    pub hours: BTreeMap<String, Decimal>,
    pub posted: PostedSummary,
    pub held: Listing,
    pub awaiting_approval: Listing,
    pub exceptions: Listing,
    pub dead_letters: usize,
    pub kpis: BTreeMap<String, Decimal>,
}

async fn listing(
    store: &dyn EntryStore,
    status: Status,
    total: usize,
    limit: usize,
) -> StoreResult<Listing> {
    let items: Vec<Item> = store
        .by_status(status, limit)
        .await?
        .iter()
        .map(item_of)
        .collect();
    Ok(Listing {
        total,
        more: total.saturating_sub(items.len()),
        items,
    })
}

/// Build the summary: the aggregates' year rows, three bounded status
/// reads ([`LISTED`] each) and the dead-letter count.
pub async fn collect(
    entries: &dyn EntryStore,
    ledger: &str,
    queue: &dyn Queue,
) -> StoreResult<Summary> {
    collect_listing(entries, ledger, queue, LISTED).await
}

/// [`collect`], listing at most `limit` entries of each status.
pub async fn collect_listing(
    entries: &dyn EntryStore,
    ledger: &str,
    queue: &dyn Queue,
    limit: usize,
) -> StoreResult<Summary> {
    let rows = entries.aggregates(Grain::Year, None, None).await?;
    let p: PeriodReport = crate::period_report::period_report("all", &rows);
    let count = |s: Status| p.entries.get(s.as_str()).copied().unwrap_or(0);
    let dead_letters = queue.dead_letter_count().await?;
    let mut kpis = p.kpis.clone();
    kpis.insert("dead_letters".into(), Decimal::from(dead_letters));
    // Sums in their shortest form (12.8, not 12.80): a DynamoDB number
    // keeps no trailing zeros, so the same store reads the same on both.
    let groups = |gs: &[crate::report::Group]| -> Vec<crate::report::Group> {
        gs.iter()
            .map(|g| crate::report::Group {
                hours: g.hours.normalize(),
                billable: g
                    .billable
                    .iter()
                    .map(|(c, a)| (c.clone(), a.normalize()))
                    .collect(),
                ..g.clone()
            })
            .collect()
    };
    let kpis = kpis.into_iter().map(|(k, v)| (k, v.normalize())).collect();
    Ok(Summary {
        ledger: ledger.to_string(),
        posted: PostedSummary {
            entries: count(Status::Posted),
            lines: p.posted_lines,
            hours: p.posted_hours.normalize(),
            by_project: groups(&p.by_project),
            by_employee: groups(&p.by_employee),
        },
        held: listing(entries, Status::Held, count(Status::Held), limit).await?,
        awaiting_approval: listing(
            entries,
            Status::AwaitingApproval,
            count(Status::AwaitingApproval),
            limit,
        )
        .await?,
        exceptions: listing(entries, Status::Exception, count(Status::Exception), limit).await?,
        entries: p.entries,
        hours: p
            .hours
            .into_iter()
            .map(|(s, h)| (s, h.normalize()))
            .collect(),
        dead_letters,
        kpis,
    })
}

/// The summary as text for a terminal.
pub fn render_text(r: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "timepost — the store on the {} ledger (all periods, from the maintained aggregates)\n",
        r.ledger
    );
    for (s, n) in &r.entries {
        let h = r.hours.get(s).copied().unwrap_or_default();
        let _ = writeln!(o, "  {s:<20} {n:>8} entries {:>12} h", h.round_dp(2));
    }
    let _ = writeln!(
        o,
        "\nPOSTED: {} entries as {} lines, {} h",
        r.posted.entries,
        r.posted.lines,
        r.posted.hours.round_dp(2)
    );
    for (title, groups) in [
        ("by project", &r.posted.by_project),
        ("by employee / vendor", &r.posted.by_employee),
    ] {
        let _ = writeln!(o, "  {title}:");
        for g in groups {
            let _ = writeln!(o, "{}", g.text_line(6, 10));
        }
    }
    for (title, l) in [
        ("HELD (post by themselves once mapped)", &r.held),
        ("WAITING FOR APPROVAL", &r.awaiting_approval),
        ("EXCEPTIONS (finance to fix and redrive)", &r.exceptions),
    ] {
        let _ = writeln!(o, "\n{title}: {}", l.total);
        for i in &l.items {
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
            }
        }
        if l.more > 0 {
            let _ = writeln!(o, "  … and {} more", l.more);
        }
    }
    let _ = writeln!(o, "\nDEAD LETTERS: {}", r.dead_letters);
    let _ = writeln!(o, "\nKPIs:");
    for (k, v) in &r.kpis {
        let _ = writeln!(o, "  {k:<28} {}", v.normalize());
    }
    let _ = writeln!(
        o,
        "\nThe comparison with the ledger's read-back reads every entry: `timepost status --full`."
    );
    o
}
