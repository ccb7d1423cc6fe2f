//! Routing exceptions to the holding (suspense) account from the console
//! and the API, on a real `timepost serve`: offered only when configured,
//! recorded on the entry, audited, posted exactly once, reported as in
//! holding.

use crate::common;

use common::console_kit::*;
use common::Server;
use serde_json::{json, Value};

const HOLDING: (&str, &str) = (
    "[rules]\n",
    "[rules]\nholding_account = \"1999-holding\"\nholding_employee = \"E-100\"\n",
);

fn journal_ops(srv: &Server, key: &str) -> usize {
    get_json(srv, "viewer", &format!("/api/entries/{key}/trace"))["journal"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn without_a_holding_account_routing_is_not_offered() {
    let d = prepare(&[], &[], "project,9001,C-ACME,\n");
    let srv = Server::start(d.path());
    let key = Toggl::new(61).send(&srv);
    wait_status(&srv, &key, "exception");
    let (_, page) = get(&srv, "finance", "/console/exceptions");
    assert!(!page.contains("/console/exceptions/holding"), "{page}");
    let (st, body) = post_json(
        &srv,
        &bearer("finance"),
        "/api/holding",
        &json!({"entries": [key]}),
    );
    assert_eq!(st, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("holding_account"),
        "{body}"
    );
    let (st, _) = post_form(
        &srv,
        &bearer("finance"),
        "/console/exceptions/holding",
        &[("key", &key)],
    );
    assert_eq!(st, 409);
    assert_eq!(entry(&srv, &key)["status"], "exception");
    assert!(audit(&srv, "route_holding").is_empty());
}

#[test]
fn routed_exceptions_post_once_to_the_holding_account_and_are_audited() {
    let d = prepare(&[], &[HOLDING], "project,9001,C-ACME,\n");
    let srv = Server::start(d.path());
    let a = Toggl::new(51).send(&srv);
    let b = Toggl {
        date: "2026-03-04",
        ..Toggl::new(52)
    }
    .send(&srv);
    let c = Toggl {
        date: "2026-03-05",
        ..Toggl::new(53)
    }
    .send(&srv);
    for k in [&a, &b, &c] {
        wait_status(&srv, k, "exception");
    }
    let (_, page) = get(&srv, "finance", "/console/exceptions");
    assert!(page.contains("To holding"), "{page}");
    assert!(page.contains("Route all of this reason to holding (1999-holding)"));
    let (_, page) = get(&srv, "viewer", "/console/exceptions");
    assert!(!page.contains("To holding"));

    // Validation and refusals change nothing.
    let path = "/api/holding";
    let (st, body) = post_json(&srv, &bearer("finance"), path, &json!({}));
    assert_eq!(
        (st, body["field"].as_str()),
        (400, Some("entries")),
        "{body}"
    );
    let (st, body) = post_json(&srv, &bearer("finance"), path, &json!({"code": "NOPE"}));
    assert_eq!((st, body["field"].as_str()), (400, Some("code")), "{body}");
    let (st, _) = post_json(
        &srv,
        &bearer("finance"),
        path,
        &json!({"entries": [&a, "toggl:555:999"]}),
    );
    assert_eq!(st, 404);
    assert_eq!(
        post_json(&srv, &bearer("viewer"), path, &json!({"entries": [&a]})).0,
        403
    );
    assert!(entry(&srv, &a)["holding"].is_null());

    // One entry from the page.
    let (st, body) = post_form(
        &srv,
        &bearer("finance"),
        "/console/exceptions/holding",
        &[("key", &a)],
    );
    assert_eq!(st, 303, "{body}");
    let v = wait_status(&srv, &a, "posted");
    assert_eq!(v["holding"]["by"], "finance-user");
    assert_eq!(v["holding"]["reason"]["code"], "UNMAPPED_EMPLOYEE");
    let lines = v["posted_lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["account"], "1999-holding");
    assert_eq!(lines[0]["party"]["id"], "E-100");
    assert_eq!(lines[0]["minutes"], 60);
    assert_eq!(lines[0]["billable"], false);
    wait_queue_empty(&srv);
    assert_eq!(journal_ops(&srv, &a), 1);

    // Routing it again is refused (no longer open); redriving it posts
    // nothing new.
    let (st, _) = post_json(&srv, &bearer("finance"), path, &json!({"entries": [&a]}));
    assert_eq!(st, 409);
    let (st, _) = srv.request(
        "POST",
        &format!("/api/entries/{a}/redrive"),
        &[("Authorization", &bearer("admin"))],
        b"",
    );
    assert_eq!(st, 202);
    wait_queue_empty(&srv);
    assert_eq!(journal_ops(&srv, &a), 1);
    assert_eq!(entry(&srv, &a)["status"], "posted");

    // All of a reason through the API.
    let (st, body) = post_json(
        &srv,
        &bearer("admin"),
        path,
        &json!({"code": "UNMAPPED_EMPLOYEE"}),
    );
    assert_eq!(st, 202, "{body}");
    assert_eq!(body["routed"], 2);
    for k in [&b, &c] {
        let v = wait_status(&srv, k, "posted");
        assert_eq!(v["posted_lines"][0]["account"], "1999-holding");
    }
    wait_queue_empty(&srv);
    for k in [&a, &b, &c] {
        assert_eq!(journal_ops(&srv, k), 1, "{k} posted once");
    }

    // Audited, and reported as in holding; the trace says so.
    let audited = audit(&srv, "route_holding");
    assert_eq!(audited.len(), 3, "{audited:?}");
    assert!(audited
        .iter()
        .all(|r| r["detail"].as_str().unwrap().contains("1999-holding")));
    let report = get_json(&srv, "viewer", "/api/report?full=true");
    let held: Vec<&Value> = report["in_holding"].as_array().unwrap().iter().collect();
    assert_eq!(held.len(), 3, "{report}");
    let t = get_json(&srv, "viewer", &format!("/api/entries/{b}/trace"));
    assert!(
        t["steps"].as_array().unwrap().iter().any(|s| s
            .as_str()
            .unwrap()
            .starts_with("routed to the holding account by admin-user")),
        "{t}"
    );
    assert!(
        t["decision"]
            .as_str()
            .unwrap()
            .starts_with("The books already hold"),
        "{t}"
    );
}
