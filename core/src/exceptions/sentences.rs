//! The sentences an entry's exception carries, one constructor per
//! situation, beside the catalogue ([`super::ExceptionCode`]): the code's
//! title says what kind of problem it is; the sentence built here says
//! what happened to this entry, in a bookkeeper's words (who, when, how
//! much, which mapping). The decision (`crate::pipeline`) only picks the
//! situation, so the same situation is always worded the same way.

use std::fmt::Display;

use chrono::NaiveDate;

use super::{Exception, ExceptionCode};
use crate::model::NormalisedEntry;

/// Who tracked the time, as the sentences name them: name and e-mail when
/// the tracker gives them, else the tracker's user id.
pub fn who(e: &NormalisedEntry) -> String {
    match (&e.worker.name, &e.worker.email) {
        (Some(n), Some(m)) => format!("{n} <{m}>"),
        (Some(n), None) => format!("{n} (tracker user {})", e.worker.tracker_user_id),
        (None, Some(m)) => m.clone(),
        (None, None) => format!("tracker user {}", e.worker.tracker_user_id),
    }
}

/// `2 h 05 min` style, for sentences.
pub fn fmt_minutes(m: i64) -> String {
    format!("{} h {:02} min", m / 60, m % 60)
}

impl Exception {
    /// `INVALID_ENTRY`: the entry ends before it starts.
    pub fn ends_before_start(e: &NormalisedEntry) -> Self {
        Self::new(
            ExceptionCode::InvalidEntry,
            format!(
                "The entry on {} ends before it starts ({} seconds).",
                e.work_date, e.duration_secs
            ),
        )
    }

    /// `ENTRY_TOO_LONG`: longer than the rules' `max_entry_hours`.
    pub fn entry_too_long(e: &NormalisedEntry, max_hours: u32) -> Self {
        Self::new(
            ExceptionCode::EntryTooLong,
            format!(
                "The entry on {} lasts {:.1} hours; the rules allow at most {} hours in one entry.",
                e.work_date,
                e.duration_secs as f64 / 3600.0,
                max_hours
            ),
        )
    }

    /// `RATE_OUT_OF_BOUNDS`: a negative hourly rate.
    pub fn negative_rate(e: &NormalisedEntry, amount: impl Display) -> Self {
        Self::new(
            ExceptionCode::RateOutOfBounds,
            format!(
                "Billable time by {} on {} carries a negative hourly rate ({}); a rate cannot be negative.",
                who(e),
                e.work_date,
                amount
            ),
        )
    }

    /// `RATE_OUT_OF_BOUNDS`: an hourly rate above the rules' bound for its
    /// currency.
    pub fn rate_too_high(
        e: &NormalisedEntry,
        amount: impl Display,
        currency: impl Display,
        max: impl Display,
    ) -> Self {
        Self::new(
            ExceptionCode::RateOutOfBounds,
            format!(
                "Billable time by {} on {} carries an hourly rate of {amount} {currency}; the rules accept at most {max} {currency} an hour.",
                who(e),
                e.work_date,
            ),
        )
    }

    /// `WORK_DATE_OUT_OF_RANGE`: dated outside the window the rules accept
    /// around the day timepost received it.
    pub fn work_date_out_of_range(
        e: &NormalisedEntry,
        received: NaiveDate,
        earliest: NaiveDate,
        latest: NaiveDate,
    ) -> Self {
        Self::new(
            ExceptionCode::WorkDateOutOfRange,
            format!(
                "{} has time dated {}, but timepost received it on {received}; the rules accept work dates from {earliest} to {latest}.",
                who(e),
                e.work_date,
            ),
        )
    }

    /// `UNMAPPED_EMPLOYEE`: the tracker user has no row in `table`
    /// (`employee`, or `vendor` for a contractor).
    pub fn unmapped_worker(e: &NormalisedEntry, minutes: i64, table: &str) -> Self {
        Self::missing(
            ExceptionCode::UnmappedEmployee,
            format!(
                "{} has {} on {} but is not linked to an employee or vendor in the books.",
                who(e),
                fmt_minutes(minutes),
                e.work_date
            ),
            table,
            e.worker.tracker_user_id.clone(),
        )
    }

    /// `CONTRACTOR_MAPPED_AS_EMPLOYEE`: a contractor in the tracker whose
    /// row names an employee.
    pub fn contractor_mapped_as_employee(e: &NormalisedEntry, employee: &str) -> Self {
        Self::new(
            ExceptionCode::ContractorMappedAsEmployee,
            format!(
                "{} is a contractor in the tracker but is mapped to employee {employee}.",
                who(e),
            ),
        )
    }

    /// `UNMAPPED_PROJECT`: the entry's project has no row.
    pub fn unmapped_project(e: &NormalisedEntry, minutes: i64) -> Self {
        let project = e.project.as_ref();
        Self::missing(
            ExceptionCode::UnmappedProject,
            format!(
                "Project \"{}\" ({} by {} on {}) is not linked to a customer or job.",
                project.map(|p| p.label()).unwrap_or_default(),
                fmt_minutes(minutes),
                who(e),
                e.work_date
            ),
            "project",
            project.map(|p| p.id.clone()).unwrap_or_default(),
        )
    }

    /// `UNMAPPED_PROJECT`: billable time without a project.
    pub fn billable_without_project(e: &NormalisedEntry) -> Self {
        Self::missing(
            ExceptionCode::UnmappedProject,
            format!(
                "Billable time by {} on {} has no project, so there is no customer to bill.",
                who(e),
                e.work_date
            ),
            "project",
            "",
        )
    }

    /// `UNMAPPED_SERVICE_ITEM`: neither the task, a tag nor `*` has a row.
    pub fn unmapped_service_item(e: &NormalisedEntry) -> Self {
        let what = e
            .task
            .as_ref()
            .map(|t| format!("task \"{}\"", t.label()))
            .unwrap_or_else(|| "this entry (no task, no mapped tag)".to_string());
        Self::missing(
            ExceptionCode::UnmappedServiceItem,
            format!("No service item is mapped for {what}."),
            "service_item",
            e.task
                .as_ref()
                .map(|t| t.id.clone())
                .unwrap_or_else(|| "*".into()),
        )
    }

    /// `UNMAPPED_GL_ACCOUNT`: the account of `role` (labour expense,
    /// billable income) has no row.
    pub fn unmapped_gl_account(role: &str) -> Self {
        Self::missing(
            ExceptionCode::UnmappedGlAccount,
            format!("The `{role}` account is not mapped, so this time has no account to land in."),
            "gl_account",
            role,
        )
    }

    /// `MISSING_RATE`: billable time priced by the tracker without a rate.
    pub fn missing_rate(e: &NormalisedEntry) -> Self {
        Self::new(
            ExceptionCode::MissingRate,
            format!(
                "Billable time by {} on {} has no hourly rate in the tracker.",
                who(e),
                e.work_date
            ),
        )
    }

    /// `NO_EXCHANGE_RATE`: the rate cannot be converted to the home
    /// currency (`why` says which rate is missing).
    pub fn no_exchange_rate(e: &NormalisedEntry, why: impl Display) -> Self {
        Self::new(
            ExceptionCode::NoExchangeRate,
            format!("Billable time by {} on {}: {why}.", who(e), e.work_date),
        )
    }

    /// `UNMAPPED_PAYROLL_ITEM`: `minutes` of overtime tier `tier` and no
    /// payroll item for it.
    pub fn unmapped_payroll_item(e: &NormalisedEntry, minutes: i64, tier: &str) -> Self {
        Self::missing(
            ExceptionCode::UnmappedPayrollItem,
            format!(
                "{} of {} on {} is `{tier}` time, and `{tier}` has no payroll item.",
                fmt_minutes(minutes),
                who(e),
                e.work_date
            ),
            "payroll_item",
            tier,
        )
    }

    /// `UNMAPPED_GL_ACCOUNT`: routed to the holding account, which the
    /// rules do not name.
    pub fn holding_account_not_set() -> Self {
        Self::missing(
            ExceptionCode::UnmappedGlAccount,
            "The entry was routed to the holding account, but `rules.holding_account` is not set.",
            "gl_account",
            "holding",
        )
    }

    /// `UNMAPPED_EMPLOYEE`: routed to the holding account, but neither the
    /// worker's row nor `rules.holding_employee` says whose time it is.
    pub fn holding_without_worker(e: &NormalisedEntry) -> Self {
        Self::missing(
            ExceptionCode::UnmappedEmployee,
            format!(
                "{} is not linked to an employee or vendor, and `rules.holding_employee` is not set, so the time cannot be recorded on the holding account.",
                who(e)
            ),
            "employee",
            e.worker.tracker_user_id.clone(),
        )
    }

    /// `LEDGER_UNAVAILABLE`: the accounting system did not answer or
    /// refused for a reason that is not the entry's.
    pub fn ledger_unavailable(error: impl Display) -> Self {
        Self::new(
            ExceptionCode::LedgerUnavailable,
            format!("The accounting system did not accept the posting: {error}."),
        )
    }

    /// `LEDGER_UNAVAILABLE`: the message was tried `tries` times, the last
    /// failing with `error`.
    pub fn retries_exhausted(tries: u32, error: impl Display) -> Self {
        Self::new(
            ExceptionCode::LedgerUnavailable,
            format!("Tried {tries} times without success: {error}."),
        )
    }

    /// `ROLLED_BACK`: held after `by` rolled back batch `batch` (`what`:
    /// what the rollback did to the books).
    pub fn rolled_back(batch: &str, by: &str, what: impl Display) -> Self {
        Self::new(
            ExceptionCode::RolledBack,
            format!("Rolled back with batch {batch} by {by}: {what}."),
        )
    }

    /// `TRACKER_ENTRY_UNREADABLE`: a polled entry the tracker's answer did
    /// not let timepost read.
    pub fn tracker_entry_unreadable(vendor: &str, id: &str, reason: impl Display) -> Self {
        Self::new(
            ExceptionCode::TrackerEntryUnreadable,
            format!(
                "{vendor} time entry {id} could not be read ({reason}), so timepost left this version out."
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Ref;

    fn entry() -> NormalisedEntry {
        let mut e: NormalisedEntry = serde_json::from_value(serde_json::json!({
            "key": {"source": "toggl", "workspace": "1", "id": "77"},
            "version": {"updated_at": "2026-03-02T00:00:00Z", "content_hash": "h"},
            "worker": {"tracker_user_id": "u-9", "name": "Dana Ruiz", "email": "dana@example.com"},
            "time_zone": "UTC", "work_date": "2026-03-02",
            "duration_secs": 5400, "billable": true, "approval": "approved", "origin": "web"
        }))
        .expect("entry");
        e.project = Some(Ref::new("p-4", Some("Website redesign".into())));
        e.task = Some(Ref::new("t-2", Some("Design".into())));
        e
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    /// An exception, the code it must carry and the (table, key) of the
    /// mapping it says is missing.
    type Case = (
        Exception,
        ExceptionCode,
        Option<(&'static str, &'static str)>,
    );

    #[test]
    fn each_situation_carries_its_code_its_mapping_and_a_sentence() {
        let e = entry();
        let cases: Vec<Case> = vec![
            (
                Exception::ends_before_start(&e),
                ExceptionCode::InvalidEntry,
                None,
            ),
            (
                Exception::entry_too_long(&e, 1),
                ExceptionCode::EntryTooLong,
                None,
            ),
            (
                Exception::negative_rate(&e, "-5"),
                ExceptionCode::RateOutOfBounds,
                None,
            ),
            (
                Exception::rate_too_high(&e, "900", "USD", "500"),
                ExceptionCode::RateOutOfBounds,
                None,
            ),
            (
                Exception::work_date_out_of_range(
                    &e,
                    d("2026-06-01"),
                    d("2026-05-01"),
                    d("2026-06-08"),
                ),
                ExceptionCode::WorkDateOutOfRange,
                None,
            ),
            (
                Exception::unmapped_worker(&e, 90, "employee"),
                ExceptionCode::UnmappedEmployee,
                Some(("employee", "u-9")),
            ),
            (
                Exception::unmapped_worker(&e, 90, "vendor"),
                ExceptionCode::UnmappedEmployee,
                Some(("vendor", "u-9")),
            ),
            (
                Exception::contractor_mapped_as_employee(&e, "E-1"),
                ExceptionCode::ContractorMappedAsEmployee,
                None,
            ),
            (
                Exception::unmapped_project(&e, 90),
                ExceptionCode::UnmappedProject,
                Some(("project", "p-4")),
            ),
            (
                Exception::billable_without_project(&e),
                ExceptionCode::UnmappedProject,
                Some(("project", "")),
            ),
            (
                Exception::unmapped_service_item(&e),
                ExceptionCode::UnmappedServiceItem,
                Some(("service_item", "t-2")),
            ),
            (
                Exception::unmapped_gl_account("labour_expense"),
                ExceptionCode::UnmappedGlAccount,
                Some(("gl_account", "labour_expense")),
            ),
            (
                Exception::missing_rate(&e),
                ExceptionCode::MissingRate,
                None,
            ),
            (
                Exception::no_exchange_rate(&e, "no EUR rate on 2026-03-02"),
                ExceptionCode::NoExchangeRate,
                None,
            ),
            (
                Exception::unmapped_payroll_item(&e, 30, "overtime"),
                ExceptionCode::UnmappedPayrollItem,
                Some(("payroll_item", "overtime")),
            ),
            (
                Exception::holding_account_not_set(),
                ExceptionCode::UnmappedGlAccount,
                Some(("gl_account", "holding")),
            ),
            (
                Exception::holding_without_worker(&e),
                ExceptionCode::UnmappedEmployee,
                Some(("employee", "u-9")),
            ),
            (
                Exception::ledger_unavailable("timeout"),
                ExceptionCode::LedgerUnavailable,
                None,
            ),
            (
                Exception::retries_exhausted(5, "timeout"),
                ExceptionCode::LedgerUnavailable,
                None,
            ),
            (
                Exception::rolled_back("b-1", "ann", "voided in QuickBooks"),
                ExceptionCode::RolledBack,
                None,
            ),
            (
                Exception::tracker_entry_unreadable("Harvest", "42", "no spent_date"),
                ExceptionCode::TrackerEntryUnreadable,
                None,
            ),
        ];
        for (exc, code, missing) in cases {
            assert_eq!(exc.code, code, "{}", exc.message);
            assert_eq!(exc.fix_hint, code.fix_hint(), "the catalogue's hint");
            assert!(exc.message.ends_with('.'), "a sentence: {}", exc.message);
            assert!(!exc.message.contains("{}"), "filled in: {}", exc.message);
            assert_eq!(
                exc.missing_mapping
                    .as_ref()
                    .map(|m| (m.table.as_str(), m.key.as_str())),
                missing,
                "{}",
                exc.message
            );
        }
    }

    #[test]
    fn sentences_name_who_when_and_how_much() {
        let e = entry();
        assert_eq!(
            Exception::unmapped_project(&e, 90).message,
            "Project \"Website redesign\" (1 h 30 min by Dana Ruiz <dana@example.com> on 2026-03-02) is not linked to a customer or job."
        );
        assert_eq!(
            Exception::unmapped_payroll_item(&e, 125, "overtime").message,
            "2 h 05 min of Dana Ruiz <dana@example.com> on 2026-03-02 is `overtime` time, and `overtime` has no payroll item."
        );
        assert_eq!(
            Exception::entry_too_long(&e, 1).message,
            "The entry on 2026-03-02 lasts 1.5 hours; the rules allow at most 1 hours in one entry."
        );
        let mut anonymous = e.clone();
        anonymous.worker.name = None;
        anonymous.worker.email = None;
        anonymous.task = None;
        assert_eq!(who(&anonymous), "tracker user u-9");
        assert_eq!(
            Exception::unmapped_service_item(&anonymous).message,
            "No service item is mapped for this entry (no task, no mapped tag)."
        );
        assert_eq!(
            Exception::unmapped_service_item(&anonymous)
                .missing_mapping
                .map(|m| m.key),
            Some("*".to_string())
        );
    }
}
