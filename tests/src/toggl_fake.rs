//! A fake Toggl Track API v9 (see `shared/VENDOR-FACTS.md`):
//! `GET /api/v9/me/time_entries?since=<unix>` returns the entries modified
//! since then, deleted ones included (`server_deleted_at` set); without
//! `since`, the entries not deleted. HTTP Basic `<token>:api_token` is
//! required (401 otherwise); an hourly request limit (scalable) answers 429
//! with `Retry-After`; faults can be injected. The test changes the data
//! between polls.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::fake_common::{serve, Inject, Window};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TogglCounters {
    pub requests: u64,
    pub throttled: u64,
    pub unauthorised: u64,
    pub served: u64,
}

pub struct TogglState {
    pub token: String,
    pub entries: BTreeMap<u64, Value>,
    window: Window,
    pub injected: VecDeque<Inject>,
    pub counters: TogglCounters,
    /// `since` values asked for, in order.
    pub sinces: Vec<Option<i64>>,
}

pub struct TogglServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<TogglState>>,
    _task: tokio::task::JoinHandle<()>,
}

impl TogglServer {
    /// A user allowed `limit` requests per `hour` (scale it down in tests).
    pub async fn start(token: &str, limit: u32, hour: Duration) -> Self {
        let state = Arc::new(Mutex::new(TogglState {
            token: token.into(),
            entries: BTreeMap::new(),
            window: Window::new(limit, hour),
            injected: VecDeque::new(),
            counters: TogglCounters::default(),
            sinces: Vec::new(),
        }));
        let app = axum::Router::new()
            .route("/api/v9/me/time_entries", get(list))
            .with_state(state.clone());
        let (addr, task) = serve(app).await;
        Self {
            addr,
            state,
            _task: task,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> MutexGuard<'_, TogglState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add or replace an entry; `at` becomes now (later than before).
    pub fn put(&self, entry: Value) {
        crate::fake_common::store_with_later_stamp(&mut self.state().entries, entry, "at", "toggl");
    }

    pub fn edit(&self, id: u64, f: impl FnOnce(&mut Value)) {
        let entry = self.state().entries.get(&id).cloned();
        let Some(mut e) = entry else {
            panic!("toggl fake: no entry {id}");
        };
        f(&mut e);
        self.put(e);
    }

    /// Delete: Toggl keeps reporting it with `server_deleted_at`.
    pub fn delete(&self, id: u64) {
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
        self.edit(id, |e| e["server_deleted_at"] = json!(now));
    }

    pub fn inject(&self, fault: Inject) {
        self.state().injected.push_back(fault);
    }

    pub fn counters(&self) -> TogglCounters {
        self.state().counters.clone()
    }
}

/// A stopped Toggl entry of `secs` seconds starting at `start` (RFC 3339).
pub fn entry(id: u64, workspace: u64, user: u64, project: u64, start: &str, secs: i64) -> Value {
    let stop = start
        .parse::<DateTime<Utc>>()
        .map(|s| (s + chrono::Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Secs, true))
        .unwrap_or_default();
    json!({
        "id": id,
        "workspace_id": workspace,
        "user_id": user,
        "project_id": project,
        "task_id": null,
        "billable": false,
        "start": start,
        "stop": stop,
        "duration": secs,
        "description": format!("entry {id}"),
        "tags": [],
        "tag_ids": [],
        "duronly": false,
        "at": start,
        "server_deleted_at": null
    })
}

type Shared = State<Arc<Mutex<TogglState>>>;

fn error(status: StatusCode, message: &str) -> Response {
    (status, message.to_string()).into_response()
}

fn basic_ok(h: &HeaderMap, token: &str) -> bool {
    let Some(b64) = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    crate::fake_common::decode_basic(b64).as_deref() == Some(&format!("{token}:api_token"))
}

async fn list(
    State(st): Shared,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    s.counters.requests += 1;
    if let Some(fault) = s.injected.pop_front() {
        match fault {
            Inject::StatusBefore(code) | Inject::StatusAfter(code) => {
                let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return error(code, "injected");
            }
            Inject::Throttle(after) => {
                s.counters.throttled += 1;
                let mut r = error(StatusCode::TOO_MANY_REQUESTS, "throttled");
                if let Some(a) = after {
                    if let Ok(v) = format!("{a}").parse() {
                        r.headers_mut().insert("retry-after", v);
                    }
                }
                return r;
            }
            _ => {}
        }
    }
    if !basic_ok(&h, &s.token) {
        s.counters.unauthorised += 1;
        return error(StatusCode::FORBIDDEN, "Incorrect username and/or password");
    }
    if let Err(wait) = s.window.hit(Instant::now()) {
        s.counters.throttled += 1;
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "too many requests");
        if let Ok(v) = format!("{}", wait.as_secs_f64().ceil().max(1.0)).parse() {
            r.headers_mut().insert("retry-after", v);
        }
        return r;
    }
    let since = match q.get("since") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => return error(StatusCode::BAD_REQUEST, "since must be a unix timestamp"),
        },
    };
    s.sinces.push(since);
    s.counters.served += 1;
    let out: Vec<Value> = s
        .entries
        .values()
        .filter(|e| match since {
            Some(since) => e["at"]
                .as_str()
                .and_then(|a| a.parse::<DateTime<Utc>>().ok())
                .is_some_and(|a| a.timestamp() >= since),
            None => e["server_deleted_at"].is_null(),
        })
        .cloned()
        .collect();
    axum::Json(out).into_response()
}
