//! The webhook endpoints of a real `timepost serve`, spawned on a random
//! port: signatures (with rotation), validation pings, bad input, replays,
//! and updates and deletes flowing through to the sandbox ledger.

use crate::common;

use std::time::{Duration, Instant};

use common::{secrets, workdir, Server};
use serde_json::{json, Value};
use timepost::sources::signature::sign_toggl;

const TOGGL_OLD: &str = "toggl-secret-old";
const TOGGL_NEW: &str = "toggl-secret-new";
const CLOCKIFY: &str = "clockify-token-1";

/// A served sandbox that posts without approval, with Toggl and Clockify
/// users and projects mapped.
fn serve() -> (tempfile::TempDir, Server) {
    let d = workdir();
    let cfg = std::fs::read_to_string(d.path().join("timepost.toml")).unwrap();
    std::fs::write(
        d.path().join("timepost.toml"),
        cfg.replace("required = true", "required = false"),
    )
    .unwrap();
    let maps = d.path().join("m.csv");
    let mut rows = std::fs::read_to_string(format!("{}/mappings.csv", common::SANDBOX)).unwrap();
    rows.push_str("employee,101,E-100,\nproject,9001,C-ACME,\nemployee,5a0ab5acb07987125438b60f,E-101,\nproject,5b1667790cb8797321f3d664,C-GLOBEX,\n");
    std::fs::write(&maps, rows).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(d.path())
        .args(["mappings", "import", maps.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Two Toggl secrets are active while rotating.
    secrets(d.path(), &format!("toggl_webhook_secret = \"{TOGGL_OLD} {TOGGL_NEW}\"\nclockify_webhook_secret = \"{CLOCKIFY}\"\n"));
    let srv = Server::start(d.path());
    (d, srv)
}

fn toggl_event(action: &str, id: u64, stop: &str, at: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "event_id": 1000 + id,
        "created_at": at,
        "creator_id": 7,
        "subscription_id": 42,
        "timestamp": at,
        "metadata": {"action": action, "model": "time_entry", "event_user_id": "101", "workspace_id": "555",
                     "time_entry_id": id.to_string(), "path": "/time_entries", "request_type": "POST"},
        "payload": {"id": id, "workspace_id": 555, "user_id": 101, "project_id": 9001, "task_id": null,
                    "billable": false, "start": "2026-03-03T17:00:00Z", "stop": stop,
                    "duration": 3600, "description": "Webhook work", "tags": [], "tag_ids": [],
                    "at": at, "server_deleted_at": if action == "deleted" { json!(at) } else { json!(null) },
                    "duronly": false}
    }))
    .unwrap()
}

fn post_toggl(srv: &Server, body: &[u8], secret: &str) -> (u16, String) {
    let sig = sign_toggl(body, secret.as_bytes());
    srv.request(
        "POST",
        "/webhooks/toggl",
        &[
            ("Content-Type", "application/json"),
            ("X-Webhook-Signature-256", &sig),
        ],
        body,
    )
}

/// Wait until the entry's state satisfies `pred` (the worker runs apart).
fn wait_for(srv: &Server, key: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let auth = format!("Bearer {}", srv.token.clone().unwrap());
    let start = Instant::now();
    loop {
        let (st, body) = srv.request(
            "GET",
            &format!("/api/entries/{key}"),
            &[("Authorization", &auth)],
            b"",
        );
        if st == 200 {
            let v: Value = serde_json::from_str(&body).unwrap();
            if pred(&v) {
                return v;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out waiting for {key}: {st} {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn queue_depth(srv: &Server) -> u64 {
    let (_, body) = srv.request("GET", "/healthz", &[], b"");
    serde_json::from_str::<Value>(&body).unwrap()["queue_depth"]
        .as_u64()
        .unwrap()
}

fn dead_letters(srv: &Server) -> usize {
    let auth = format!("Bearer {}", srv.token.clone().unwrap());
    let (_, body) = srv.request("GET", "/api/dead-letters", &[("Authorization", &auth)], b"");
    serde_json::from_str::<Vec<Value>>(&body).unwrap().len()
}

#[test]
fn toggl_entries_post_update_and_void_through_the_webhook() {
    let (_d, srv) = serve();
    let key = "toggl:555:9001";
    let (st, body) = post_toggl(
        &srv,
        &toggl_event(
            "created",
            9001,
            "2026-03-03T18:00:00Z",
            "2026-03-03T18:00:05Z",
        ),
        TOGGL_NEW,
    );
    assert_eq!(st, 202, "{body}");
    let v = wait_for(&srv, key, |v| v["status"] == "posted");
    assert_eq!(v["posted_lines"][0]["minutes"], 60);
    // An update after posting (signed with the old secret, still active).
    let (st, _) = post_toggl(
        &srv,
        &toggl_event(
            "updated",
            9001,
            "2026-03-03T19:30:00Z",
            "2026-03-03T19:31:00Z",
        ),
        TOGGL_OLD,
    );
    assert_eq!(st, 202);
    let v = wait_for(&srv, key, |v| v["posted_lines"][0]["minutes"] == 150);
    assert_eq!(v["status"], "posted");
    // The same delivery again: acknowledged, nothing changes.
    let (st, _) = post_toggl(
        &srv,
        &toggl_event(
            "updated",
            9001,
            "2026-03-03T19:30:00Z",
            "2026-03-03T19:31:00Z",
        ),
        TOGGL_NEW,
    );
    assert_eq!(st, 202);
    // A delete after posting voids the record.
    let (st, _) = post_toggl(
        &srv,
        &toggl_event(
            "deleted",
            9001,
            "2026-03-03T19:30:00Z",
            "2026-03-03T20:00:00Z",
        ),
        TOGGL_NEW,
    );
    assert_eq!(st, 202);
    let v = wait_for(&srv, key, |v| v["status"] == "voided");
    assert!(v.get("records").is_none(), "nothing left in the books: {v}");
}

#[test]
fn toggl_validation_ping_is_answered_with_its_code() {
    let (_d, srv) = serve();
    let body = serde_json::to_vec(&json!({
        "event_id": 1, "created_at": "2026-03-03T00:00:00Z", "creator_id": 7, "subscription_id": 42,
        "timestamp": "2026-03-03T00:00:00Z", "metadata": {"request_type": "POST"},
        "payload": "ping", "validation_code": "abc-123", "validation_code_url": "https://track.toggl.com/webhooks/api/v1/validate/1/42/abc-123"
    }))
    .unwrap();
    let (st, body) = post_toggl(&srv, &body, TOGGL_NEW);
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["validation_code"],
        "abc-123"
    );
}

#[test]
fn bad_deliveries_are_refused_and_enqueue_nothing() {
    let (_d, srv) = serve();
    let good = toggl_event(
        "created",
        9002,
        "2026-03-03T18:00:00Z",
        "2026-03-03T18:00:05Z",
    );
    // Wrong secret, no signature, signature of another body.
    assert_eq!(post_toggl(&srv, &good, "not-the-secret").0, 401);
    assert_eq!(
        srv.request(
            "POST",
            "/webhooks/toggl",
            &[("Content-Type", "application/json")],
            &good
        )
        .0,
        401
    );
    let other = sign_toggl(b"{}", TOGGL_NEW.as_bytes());
    assert_eq!(
        srv.request(
            "POST",
            "/webhooks/toggl",
            &[("X-Webhook-Signature-256", &other)],
            &good
        )
        .0,
        401
    );
    assert_eq!(
        srv.request(
            "POST",
            "/webhooks/clockify",
            &[("Clockify-Signature", "wrong")],
            b"{}"
        )
        .0,
        401
    );
    assert_eq!(queue_depth(&srv), 0);

    // Malformed JSON and a missing required field: 400 naming the field.
    let (st, body) = post_toggl(&srv, b"{\"event_id\": 1, \"payload\": ", TOGGL_NEW);
    assert_eq!(st, 400, "{body}");
    let mut v: Value = serde_json::from_slice(&good).unwrap();
    v["payload"].as_object_mut().unwrap().remove("start");
    let (st, body) = post_toggl(&srv, &serde_json::to_vec(&v).unwrap(), TOGGL_NEW);
    assert_eq!(st, 400, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert!(err["field"].as_str().unwrap().contains("start"), "{err}");

    // Over 1 MiB: 413.
    let big = vec![b' '; 1024 * 1024 + 10];
    assert_eq!(post_toggl(&srv, &big, TOGGL_NEW).0, 413);

    // An event kind timepost does not handle: 202, ignored.
    let mut v: Value = serde_json::from_slice(&good).unwrap();
    v["metadata"]["model"] = json!("project");
    let (st, body) = post_toggl(&srv, &serde_json::to_vec(&v).unwrap(), TOGGL_NEW);
    assert_eq!(st, 202, "{body}");
    assert!(body.contains("ignored"));
    assert_eq!(queue_depth(&srv), 0);
    assert_eq!(dead_letters(&srv), 0);
}

#[test]
fn clockify_token_checked_and_entries_flow() {
    let (_d, srv) = serve();
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/clockify/new_time_entry.json"
    ))
    .unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    let key = format!(
        "clockify:{}:{}",
        v["workspaceId"].as_str().unwrap(),
        v["id"].as_str().unwrap()
    );
    let headers = [
        ("Clockify-Signature", CLOCKIFY),
        ("Clockify-Webhook-Event-Type", "NEW_TIME_ENTRY"),
        ("Content-Type", "application/json"),
    ];
    let (st, out) = srv.request("POST", "/webhooks/clockify", &headers, &body);
    assert_eq!(st, 202, "{out}");
    let state = wait_for(&srv, &key, |v| v["status"] != Value::Null);
    assert!(
        ["posted", "held", "exception", "awaiting_approval"]
            .contains(&state["status"].as_str().unwrap()),
        "{state}"
    );
    let (st, _) = srv.request(
        "POST",
        "/webhooks/clockify",
        &[("Clockify-Signature", "old-token")],
        &body,
    );
    assert_eq!(st, 401);
    // Deleted.
    let del = [
        ("Clockify-Signature", CLOCKIFY),
        ("Clockify-Webhook-Event-Type", "TIME_ENTRY_DELETED"),
    ];
    assert_eq!(
        srv.request("POST", "/webhooks/clockify", &del, &body).0,
        202
    );
    wait_for(&srv, &key, |v| v["status"] == "voided");
}
