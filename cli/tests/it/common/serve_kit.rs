//! The `timepost serve` process kit: a sandbox working directory that takes
//! signed Toggl deliveries, deliveries that may fail (the server may be
//! gone), signals and exits, the queue, and the sandbox ledger's books read
//! straight from the store file.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use timepost::sources::signature::sign_toggl;

use super::{secrets, workdir, Server};

pub const TOGGL: &str = "toggl-secret-kit";
pub const WORKSPACE: u64 = 555;
/// Toggl users mapped to sandbox employees.
pub const USERS: [(u64, &str); 4] = [
    (201, "E-100"),
    (202, "E-101"),
    (203, "E-102"),
    (204, "E-103"),
];
/// Toggl projects mapped to sandbox customers.
pub const PROJECTS: [(u64, &str); 2] = [(9001, "C-ACME"), (9002, "C-GLOBEX")];

/// A sandbox working directory for Toggl deliveries: posting without
/// approval, [`USERS`] and [`PROJECTS`] mapped, the Toggl secret set; the
/// configuration first passed through `edit`.
pub fn toggl_workdir(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let d = workdir();
    let cfg = std::fs::read_to_string(d.path().join("timepost.toml")).unwrap();
    let cfg = edit(cfg.replace("required = true", "required = false"));
    std::fs::write(d.path().join("timepost.toml"), cfg).unwrap();
    let mut rows = std::fs::read_to_string(format!("{}/mappings.csv", super::SANDBOX)).unwrap();
    for (u, e) in USERS {
        rows.push_str(&format!("employee,{u},{e},\n"));
    }
    for (p, c) in PROJECTS {
        rows.push_str(&format!("project,{p},{c},\n"));
    }
    let maps = d.path().join("m.csv");
    std::fs::write(&maps, rows).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(d.path())
        .args(["mappings", "import", maps.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    secrets(d.path(), &format!("toggl_webhook_secret = \"{TOGGL}\"\n"));
    d
}

/// Set `key` in the `[section]` of a TOML text: its value replaced, or the
/// key added at the top of the section (which must be there).
pub fn set_key(cfg: &str, section: &str, key: &str, value: &str) -> String {
    let header = format!("[{section}]");
    let mut out = Vec::new();
    let mut inside = false;
    let mut done = false;
    for line in cfg.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            inside = t == header;
        }
        if inside && !done && t.split('=').next().map(str::trim) == Some(key) {
            out.push(format!("{key} = {value}"));
            done = true;
            continue;
        }
        out.push(line.to_string());
    }
    if !done {
        let at = out
            .iter()
            .position(|l| l.trim() == header)
            .unwrap_or_else(|| panic!("no {header} in the config"));
        out.insert(at + 1, format!("{key} = {value}"));
    }
    out.join("\n") + "\n"
}

/// One Toggl time-entry event (created / updated / deleted).
pub struct Delivery {
    pub action: &'static str,
    pub id: u64,
    pub user: u64,
    pub project: u64,
    pub start: DateTime<Utc>,
    pub minutes: i64,
    /// Toggl's `at`: the entry's version.
    pub at: DateTime<Utc>,
    pub event_id: u64,
}

impl Delivery {
    pub fn body(&self) -> Vec<u8> {
        let at = self.at.to_rfc3339();
        let stop = self.start + chrono::Duration::minutes(self.minutes);
        let deleted = self.action == "deleted";
        serde_json::to_vec(&json!({
            "event_id": self.event_id,
            "created_at": at,
            "creator_id": 7,
            "subscription_id": 42,
            "timestamp": at,
            "metadata": {"action": self.action, "model": "time_entry", "event_user_id": self.user.to_string(),
                         "workspace_id": WORKSPACE.to_string(), "time_entry_id": self.id.to_string(),
                         "path": "/time_entries", "request_type": "POST"},
            "payload": {"id": self.id, "workspace_id": WORKSPACE, "user_id": self.user,
                        "project_id": self.project, "task_id": null, "billable": false,
                        "start": self.start.to_rfc3339(), "stop": stop.to_rfc3339(),
                        "duration": self.minutes * 60, "description": format!("Work {}", self.id),
                        "tags": [], "tag_ids": [], "at": at,
                        "server_deleted_at": if deleted { json!(at) } else { json!(null) },
                        "duronly": false}
        }))
        .unwrap()
    }
}

/// The raw HTTP request of a signed Toggl delivery.
pub fn toggl_request(body: &[u8]) -> Vec<u8> {
    let sig = sign_toggl(body, TOGGL.as_bytes());
    let mut req = format!(
        "POST /webhooks/toggl HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Type: application/json\r\nX-Webhook-Signature-256: {sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// Send a whole request and read the answer; any failure (no server,
/// reset, timeout) is an error. Returns (status, body).
pub fn try_send(addr: &str, request: &[u8], limit: Duration) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(limit))?;
    s.set_write_timeout(Some(limit))?;
    s.write_all(request)?;
    read_answer(&mut s)
}

/// Read an answer to the end of the connection: (status, body); status 0
/// when nothing came back.
pub fn read_answer(s: &mut TcpStream) -> std::io::Result<(u16, String)> {
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Ok((status, body))
}

/// `GET /healthz`'s queue depth, if the server answers.
pub fn queue_depth(addr: &str) -> Option<u64> {
    let req = b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    let (st, body) = try_send(addr, req, Duration::from_secs(30)).ok()?;
    if st != 200 {
        return None;
    }
    serde_json::from_str::<Value>(&body).ok()?["queue_depth"].as_u64()
}

/// Wait (up to `limit`) until the server reports an empty queue.
pub fn wait_queue_empty(addr: &str, limit: Duration) {
    let start = Instant::now();
    let mut last = None;
    loop {
        let d = queue_depth(addr);
        if d == Some(0) {
            return;
        }
        if d.is_some() {
            last = d;
        }
        assert!(
            start.elapsed() < limit,
            "the queue did not empty within {limit:?} (last depth {last:?})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig} failed");
    }

    /// Wait for the process to exit, failing the test if it is still
    /// running after `limit` (a liveness bound, not a performance figure).
    /// Returns the exit status and what it printed after the banner.
    pub fn wait_exit(mut self, limit: Duration) -> (ExitStatus, Vec<String>) {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let rest = self.lines.by_ref().map_while(Result::ok).collect();
                return (st, rest);
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("timepost serve still running {limit:?} after it was told to stop");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Open the store file read-only.
pub fn store(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(
        dir.join(".timepost/timepost.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap()
}

/// The sandbox ledger's active records, as the books hold them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Books {
    /// Minutes per (entry key, tier).
    pub minutes: BTreeMap<(String, String), i64>,
    /// Active records per entry key.
    pub records: BTreeMap<String, usize>,
    /// Entry statuses from the store, per key.
    pub status: BTreeMap<String, String>,
    /// Entry exception reasons (code: sentence), per key.
    pub reasons: BTreeMap<String, String>,
    /// Dead letters: (code, reason).
    pub dead_letters: Vec<(String, String)>,
}

pub fn books(dir: &Path) -> Books {
    let conn = store(dir);
    let mut b = Books::default();
    let mut stmt = conn
        .prepare("SELECT entry_key, line FROM sandbox_records WHERE active = 1 ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    for row in rows {
        let (key, line) = row.unwrap();
        let line: Value = serde_json::from_str(&line).unwrap();
        let tier = line["tier"].as_str().unwrap().to_string();
        *b.minutes.entry((key.clone(), tier)).or_default() += line["minutes"].as_i64().unwrap();
        *b.records.entry(key).or_default() += 1;
    }
    let mut stmt = conn
        .prepare("SELECT key, status, state FROM entries")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .unwrap();
    for row in rows {
        let (k, s, state) = row.unwrap();
        if let Ok(v) = serde_json::from_str::<Value>(&state) {
            if let Some(r) = v["reason"].as_object() {
                let code = r.get("code").and_then(Value::as_str).unwrap_or("");
                let msg = r.get("message").and_then(Value::as_str).unwrap_or("");
                b.reasons.insert(k.clone(), format!("{code}: {msg}"));
            }
        }
        b.status.insert(k, s);
    }
    let mut stmt = conn
        .prepare("SELECT COALESCE(code, ''), reason FROM dead_letters ORDER BY parked_at")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    for row in rows {
        b.dead_letters.push(row.unwrap());
    }
    b
}

/// Messages in the store's queue: (all, hidden — received or delayed and
/// not yet visible again).
pub fn queued(dir: &Path) -> (i64, i64) {
    let conn = store(dir);
    let now = Utc::now().timestamp_millis();
    let all: i64 = conn
        .query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))
        .unwrap();
    let hidden: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM queue WHERE visible_at > ?1",
            [now],
            |r| r.get(0),
        )
        .unwrap();
    (all, hidden)
}
