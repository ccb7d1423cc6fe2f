//! Second-admin review of mapping changes: the one workflow every way of
//! changing mappings goes through — the console's mappings pages and JSON
//! API (set, remove, revert), finance's inline "add the missing mapping",
//! and the CLI's `mappings import` (local or `--backend aws`).
//!
//! A change's preview counts **every stored entry it can affect** (its
//! reach: the entries indexed under the changed rows' keys, or every entry
//! for a GL account, payroll item or `*` row — counted, not read), and
//! replays those of one period (`impact::Replay`, deciding as the engine
//! does, holding override included, each worker-week whole) to list what
//! would post differently — see [`MappingReview::preview`]. The reach,
//! whatever the work dates and states, bounds the entries whose outcome
//! can differ and decides whether the change needs a second admin
//! (`[console] mapping_approval_threshold`, 0 = always); the period a
//! caller gives only limits what is replayed and listed. Under the
//! threshold the change applies at once (one `MappingStore::apply`,
//! audited, its preview kept as an applied proposal); above it, it is
//! stored as a `PendingChanges` proposal and takes no effect until a named
//! admin other than the proposer approves it (or the CLI names one with
//! `--approve-as`). A shared credential (the `admin_token`) or an identity
//! without a user name can neither approve nor propose such a change: it
//! names nobody, so it cannot be one of the two people.
//!
//! The functions take the ports and an [`Actor`] and return
//! [`ReviewError`]s; re-checking held entries after a change that applied
//! is the caller's, through [`crate::services::recheck`] (in process locally,
//! queued for the sync function on a deployed stack).

use std::collections::HashSet;

use chrono::{Duration, NaiveDate, Utc};

use crate::engine::Engine;
use crate::impact::{self, ImpactPreview};
use crate::mapping::table::normalise_key;
use crate::mapping::{MappingChange, MappingRow, MappingTable, Mappings};
use crate::model::EntryKey;

use crate::ports::{
    AuditLog, AuditRecord, EntryStore, MappingStore, PendingChanges, ProposalStatus,
    ProposedChange, StoreError, WorkerWeek,
};
use crate::state::{EntryState, Status};

/// Who acts: a name, the role (or channel) as audited, and whether the
/// name is one person's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: String,
    /// True for a person's own credential (a console user's token or
    /// session, a verified sign-in, a name given to the CLI); false for a
    /// shared one (the `admin_token`).
    pub person: bool,
}

impl Actor {
    /// One named person.
    pub fn person(name: impl Into<String>, role: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            role: role.into(),
            person: true,
        }
    }

    /// A credential several people may hold (the `admin_token`).
    pub fn shared(name: impl Into<String>, role: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            role: role.into(),
            person: false,
        }
    }

    /// Whether this actor names one person (and so may be one of the two
    /// people a reviewed change needs).
    pub fn is_named(&self) -> bool {
        self.person && !self.name.trim().is_empty()
    }

    /// Whether `name` is this actor (names compared trimmed, ignoring
    /// ASCII case, so `Ann` and `ann` are one person).
    pub fn is(&self, name: &str) -> bool {
        self.name.trim().eq_ignore_ascii_case(name.trim())
    }

    /// An audit record of `action` by this actor.
    pub fn audit(&self, action: &str, entry: Option<&EntryKey>, detail: String) -> AuditRecord {
        AuditRecord {
            seq: 0,
            at: Utc::now(),
            who: self.name.clone(),
            role: self.role.clone(),
            action: action.to_string(),
            entry: entry.map(|k| k.to_string()),
            detail,
        }
    }
}

/// Why a review step did not happen. Each carries a sentence for the user.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// A field is missing or wrong (400).
    #[error("{message}")]
    Invalid {
        message: String,
        field: Option<String>,
    },
    /// Not allowed to this actor (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The state moved: already decided, row already there, mappings
    /// changed since the preview (409).
    #[error("{0}")]
    Conflict(String),
    /// The deployment cannot do it (503).
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReviewError {
    fn invalid(message: impl Into<String>, field: &str) -> Self {
        Self::Invalid {
            message: message.into(),
            field: Some(field.into()),
        }
    }
}

pub type ReviewResult<T> = Result<T, ReviewError>;

/// The work dates a preview lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Period {
    /// How far back a listed period reaches when no `from` is given.
    pub const DEFAULT_DAYS: i64 = 30;
    /// The longest period a caller may ask to list.
    pub const MAX_DAYS: i64 = 366;

    /// `from` / `to` as given (YYYY-MM-DD); `to` defaults to today, `from`
    /// to 30 days before `to`. A bad date is `Invalid`, naming the field.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> ReviewResult<Self> {
        let date = |v: Option<&str>, name: &str| -> ReviewResult<Option<NaiveDate>> {
            match v.map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(None),
                Some(v) => v.parse().map(Some).map_err(|_| {
                    ReviewError::invalid(
                        format!("`{name}` must be a date as YYYY-MM-DD, not `{v}`"),
                        name,
                    )
                }),
            }
        };
        let to_given = date(to, "to")?;
        let from_given = date(from, "from")?;
        let to = to_given.unwrap_or_else(|| Utc::now().date_naive());
        let from = from_given.unwrap_or(to - Duration::days(Self::DEFAULT_DAYS));
        if from > to {
            return Err(ReviewError::invalid(
                format!("`from` ({from}) is after `to` ({to})"),
                "from",
            ));
        }
        if (to - from).num_days() > Self::MAX_DAYS {
            return Err(ReviewError::invalid(
                format!(
                    "a preview lists at most {} days; narrow `from`",
                    Self::MAX_DAYS
                ),
                "from",
            ));
        }
        Ok(Self { from, to })
    }

    /// From the earliest to the latest work date of `entries` (today when
    /// there are none): a period that lists every affected entry.
    pub fn all(entries: &[EntryState]) -> Self {
        let dates = entries.iter().map(|s| s.entry.work_date);
        let today = Utc::now().date_naive();
        Self {
            from: dates.clone().min().unwrap_or(today),
            to: dates.max().unwrap_or(today),
        }
    }
}

/// What saving a change did.
#[derive(Debug)]
pub enum Saved {
    /// The row is already so.
    Unchanged,
    /// Applied at once, with their sequence numbers (the proposal records
    /// the preview, when kept).
    Applied {
        changes: Vec<MappingChange>,
        proposal: Option<Box<ProposedChange>>,
    },
    /// Waiting for a second admin.
    Pending(Box<ProposedChange>),
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "y"
    } else {
        "ies"
    }
}

impl Saved {
    /// Whether the mappings changed (held entries must be re-checked).
    pub fn applied(&self) -> bool {
        matches!(self, Saved::Applied { .. })
    }

    /// What happened, in one or two sentences.
    pub fn notice(&self) -> String {
        match self {
            Saved::Unchanged => "Nothing to change: the row is already so.".into(),
            Saved::Applied { changes, proposal } => {
                let n = proposal
                    .as_ref()
                    .map(|p| {
                        format!(
                            " It can affect up to {} stored entr{}.",
                            p.preview.in_reach(),
                            plural(p.preview.in_reach())
                        )
                    })
                    .unwrap_or_default();
                match changes.as_slice() {
                    [c] => format!("Change #{} saved: {}.{n}", c.seq, c.describe()),
                    all => format!("{} changes saved.{n}", all.len()),
                }
            }
            Saved::Pending(p) => format!(
                "Change {} can affect up to {} stored entr{}, more than allowed without review: it waits as proposal #{} for a second admin's approval.",
                p.describe(),
                p.preview.in_reach(),
                plural(p.preview.in_reach()),
                p.id
            ),
        }
    }
}

/// What an approval applied.
#[derive(Debug)]
pub struct Approved {
    pub proposal: ProposedChange,
    /// The changes with their sequence numbers.
    pub changes: Vec<MappingChange>,
}

/// The change that would set `key` in `table` to `after` (None removes),
/// proposed by `by` against `current`; None when nothing would change.
pub fn draft(
    current: &Mappings,
    by: &str,
    table: MappingTable,
    key: &str,
    after: Option<MappingRow>,
    reason: &str,
) -> ReviewResult<Option<MappingChange>> {
    let key = normalise_key(key);
    let before = current.get(table, &key).cloned();
    if before.is_none() && after.is_none() {
        return Err(ReviewError::NotFound(format!("no {table} mapping `{key}`")));
    }
    if before == after {
        return Ok(None);
    }
    Ok(Some(MappingChange {
        seq: 0,
        table,
        key,
        before,
        after,
        changed_by: by.to_string(),
        changed_at: Utc::now(),
        reason: reason.to_string(),
    }))
}

/// Entries a preview reads a page at a time.
pub const PAGE: usize = 1_000;

/// The ports a review works on, and the threshold.
pub struct MappingReview<'a> {
    pub entries: &'a dyn EntryStore,
    pub mappings: &'a dyn MappingStore,
    pub audit: &'a dyn AuditLog,
    /// Where proposals and previews are kept; None: small changes apply
    /// and large ones are refused rather than applied unreviewed.
    pub pending: Option<&'a dyn PendingChanges>,
    /// Decides as the stack does (rules, holding override).
    pub engine: &'a Engine,
    /// `[console] mapping_approval_threshold` (0: every change waits).
    pub threshold: u64,
}

impl MappingReview<'_> {
    fn store(&self) -> ReviewResult<&dyn PendingChanges> {
        self.pending.ok_or_else(|| {
            ReviewError::Unavailable("this deployment keeps no pending mapping changes".into())
        })
    }

    /// The impact of `changes` on `current`: how many stored entries the
    /// change can touch (its reach, what the threshold counts), and the
    /// entries of `period` (every work date when None) replayed and listed.
    ///
    /// The reach is counted, not read: the entries indexed under the
    /// changed rows' keys (`EntryStore::count_by_mapped_keys`), or every
    /// stored entry (the aggregates' counts) for a GL account, payroll item
    /// or `*` row, which every entry looks up. No other entry can post
    /// differently: an entry that looks none of the changed rows up keeps
    /// its lines, and its week's plan depends only on its own worker's row
    /// (an employee or vendor row indexes all of that worker's entries).
    /// So the reach bounds the entries whose outcome would differ, and a
    /// change cannot slip under the threshold, whatever the period listed.
    ///
    /// The replay reads only the period: the entries of its work dates
    /// indexed under the changed keys (`EntryStore::by_mapped_keys_dated`,
    /// or every entry of the period for a global row), each widened to its
    /// whole worker-week (`EntryStore::week`), since a week is planned whole
    /// (overtime follows the worker's mapping). Pages of [`PAGE`] entries:
    /// memory holds a page, one week and the set of weeks done.
    pub async fn preview(
        &self,
        current: &Mappings,
        changes: &[MappingChange],
        period: Option<Period>,
    ) -> ReviewResult<ImpactPreview> {
        let mut proposed = current.clone();
        crate::mapping::change::apply(&mut proposed, changes);
        let mut replay = impact::Replay::new(
            period.map(|p| (p.from, p.to)),
            current,
            &proposed,
            &self.engine.rules,
        );
        let touched = crate::mapping::keys::touched(changes);
        let reach = match &touched {
            Some(keys) if keys.is_empty() => 0,
            Some(keys) => self.entries.count_by_mapped_keys(keys).await?,
            None => self.stored_entries().await?,
        };
        let mut done: HashSet<WorkerWeek> = HashSet::new();
        match (&touched, period) {
            (Some(keys), _) if keys.is_empty() => {}
            (None, Some(p)) => {
                let mut after = None;
                loop {
                    let page = self
                        .entries
                        .by_work_dates(p.from, p.to, after.as_ref(), PAGE)
                        .await?;
                    let full = page.len() >= PAGE;
                    after = crate::ports::PeriodCursor::after(&page, p.from, p.to);
                    self.replay_weeks(&mut replay, &mut done, page).await?;
                    if !full || after.is_none() {
                        break;
                    }
                }
            }
            (keys, period) => {
                let mut after: Option<EntryKey> = None;
                loop {
                    let page = match (keys, period) {
                        (Some(keys), Some(p)) => {
                            self.entries
                                .by_mapped_keys_dated(keys, p.from, p.to, after.as_ref(), PAGE)
                                .await?
                        }
                        (Some(keys), None) => {
                            self.entries
                                .by_mapped_keys(keys, after.as_ref(), PAGE)
                                .await?
                        }
                        (None, _) => self.entries.page(after.as_ref(), PAGE).await?,
                    };
                    let Some(last) = page.last() else { break };
                    after = Some(last.entry.key.clone());
                    let full = page.len() >= PAGE;
                    self.replay_weeks(&mut replay, &mut done, page).await?;
                    if !full {
                        break;
                    }
                }
            }
        }
        let mut preview = replay.finish();
        preview.entries_in_reach = reach;
        Ok(preview)
    }

    /// Replay the whole worker-week of each entry of `page` not replayed
    /// yet.
    async fn replay_weeks(
        &self,
        replay: &mut impact::Replay<'_>,
        done: &mut HashSet<WorkerWeek>,
        page: Vec<EntryState>,
    ) -> ReviewResult<()> {
        for st in page {
            let week = WorkerWeek::of(&st.entry);
            if done.contains(&week) {
                continue;
            }
            replay.week(&self.entries.week(&week).await?);
            done.insert(week);
        }
        Ok(())
    }

    /// Every stored entry, whatever its state, counted from the
    /// aggregates (by year) rather than read.
    async fn stored_entries(&self) -> ReviewResult<usize> {
        let rows = self
            .entries
            .aggregates(crate::aggregates::Grain::Year, None, None)
            .await?;
        Ok(crate::aggregates::Totals::of(&rows).entries.values().sum())
    }

    /// Whether a change with preview `p` needs a second admin: more stored
    /// entries affected than the threshold (any, at threshold 0).
    pub fn needs_review(&self, p: &ImpactPreview) -> bool {
        self.threshold == 0 || p.in_reach() as u64 > self.threshold
    }

    /// Save `changes` (all drafted against `current` by `who`; empty:
    /// nothing to do) as `action`: previewed, then applied at once when few
    /// enough stored entries change, else stored as a proposal for a second
    /// admin. `approver` (the CLI's `--approve-as`) is a second admin
    /// approving on the spot: it must name a person other than `who`, and
    /// the change then applies whatever it touches, both names audited.
    pub async fn save(
        &self,
        who: &Actor,
        approver: Option<&Actor>,
        current: &Mappings,
        changes: Vec<MappingChange>,
        action: &str,
        period: Option<Period>,
    ) -> ReviewResult<Saved> {
        if let Some(a) = approver {
            self.check_approver(a, &who.name, "this change")?;
        }
        let Some((first, further)) = changes.split_first() else {
            return Ok(Saved::Unchanged);
        };
        let preview = self.preview(current, &changes, period).await?;
        let needs = self.needs_review(&preview);
        let n = preview.in_reach();
        let mut proposal = ProposedChange {
            id: 0,
            change: first.clone(),
            further: further.to_vec(),
            preview,
            status: ProposalStatus::Pending,
            needs_approval: needs,
            decided_by: None,
            decided_at: None,
            decision_reason: None,
            applied_seq: None,
        };
        if needs && approver.is_none() {
            if !who.is_named() {
                return Err(ReviewError::Forbidden(format!(
                    "This change touches {n} stored entries, so two named admins must propose and approve it; `{}` is a shared credential that names nobody, so it cannot propose it. Sign in with your own token. Nothing was changed.",
                    who.name
                )));
            }
            let store = self.pending.ok_or_else(|| {
                ReviewError::Unavailable(format!(
                    "this change touches {n} stored entries, so it needs a second admin's approval, but this deployment keeps no pending mapping changes; nothing was changed"
                ))
            })?;
            let p = store.propose(proposal).await?;
            self.audit
                .record(who.audit(
                    "mapping_propose",
                    None,
                    format!(
                        "proposal #{} {}: touches {n} stored entries, waits for a second admin: {}",
                        p.id,
                        p.describe(),
                        p.change.reason
                    ),
                ))
                .await?;
            return Ok(Saved::Pending(Box::new(p)));
        }
        let approval = approver.filter(|_| needs);
        let mut to_apply = changes.clone();
        if let Some(a) = approval {
            for c in &mut to_apply {
                c.reason = format!("{} (approved by {})", c.reason, a.name);
            }
        }
        let applied = self.mappings.apply(to_apply).await?;
        let (Some(head), Some(last)) = (applied.first(), applied.last()) else {
            return Err(ReviewError::Unavailable(
                "the change was not recorded".into(),
            ));
        };
        let what = if applied.len() == 1 {
            format!("#{} {}", head.seq, head.describe())
        } else {
            format!(
                "{} changes #{}–#{} ({})",
                applied.len(),
                head.seq,
                last.seq,
                proposal.describe()
            )
        };
        let by = approver
            .map(|a| format!("; approved by {} as second admin", a.name))
            .unwrap_or_default();
        self.audit
            .record(who.audit(
                action,
                None,
                format!("{what}: {} (preview: {n} entries change{by})", first.reason),
            ))
            .await?;
        if let Some(a) = approval {
            self.audit
                .record(a.audit(
                    "mapping_approve",
                    None,
                    format!(
                        "{what} by {} approved on the spot: touches {n} stored entries",
                        who.name
                    ),
                ))
                .await?;
        }
        proposal.status = ProposalStatus::Applied;
        proposal.applied_seq = Some(head.seq);
        proposal.decided_at = Some(head.changed_at);
        proposal.decided_by = approval.map(|a| a.name.clone());
        let proposal = match self.pending {
            None => None,
            Some(store) => match store.propose(proposal).await {
                Ok(p) => Some(Box::new(p)),
                Err(e) => {
                    // The change stands; only the record of its preview is lost.
                    tracing::warn!(error = %e, seq = head.seq, "could not keep the preview of a mapping change");
                    None
                }
            },
        };
        Ok(Saved::Applied {
            changes: applied,
            proposal,
        })
    }

    /// Refuse an approver who is not a second named person.
    fn check_approver(&self, a: &Actor, proposer: &str, what: &str) -> ReviewResult<()> {
        if !a.is_named() {
            return Err(ReviewError::Forbidden(format!(
                "Approving {what} needs a named admin: {} is a shared credential (or names nobody), so it cannot be the second person. Sign in with your own token.",
                if a.name.trim().is_empty() { "this sign-in" } else { a.name.as_str() }
            )));
        }
        if a.is(proposer) {
            return Err(ReviewError::Forbidden(format!(
                "{} proposed {what}; another admin must approve it.",
                a.name
            )));
        }
        Ok(())
    }

    async fn pending_proposal(&self, id: u64) -> ReviewResult<ProposedChange> {
        let p =
            self.store()?.proposal(id).await?.ok_or_else(|| {
                ReviewError::NotFound(format!("no mapping change proposal #{id}"))
            })?;
        if p.status != ProposalStatus::Pending {
            return Err(ReviewError::Conflict(format!(
                "mapping change proposal #{id} is already {}",
                p.status.as_str()
            )));
        }
        Ok(p)
    }

    /// Approve proposal `id`: a named admin other than the proposer, on the
    /// mappings it was previewed against; applied in one transaction and
    /// audited. The caller re-checks held entries.
    pub async fn approve(&self, who: &Actor, id: u64) -> ReviewResult<Approved> {
        let store = self.store()?;
        let mut p = self.pending_proposal(id).await?;
        let proposer = p.change.changed_by.clone();
        if who.is_named() && who.is(&proposer) {
            return Err(ReviewError::Forbidden(format!(
                "You proposed mapping change #{id}; another admin must approve it."
            )));
        }
        self.check_approver(who, &proposer, &format!("mapping change #{id}"))?;
        let now_version = self.mappings.version().await?;
        if now_version != p.preview.mapping_version {
            return Err(ReviewError::Conflict(format!(
                "The mappings changed since proposal #{id} was previewed (version {} then, {now_version} now), so its preview may no longer be right. Preview the change again and propose it anew; reject this one.",
                p.preview.mapping_version
            )));
        }
        // Settling first makes two concurrent approvals apply it once.
        p.status = ProposalStatus::Applied;
        p.decided_by = Some(who.name.clone());
        p.decided_at = Some(Utc::now());
        store.settle(&p, ProposalStatus::Pending).await?;
        let now = Utc::now();
        let changes: Vec<MappingChange> = p
            .changes()
            .into_iter()
            .map(|mut c| {
                c.changed_at = now;
                c.reason = format!("{} (approved by {}, proposal #{id})", c.reason, who.name);
                c
            })
            .collect();
        let applied = match self.mappings.apply(changes).await {
            Ok(applied) if !applied.is_empty() => applied,
            outcome => {
                p.status = ProposalStatus::Pending;
                p.decided_by = None;
                p.decided_at = None;
                if let Err(e2) = store.settle(&p, ProposalStatus::Applied).await {
                    tracing::error!(error = %e2, id, "could not return a failed approval to pending");
                }
                return Err(match outcome {
                    Err(e) => e.into(),
                    Ok(_) => ReviewError::Unavailable("the change was not recorded".into()),
                });
            }
        };
        p.applied_seq = applied.first().map(|c| c.seq);
        if let Err(e) = store.settle(&p, ProposalStatus::Applied).await {
            tracing::warn!(error = %e, id, "could not record the applied change on its proposal");
        }
        let what = match applied.as_slice() {
            [c] => format!("#{} {}", c.seq, c.describe()),
            all => format!("{} changes from #{}", all.len(), all[0].seq),
        };
        self.audit
            .record(who.audit(
                "mapping_approve",
                None,
                format!(
                    "proposal #{id} by {proposer} applied as {what}: {}",
                    p.change.reason
                ),
            ))
            .await?;
        Ok(Approved {
            proposal: p,
            changes: applied,
        })
    }

    /// Reject proposal `id` with a reason; the mappings stay as they are.
    pub async fn reject(
        &self,
        who: &Actor,
        id: u64,
        reason: Option<&str>,
    ) -> ReviewResult<ProposedChange> {
        let reason = reason
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| ReviewError::invalid("`reason` is required", "reason"))?
            .to_string();
        let store = self.store()?;
        let mut p = self.pending_proposal(id).await?;
        p.status = ProposalStatus::Rejected;
        p.decided_by = Some(who.name.clone());
        p.decided_at = Some(Utc::now());
        p.decision_reason = Some(reason.clone());
        store.settle(&p, ProposalStatus::Pending).await?;
        self.audit
            .record(who.audit(
                "mapping_reject",
                None,
                format!(
                    "proposal #{id} by {} ({}) rejected: {reason}",
                    p.change.changed_by,
                    p.describe()
                ),
            ))
            .await?;
        Ok(p)
    }

    /// The open (held or exception) entries whose reason names `table`
    /// `key` as the missing mapping row.
    pub async fn open_entries_missing(
        &self,
        table: MappingTable,
        key: &str,
    ) -> ReviewResult<Vec<EntryKey>> {
        self.open_entries_missing_any(&[(table, key.to_string())])
            .await
    }

    /// The open (held or exception) entries whose reason names one of
    /// `rows` (table, key) as the missing mapping row.
    pub async fn open_entries_missing_any(
        &self,
        rows: &[(MappingTable, String)],
    ) -> ReviewResult<Vec<EntryKey>> {
        let keys: Option<Vec<crate::mapping::MappedKey>> = rows
            .iter()
            .map(|(t, k)| crate::mapping::keys::keys_of_row(*t, &normalise_key(k)))
            .collect();
        let rows: std::collections::HashSet<(&str, String)> = rows
            .iter()
            .map(|(t, k)| (t.as_str(), normalise_key(k)))
            .collect();
        let mut out = Vec::new();
        if rows.is_empty() {
            return Ok(out);
        }
        let lacks = |st: &EntryState| {
            matches!(st.status(), Status::Exception | Status::Held)
                && st
                    .reason
                    .as_ref()
                    .and_then(|r| r.missing_mapping.as_ref())
                    .is_some_and(|m| rows.contains(&(m.table.as_str(), normalise_key(&m.key))))
        };
        // Rows looked up by an indexed key: only the entries with that key
        // (over the mapped-key index); a row every entry looks up: every
        // open entry.
        match keys {
            Some(keys) => {
                let mut after: Option<EntryKey> = None;
                loop {
                    let page = self
                        .entries
                        .by_mapped_keys(&keys, after.as_ref(), PAGE)
                        .await?;
                    let full = page.len() >= PAGE;
                    after = page.last().map(|st| st.entry.key.clone());
                    out.extend(
                        page.into_iter()
                            .filter(|st| lacks(st))
                            .map(|st| st.entry.key),
                    );
                    if !full {
                        break;
                    }
                }
            }
            None => {
                for status in [Status::Exception, Status::Held] {
                    let open = crate::ports::status_states(self.entries, status).await?;
                    out.extend(
                        open.into_iter()
                            .filter(|st| lacks(st))
                            .map(|st| st.entry.key),
                    );
                }
            }
        }
        Ok(out)
    }

    /// Finance's inline fix: add the row `table` `key` → `target` that an
    /// open entry is missing, through the same review as any change (under
    /// the threshold it applies, above it it waits as a proposal). Refused
    /// when the row exists (409) or when no open entry is missing it (403).
    /// Returns what was saved and the open entries missing the row (to
    /// redrive once it applied).
    pub async fn add_missing_row(
        &self,
        who: &Actor,
        table: MappingTable,
        key: &str,
        target: &str,
        reason: &str,
    ) -> ReviewResult<(Saved, Vec<EntryKey>)> {
        let key = normalise_key(key);
        if key.is_empty() {
            return Err(ReviewError::invalid("`key` is required", "key"));
        }
        let target = target.trim();
        if target.is_empty() {
            return Err(ReviewError::invalid("`target` is required", "target"));
        }
        let current = self.mappings.snapshot().await?;
        if let Some(existing) = current.get(table, &key) {
            return Err(ReviewError::Conflict(format!(
                "{table} `{key}` is already mapped to {}; change it on the mappings page",
                existing.target
            )));
        }
        let open = self.open_entries_missing(table, &key).await?;
        if open.is_empty() {
            return Err(ReviewError::Forbidden(format!(
                "No held or exception entry is missing {table} `{key}`: the inline fix only adds a row an open entry needs. Other rows are added on the mappings page, by an admin."
            )));
        }
        let row = MappingRow::new(table, &key, target);
        let reason = format!("fix from the exceptions page: {reason}");
        let changes = draft(&current, &who.name, table, &key, Some(row), &reason)?
            .into_iter()
            .collect();
        let saved = self
            .save(who, None, &current, changes, "mapping_fix", None)
            .await?;
        Ok((saved, open))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn periods_parse_and_bad_ones_name_their_field() {
        let p = Period::parse(Some("2026-03-01"), Some("2026-03-31")).expect("period");
        assert_eq!((p.from, p.to), (d("2026-03-01"), d("2026-03-31")));
        let p = Period::parse(None, Some("2026-03-31")).expect("period");
        assert_eq!(p.from, d("2026-03-01"), "30 days back by default");
        let p = Period::parse(Some(" "), Some("2026-03-31")).expect("blank is absent");
        assert_eq!(p.from, d("2026-03-01"));
        for (from, to, field) in [
            (Some("2026-02-30"), Some("2026-03-31"), "from"),
            (Some("2026-03-01"), Some("31/03/2026"), "to"),
            (Some("2026-04-01"), Some("2026-03-31"), "from"),
            (Some("2024-01-01"), Some("2026-03-31"), "from"),
        ] {
            match Period::parse(from, to) {
                Err(ReviewError::Invalid { field: f, message }) => {
                    assert_eq!(f.as_deref(), Some(field), "{from:?} {to:?}: {message}")
                }
                other => panic!("{from:?} {to:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn only_a_named_person_other_than_the_proposer_may_approve() {
        let ann = Actor::person("ann", "admin");
        assert!(ann.is_named() && ann.is(" Ann "));
        let token = Actor::shared("admin", "admin");
        assert!(!token.is_named());
        assert!(!Actor::person("  ", "admin").is_named());
    }
}
