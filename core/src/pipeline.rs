//! The pure decision: entry + week plan + mappings + rules + prior state →
//! what to do. No I/O, no clock, no randomness: the same inputs always give
//! the same decision, which is what makes replays and previews trustworthy.
//!
//! - [`plan_week`] rounds a worker-week's entries and splits them into regular
//!   and overtime minutes (overtime is a property of the whole week);
//! - [`decide`] turns one entry into a [`Decision`], with an optional trace of
//!   the rules and mappings that applied.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use crate::exceptions::Exception;
use crate::ledger::{Party, PostingLine};
use crate::mapping::{MappingRow, MappingTable, Mappings};
use crate::model::{EntryKey, Money, NormalisedEntry, WorkerKind};
use crate::rules::bounds::{DateProblem, RateProblem};
use crate::rules::overtime::{split_week, WorkItem};
use crate::rules::rounding::{round_day, DayItem};
use crate::rules::{RateSource, Rules, Split, UnmappedPolicy};
use crate::state::{EntryState, Status};

/// The minutes one entry contributes, after rounding and the week's split.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntryPlan {
    pub minutes: i64,
    pub split: Split,
}

/// Per-entry plans for one worker-week.
pub type WeekPlan = HashMap<EntryKey, EntryPlan>;

/// Why nothing is done for an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// The same version was already processed.
    Duplicate,
    /// An older version arrived after a newer one.
    Stale,
    /// The timer is still running.
    Running,
    /// Deleted in the tracker before it ever reached the books.
    DeletedBeforePosting,
    /// No time to post.
    ZeroDuration,
}

impl IgnoreReason {
    pub fn describe(self) -> &'static str {
        match self {
            IgnoreReason::Duplicate => "the same version was already processed",
            IgnoreReason::Stale => "an older version arrived after a newer one",
            IgnoreReason::Running => "the timer is still running; it posts when it stops",
            IgnoreReason::DeletedBeforePosting => {
                "deleted in the tracker before it reached the books"
            }
            IgnoreReason::ZeroDuration => "the entry has no time to post",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Ignore(IgnoreReason),
    /// Create these lines in the ledger.
    Post(Vec<PostingLine>),
    /// Replace what the ledger holds with these lines.
    Update(Vec<PostingLine>),
    /// The ledger already holds exactly these lines.
    Unchanged,
    /// Delete what the ledger holds.
    Void,
    AwaitApproval(String),
    Hold(Exception),
    Exception(Exception),
}

/// Receives the steps of a decision. [`NoTrace`] costs nothing; the closure
/// building the text only runs when tracing.
pub trait Tracer {
    fn step(&mut self, f: impl FnOnce() -> String);
}

pub struct NoTrace;
impl Tracer for NoTrace {
    #[inline(always)]
    fn step(&mut self, _f: impl FnOnce() -> String) {}
}

impl Tracer for Vec<String> {
    fn step(&mut self, f: impl FnOnce() -> String) {
        self.push(f());
    }
}

/// The longest description a ledger accepts (QBO: 4000 characters).
pub const MAX_DESCRIPTION_CHARS: usize = 4000;

/// Round and split one worker-week. `entries` are the current versions of
/// every entry of one worker in one ISO week; deleted and running entries
/// take no part. Independent of the order of `entries`.
pub fn plan_week(entries: &[&NormalisedEntry], mappings: &Mappings, rules: &Rules) -> WeekPlan {
    let live: Vec<&NormalisedEntry> = entries
        .iter()
        .copied()
        .filter(|e| !e.deleted && !e.is_running())
        .collect();
    let mut by_day: BTreeMap<NaiveDate, Vec<&NormalisedEntry>> = BTreeMap::new();
    for e in &live {
        by_day.entry(e.work_date).or_default().push(e);
    }
    let mut items = Vec::with_capacity(live.len());
    for (date, day) in &by_day {
        let day_items: Vec<DayItem<'_>> = day
            .iter()
            .map(|e| DayItem {
                key: &e.key,
                start: e.start,
                secs: e.duration_secs,
                already_rounded: e.already_rounded,
            })
            .collect();
        let minutes = round_day(&day_items, &rules.rounding);
        for (e, m) in day.iter().zip(minutes) {
            items.push(WorkItem {
                key: e.key.clone(),
                date: *date,
                start: e.start,
                minutes: m,
            });
        }
    }
    let policy = live.first().and_then(|e| {
        let (row, kind) = worker_mapping(e, mappings)?;
        if kind == WorkerKind::Contractor {
            return None;
        }
        rules.overtime_for(row.attr("jurisdiction"))
    });
    let splits = match policy {
        Some(p) => split_week(&items, p),
        None => BTreeMap::new(),
    };
    items
        .into_iter()
        .map(|i| {
            let split = splits
                .get(&i.key)
                .cloned()
                .unwrap_or_else(|| Split::all_regular(i.minutes));
            (
                i.key,
                EntryPlan {
                    minutes: i.minutes,
                    split,
                },
            )
        })
        .collect()
}

/// The employee or vendor row a worker maps to, and which kind it is.
pub fn worker_mapping<'m>(
    e: &NormalisedEntry,
    mappings: &'m Mappings,
) -> Option<(&'m crate::mapping::MappingRow, WorkerKind)> {
    let keys = [
        e.worker.tracker_user_id.as_str(),
        e.worker.email.as_deref().unwrap_or(""),
    ];
    if let Some(v) = mappings.find(MappingTable::Vendor, keys) {
        return Some((v, WorkerKind::Contractor));
    }
    mappings
        .find(MappingTable::Employee, keys)
        .map(|r| (r, WorkerKind::Employee))
}

/// Decide what to do with a delivered version `entry`, given what is
/// already known about it: the version gate ([`version_gate`]), then
/// [`decide_current`] on the prior state with `entry` in place.
pub fn decide(
    entry: &NormalisedEntry,
    plan: Option<&EntryPlan>,
    mappings: &Mappings,
    rules: &Rules,
    prior: Option<&EntryState>,
    trace: &mut impl Tracer,
) -> Decision {
    let Some(p) = prior else {
        return reevaluate(entry, plan, mappings, rules, None, trace);
    };
    if let Some(r) = version_gate(entry, p) {
        trace.step(|| match r {
            IgnoreReason::Stale => format!("stale: newer version {} already seen", p.entry.version),
            _ => "duplicate delivery of a version already processed".into(),
        });
        return Decision::Ignore(r);
    }
    let mut state = p.clone();
    state.entry = entry.clone();
    decide_current(&state, plan, mappings, rules, trace)
}

/// Whether a delivered version is ignored against the stored state: an
/// older version is stale; the same version again is a duplicate, unless
/// the entry still waits for a fix (exception or held), when a repeat or a
/// redrive evaluates it again. The engine's gate (on an entry whose first
/// posting completed).
pub fn version_gate(entry: &NormalisedEntry, prior: &EntryState) -> Option<IgnoreReason> {
    let retryable = matches!(prior.status(), Status::Exception | Status::Held);
    if entry.version < prior.entry.version {
        Some(IgnoreReason::Stale)
    } else if entry.version == prior.entry.version && !retryable {
        Some(IgnoreReason::Duplicate)
    } else {
        None
    }
}

/// **The decision** for an entry's current version in its state, as the
/// engine takes it and as every preview and explanation must show it:
/// [`reevaluate`], then, for an entry routed to the holding account, the
/// holding line instead ([`with_holding`]).
pub fn decide_current(
    state: &EntryState,
    plan: Option<&EntryPlan>,
    mappings: &Mappings,
    rules: &Rules,
    trace: &mut impl Tracer,
) -> Decision {
    let d = reevaluate(&state.entry, plan, mappings, rules, Some(state), trace);
    with_holding(state, plan, mappings, rules, d, trace)
}

/// An entry routed to the holding account posts there instead of wherever
/// (or whether) its mappings would post it; waiting for approval,
/// deletions and ignored versions are not overridden.
pub fn with_holding(
    state: &EntryState,
    plan: Option<&EntryPlan>,
    mappings: &Mappings,
    rules: &Rules,
    decision: Decision,
    trace: &mut impl Tracer,
) -> Decision {
    let Some(h) = &state.holding else {
        return decision;
    };
    match decision {
        Decision::Post(_)
        | Decision::Update(_)
        | Decision::Unchanged
        | Decision::Hold(_)
        | Decision::Exception(_) => {
            trace.step(|| {
                format!(
                    "routed to the holding account by {} on {}",
                    h.by,
                    h.at.format("%Y-%m-%d %H:%M UTC")
                )
            });
            let d = holding_decision(&state.entry, plan, mappings, rules, Some(state), trace);
            if let Decision::Post(l) | Decision::Update(l) = &d {
                if let Some(l) = l.first() {
                    trace.step(|| {
                        format!(
                            "holding line: {} on account {}",
                            fmt_minutes(l.minutes),
                            l.account
                        )
                    });
                }
            }
            d
        }
        other => other,
    }
}

/// Evaluate the current version again (after a mapping fix, an approval, a
/// change elsewhere in the week, or a redrive), without the version gate.
pub fn reevaluate(
    entry: &NormalisedEntry,
    plan: Option<&EntryPlan>,
    mappings: &Mappings,
    rules: &Rules,
    prior: Option<&EntryState>,
    trace: &mut impl Tracer,
) -> Decision {
    let in_books = prior.is_some_and(|p| !p.records.is_empty());
    if entry.deleted {
        trace.step(|| "deleted in the tracker".into());
        return if in_books {
            Decision::Void
        } else {
            Decision::Ignore(IgnoreReason::DeletedBeforePosting)
        };
    }
    if entry.is_running() {
        trace.step(|| "timer still running".into());
        return Decision::Ignore(IgnoreReason::Running);
    }
    if entry.duration_secs < 0 || entry.start.zip(entry.end).is_some_and(|(s, e)| e < s) {
        return Decision::Exception(Exception::ends_before_start(entry));
    }
    if entry.duration_secs > i64::from(rules.max_entry_hours) * 3600 {
        return Decision::Exception(Exception::entry_too_long(entry, rules.max_entry_hours));
    }
    if let Some(e) = out_of_bounds(entry, rules, prior, trace) {
        return Decision::Exception(e);
    }
    let approved_hash = prior.and_then(|p| p.approved_hash.as_deref());
    if !rules
        .approval
        .is_cleared(entry.approval, &entry.version.content_hash, approved_hash)
    {
        let why = match (entry.approval, approved_hash) {
            (crate::model::ApprovalStatus::Rejected, _) => {
                "rejected by the approver; waiting for a corrected, approved version"
            }
            (_, Some(_)) => "edited after it was approved; the new version needs approval",
            _ => "not approved yet",
        };
        trace.step(|| format!("approval required: {why}"));
        return Decision::AwaitApproval(why.to_string());
    }
    trace.step(|| "approval: cleared".into());

    let plan = match plan {
        Some(p) => p.clone(),
        None => {
            let m = crate::rules::rounding::to_minutes(
                entry.duration_secs,
                &rules.rounding,
                entry.already_rounded,
            );
            EntryPlan {
                minutes: m,
                split: Split::all_regular(m),
            }
        }
    };
    trace.step(|| {
        format!(
            "rounding ({:?}, {} min, {:?}): {} s → {} min",
            rules.rounding.mode,
            rules.rounding.increment_minutes,
            rules.rounding.scope,
            entry.duration_secs,
            plan.minutes
        )
    });
    trace.step(|| {
        let ot: Vec<String> = plan
            .split
            .overtime
            .iter()
            .filter(|(_, m)| **m > 0)
            .map(|(t, m)| format!("{m} min {t}"))
            .collect();
        if ot.is_empty() {
            format!("overtime: none; {} min regular", plan.split.regular)
        } else {
            format!(
                "overtime (the worker-week's split): {} min regular, {}",
                plan.split.regular,
                ot.join(", ")
            )
        }
    });
    if plan.minutes <= 0 {
        return if in_books {
            Decision::Void
        } else {
            Decision::Ignore(IgnoreReason::ZeroDuration)
        };
    }

    let lines = match build_lines(entry, &plan, mappings, rules, trace) {
        Ok(lines) => lines,
        Err(Refusal::Hold(e)) => return Decision::Hold(e),
        Err(Refusal::Exception(e)) => return Decision::Exception(e),
    };
    match prior {
        Some(p) if in_books && p.posted_lines == lines => Decision::Unchanged,
        Some(_) if in_books => Decision::Update(lines),
        _ => Decision::Post(lines),
    }
}

/// The plausibility bounds (`rules.bounds`): the work date against when
/// timepost first received the entry (only known with a stored state, so a
/// bare decision without one checks the rate alone), and a billable
/// entry's hourly rate as the tracker sent it. An entry outside them is an
/// exception, before any amount is computed from it.
fn out_of_bounds(
    entry: &NormalisedEntry,
    rules: &Rules,
    prior: Option<&EntryState>,
    trace: &mut impl Tracer,
) -> Option<Exception> {
    let b = &rules.bounds;
    if let Some(p) = prior {
        if let Err(w) = b.check_work_date(entry.work_date, p.first_seen_at) {
            return Some(date_exception(entry, p, &w));
        }
        trace.step(|| {
            format!(
                "work date {} within {} days back / {} ahead of its receipt on {}",
                entry.work_date,
                b.max_days_back,
                b.max_days_ahead,
                p.first_seen_at.date_naive()
            )
        });
    }
    if let Some(rate) = entry.rate.as_ref().filter(|_| entry.billable) {
        return match b.check_rate(rate) {
            Ok(()) => {
                trace.step(|| {
                    format!(
                        "hourly rate {rate} within the bound of {} {}",
                        b.max_rate_for(rate.currency.as_str()),
                        rate.currency
                    )
                });
                None
            }
            Err(RateProblem::Negative) => Some(Exception::negative_rate(entry, rate.amount)),
            Err(RateProblem::TooHigh { max }) => Some(Exception::rate_too_high(
                entry,
                rate.amount,
                &rate.currency,
                max,
            )),
        };
    }
    None
}

fn date_exception(entry: &NormalisedEntry, prior: &EntryState, w: &DateProblem) -> Exception {
    Exception::work_date_out_of_range(
        entry,
        prior.first_seen_at.date_naive(),
        w.earliest,
        w.latest,
    )
}

enum Refusal {
    Hold(Exception),
    Exception(Exception),
}

fn refuse(policy: UnmappedPolicy, e: Exception) -> Refusal {
    match policy {
        UnmappedPolicy::Hold => Refusal::Hold(e),
        UnmappedPolicy::Block => Refusal::Exception(e),
    }
}

/// The lines an entry posts, step by step: who is paid, which customer,
/// what kind of work (and its class and department), which account, at
/// what rate, then the week plan's tiers. Each step refuses with the
/// exception a bookkeeper acts on; the order of the steps is the order a
/// missing mapping is reported in.
fn build_lines(
    e: &NormalisedEntry,
    plan: &EntryPlan,
    mappings: &Mappings,
    rules: &Rules,
    trace: &mut impl Tracer,
) -> Result<Vec<PostingLine>, Refusal> {
    let (party, kind) = party_of(e, plan, mappings, rules, trace)?;
    let project_keys = e
        .project
        .as_ref()
        .map(|p| [p.id.as_str(), p.name.as_deref().unwrap_or("")]);
    let customer = customer_of(e, project_keys, plan, mappings, rules, trace)?;
    let item_target = service_item_of(e, mappings, rules, trace)?;
    let (class, department) = class_and_department(project_keys, mappings, trace);
    let account = account_of(e, mappings, rules, trace)?;
    let rate = rate_of(e, rules, trace)?;
    let base = PostingLine {
        tier: "regular".to_string(),
        party,
        txn_date: e.work_date,
        minutes: 0,
        customer,
        service_item: Some(item_target),
        class,
        department,
        payroll_item: None,
        account,
        billable: e.billable,
        hourly_rate: rate.hourly,
        original_rate: rate.original,
        fx_rate: rate.fx_rate,
        fx_date: rate.fx_date,
        description: truncate_chars(&e.notes, MAX_DESCRIPTION_CHARS),
    };
    // Contractors are never split into payroll tiers.
    if kind == WorkerKind::Contractor {
        return Ok(vec![PostingLine {
            minutes: plan.minutes,
            ..base
        }]);
    }
    tier_lines(e, plan, base, mappings, rules, trace)
}

/// Who is paid: the worker's vendor or employee row.
fn party_of(
    e: &NormalisedEntry,
    plan: &EntryPlan,
    mappings: &Mappings,
    rules: &Rules,
    trace: &mut impl Tracer,
) -> Result<(Party, WorkerKind), Refusal> {
    let (worker_row, kind) = worker_mapping(e, mappings).ok_or_else(|| {
        refuse(
            rules.unmapped.employee,
            Exception::unmapped_worker(
                e,
                plan.minutes,
                if e.worker.kind == Some(WorkerKind::Contractor) {
                    "vendor"
                } else {
                    "employee"
                },
            ),
        )
    })?;
    if kind == WorkerKind::Employee && e.worker.kind == Some(WorkerKind::Contractor) {
        return Err(Refusal::Exception(
            Exception::contractor_mapped_as_employee(e, &worker_row.target),
        ));
    }
    let party = match kind {
        WorkerKind::Employee => Party::Employee {
            id: worker_row.target.clone(),
        },
        WorkerKind::Contractor => Party::Vendor {
            id: worker_row.target.clone(),
            form_1099: worker_row
                .attr("form_1099")
                .map(str::to_string)
                .or_else(|| e.worker.form_1099.clone()),
        },
    };
    trace.step(|| {
        format!(
            "{} mapping `{}` → {}",
            if kind == WorkerKind::Employee {
                "employee"
            } else {
                "vendor"
            },
            worker_row.key,
            worker_row.target
        )
    });
    Ok((party, kind))
}

/// Which customer or job: the project's row (billable time needs one).
fn customer_of(
    e: &NormalisedEntry,
    project_keys: Option<[&str; 2]>,
    plan: &EntryPlan,
    mappings: &Mappings,
    rules: &Rules,
    trace: &mut impl Tracer,
) -> Result<Option<String>, Refusal> {
    match project_keys {
        Some(keys) => {
            let row = mappings.find(MappingTable::Project, keys).ok_or_else(|| {
                refuse(
                    rules.unmapped.project,
                    Exception::unmapped_project(e, plan.minutes),
                )
            })?;
            trace.step(|| format!("project mapping `{}` → customer {}", row.key, row.target));
            Ok(Some(row.target.clone()))
        }
        None if e.billable => Err(refuse(
            rules.unmapped.project,
            Exception::billable_without_project(e),
        )),
        None => Ok(None),
    }
}

/// What kind of work: the service item of the task, a tag or `*`; for
/// non-billable time the row's `non_billable` target when it names one
/// (Xero: a NON_CHARGEABLE task; chargeability is a property of the task,
/// not of the time).
fn service_item_of(
    e: &NormalisedEntry,
    mappings: &Mappings,
    rules: &Rules,
    trace: &mut impl Tracer,
) -> Result<String, Refusal> {
    let item = mappings
        .find(MappingTable::ServiceItem, service_item_keys(e))
        .ok_or_else(|| {
            refuse(
                rules.unmapped.service_item,
                Exception::unmapped_service_item(e),
            )
        })?;
    trace.step(|| format!("service item mapping `{}` → {}", item.key, item.target));
    Ok(non_billable_target(item, e.billable))
}

/// The keys a service item is looked up by, in order: the task's id and
/// name, the tags, then `*`.
fn service_item_keys(e: &NormalisedEntry) -> impl Iterator<Item = &str> {
    let task = e
        .task
        .iter()
        .flat_map(|t| std::iter::once(t.id.as_str()).chain(t.name.as_deref()));
    task.chain(e.tags.iter().map(String::as_str))
        .chain(std::iter::once("*"))
}

/// The project's class and department, when mapped (optional).
fn class_and_department(
    project_keys: Option<[&str; 2]>,
    mappings: &Mappings,
    trace: &mut impl Tracer,
) -> (Option<String>, Option<String>) {
    let Some(keys) = project_keys else {
        return (None, None);
    };
    let class = mappings
        .find(MappingTable::Class, keys)
        .map(|r| r.target.clone());
    let department = mappings
        .find(MappingTable::Department, keys)
        .map(|r| r.target.clone());
    if let Some(c) = &class {
        trace.step(|| format!("class mapping → {c}"));
    }
    if let Some(d) = &department {
        trace.step(|| format!("department mapping → {d}"));
    }
    (class, department)
}

/// Which GL account: billable income or labour expense.
fn account_of(
    e: &NormalisedEntry,
    mappings: &Mappings,
    rules: &Rules,
    trace: &mut impl Tracer,
) -> Result<String, Refusal> {
    let role = if e.billable {
        "billable_income"
    } else {
        "labour_expense"
    };
    trace.step(|| {
        if e.billable {
            match rules.billable.rate_source {
                RateSource::Tracker => "billable: yes, at the tracker's hourly rate".to_string(),
                RateSource::Ledger => {
                    "billable: yes, priced by the ledger from the service item".to_string()
                }
            }
        } else {
            "billable: no (labour cost only)".to_string()
        }
    });
    let account = mappings
        .get(MappingTable::GlAccount, role)
        .ok_or_else(|| Refusal::Hold(Exception::unmapped_gl_account(role)))?
        .target
        .clone();
    trace.step(|| format!("gl_account mapping `{role}` → {account}"));
    Ok(account)
}

/// The hourly rate a line carries: the tracker's, converted to the home
/// currency, for billable time priced by the tracker; none otherwise.
#[derive(Default)]
struct LineRate {
    hourly: Option<Money>,
    original: Option<Money>,
    fx_rate: Option<rust_decimal::Decimal>,
    fx_date: Option<NaiveDate>,
}

fn rate_of(
    e: &NormalisedEntry,
    rules: &Rules,
    trace: &mut impl Tracer,
) -> Result<LineRate, Refusal> {
    if !(e.billable && rules.billable.rate_source == RateSource::Tracker) {
        return Ok(LineRate::default());
    }
    let rate = e
        .rate
        .as_ref()
        .ok_or_else(|| Refusal::Exception(Exception::missing_rate(e)))?;
    match rules.currency.convert(rate, e.work_date) {
        Ok(Some(c)) => {
            trace.step(|| {
                format!(
                    "rate {} → {} at {} (rate of {})",
                    c.original, c.amount, c.rate, c.rate_date
                )
            });
            Ok(LineRate {
                hourly: Some(c.amount),
                original: Some(c.original),
                fx_rate: Some(c.rate),
                fx_date: Some(c.rate_date),
            })
        }
        Ok(None) => {
            trace.step(|| format!("rate {rate}: no currency conversion"));
            Ok(LineRate {
                hourly: Some(rate.clone()),
                ..LineRate::default()
            })
        }
        Err(err) => Err(Refusal::Exception(Exception::no_exchange_rate(e, err))),
    }
}

/// An employee's lines: the week plan's regular minutes and each overtime
/// tier, each with its payroll item (or, with no payroll in the books, the
/// tier in the description).
fn tier_lines(
    e: &NormalisedEntry,
    plan: &EntryPlan,
    base: PostingLine,
    mappings: &Mappings,
    rules: &Rules,
    trace: &mut impl Tracer,
) -> Result<Vec<PostingLine>, Refusal> {
    let mut lines = Vec::with_capacity(1 + plan.split.overtime.len());
    let payroll = |tier: &str| mappings.get(MappingTable::PayrollItem, tier);
    if plan.split.regular > 0 {
        lines.push(PostingLine {
            minutes: plan.split.regular,
            payroll_item: payroll("regular")
                .filter(|_| !rules.no_payroll)
                .map(|r| r.target.clone()),
            ..base.clone()
        });
    }
    for (tier, &minutes) in &plan.split.overtime {
        if minutes == 0 {
            continue;
        }
        if rules.no_payroll {
            // No payroll in the books: no pay type to name, so the tier
            // goes into the description and the line stands apart.
            trace.step(|| format!("{minutes} min of {tier}: no payroll, tier in the description"));
            let description = truncate_chars(
                &format!("{tier}: {}", base.description),
                MAX_DESCRIPTION_CHARS,
            );
            lines.push(PostingLine {
                tier: tier.clone(),
                minutes,
                payroll_item: None,
                description,
                ..base.clone()
            });
            continue;
        }
        let item = payroll(tier)
            .ok_or_else(|| Refusal::Hold(Exception::unmapped_payroll_item(e, minutes, tier)))?;
        trace.step(|| format!("{} min of {tier} → payroll item {}", minutes, item.target));
        lines.push(PostingLine {
            tier: tier.clone(),
            minutes,
            payroll_item: Some(item.target.clone()),
            ..base.clone()
        });
    }
    Ok(lines)
}

pub use crate::exceptions::sentences::fmt_minutes;

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// The decision for an entry routed to the holding account: one line of
/// its rounded minutes (no overtime split: suspense time is reclassified
/// in the books later) on `rules.holding_account`, not billable, for its
/// mapped worker or else `rules.holding_employee`, keeping the customer and
/// service item when they are mapped. Compared with what the books hold,
/// so routing the same entry again changes nothing.
pub fn holding_decision(
    entry: &NormalisedEntry,
    plan: Option<&EntryPlan>,
    mappings: &Mappings,
    rules: &Rules,
    prior: Option<&EntryState>,
    trace: &mut impl Tracer,
) -> Decision {
    let in_books = prior.is_some_and(|p| !p.records.is_empty());
    // Holding posts hours without a rate, but on the entry's date: a date
    // no one believes does not go to the books, even to suspense.
    if let Some(p) = prior {
        if let Err(w) = rules
            .bounds
            .check_work_date(entry.work_date, p.first_seen_at)
        {
            return Decision::Exception(date_exception(entry, p, &w));
        }
    }
    let Some(account) = rules.holding_account.clone() else {
        return Decision::Exception(Exception::holding_account_not_set());
    };
    let minutes = plan.map(|p| p.minutes).unwrap_or_else(|| {
        crate::rules::rounding::to_minutes(
            entry.duration_secs,
            &rules.rounding,
            entry.already_rounded,
        )
    });
    if minutes <= 0 {
        return if in_books {
            Decision::Void
        } else {
            Decision::Ignore(IgnoreReason::ZeroDuration)
        };
    }
    let party = match worker_mapping(entry, mappings) {
        Some((row, WorkerKind::Employee)) => Party::Employee {
            id: row.target.clone(),
        },
        Some((row, WorkerKind::Contractor)) => Party::Vendor {
            id: row.target.clone(),
            form_1099: row.attr("form_1099").map(str::to_string),
        },
        None => match &rules.holding_employee {
            Some(id) => Party::Employee { id: id.clone() },
            None => return Decision::Exception(Exception::holding_without_worker(entry)),
        },
    };
    let customer = entry.project.as_ref().and_then(|p| {
        mappings
            .find(
                MappingTable::Project,
                [p.id.as_str(), p.name.as_deref().unwrap_or("")],
            )
            .map(|r| r.target.clone())
    });
    let service_item = mappings
        .find(MappingTable::ServiceItem, service_item_keys(entry))
        .map(|r| non_billable_target(r, false));
    trace.step(|| {
        format!(
            "routed to the holding account {account}: {minutes} min for {}, not billable",
            party.id()
        )
    });
    let lines = vec![PostingLine {
        tier: "regular".to_string(),
        party,
        txn_date: entry.work_date,
        minutes,
        customer,
        service_item,
        class: None,
        department: None,
        payroll_item: None,
        account,
        billable: false,
        hourly_rate: None,
        original_rate: None,
        fx_rate: None,
        fx_date: None,
        description: truncate_chars(&format!("[holding] {}", entry.notes), MAX_DESCRIPTION_CHARS),
    }];
    match prior {
        Some(p) if in_books && p.posted_lines == lines => Decision::Unchanged,
        Some(_) if in_books => Decision::Update(lines),
        _ => Decision::Post(lines),
    }
}

/// The service item a line of this row goes to: the row's `non_billable`
/// attribute for non-billable time when it names one, else its target. A
/// ledger where chargeability belongs to the item (Xero: a task's
/// `chargeType`) needs the two told apart.
pub fn non_billable_target(row: &MappingRow, billable: bool) -> String {
    match row.attr("non_billable").map(str::trim) {
        Some(t) if !billable && !t.is_empty() => t.to_string(),
        _ => row.target.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exceptions::ExceptionCode;

    fn entry(date: &str, rate: &str) -> NormalisedEntry {
        serde_json::from_value(serde_json::json!({
            "key": {"source": "csv", "workspace": "w", "id": "1"},
            "version": {"updated_at": "2026-03-04T09:00:00Z", "content_hash": "h"},
            "worker": {"tracker_user_id": "u-ann", "name": "Ann Lee"},
            "time_zone": "UTC", "work_date": date, "duration_secs": 3600,
            "project": {"id": "p-acme-web"}, "billable": true,
            "rate": {"amount": rate, "currency": "USD"},
            "approval": "approved", "origin": "import"
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn setup() -> (Mappings, Rules) {
        let rows = crate::mapping::csv_io::read(crate::fixtures::MAPPINGS.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let rules = crate::rules::minimal("USD".parse().unwrap_or_else(|e: String| panic!("{e}")));
        (Mappings::from_rows(rows, 1), rules)
    }

    fn decide_at(e: &NormalisedEntry, received: &str, rules: &Rules, m: &Mappings) -> Decision {
        let at: chrono::DateTime<chrono::Utc> = received.parse().unwrap_or_else(|e| panic!("{e}"));
        let prior = EntryState::new(e.clone(), at);
        reevaluate(e, None, m, rules, Some(&prior), &mut NoTrace)
    }

    fn code(d: &Decision) -> Option<ExceptionCode> {
        match d {
            Decision::Exception(e) => Some(e.code),
            _ => None,
        }
    }

    #[test]
    fn implausible_rates_are_exceptions_with_a_sentence() {
        let (m, rules) = setup();
        let ok = decide_at(
            &entry("2026-03-02", "150"),
            "2026-03-04T09:00:00Z",
            &rules,
            &m,
        );
        assert!(matches!(ok, Decision::Post(_)), "{ok:?}");
        for rate in ["79228162514264337593543950335", "10000.01", "-150"] {
            let d = decide_at(
                &entry("2026-03-02", rate),
                "2026-03-04T09:00:00Z",
                &rules,
                &m,
            );
            assert_eq!(
                code(&d),
                Some(ExceptionCode::RateOutOfBounds),
                "{rate}: {d:?}"
            );
            let Decision::Exception(e) = d else {
                unreachable!()
            };
            assert!(
                e.message.starts_with("Billable time by Ann Lee"),
                "{}",
                e.message
            );
            assert!(e.message.contains("2026-03-02"), "{}", e.message);
        }
        // Without a stored state (a bare decision) the rate is still checked.
        let e = entry("2026-03-02", "79228162514264337593543950335");
        let d = reevaluate(&e, None, &m, &rules, None, &mut NoTrace);
        assert_eq!(code(&d), Some(ExceptionCode::RateOutOfBounds));
        // A per-currency ceiling replaces the default.
        let mut wide = rules.clone();
        wide.bounds
            .max_hourly_rate_by_currency
            .insert("USD".into(), rust_decimal::Decimal::from(20_000));
        let d = decide_at(
            &entry("2026-03-02", "15000"),
            "2026-03-04T09:00:00Z",
            &wide,
            &m,
        );
        assert!(matches!(d, Decision::Post(_)), "{d:?}");
        // Not billable: the tracker's rate is not used, so not judged.
        let mut e = entry("2026-03-02", "-1");
        e.billable = false;
        let d = decide_at(&e, "2026-03-04T09:00:00Z", &rules, &m);
        assert!(matches!(d, Decision::Post(_)), "{d:?}");
    }

    #[test]
    fn work_dates_far_from_receipt_are_exceptions() {
        let (m, rules) = setup();
        for date in ["2062-03-02", "1926-03-02"] {
            let d = decide_at(&entry(date, "150"), "2026-03-04T09:00:00Z", &rules, &m);
            assert_eq!(code(&d), Some(ExceptionCode::WorkDateOutOfRange), "{date}");
            let Decision::Exception(e) = d else {
                unreachable!()
            };
            assert!(
                e.message.contains(date) && e.message.contains("received it on 2026-03-04"),
                "{}",
                e.message
            );
        }
        // The window is the receipt's, not today's: replays stay stable.
        let d = decide_at(
            &entry("2026-03-02", "150"),
            "2026-03-04T09:00:00Z",
            &rules,
            &m,
        );
        assert!(matches!(d, Decision::Post(_)));
        // Holding does not post an implausible date either.
        let mut r = rules.clone();
        r.holding_account = Some("1999-holding".into());
        let e = entry("2062-03-02", "150");
        let at: chrono::DateTime<chrono::Utc> = "2026-03-04T09:00:00Z"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let prior = EntryState::new(e.clone(), at);
        let d = holding_decision(&e, None, &m, &r, Some(&prior), &mut NoTrace);
        assert_eq!(code(&d), Some(ExceptionCode::WorkDateOutOfRange));
    }
}

#[cfg(test)]
mod one_decision_tests {
    use super::*;
    use crate::state::HoldingRoute;

    fn entry(updated_at: &str) -> NormalisedEntry {
        serde_json::from_value(serde_json::json!({
            "key": {"source": "csv", "workspace": "w", "id": "1"},
            "version": {"updated_at": updated_at, "content_hash": updated_at},
            "worker": {"tracker_user_id": "u-ann", "name": "Ann Lee"},
            "time_zone": "UTC", "work_date": "2026-03-04", "duration_secs": 3600,
            "project": {"id": "p-unmapped"}, "billable": false,
            "approval": "approved", "origin": "import"
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn setup() -> (Mappings, Rules) {
        let rows = crate::mapping::csv_io::read(crate::fixtures::MAPPINGS.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut rules = crate::fixtures::rules();
        rules.approval.required = false;
        rules.holding_account = Some("1999-holding".into());
        (Mappings::from_rows(rows, 1), rules)
    }

    fn stored(e: &NormalisedEntry, status: Status) -> EntryState {
        let mut s = EntryState::new(
            e.clone(),
            "2026-03-04T10:00:00Z".parse().unwrap_or_default(),
        );
        s.set_status(status, s.updated_at);
        s
    }

    /// `decide` gates versions as the engine does: older is stale; the
    /// same version is a duplicate unless the entry still waits for a fix.
    #[test]
    fn the_version_gate_is_the_engines() {
        let (m, rules) = setup();
        let v1 = entry("2026-03-04T09:00:00Z");
        let v0 = entry("2026-03-04T08:00:00Z");
        let posted = stored(&v1, Status::Posted);
        let d = |e: &NormalisedEntry, p: &EntryState| {
            decide(e, None, &m, &rules, Some(p), &mut NoTrace)
        };
        assert_eq!(d(&v0, &posted), Decision::Ignore(IgnoreReason::Stale));
        assert_eq!(d(&v1, &posted), Decision::Ignore(IgnoreReason::Duplicate));
        for waiting in [Status::Held, Status::Exception] {
            let p = stored(&v1, waiting);
            assert_eq!(version_gate(&v1, &p), None);
            assert!(
                !matches!(d(&v1, &p), Decision::Ignore(_)),
                "a repeat of a {waiting} entry is evaluated again"
            );
        }
    }

    /// An entry routed to the holding account is decided onto it by every
    /// caller of the one decision, with the routing in its explanation.
    #[test]
    fn the_one_decision_includes_the_holding_override() {
        let (m, rules) = setup();
        let mut held = stored(&entry("2026-03-04T09:00:00Z"), Status::Held);
        let plain = decide_current(&held, None, &m, &rules, &mut NoTrace);
        assert!(matches!(plain, Decision::Hold(_)), "{plain:?}");
        held.holding = Some(HoldingRoute {
            by: "fin@example.com".into(),
            at: "2026-03-05T10:00:00Z".parse().unwrap_or_default(),
            reason: None,
        });
        let mut steps: Vec<String> = Vec::new();
        let routed = decide_current(&held, None, &m, &rules, &mut steps);
        let Decision::Post(lines) = &routed else {
            panic!("{routed:?}")
        };
        assert_eq!(lines[0].account, "1999-holding");
        assert!(
            steps
                .iter()
                .any(|s| s.starts_with("routed to the holding account by fin@example.com")),
            "{steps:?}"
        );
        assert!(
            steps
                .iter()
                .any(|s| s.starts_with("holding line: 1 h 00 min on account 1999-holding")),
            "{steps:?}"
        );
    }
}

#[cfg(test)]
mod non_billable_tests {
    use super::*;

    /// Issue 11, point 9: a `service_item` row tells billable and
    /// non-billable time apart with its `non_billable` attribute.
    #[test]
    fn non_billable_time_takes_the_rows_non_billable_target() {
        let row = MappingRow::new(MappingTable::ServiceItem, "Design", "task-time")
            .with_attr("non_billable", "task-nc");
        assert_eq!(non_billable_target(&row, true), "task-time");
        assert_eq!(non_billable_target(&row, false), "task-nc");
        let plain = MappingRow::new(MappingTable::ServiceItem, "Design", "task-time");
        assert_eq!(non_billable_target(&plain, false), "task-time");
    }
}
