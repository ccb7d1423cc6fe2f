//! A served sandbox with one console user per role, and the requests the
//! console feature tests make (bearer tokens, so no CSRF dance; the CSRF
//! path itself is covered in `console.rs`).

use serde_json::{json, Value};
use timepost::sources::signature::sign_toggl;
use timepost_web::auth::sha256_hex;

use super::{secrets, workdir, Server, SANDBOX};

// The shared basics of the console kit (each test file uses some).
#[allow(unused_imports)]
pub use super::console::{bearer, entry, token, wait_for, wait_queue_empty, ROLES, TOGGL};

/// The sandbox config without approval, one user per role (plus
/// `extra_users` as (name, role), token `tok-<name>-0123456789`), each
/// `(find, replace)` of `edits` applied once to the TOML (e.g. a key added
/// under `[rules]\n`), and the sandbox mappings plus `extra_mappings` rows.
pub fn prepare(
    extra_users: &[(&str, &str)],
    edits: &[(&str, &str)],
    extra_mappings: &str,
) -> tempfile::TempDir {
    let d = workdir();
    let mut cfg = std::fs::read_to_string(d.path().join("timepost.toml")).unwrap();
    cfg = cfg.replace("required = true", "required = false");
    for (find, replace) in edits {
        assert!(cfg.contains(find), "config has no `{find}`");
        cfg = cfg.replacen(find, replace, 1);
    }
    let users: Vec<(String, String)> = ROLES
        .iter()
        .map(|r| (format!("{r}-user"), r.to_string()))
        .chain(
            extra_users
                .iter()
                .map(|(n, r)| (n.to_string(), r.to_string())),
        )
        .collect();
    for (name, role) in users {
        let tok = if name.ends_with("-user") {
            token(&role)
        } else {
            format!("tok-{name}-0123456789")
        };
        cfg.push_str(&format!(
            "\n[[console.users]]\nname = \"{name}\"\nrole = \"{role}\"\ntoken_sha256 = \"{}\"\n",
            sha256_hex(&tok)
        ));
    }
    std::fs::write(d.path().join("timepost.toml"), cfg).unwrap();
    let maps = d.path().join("m.csv");
    let mut rows = std::fs::read_to_string(format!("{SANDBOX}/mappings.csv")).unwrap();
    rows.push_str(extra_mappings);
    std::fs::write(&maps, rows).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(d.path())
        .args(["mappings", "import", maps.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    secrets(d.path(), &format!("toggl_webhook_secret = \"{TOGGL}\"\n"));
    d
}

/// One Toggl time entry by Toggl user `user` on `project`, `date` from
/// 17:00Z for `secs` seconds, delivered through the signed webhook;
/// returns its key.
pub struct Toggl {
    pub id: u64,
    pub user: u64,
    pub project: u64,
    pub date: &'static str,
    pub secs: i64,
    pub billable: bool,
}

impl Toggl {
    pub fn new(id: u64) -> Self {
        Self {
            id,
            user: 101,
            project: 9001,
            date: "2026-03-03",
            secs: 3600,
            billable: false,
        }
    }

    pub fn send(&self, srv: &Server) -> String {
        let at = format!("{}T18:00:05Z", self.date);
        let start: chrono::DateTime<chrono::Utc> =
            format!("{}T17:00:00Z", self.date).parse().unwrap();
        let stop = start + chrono::Duration::seconds(self.secs);
        let payload = json!({"id": self.id, "workspace_id": 555, "user_id": self.user, "project_id": self.project, "task_id": null,
                    "billable": self.billable, "start": start.to_rfc3339(), "stop": stop.to_rfc3339(),
                    "duration": self.secs, "description": "Console work", "tags": [], "tag_ids": [],
                    "at": at, "server_deleted_at": null, "duronly": false});
        let body = serde_json::to_vec(&json!({
            "event_id": 1000 + self.id, "created_at": at, "creator_id": 7, "subscription_id": 42, "timestamp": at,
            "metadata": {"action": "created", "model": "time_entry", "event_user_id": self.user.to_string(), "workspace_id": "555",
                         "time_entry_id": self.id.to_string(), "path": "/time_entries", "request_type": "POST"},
            "payload": payload
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
        format!("toggl:555:{}", self.id)
    }
}

pub fn get(srv: &Server, role: &str, path: &str) -> (u16, String) {
    srv.request("GET", path, &[("Authorization", &bearer(role))], b"")
}

pub fn get_as(srv: &Server, auth: &str, path: &str) -> (u16, String) {
    srv.request("GET", path, &[("Authorization", auth)], b"")
}

pub fn get_json(srv: &Server, role: &str, path: &str) -> Value {
    let (st, body) = get(srv, role, path);
    assert_eq!(st, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap()
}

pub fn post_json(srv: &Server, auth: &str, path: &str, body: &Value) -> (u16, Value) {
    let (st, b) = srv.request(
        "POST",
        path,
        &[
            ("Authorization", auth),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    (st, serde_json::from_str(&b).unwrap_or(Value::String(b)))
}

/// A console form POST with a bearer token (no CSRF needed).
pub fn post_form(srv: &Server, auth: &str, path: &str, form: &[(&str, &str)]) -> (u16, String) {
    let body: Vec<String> = form
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    srv.request(
        "POST",
        path,
        &[
            ("Authorization", auth),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        body.join("&").as_bytes(),
    )
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn wait_status(srv: &Server, key: &str, status: &str) -> Value {
    wait_for(srv, key, |v| v["status"] == status)
}

/// The audit records of `action`, newest first.
pub fn audit(srv: &Server, action: &str) -> Vec<Value> {
    get_json(srv, "auditor", "/api/audit")
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == action)
        .cloned()
        .collect()
}
