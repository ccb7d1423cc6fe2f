use super::*;
use crate::model::{Currency, Money};
use timepost_core::ledger::Party;

fn d(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, day).expect("date")
}

fn period() -> Period {
    Period {
        from: d(2),
        to: d(8),
    }
}

fn line(tier: &str, minutes: i64) -> PostingLine {
    PostingLine {
        tier: tier.into(),
        party: Party::Employee { id: "E-1".into() },
        txn_date: d(3),
        minutes,
        customer: Some("C-1".into()),
        service_item: Some("I-1".into()),
        class: None,
        department: None,
        payroll_item: None,
        account: "A".into(),
        billable: true,
        hourly_rate: Some(Money::new(
            Decimal::new(100, 0),
            "USD".parse::<Currency>().expect("currency"),
        )),
        original_rate: None,
        fx_rate: None,
        fx_date: None,
        description: "work".into(),
    }
}

fn rec(id: &str, tier: &str) -> RecordRef {
    RecordRef {
        id: id.into(),
        sync_token: "0".into(),
        tier: tier.into(),
    }
}

fn book(id: &str, fp: Option<&str>, minutes: i64) -> BookRecord {
    BookRecord {
        id: id.into(),
        sync_token: "0".into(),
        fingerprint: fp.map(str::to_string),
        txn_date: d(3),
        party: Some(Party::Employee { id: "E-1".into() }),
        minutes,
        customer: Some("C-1".into()),
        billable: Some(true),
        service_item: Some("I-1".into()),
        hourly_rate: Some(Decimal::new(100, 0)),
        description: "work".into(),
        locked: false,
    }
}

fn expected(key: &str, records: Vec<RecordRef>, lines: Vec<PostingLine>) -> Expected {
    Expected {
        key: key.into(),
        worker: "u".into(),
        posted: true,
        newer_version: false,
        lines,
        records,
    }
}

fn codes(c: &Comparison) -> Vec<(ExceptionCode, bool)> {
    c.breaks.iter().map(|b| (b.code, b.info)).collect()
}

fn run(sides: &Sides) -> Comparison {
    compare(&period(), sides, &ReconcileConfig::default(), "qbo")
}

#[test]
fn agreeing_sides_have_no_break_and_one_row() {
    let sides = Sides {
        timepost: vec![expected(
            "k1",
            vec![rec("1", "regular")],
            vec![line("regular", 60)],
        )],
        books: vec![book("1", Some("fp1"), 60)],
        ..Sides::default()
    };
    let c = run(&sides);
    assert!(c.breaks.is_empty(), "{:?}", c.breaks);
    assert_eq!(c.rows.len(), 1);
    assert_eq!(
        (c.rows[0].timepost_minutes, c.rows[0].books_minutes),
        (60, 60)
    );
}

#[test]
fn each_class_is_found() {
    let mut changed = book("2", Some("fp2"), 90);
    changed.customer = Some("C-2".into());
    let mut rate = book("3", Some("fp3"), 60);
    rate.hourly_rate = Some(Decimal::new(120, 0));
    let mut locked = book("4", Some("fp4"), 60);
    locked.locked = true;
    let mut newer = expected("k4", vec![rec("4", "regular")], vec![line("regular", 60)]);
    newer.newer_version = true;
    let sides = Sides {
        timepost: vec![
            expected("k1", vec![rec("1", "regular")], vec![line("regular", 60)]),
            expected("k2", vec![rec("2", "regular")], vec![line("regular", 60)]),
            expected("k3", vec![rec("3", "regular")], vec![line("regular", 60)]),
            newer,
            expected("k5", vec![], vec![line("regular", 30)]),
            expected("k6", vec![rec("6", "regular")], vec![line("regular", 60)]),
        ],
        books: vec![
            changed,
            rate,
            locked,
            book("6", Some("fp6"), 60),
            book("7", Some("fp6"), 60),
            book("8", Some("fpX"), 15),
            book("9", None, 45),
        ],
        tracker: TrackerSide {
            received: vec![],
            listed: Some(vec![TrackerEntry {
                key: "harvest:1:99".into(),
                worker: "u".into(),
                project: None,
                date: d(4),
                minutes: 120,
                updated_at: Utc::now(),
                deleted: false,
            }]),
            listed_from: Some("harvest".into()),
        },
    };
    let c = run(&sides);
    let found = codes(&c);
    for code in [
        ExceptionCode::DeletedInBooks,
        ExceptionCode::ChangedInBooks,
        ExceptionCode::AmountDiffers,
        ExceptionCode::BilledWithNewerVersion,
        ExceptionCode::MissingInBooks,
        ExceptionCode::DuplicateInBooks,
        ExceptionCode::UnownedInBooks,
        ExceptionCode::NeverReceived,
    ] {
        assert!(found.contains(&(code, false)), "{code}: {found:?}");
    }
    assert!(found.contains(&(ExceptionCode::NotTimepostsRecord, true)));
    assert_eq!(c.counts().values().sum::<usize>(), 8, "{:?}", c.counts());
    let ch = c
        .breaks
        .iter()
        .find(|b| b.code == ExceptionCode::ChangedInBooks)
        .expect("changed");
    assert!(ch.said.contains("1:30 h instead of 1:00 h"), "{}", ch.said);
    assert!(
        ch.said.contains("customer C-2 instead of C-1"),
        "{}",
        ch.said
    );
    let dup = c
        .breaks
        .iter()
        .find(|b| b.code == ExceptionCode::DuplicateInBooks)
        .expect("dup");
    assert_eq!(dup.record.as_deref(), Some("7"));
    // The ids are stable: the same sides give the same ids.
    let again = run(&sides);
    let ids = |c: &Comparison| c.breaks.iter().map(|b| b.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&c), ids(&again));
}

#[test]
fn tolerances_and_foreign_records_follow_the_config() {
    let sides = Sides {
        timepost: vec![expected(
            "k1",
            vec![rec("1", "regular")],
            vec![line("regular", 60)],
        )],
        books: vec![book("1", Some("fp1"), 61), book("9", None, 45)],
        ..Sides::default()
    };
    let strict = run(&sides);
    assert_eq!(
        codes(&strict),
        vec![
            (ExceptionCode::ChangedInBooks, false),
            (ExceptionCode::NotTimepostsRecord, true)
        ]
    );
    // One minute allowed: the hours agree, but 1 min at 100/h is 1.67 of
    // amount, beyond 0.01.
    let cfg = ReconcileConfig {
        tolerance_minutes: 1,
        foreign_records_are_breaks: true,
        ..ReconcileConfig::default()
    };
    let c = compare(&period(), &sides, &cfg, "qbo");
    assert_eq!(
        codes(&c),
        vec![
            (ExceptionCode::AmountDiffers, false),
            (ExceptionCode::NotTimepostsRecord, false)
        ]
    );
    let loose = ReconcileConfig {
        tolerance_minutes: 1,
        tolerance_amount: Decimal::new(2, 0),
        ..ReconcileConfig::default()
    };
    let c = compare(&period(), &sides, &loose, "qbo");
    assert_eq!(c.counts().len(), 0, "{:?}", c.breaks);
}

#[test]
fn a_newer_version_listed_is_never_received_and_out_of_period_is_ignored() {
    let t0 = Utc::now() - chrono::Duration::hours(2);
    let mk = |key: &str, date: NaiveDate, at| TrackerEntry {
        key: key.into(),
        worker: "u".into(),
        project: None,
        date,
        minutes: 60,
        updated_at: at,
        deleted: false,
    };
    let sides = Sides {
        tracker: TrackerSide {
            received: vec![mk("a", d(3), t0), mk("b", d(3), t0)],
            listed: Some(vec![
                mk("a", d(3), t0),
                mk("b", d(3), Utc::now()),
                mk("c", d(20), t0),
            ]),
            listed_from: Some("toggl".into()),
        },
        ..Sides::default()
    };
    let c = run(&sides);
    assert_eq!(codes(&c), vec![(ExceptionCode::NeverReceived, false)]);
    assert_eq!(c.breaks[0].entry.as_deref(), Some("b"));
}

#[test]
fn periods_parse() {
    let today = NaiveDate::from_ymd_opt(2026, 3, 11).expect("date");
    assert_eq!(
        Period::parse("week", today),
        Ok(Period {
            from: NaiveDate::from_ymd_opt(2026, 3, 2).expect("d"),
            to: NaiveDate::from_ymd_opt(2026, 3, 8).expect("d")
        })
    );
    assert_eq!(
        Period::parse("month", today),
        Ok(Period {
            from: NaiveDate::from_ymd_opt(2026, 2, 1).expect("d"),
            to: NaiveDate::from_ymd_opt(2026, 2, 28).expect("d")
        })
    );
    assert_eq!(
        Period::parse("2026-03-01..2026-03-31", today).map(|p| p.to_string()),
        Ok("2026-03-01..2026-03-31".to_string())
    );
    assert!(Period::parse("2026-03-31..2026-03-01", today).is_err());
    assert!(Period::parse("fortnight", today).is_err());
}

#[test]
fn the_reconcile_section_reads_with_defaults_and_refuses_unknown_keys() {
    let base = include_str!("../../../examples/sandbox/timepost.toml");
    let c = crate::config::Config::parse(base, "sandbox").expect("config");
    assert_eq!(c.reconcile, ReconcileConfig::default());
    assert_eq!(c.reconcile.tolerance_amount, Decimal::new(1, 2));
    assert_eq!(c.reconcile.schedule_secs, 86_400, "daily by default");
    let text = format!(
        "{base}\n[reconcile]\ntolerance_minutes = 2\ntolerance_amount = 0.5\nforeign_records_are_breaks = true\nschedule_secs = 3600\n"
    );
    let c = crate::config::Config::parse(&text, "t").expect("config");
    assert_eq!(
        c.reconcile,
        ReconcileConfig {
            tolerance_minutes: 2,
            tolerance_amount: Decimal::new(5, 1),
            foreign_records_are_breaks: true,
            schedule_secs: 3600,
        }
    );
    let bad = format!("{base}\n[reconcile]\ntolerance_hours = 1\n");
    assert!(crate::config::Config::parse(&bad, "t").is_err());
}
