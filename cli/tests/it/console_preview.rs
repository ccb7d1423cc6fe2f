//! Mapping change review in the console, over HTTP against `timepost
//! serve`: the impact preview of a proposed change (every stored entry
//! replayed against the current and the proposed mappings, those of a
//! period listed), changes touching no more stored entries than
//! `[console] mapping_approval_threshold` applied at once with their
//! preview kept, larger ones waiting for a second admin (not the proposer,
//! not the shared admin token: 403), approved (applied, held entries post)
//! or rejected (nothing changes), and a stale preview refused (409). Every
//! step audited. And each way around review that used to work ends as a
//! proposal or a 403: an empty preview period, old entries outside the
//! default window, finance's inline fix, the admin token.

use crate::common;

use common::console_kit::*;
use common::Server;
use serde_json::{json, Value};

/// A threshold of one entry: two changed entries need a second admin.
const THRESHOLD_1: (&str, &str) = (
    "[rules]\n",
    "[console]\nmapping_approval_threshold = 1\n\n[rules]\n",
);
/// Toggl user 101 is Ann (E-100); project 9001 is Acme; 9002 is unmapped
/// (its entries are held).
const MAPPINGS: &str = "employee,101,E-100,\nproject,9001,C-ACME,\n";
const SECOND: &str = "Bearer tok-second-admin-0123456789";
const PERIOD: &str = "from=2026-03-01&to=2026-03-31";

fn serve_review() -> (tempfile::TempDir, Server) {
    let d = prepare(&[("second-admin", "admin")], &[THRESHOLD_1], MAPPINGS);
    let srv = Server::start(d.path());
    (d, srv)
}

/// Two posted entries on project 9001 (3 and 4 March) and two held ones on
/// 9002 (5 and 6 March).
fn scenario(srv: &Server) -> (Vec<String>, Vec<String>) {
    let posted: Vec<String> = [(1, "2026-03-03"), (2, "2026-03-04")]
        .into_iter()
        .map(|(id, date)| {
            Toggl {
                date,
                ..Toggl::new(id)
            }
            .send(srv)
        })
        .collect();
    let held: Vec<String> = [(3, "2026-03-05"), (4, "2026-03-06")]
        .into_iter()
        .map(|(id, date)| {
            Toggl {
                date,
                project: 9002,
                ..Toggl::new(id)
            }
            .send(srv)
        })
        .collect();
    for k in &posted {
        wait_status(srv, k, "posted");
    }
    for k in &held {
        wait_status(srv, k, "held");
    }
    (posted, held)
}

fn project_target(srv: &Server, key: &str) -> Option<String> {
    get_json(srv, "admin", "/api/mappings?table=project")["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["key"] == key)
        .map(|r| r["target"].as_str().expect("target").to_string())
}

fn version(srv: &Server) -> u64 {
    get_json(srv, "admin", "/api/mappings")["version"]
        .as_u64()
        .expect("version")
}

#[test]
fn preview_shows_the_lines_that_would_post_differently() {
    let (_d, srv) = serve_review();
    let (posted, held) = scenario(&srv);
    let before = version(&srv);
    let q = format!("table=project&key=9001&target=C-GLOBEX&{PERIOD}");
    let v = get_json(&srv, "finance", &format!("/api/mappings/preview?{q}"));
    assert_eq!(v["entries_changed"], 2, "{v}");
    assert_eq!(v["entries_moved"], 0, "{v}");
    assert_eq!(v["needs_approval"], true);
    let p = &v["preview"];
    assert_eq!(p["entries_checked"], 4, "{p}");
    assert_eq!(p["mapping_version"], before);
    let changed = p["changed"].as_array().expect("changed");
    let keys: Vec<&str> = changed.iter().map(|c| c["key"].as_str().unwrap()).collect();
    assert_eq!(keys, [posted[0].as_str(), posted[1].as_str()]);
    let first = &changed[0];
    assert_eq!(first["differs"], json!(["customer"]));
    assert_eq!(first["before"]["state"], "postable");
    assert_eq!(first["before"]["lines"][0]["customer"], "C-ACME");
    assert_eq!(first["after"]["lines"][0]["customer"], "C-GLOBEX");
    assert_eq!(first["after"]["lines"][0]["party"], "employee E-100");
    assert_eq!(first["after"]["lines"][0]["minutes"], 60);

    // Mapping the held entries' project moves them held → postable.
    let q2 = format!("table=project&key=9002&target=C-INITECH&{PERIOD}");
    let v = get_json(&srv, "auditor", &format!("/api/mappings/preview?{q2}"));
    assert_eq!(
        (v["entries_changed"].as_u64(), v["entries_moved"].as_u64()),
        (Some(2), Some(2))
    );
    let c = &v["preview"]["changed"][0];
    assert_eq!(c["key"], held[0].as_str());
    assert_eq!(
        (c["before"]["state"].as_str(), c["after"]["state"].as_str()),
        (Some("held"), Some("postable"))
    );
    assert_eq!(c["before"]["code"], "UNMAPPED_PROJECT");

    // A narrower period lists fewer entries, but counts them all: review
    // is decided by every stored entry the change can affect.
    let v = get_json(
        &srv,
        "admin",
        "/api/mappings/preview?table=project&key=9001&target=C-GLOBEX&from=2026-03-01&to=2026-03-03",
    );
    assert_eq!(
        (
            v["entries_changed"].as_u64(),
            v["preview"]["entries_checked"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(v["entries_in_reach"], 2, "{v}");
    assert_eq!(v["needs_approval"], true, "{v}");

    // The page: counts, the list with before → after, the save form for
    // admins only.
    let (st, page) = get(&srv, "auditor", &format!("/console/mappings/preview?{q}"));
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("data-changed=\"2\""), "{page}");
    assert!(
        page.contains(&format!("data-key=\"{}\"", posted[0])),
        "{page}"
    );
    assert!(page.contains("customer C-ACME") && page.contains("customer C-GLOBEX"));
    assert!(
        !page.contains("Propose for approval"),
        "auditors cannot save"
    );
    let (_, page) = get(&srv, "admin", &format!("/console/mappings/preview?{q}"));
    assert!(page.contains("Propose for approval"), "{page}");
    // The edit form's "Preview impact" button shows the same, saves nothing.
    let (st, page) = post_form(
        &srv,
        &bearer("admin"),
        "/console/mappings",
        &[
            ("table", "project"),
            ("key", "9001"),
            ("target", "C-GLOBEX"),
            ("from", "2026-03-01"),
            ("to", "2026-03-31"),
            ("preview", "1"),
        ],
    );
    assert_eq!(st, 200, "{page}");
    assert!(page.contains("data-changed=\"2\""), "{page}");
    assert_eq!(version(&srv), before, "a preview writes nothing");
    assert_eq!(project_target(&srv, "9001").as_deref(), Some("C-ACME"));

    // Bad periods name the field; viewers may not preview.
    for (q, field) in [
        ("from=2026-13-01", "from"),
        ("to=03/31/2026", "to"),
        ("from=2026-03-10&to=2026-03-01", "from"),
    ] {
        let (st, body) = get(
            &srv,
            "admin",
            &format!("/api/mappings/preview?table=project&key=9001&target=X&{q}"),
        );
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(
            (st, body["field"].as_str()),
            (400, Some(field)),
            "{q}: {body}"
        );
    }
    let (st, _) = get(&srv, "viewer", &format!("/api/mappings/preview?{q}"));
    assert_eq!(st, 403);
}

#[test]
fn small_changes_apply_at_once_and_keep_their_preview() {
    let (_d, srv) = serve_review();
    scenario(&srv);
    // One held entry on project 9003: mapping it changes one stored entry
    // (held → postable), at the threshold, so it applies at once and the
    // held entry posts.
    let lone = Toggl {
        date: "2026-03-07",
        project: 9003,
        ..Toggl::new(5)
    }
    .send(&srv);
    wait_status(&srv, &lone, "held");
    let held = [lone];
    let (st, v) = post_json(
        &srv,
        &bearer("admin"),
        "/api/mappings",
        &json!({"table": "project", "key": "9003", "target": "C-INITECH", "reason": "new client",
                "from": "2026-03-07", "to": "2026-03-07"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["changed"], true);
    assert_eq!(v["preview"]["changed"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["preview"]["entries_in_reach"], 1);
    let seq = v["change"]["seq"].as_u64().expect("seq");
    assert_eq!(project_target(&srv, "9003").as_deref(), Some("C-INITECH"));
    for k in &held {
        wait_status(&srv, k, "posted");
    }
    // The preview is kept with the change and shown in the history.
    let applied = get_json(&srv, "finance", "/api/mappings/pending?status=applied");
    let p = &applied[0];
    assert_eq!(
        (p["applied_seq"].as_u64(), p["needs_approval"].as_bool()),
        (Some(seq), Some(false))
    );
    let (_, page) = get(&srv, "finance", "/console/mappings/history");
    let id = p["id"].as_u64().expect("id");
    assert!(
        page.contains(&format!(
            "/console/mappings/pending/{id}\">up to 1 entry affected"
        )),
        "{page}"
    );
    let (_, page) = get(&srv, "auditor", &format!("/console/mappings/pending/{id}"));
    assert!(
        page.contains(&format!("applied at once as change #{seq}")),
        "{page}"
    );
    assert!(
        page.contains(&format!("data-key=\"{}\"", held[0])),
        "{page}"
    );
    assert!(get_json(&srv, "admin", "/api/mappings/pending")
        .as_array()
        .expect("list")
        .is_empty());
}

#[test]
fn large_changes_wait_for_a_second_admin_who_applies_them() {
    let (_d, srv) = serve_review();
    let (_, held) = scenario(&srv);
    let (st, v) = post_form(
        &srv,
        &bearer("admin"),
        "/console/mappings",
        &[
            ("table", "project"),
            ("key", "9002"),
            ("target", "C-INITECH"),
            ("reason", "Initech signed"),
            ("from", "2026-03-01"),
            ("to", "2026-03-31"),
        ],
    );
    assert_eq!(st, 303, "{v}");
    // Nothing took effect: no row, entries still held.
    assert_eq!(project_target(&srv, "9002"), None);
    let pending = get_json(&srv, "auditor", "/api/mappings/pending");
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");
    let id = pending[0]["id"].as_u64().expect("id");
    assert_eq!(pending[0]["change"]["changed_by"], "admin-user");
    assert_eq!(
        pending[0]["preview"]["changed"].as_array().map(Vec::len),
        Some(2)
    );
    for k in &held {
        assert_eq!(entry(&srv, k)["status"], "held");
    }
    let (_, page) = get(&srv, "finance", "/console/mappings");
    assert!(page.contains(&format!("data-proposal=\"{id}\"")), "{page}");
    let (_, page) = get(&srv, "finance", &format!("/console/mappings/pending/{id}"));
    assert!(page.contains("data-status=\"pending\"") && !page.contains("Approve and apply"));
    let (_, page) = get(&srv, "admin", &format!("/console/mappings/pending/{id}"));
    assert!(page.contains("You proposed this change"), "{page}");

    // The proposer may not approve it; a non-admin neither.
    let path = format!("/api/mappings/pending/{id}/approve");
    let (st, body) = post_json(&srv, &bearer("admin"), &path, &json!({}));
    assert_eq!(st, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("another admin must approve"),
        "{body}"
    );
    assert_eq!(
        post_json(&srv, &bearer("finance"), &path, &json!({})).0,
        403
    );
    assert_eq!(project_target(&srv, "9002"), None);

    // A second admin approves on the page: applied, held entries post.
    let (st, body) = post_form(
        &srv,
        SECOND,
        &format!("/console/mappings/pending/{id}/approve"),
        &[],
    );
    assert_eq!(st, 303, "{body}");
    assert_eq!(project_target(&srv, "9002").as_deref(), Some("C-INITECH"));
    for k in &held {
        wait_status(&srv, k, "posted");
    }
    let p = get_json(&srv, "auditor", &format!("/api/mappings/pending/{id}"));
    assert_eq!(
        (p["status"].as_str(), p["decided_by"].as_str()),
        (Some("applied"), Some("second-admin"))
    );
    let seq = p["applied_seq"].as_u64().expect("applied");
    let history = get_json(
        &srv,
        "auditor",
        "/api/mappings/history?table=project&key=9002",
    );
    let last = history.as_array().and_then(|h| h.last()).expect("a change");
    assert_eq!(last["seq"].as_u64(), Some(seq));
    assert_eq!(last["changed_by"], "admin-user");
    assert!(last["reason"]
        .as_str()
        .unwrap()
        .contains("approved by second-admin"));
    let (_, page) = get(&srv, "auditor", "/console/mappings/history");
    assert!(
        page.contains(&format!(
            "/console/mappings/pending/{id}\">up to 2 entries affected"
        )),
        "{page}"
    );
    // Audited: the proposal and the approval.
    assert!(audit(&srv, "mapping_propose")[0]["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("proposal #{id}")));
    let approved = &audit(&srv, "mapping_approve")[0];
    assert_eq!(approved["who"], "second-admin");
    // Approving twice: 409.
    assert_eq!(post_json(&srv, SECOND, &path, &json!({})).0, 409);
}

#[test]
fn rejected_changes_leave_the_mappings_unchanged() {
    let (_d, srv) = serve_review();
    let (posted, _) = scenario(&srv);
    let before = version(&srv);
    let (st, v) = post_json(
        &srv,
        &bearer("admin"),
        "/api/mappings",
        &json!({"table": "project", "key": "9001", "target": "C-GLOBEX", "reason": "typo?",
                "from": "2026-03-01", "to": "2026-03-31"}),
    );
    assert_eq!(st, 202, "{v}");
    let id = v["pending"]["id"].as_u64().expect("id");
    let path = format!("/api/mappings/pending/{id}/reject");
    let (st, body) = post_json(&srv, SECOND, &path, &json!({}));
    assert_eq!(
        (st, body["field"].as_str()),
        (400, Some("reason")),
        "{body}"
    );
    let (st, body) = post_json(&srv, SECOND, &path, &json!({"reason": "Acme stays Acme"}));
    assert_eq!(st, 200, "{body}");
    assert_eq!(project_target(&srv, "9001").as_deref(), Some("C-ACME"));
    assert_eq!(version(&srv), before);
    for k in &posted {
        assert_eq!(entry(&srv, k)["posted_lines"][0]["customer"], "C-ACME");
    }
    let p = get_json(&srv, "finance", &format!("/api/mappings/pending/{id}"));
    assert_eq!(
        (p["status"].as_str(), p["decision_reason"].as_str()),
        (Some("rejected"), Some("Acme stays Acme"))
    );
    let rejected = &audit(&srv, "mapping_reject")[0];
    assert!(rejected["detail"]
        .as_str()
        .unwrap()
        .contains("Acme stays Acme"));
    let (st, _) = post_json(
        &srv,
        SECOND,
        &format!("/api/mappings/pending/{id}/approve"),
        &json!({}),
    );
    assert_eq!(st, 409, "a rejected change cannot be approved");
}

#[test]
fn approving_after_the_mappings_moved_asks_for_a_fresh_preview() {
    let (_d, srv) = serve_review();
    scenario(&srv);
    let (st, v) = post_json(
        &srv,
        &bearer("admin"),
        "/api/mappings",
        &json!({"table": "project", "key": "9001", "target": "C-GLOBEX", "reason": "rename",
                "from": "2026-03-01", "to": "2026-03-31"}),
    );
    assert_eq!(st, 202, "{v}");
    let id = v["pending"]["id"].as_u64().expect("id");
    // Meanwhile a change touching no entry applies at once.
    let (st, v) = post_json(
        &srv,
        SECOND,
        "/api/mappings",
        &json!({"table": "project", "key": "7777", "target": "C-STARK", "reason": "new project",
                "from": "2026-03-01", "to": "2026-03-31"}),
    );
    assert_eq!((st, v["changed"].as_bool()), (200, Some(true)), "{v}");
    let (_, page) = get(&srv, "auditor", "/console/mappings");
    assert!(
        page.contains("mappings changed since: preview again"),
        "{page}"
    );
    let (st, body) = post_json(
        &srv,
        SECOND,
        &format!("/api/mappings/pending/{id}/approve"),
        &json!({}),
    );
    assert_eq!(st, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Preview the change again"),
        "{body}"
    );
    assert_eq!(project_target(&srv, "9001").as_deref(), Some("C-ACME"));
    let p = get_json(&srv, "admin", &format!("/api/mappings/pending/{id}"));
    assert_eq!(p["status"], "pending", "still open to be rejected");
}

/// The change every bypass attempt below tries to push through: mapping
/// project 9002 re-routes both held entries (two stored entries, above the
/// threshold of one).
fn map_9002(from: &str, to: &str) -> Value {
    json!({"table": "project", "key": "9002", "target": "C-INITECH", "reason": "Initech signed",
           "from": from, "to": to})
}

#[test]
fn an_empty_preview_period_does_not_skip_review() {
    let (_d, srv) = serve_review();
    let (_, held) = scenario(&srv);
    // A period with no entries at all used to count nothing and apply.
    let (st, v) = post_json(
        &srv,
        &bearer("admin"),
        "/api/mappings",
        &map_9002("2020-01-01", "2020-01-02"),
    );
    assert_eq!(st, 202, "{v}");
    let p = &v["pending"]["preview"];
    assert_eq!(p["entries_checked"], 0, "nothing listed: {p}");
    assert_eq!(p["entries_in_reach"], 2, "both counted: {p}");
    assert_eq!(project_target(&srv, "9002"), None, "nothing applied");
    for k in &held {
        assert_eq!(entry(&srv, k)["status"], "held");
    }
    // The same through the page form.
    let (st, body) = post_form(
        &srv,
        &bearer("admin"),
        "/console/mappings",
        &[
            ("table", "project"),
            ("key", "9002"),
            ("target", "C-INITECH"),
            ("reason", "again"),
            ("from", "2020-01-01"),
            ("to", "2020-01-01"),
        ],
    );
    assert_eq!(st, 303, "{body}");
    assert_eq!(project_target(&srv, "9002"), None);
    let pending = get_json(&srv, "auditor", "/api/mappings/pending");
    assert_eq!(pending.as_array().map(Vec::len), Some(2), "{pending}");
}

#[test]
fn old_entries_outside_the_default_window_count() {
    let (_d, srv) = serve_review();
    // Held entries from long ago: the default preview (the last 30 days of
    // work dates) lists none of them.
    let old: Vec<String> = [(11, "2025-01-06"), (12, "2025-01-07")]
        .into_iter()
        .map(|(id, date)| {
            Toggl {
                date,
                project: 9002,
                ..Toggl::new(id)
            }
            .send(&srv)
        })
        .collect();
    for k in &old {
        wait_status(&srv, k, "held");
    }
    let (st, v) = post_json(
        &srv,
        &bearer("admin"),
        "/api/mappings",
        &json!({"table": "project", "key": "9002", "target": "C-INITECH", "reason": "no period given"}),
    );
    assert_eq!(st, 202, "{v}");
    let p = &v["pending"]["preview"];
    assert_eq!(
        (
            p["entries_checked"].as_u64(),
            p["entries_in_reach"].as_u64()
        ),
        (Some(0), Some(2)),
        "{p}"
    );
    let keys: Vec<&str> = p["changed"]
        .as_array()
        .expect("changed")
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert!(keys.is_empty(), "the period only limits the list: {keys:?}");
    assert_eq!(project_target(&srv, "9002"), None);
    // The preview page says how many stored entries it can affect in all.
    let (_, page) = get(
        &srv,
        "auditor",
        "/console/mappings/preview?table=project&key=9002&target=C-INITECH",
    );
    assert!(page.contains("data-reach=\"2\""), "{page}");
    assert!(page.contains("data-changed=\"0\""), "{page}");
}

#[test]
fn the_admin_token_can_neither_approve_nor_propose() {
    let (_d, srv) = serve_review();
    let (_, held) = scenario(&srv);
    let token = format!("Bearer {}", srv.token.clone().expect("admin token"));
    // Proposed by a named admin…
    let (st, v) = post_json(
        &srv,
        &bearer("admin"),
        "/api/mappings",
        &map_9002("2026-03-01", "2026-03-31"),
    );
    assert_eq!(st, 202, "{v}");
    let id = v["pending"]["id"].as_u64().expect("id");
    // …the shared token is not a second admin, on the API or the page.
    let path = format!("/api/mappings/pending/{id}/approve");
    let (st, body) = post_json(&srv, &token, &path, &json!({}));
    assert_eq!(st, 403, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("named admin"),
        "{body}"
    );
    let (st, body) = post_form(
        &srv,
        &token,
        &format!("/console/mappings/pending/{id}/approve"),
        &[],
    );
    assert_eq!(st, 403, "{body}");
    let (_, page) = get_as(&srv, &token, &format!("/console/mappings/pending/{id}"));
    assert!(!page.contains("Approve and apply"), "{page}");
    assert!(page.contains("names nobody"), "{page}");
    assert_eq!(project_target(&srv, "9002"), None);
    assert_eq!(
        get_json(&srv, "auditor", &format!("/api/mappings/pending/{id}"))["status"],
        "pending"
    );
    // Nor can the token propose a change that needs review (it could then
    // be approved by the very person holding it).
    let (st, body) = post_json(
        &srv,
        &token,
        "/api/mappings",
        &json!({"table": "project", "key": "9001", "target": "C-GLOBEX", "reason": "r",
                "from": "2026-03-01", "to": "2026-03-31"}),
    );
    assert_eq!(st, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("shared credential"),
        "{body}"
    );
    assert_eq!(project_target(&srv, "9001").as_deref(), Some("C-ACME"));
    // A named second admin approves.
    let (st, body) = post_json(&srv, SECOND, &path, &json!({}));
    assert_eq!(st, 200, "{body}");
    for k in &held {
        wait_status(&srv, k, "posted");
    }
}

#[test]
fn the_proposer_cannot_approve_on_the_api_or_the_page() {
    let (_d, srv) = serve_review();
    scenario(&srv);
    let (st, v) = post_json(
        &srv,
        SECOND,
        "/api/mappings",
        &map_9002("2026-03-01", "2026-03-31"),
    );
    assert_eq!(st, 202, "{v}");
    let id = v["pending"]["id"].as_u64().expect("id");
    let path = format!("/api/mappings/pending/{id}/approve");
    let (st, body) = post_json(&srv, SECOND, &path, &json!({}));
    assert_eq!(st, 403, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("another admin must approve"),
        "{body}"
    );
    // Signed in through the form (a session) it is the same person.
    let (st, body) = post_form(
        &srv,
        SECOND,
        &format!("/console/mappings/pending/{id}/approve"),
        &[],
    );
    assert_eq!(st, 403, "{body}");
    assert_eq!(project_target(&srv, "9002"), None);
    let (st, body) = post_json(&srv, &bearer("admin"), &path, &json!({}));
    assert_eq!(st, 200, "{body}");
    assert_eq!(project_target(&srv, "9002").as_deref(), Some("C-INITECH"));
}

#[test]
fn finance_inline_fix_is_reviewed_and_only_for_a_row_an_open_entry_misses() {
    let (_d, srv) = serve_review();
    let (posted, held) = scenario(&srv);
    let path = "/console/exceptions/fix-mapping";
    // A row no open entry is missing: refused, whatever it is.
    for (table, key) in [
        ("project", "4242"),
        ("employee", "999"),
        ("project", "p-new"),
    ] {
        let (st, body) = post_form(
            &srv,
            &bearer("finance"),
            path,
            &[
                ("table", table),
                ("key", key),
                ("target", "C-EVIL"),
                ("reason", "sneak in"),
            ],
        );
        assert_eq!(st, 403, "{table} {key}: {body}");
        assert!(
            body.contains("No held or exception entry is missing"),
            "{body}"
        );
    }
    // A row that exists is not changed from here (the posted entries' project).
    let (st, body) = post_form(
        &srv,
        &bearer("finance"),
        path,
        &[
            ("table", "project"),
            ("key", "9001"),
            ("target", "C-EVIL"),
            ("reason", "re-route"),
        ],
    );
    assert_eq!(st, 409, "{body}");
    assert_eq!(project_target(&srv, "9001").as_deref(), Some("C-ACME"));
    assert!(audit(&srv, "mapping_fix").is_empty());

    // The row the held entries miss, but touching two stored entries:
    // above the threshold, so it waits for an admin instead of applying.
    let (st, body) = post_form(
        &srv,
        &bearer("finance"),
        path,
        &[
            ("table", "project"),
            ("key", "9002"),
            ("target", "C-INITECH"),
            ("reason", "Initech signed"),
        ],
    );
    assert_eq!(st, 303, "{body}");
    assert_eq!(project_target(&srv, "9002"), None, "not applied");
    for k in &held {
        assert_eq!(entry(&srv, k)["status"], "held");
    }
    let pending = get_json(&srv, "auditor", "/api/mappings/pending");
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");
    let p = &pending[0];
    assert_eq!(p["change"]["changed_by"], "finance-user");
    assert_eq!(p["preview"]["entries_in_reach"], 2);
    let id = p["id"].as_u64().expect("id");
    assert!(audit(&srv, "mapping_propose")[0]["detail"]
        .as_str()
        .unwrap()
        .contains(&format!("proposal #{id}")));
    // Finance cannot approve its own proposal (nor any: admins only); an
    // admin does, and the held entries post.
    let approve = format!("/api/mappings/pending/{id}/approve");
    assert_eq!(
        post_json(&srv, &bearer("finance"), &approve, &json!({})).0,
        403
    );
    let (st, body) = post_json(&srv, &bearer("admin"), &approve, &json!({}));
    assert_eq!(st, 200, "{body}");
    for k in &held {
        wait_status(&srv, k, "posted");
    }
    for k in &posted {
        assert_eq!(entry(&srv, k)["posted_lines"][0]["customer"], "C-ACME");
    }
}

#[test]
fn an_approved_inline_fix_redrives_the_exceptions_it_fixes() {
    let (_d, srv) = serve_review();
    // Toggl user 202 is mapped to nobody: both entries are exceptions.
    let keys: Vec<String> = [(21, "2026-03-03"), (22, "2026-03-04")]
        .into_iter()
        .map(|(id, date)| {
            Toggl {
                date,
                user: 202,
                ..Toggl::new(id)
            }
            .send(&srv)
        })
        .collect();
    for k in &keys {
        let v = wait_status(&srv, k, "exception");
        assert_eq!(v["reason"]["code"], "UNMAPPED_EMPLOYEE", "{v}");
    }
    let (st, body) = post_form(
        &srv,
        &bearer("finance"),
        "/console/exceptions/fix-mapping",
        &[
            ("table", "employee"),
            ("key", "202"),
            ("target", "E-101"),
            ("reason", "new hire"),
        ],
    );
    assert_eq!(st, 303, "{body}");
    let pending = get_json(&srv, "auditor", "/api/mappings/pending");
    let id = pending[0]["id"].as_u64().expect("a proposal");
    for k in &keys {
        assert_eq!(entry(&srv, k)["status"], "exception");
    }
    let (st, body) = post_json(
        &srv,
        &bearer("admin"),
        &format!("/api/mappings/pending/{id}/approve"),
        &json!({}),
    );
    assert_eq!(st, 200, "{body}");
    for k in &keys {
        wait_status(&srv, k, "posted");
    }
    assert_eq!(audit(&srv, "redrive").len(), 2);
}
