//! The Reconciliation page and `/api/reconciliation` on a real `timepost
//! serve`: an empty store, "Run now", a record deleted in the sandbox
//! books shows as a break linking to its entry, the CSV, the resolve
//! actions (roles, CSRF, dismissed and audited), and the dashboard figure.

use crate::common;
use crate::console::sign_in;

use common::console::raw;
use common::console_kit::*;
use common::Server;

/// Someone deletes the entry's records in the sandbox books.
fn delete_in_books(dir: &std::path::Path, key: &str) {
    let conn = rusqlite::Connection::open(dir.join(".timepost/timepost.sqlite")).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .unwrap();
    let n = conn
        .execute(
            "UPDATE sandbox_records SET active = 0, sync_token = sync_token + 1 WHERE entry_key = ?1 AND active = 1",
            [key],
        )
        .unwrap();
    assert!(n > 0, "no active record of {key}");
}

#[test]
fn runs_breaks_csv_and_a_dismissal_through_the_page() {
    let d = prepare(&[], &[], "project,9001,C-ACME,\nemployee,101,E-100,\n");
    let srv = Server::start(d.path());

    // Empty store: the page answers, nothing to show, no forms for the
    // auditor; others than admin/finance/auditor are refused.
    let (st, page) = get(&srv, "auditor", "/console/reconciliation");
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("No reconciliation run stored yet."), "{page}");
    assert!(!page.contains("Run now"), "{page}");
    assert!(
        page.contains("href=\"/console/reconciliation\""),
        "nav: {page}"
    );
    for role in ["viewer", "manager"] {
        assert_eq!(get(&srv, role, "/console/reconciliation").0, 403);
        let (_, p) = get(&srv, role, "/console");
        assert!(!p.contains("href=\"/console/reconciliation\""), "{p}");
    }
    let (st, csv) = get(&srv, "auditor", "/console/reconciliation.csv");
    assert_eq!(st, 200);
    assert_eq!(csv.lines().count(), 1, "{csv}");
    assert_eq!(get(&srv, "auditor", "/console/reconciliation?run=x").0, 400);
    assert_eq!(
        get(&srv, "auditor", "/console/reconciliation?run=99").0,
        404
    );
    let (st, _) = post_form(
        &srv,
        &bearer("auditor"),
        "/console/reconciliation/run",
        &[("period", "2026-03-01..2026-03-31")],
    );
    assert_eq!(st, 403);

    let key = Toggl::new(41).send(&srv);
    wait_status(&srv, &key, "posted");
    let (st, body) = post_form(
        &srv,
        &bearer("finance"),
        "/console/reconciliation/run",
        &[("period", "2026-03-01..2026-03-31")],
    );
    assert_eq!(st, 303, "{body}");
    let (_, page) = get(&srv, "finance", "/console/reconciliation");
    assert!(page.contains("<td>agrees</td>"), "{page}");
    assert!(page.contains("No break: the three sides agree."), "{page}");
    let (st, body) = post_form(
        &srv,
        &bearer("finance"),
        "/console/reconciliation/run",
        &[("period", "fortnight")],
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("<code>period</code>"), "{body}");

    // Deleted in the books: the next run names it, with the entry's page.
    delete_in_books(d.path(), &key);
    let (st, run) = post_json(
        &srv,
        &bearer("admin"),
        "/api/reconciliation/run",
        &serde_json::json!({"period": "2026-03-01..2026-03-31"}),
    );
    assert_eq!(st, 201, "{run}");
    assert_eq!(run["summary"]["seq"], 2);
    assert_eq!(run["summary"]["breaks"], 1, "{run}");
    let brk = run["breaks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["code"] == "DELETED_IN_BOOKS")
        .unwrap_or_else(|| panic!("{run}"))
        .clone();
    let id = brk["id"].as_str().unwrap().to_string();
    let (_, page) = get(&srv, "finance", "/console/reconciliation");
    assert!(page.contains("1 break(s)"), "{page}");
    assert!(page.contains(&format!("data-break=\"{id}\"")), "{page}");
    assert!(page.contains("DELETED_IN_BOOKS"), "{page}");
    assert!(
        page.contains("href=\"/console/exceptions/toggl%3A555%3A41\""),
        "{page}"
    );
    assert!(page.contains("Accept the books") && page.contains("Dismiss"));
    let (_, page) = get(&srv, "auditor", "/console/reconciliation?run=2");
    assert!(page.contains("DELETED_IN_BOOKS") && !page.contains("Dismiss</button>"));
    let (_, dash) = get(&srv, "auditor", "/console");
    assert!(
        dash.contains("<a href=\"/console/reconciliation?run=2\">1 break(s) open</a>"),
        "{dash}"
    );
    let (st, csv) = get(&srv, "auditor", "/console/reconciliation.csv?run=2");
    assert_eq!(st, 200);
    assert!(
        csv.lines()
            .any(|l| l.contains(&id) && l.contains("DELETED_IN_BOOKS") && l.contains(&key)),
        "{csv}"
    );
    let runs = get_json(&srv, "auditor", "/api/reconciliation/runs");
    assert_eq!(runs.as_array().unwrap().len(), 2);
    let breaks = get_json(&srv, "auditor", "/api/reconciliation/runs/2/breaks");
    assert!(breaks
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["id"] == id.as_str()));

    // A signed-in finance user without the CSRF token: refused, nothing
    // stored.
    let fin = sign_in(&srv, "finance");
    let form = format!("id={id}&action=dismiss&reason=known");
    let (st, _, body) = raw(
        &srv.addr,
        "POST",
        "/console/reconciliation/resolve",
        &[
            ("Cookie", &fin.cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        form.as_bytes(),
    );
    assert_eq!(st, 403, "{body}");
    assert!(audit(&srv, "reconcile_dismiss").is_empty());
    // Dismiss needs a reason; an auditor may not.
    let (st, body) = post_form(
        &srv,
        &bearer("finance"),
        "/console/reconciliation/resolve",
        &[("id", &id), ("action", "dismiss"), ("reason", " ")],
    );
    assert_eq!(st, 400, "{body}");
    let (st, _) = post_form(
        &srv,
        &bearer("auditor"),
        "/console/reconciliation/resolve",
        &[("id", &id), ("action", "dismiss"), ("reason", "x")],
    );
    assert_eq!(st, 403);
    // With the session and its token: dismissed, audited as the user.
    let (st, head, body) = raw(
        &srv.addr,
        "POST",
        "/console/reconciliation/resolve",
        &[
            ("Cookie", &fin.cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        format!("csrf={}&{form}", fin.csrf).as_bytes(),
    );
    assert_eq!(st, 303, "{head}\n{body}");
    let a = audit(&srv, "reconcile_dismiss");
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["who"], "finance-user");
    assert_eq!(a[0]["entry"], key.as_str());
    // The next run shows it dismissed and counts no break.
    let (st, run) = post_json(
        &srv,
        &bearer("finance"),
        "/api/reconciliation/run",
        &serde_json::json!({"period": "2026-03-01..2026-03-31"}),
    );
    assert_eq!(st, 201, "{run}");
    assert_eq!(run["summary"]["breaks"], 0, "{run}");
    assert_eq!(run["summary"]["dismissed"], 1, "{run}");
    let (_, page) = get(&srv, "finance", "/console/reconciliation");
    assert!(page.contains("dismissed: known"), "{page}");
    // The API: unknown break 404, bad action 400.
    let (st, _) = post_json(
        &srv,
        &bearer("finance"),
        "/api/reconciliation/breaks/b-000000000000/resolve",
        &serde_json::json!({"action": "dismiss", "reason": "x"}),
    );
    assert_eq!(st, 404);
    let (st, v) = post_json(
        &srv,
        &bearer("finance"),
        &format!("/api/reconciliation/breaks/{id}/resolve"),
        &serde_json::json!({"action": "shred"}),
    );
    assert_eq!(st, 400, "{v}");
    assert_eq!(v["field"], "action");
}

/// `timepost serve` reconciles on its schedule (`[reconcile]
/// schedule_secs`): the last closed week and the current one are stored as
/// runs by `schedule`, and the KPI reconciliation time reads them — the
/// closed week measured from its end to its first run with zero breaks,
/// the current week not over yet.
#[test]
fn serve_reconciles_on_its_schedule_and_the_kpi_reads_the_runs() {
    let d = prepare(&[], &[], "");
    let path = d.path().join("timepost.toml");
    let mut cfg = std::fs::read_to_string(&path).unwrap();
    cfg.push_str("\n[reconcile]\nschedule_secs = 1\n");
    std::fs::write(&path, cfg).unwrap();
    let srv = Server::start(d.path());

    let start = std::time::Instant::now();
    let runs = loop {
        let runs = get_json(&srv, "auditor", "/api/reconciliation/runs");
        let runs = runs.as_array().unwrap().clone();
        if runs.len() >= 2 {
            break runs;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "no scheduled run stored: {runs:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    // The oldest two: one scheduled run, both weeks of its day.
    let (a, b) = (&runs[runs.len() - 1], &runs[runs.len() - 2]);
    assert_eq!(
        (a["by"].as_str(), b["by"].as_str()),
        (Some("schedule"), Some("schedule"))
    );
    let day = a["started_at"].as_str().unwrap()[..10]
        .parse::<chrono::NaiveDate>()
        .unwrap();
    let [closed, current] = timepost::reconcile::scheduled::scheduled_periods(day);
    let period = |r: &serde_json::Value| {
        (
            r["period"]["from"].as_str().unwrap().to_string(),
            r["period"]["to"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(period(a), (closed.from.to_string(), closed.to.to_string()));
    assert_eq!(
        period(b),
        (current.from.to_string(), current.to.to_string())
    );
    assert_eq!(a["breaks"], 0, "{a}");
    assert_eq!(a["tracker"], "received", "no poller configured: {a}");

    // The KPI: the closed week reconciled in its first run after its end,
    // the current week not over.
    let kpi = get_json(&srv, "auditor", "/api/reconciliation/kpi");
    let periods = kpi["periods"].as_array().unwrap();
    let of = |p: &timepost::reconcile::Period| {
        periods
            .iter()
            .find(|x| x["period"]["from"] == p.from.to_string())
            .unwrap_or_else(|| panic!("{p} in {kpi}"))
            .clone()
    };
    let closed_kpi = of(&closed);
    assert_eq!(closed_kpi["state"], "reconciled", "{kpi}");
    assert_eq!(closed_kpi["run"], a["seq"], "{kpi}");
    assert!(closed_kpi["minutes"].as_i64().unwrap() >= 0, "{kpi}");
    assert_eq!(of(&current)["state"], "open", "{kpi}");
    assert!(kpi["median_minutes"].is_i64(), "{kpi}");
    let (_, page) = get(&srv, "finance", "/console/reconciliation");
    assert!(page.contains("id=\"reconciliation-time\""), "{page}");
    assert!(page.contains("period not over"), "{page}");
    let (_, dash) = get(&srv, "auditor", "/console");
    assert!(dash.contains("id=\"kpi-reconciliation-time\""), "{dash}");
    // Viewers see neither the figure nor its API.
    assert_eq!(get(&srv, "viewer", "/api/reconciliation/kpi").0, 403);
}
