//! The dashboard's filters (period, billable, currency) on hours by project
//! and employee and on its CSV, and the KPIs over time (share mapped,
//! unmapped rate, exceptions, time to resolve, posting latency) as inline
//! SVG charts, on a real `timepost serve`.

use crate::common;

use common::console_kit::*;
use common::Server;

fn figure(page: &str, id: &str) -> String {
    page.split(&format!("id=\"{id}\">"))
        .nth(1)
        .and_then(|r| r.split('<').next())
        .unwrap_or_else(|| panic!("no {id} in {page}"))
        .to_string()
}

#[test]
fn filters_change_the_figures_and_kpis_follow_resolution() {
    let d = prepare(&[], &[], "project,9001,C-ACME,\nemployee,101,E-100,\n");
    let srv = Server::start(d.path());
    let a = Toggl::new(31).send(&srv);
    let b = Toggl {
        date: "2026-03-10",
        secs: 7200,
        ..Toggl::new(32)
    }
    .send(&srv);
    let c = Toggl {
        user: 202,
        ..Toggl::new(33)
    }
    .send(&srv);
    wait_status(&srv, &a, "posted");
    wait_status(&srv, &b, "posted");
    wait_status(&srv, &c, "exception");

    let (st, page) = get(&srv, "viewer", "/console");
    assert_eq!(st, 200, "{page}");
    assert!(!page.contains("<script"));
    assert!(page.contains("<td class=\"num\">3.00</td>"), "{page}");
    assert_eq!(figure(&page, "kpi-entries"), "3");
    assert_eq!(figure(&page, "kpi-exceptions"), "1");
    assert_eq!(figure(&page, "kpi-resolved"), "0");
    assert_eq!(figure(&page, "kpi-resolve"), "—");
    assert_eq!(figure(&page, "kpi-unmapped"), "33.3%");
    assert_eq!(figure(&page, "kpi-mapped"), "66.7%");
    assert!(figure(&page, "kpi-latency").ends_with(" min"));
    assert!(page.contains("<svg role=\"img\" aria-label=\"Share mapped (%)\""));
    assert!(page.contains("<title>2026-03-03: 50.00%</title>"), "{page}");
    // The report of a period, from the aggregates: the three entries, and
    // the second week alone.
    let (st, body) = get(&srv, "viewer", "/api/report?period=all");
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["kpis"]["entries_known"], "3", "{v}");
    assert_eq!(v["entries"]["posted"], 2, "{v}");
    let (_, body) = get(&srv, "viewer", "/api/report?period=2026-W11");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["posted_hours"], "2", "{v}");
    let (st, body) = get(&srv, "viewer", "/api/report?period=March");
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("period"), "{body}");
    // Entries page by key: two, then the one after the second's key.
    let (st, body) = get(&srv, "viewer", "/api/entries?limit=2");
    assert_eq!(st, 200, "{body}");
    let first: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(first.len(), 2, "{body}");
    let key = |v: &serde_json::Value| {
        let k = &v["entry"]["key"];
        format!(
            "{}:{}:{}",
            k["source"].as_str().unwrap(),
            k["workspace"].as_str().unwrap(),
            k["id"].as_str().unwrap()
        )
    };
    let (_, body) = get(
        &srv,
        "viewer",
        &format!("/api/entries?limit=2&after={}", key(&first[1])),
    );
    let rest: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(rest.len(), 1, "{body}");
    assert!(key(&rest[0]) > key(&first[1]));
    assert!(![&first[0], &first[1]]
        .iter()
        .any(|v| key(v) == key(&rest[0])));
    // Unfiltered, the KPIs over time cover the newest 30 days of work.
    assert!(
        page.contains("id=\"kpi-period\">Work dates 2026-02-09 to 2026-03-10."),
        "{page}"
    );

    // The period filter: only the second week's two hours.
    let (_, page) = get(&srv, "viewer", "/console?from=2026-03-09&to=2026-03-15");
    assert!(page.contains("<td class=\"num\">2.00</td>"), "{page}");
    assert!(!page.contains("<td class=\"num\">3.00</td>"));
    assert_eq!(figure(&page, "kpi-entries"), "1");
    assert_eq!(figure(&page, "kpi-exceptions"), "0");
    assert!(page.contains("value=\"2026-03-09\""));
    assert!(
        page.contains("href=\"/console/hours-by-project.csv?from=2026-03-09&amp;to=2026-03-15\"")
    );
    let (st, csv) = get(
        &srv,
        "viewer",
        "/console/hours-by-project.csv?from=2026-03-09",
    );
    assert_eq!(st, 200);
    // Text fields are quoted (an empty one too); numbers stay bare.
    assert_eq!(csv.lines().nth(1), Some("9001,1,2.00,\"\""), "{csv}");
    let (_, csv) = get(&srv, "viewer", "/console/hours-by-project.csv");
    assert_eq!(csv.lines().nth(1), Some("9001,2,3.00,\"\""), "{csv}");

    // Billable only / a currency: nothing (all this time is non-billable).
    let (_, page) = get(&srv, "viewer", "/console?billable=billable");
    assert!(page.contains("Nothing posted yet."), "{page}");
    let (_, page) = get(&srv, "viewer", "/console?billable=non_billable");
    assert!(page.contains("<td class=\"num\">3.00</td>"));
    let (_, page) = get(&srv, "viewer", "/console?currency=usd");
    assert!(page.contains("Nothing posted yet."));

    // Bad filters name the field.
    for (q, field) in [
        ("from=yesterday", "from"),
        ("to=2026-13-01", "to"),
        ("billable=maybe", "billable"),
        ("currency=dollars", "currency"),
        ("from=2026-03-10&to=2026-03-01", "from"),
    ] {
        let (st, body) = get(&srv, "viewer", &format!("/console?{q}"));
        assert_eq!(st, 400, "{q}: {body}");
        assert!(
            body.contains(&format!("<code>{field}</code>")),
            "{q}: {body}"
        );
        assert_eq!(
            get(
                &srv,
                "viewer",
                &format!("/console/hours-by-project.csv?{q}")
            )
            .0,
            400
        );
    }

    // Resolving the exception: resolved, a time to resolve, fully mapped.
    let (st, body) = post_form(
        &srv,
        &bearer("finance"),
        "/console/exceptions/fix-mapping",
        &[
            ("table", "employee"),
            ("key", "202"),
            ("target", "E-101"),
            ("reason", "r"),
        ],
    );
    assert_eq!(st, 303, "{body}");
    let v = wait_status(&srv, &c, "posted");
    assert!(
        v["open_since"].is_string() && v["resolved_at"].is_string(),
        "{v}"
    );
    let (_, page) = get(&srv, "viewer", "/console");
    assert_eq!(figure(&page, "kpi-resolved"), "1");
    assert!(figure(&page, "kpi-resolve").ends_with(" min"));
    assert_eq!(figure(&page, "kpi-unmapped"), "0.0%");
    assert_eq!(figure(&page, "kpi-mapped"), "100.0%");
}
