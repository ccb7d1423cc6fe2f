//! The console test kit: a served sandbox with one console user per role,
//! Toggl webhooks that create entries, polling an entry's state through the
//! admin API, raw HTTP requests that show headers, and the sandbox ledger's
//! records. Shared by `console.rs` (HTTP level) and `browser.rs` (Chromium).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use timepost::sources::signature::sign_toggl;
use timepost_web::auth::sha256_hex;

use super::{secrets, workdir, Server};

pub const TOGGL: &str = "toggl-secret";
pub const ROLES: [&str; 5] = ["admin", "manager", "finance", "auditor", "viewer"];

pub fn token(role: &str) -> String {
    format!("tok-{role}-0123456789")
}

/// A served sandbox with one user per role, posting without approval,
/// project 9001 mapped and Toggl user 101 not (so its entries are
/// UNMAPPED_EMPLOYEE exceptions).
pub fn serve() -> (tempfile::TempDir, Server) {
    serve_with(false, "project,9001,C-ACME,\n")
}

/// As [`serve`], with approval required or not and these extra mappings.
pub fn serve_with(approval: bool, extra: &str) -> (tempfile::TempDir, Server) {
    let d = prepare(approval, extra);
    let srv = Server::start(d.path());
    (d, srv)
}

/// The working directory [`serve_with`] serves, before the server starts.
pub fn prepare(approval: bool, extra: &str) -> tempfile::TempDir {
    prepare_with(approval, extra, |cfg| cfg)
}

/// As [`prepare`], with the sandbox configuration first passed through
/// `edit` (e.g. to make an unmapped project an exception instead of held).
pub fn prepare_with(
    approval: bool,
    extra: &str,
    edit: impl FnOnce(String) -> String,
) -> tempfile::TempDir {
    let d = workdir();
    let mut cfg = edit(std::fs::read_to_string(d.path().join("timepost.toml")).unwrap());
    if !approval {
        cfg = cfg.replace("required = true", "required = false");
    }
    for role in ROLES {
        cfg.push_str(&format!(
            "\n[[console.users]]\nname = \"{role}-user\"\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\n",
            sha256_hex(&token(role))
        ));
    }
    std::fs::write(d.path().join("timepost.toml"), cfg).unwrap();
    import(d.path(), extra);
    secrets(d.path(), &format!("toggl_webhook_secret = \"{TOGGL}\"\n"));
    d
}

/// `timepost mappings import` of the sandbox mappings plus `extra` rows.
pub fn import(dir: &std::path::Path, extra: &str) {
    let maps = dir.join("m.csv");
    let mut rows = std::fs::read_to_string(format!("{}/mappings.csv", super::SANDBOX)).unwrap();
    rows.push_str(extra);
    std::fs::write(&maps, rows).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir)
        .args(["mappings", "import", maps.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `timepost ingest` of the sandbox's entries CSV (realistic data: posted,
/// awaiting approval, held and exception entries).
pub fn ingest_sandbox(dir: &std::path::Path) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir)
        .args([
            "ingest",
            "--source",
            "csv",
            &format!("{}/entries.csv", super::SANDBOX),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

pub fn toggl_entry(srv: &Server, id: u64) -> String {
    toggl_entry_on(srv, id, 9001)
}

pub fn toggl_entry_on(srv: &Server, id: u64, project: u64) -> String {
    let at = "2026-03-03T18:00:05Z";
    let body = serde_json::to_vec(&json!({
        "event_id": 1000 + id, "created_at": at, "creator_id": 7, "subscription_id": 42, "timestamp": at,
        "metadata": {"action": "created", "model": "time_entry", "event_user_id": "101", "workspace_id": "555",
                     "time_entry_id": id.to_string(), "path": "/time_entries", "request_type": "POST"},
        "payload": {"id": id, "workspace_id": 555, "user_id": 101, "project_id": project, "task_id": null,
                    "billable": false, "start": "2026-03-03T17:00:00Z", "stop": "2026-03-03T18:00:00Z",
                    "duration": 3600, "description": "Console <b>work</b>", "tags": [], "tag_ids": [],
                    "at": at, "server_deleted_at": null, "duronly": false}
    }))
    .unwrap();
    let sig = sign_toggl(&body, TOGGL.as_bytes());
    let (st, b) = srv.request(
        "POST",
        "/webhooks/toggl",
        &[("X-Webhook-Signature-256", &sig)],
        &body,
    );
    assert_eq!(st, 202, "{b}");
    format!("toggl:555:{id}")
}

pub fn bearer(role: &str) -> String {
    format!("Bearer {}", token(role))
}

pub fn entry(srv: &Server, key: &str) -> Value {
    let (st, body) = srv.request(
        "GET",
        &format!("/api/entries/{key}"),
        &[("Authorization", &bearer("admin"))],
        b"",
    );
    if st != 200 {
        return Value::Null;
    }
    serde_json::from_str(&body).unwrap()
}

pub fn wait_for(srv: &Server, key: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let v = entry(srv, key);
        if pred(&v) {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "timed out: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn wait_queue_empty(srv: &Server) {
    let start = Instant::now();
    loop {
        let (_, body) = srv.request("GET", "/healthz", &[], b"");
        let v: Value = serde_json::from_str(&body).unwrap();
        if v["queue_depth"] == 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "queue never drained"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One request returning status, raw header block and body.
pub fn raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let buf = String::from_utf8_lossy(&buf).to_string();
    let (head, body) = buf.split_once("\r\n\r\n").unwrap_or((&buf, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap();
    (status, head.to_string(), body.to_string())
}

pub fn ledger_records(dir: &std::path::Path, key: &str) -> i64 {
    let store = timepost::local::SqliteStore::open(&dir.join(".timepost/timepost.sqlite")).unwrap();
    let n: i64 = store
        .lock()
        .query_row(
            "SELECT COUNT(*) FROM sandbox_records WHERE entry_key = ?1 AND active = 1",
            [key],
            |r| r.get(0),
        )
        .unwrap();
    n
}
