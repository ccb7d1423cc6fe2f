//! The entry detail view (the entry as received, the decision trace in
//! words, the books) on the console and the API, and the inline fix of a
//! missing mapping from the exceptions page, on a real `timepost serve`.

use crate::common;

use common::console_kit::*;
use common::Server;

/// Toggl user 101 is not mapped (UNMAPPED_EMPLOYEE, blocking); project
/// 9001 is.
fn serve() -> (tempfile::TempDir, Server) {
    let d = prepare(&[], &[], "project,9001,C-ACME,\n");
    let srv = Server::start(d.path());
    (d, srv)
}

#[test]
fn trace_explains_an_exception_and_then_the_posting() {
    let (_d, srv) = serve();
    let key = Toggl::new(71).send(&srv);
    wait_status(&srv, &key, "exception");

    // The exceptions page links each row to its detail page.
    let (st, page) = get(&srv, "viewer", "/console/exceptions");
    assert_eq!(st, 200);
    assert!(
        page.contains("href=\"/console/exceptions/toggl%3A555%3A71\""),
        "{page}"
    );

    let t = get_json(&srv, "viewer", &format!("/api/entries/{key}/trace"));
    assert_eq!(t["state"]["status"], "exception");
    assert_eq!(t["state"]["entry"]["worker"]["tracker_user_id"], "101");
    assert_eq!(t["raw_payload_kept"], false);
    let steps: Vec<&str> = t["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        steps.iter().any(|s| s.starts_with("approval: cleared")),
        "{steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s.contains("rounding (Nearest, 6 min") && s.contains("3600 s → 60 min")),
        "{steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s.starts_with("overtime: none; 60 min regular")),
        "{steps:?}"
    );
    assert!(
        t["decision"]
            .as_str()
            .unwrap()
            .starts_with("Exception UNMAPPED_EMPLOYEE"),
        "{t}"
    );

    // Map the worker; the redrive posts; the trace names every row used.
    let (st, b) = post_json(
        &srv,
        &bearer("admin"),
        "/api/mappings",
        &serde_json::json!({"table": "employee", "key": "101", "target": "E-100", "reason": "new hire"}),
    );
    assert_eq!(st, 200, "{b}");
    let (st, _) = srv.request(
        "POST",
        &format!("/api/entries/{key}/redrive"),
        &[("Authorization", &bearer("finance"))],
        b"",
    );
    assert_eq!(st, 202);
    wait_status(&srv, &key, "posted");
    let (st, html) = get(&srv, "auditor", &format!("/console/exceptions/{key}"));
    assert_eq!(st, 200, "{html}");
    for want in [
        "Decision trace",
        "employee mapping `101` → E-100",
        "project mapping `9001` → customer C-ACME",
        "service item mapping `*` → SVC-CONSULT",
        "billable: no (labour cost only)",
        "gl_account mapping `labour_expense` → 5000-labour",
        "The books already hold exactly these lines",
        "The entry as received",
        "Console work",
        "create of version",
    ] {
        assert!(html.contains(want), "missing {want:?} in\n{html}");
    }

    // Unknown and malformed keys.
    assert_eq!(
        get(&srv, "viewer", "/api/entries/toggl:555:999/trace").0,
        404
    );
    assert_eq!(
        get(&srv, "viewer", "/console/exceptions/toggl:555:999").0,
        404
    );
    let (st, body) = get(&srv, "viewer", "/api/entries/nonsense/trace");
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("\"field\":\"key\""), "{body}");
}

#[test]
fn missing_mapping_is_fixed_inline_and_the_entry_posts() {
    let (_d, srv) = serve();
    let a = Toggl::new(81).send(&srv);
    let b = Toggl {
        date: "2026-03-04",
        ..Toggl::new(82)
    }
    .send(&srv);
    wait_status(&srv, &a, "exception");
    wait_status(&srv, &b, "exception");

    // Finance sees the inline form for the missing employee row; a viewer
    // does not.
    let (_, page) = get(&srv, "finance", "/console/exceptions");
    assert!(
        page.contains("action=\"/console/exceptions/fix-mapping\""),
        "{page}"
    );
    assert!(page.contains("name=\"key\" value=\"101\""), "{page}");
    let (_, page) = get(&srv, "viewer", "/console/exceptions");
    assert!(!page.contains("fix-mapping"));

    // Validation names the field; a viewer is refused.
    let path = "/console/exceptions/fix-mapping";
    let (st, body) = post_form(
        &srv,
        &bearer("finance"),
        path,
        &[
            ("table", "employee"),
            ("key", "101"),
            ("reason", "new hire"),
        ],
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("target"), "{body}");
    let (st, body) = post_form(
        &srv,
        &bearer("finance"),
        path,
        &[
            ("table", "nope"),
            ("key", "101"),
            ("target", "E-100"),
            ("reason", "r"),
        ],
    );
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("table"), "{body}");
    let full = [
        ("table", "employee"),
        ("key", "101"),
        ("target", "E-100"),
        ("reason", "new hire"),
    ];
    assert_eq!(post_form(&srv, &bearer("viewer"), path, &full).0, 403);

    let (st, body) = post_form(&srv, &bearer("finance"), path, &full);
    assert_eq!(st, 303, "{body}");
    wait_status(&srv, &a, "posted");
    wait_status(&srv, &b, "posted");
    wait_queue_empty(&srv);

    // Audited: the mapping fix and a redrive per entry.
    let fix = audit(&srv, "mapping_fix");
    assert_eq!(fix.len(), 1, "{fix:?}");
    assert_eq!(fix[0]["who"], "finance-user");
    assert!(fix[0]["detail"].as_str().unwrap().contains("new hire"));
    assert_eq!(audit(&srv, "redrive").len(), 2);

    // An existing row is not changed from here.
    let (st, body) = post_form(&srv, &bearer("finance"), path, &full);
    assert_eq!(st, 409, "{body}");
}
