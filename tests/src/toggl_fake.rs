//! A fake Toggl Track (see `shared/VENDOR-FACTS.md`, "Toggl Track"):
//!
//! - `GET /api/v9/me/time_entries?since=<unix>`: the **token user's own**
//!   entries modified since then, deleted ones included (`server_deleted_at`
//!   set); without `since`, those not deleted. Toggl API, "Time entries":
//!   "The requests are scoped with the user whose API token is used. Only
//!   his/her time entries are updated, retrieved and created."
//! - `POST /reports/api/v3/workspace/{workspace_id}/search/time_entries`
//!   (Toggl Reports API v3, "Detailed reports" → "Search time entries"):
//!   every user's entries of the workspace whose start date lies in
//!   `start_date`..=`end_date` (both required), optionally only
//!   `time_entry_ids` / `user_ids`; ungrouped rows ("grouped … default
//!   false"), each `{user_id, username, project_id, task_id, billable,
//!   description, tag_ids, hourly_rate_in_cents, billable_amount_in_cents,
//!   currency, row_number, time_entries: [{id, seconds, start, stop, at,
//!   at_tz}]}`; `page_size` rows per answer, the next page named by the
//!   `X-Next-ID` / `X-Next-Row-Number` headers and asked for with
//!   `first_id` / `first_row_number`. Deleted entries are not in a report.
//!   Only a workspace admin may read it (Reports API, "Overview": "private
//!   reports can only be accessed by the report's owner or workspace admin.
//!   If these conditions are not met, a 403 status code is returned").
//!
//! HTTP Basic `<token>:api_token` is required (403 otherwise); an hourly
//! request limit (scalable) answers 429 with `Retry-After`; faults can be
//! injected. The test changes the data between polls.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::fake_common::{serve, Inject, Window};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TogglCounters {
    pub requests: u64,
    /// Report pages answered.
    pub report_pages: u64,
    /// Report requests refused because the token is not an admin's.
    pub forbidden: u64,
    pub throttled: u64,
    pub unauthorised: u64,
    pub served: u64,
}

pub struct TogglState {
    /// API token → (user id, workspace admin).
    pub users: HashMap<String, (u64, bool)>,
    pub entries: BTreeMap<u64, Value>,
    window: Window,
    pub injected: VecDeque<Inject>,
    pub counters: TogglCounters,
    /// `since` values asked for, in order.
    pub sinces: Vec<Option<i64>>,
    /// Report request bodies, in order.
    pub report_bodies: Vec<Value>,
}

pub struct TogglServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<TogglState>>,
    _task: tokio::task::JoinHandle<()>,
}

impl TogglServer {
    /// A workspace whose admin (user [`ADMIN_USER`]) holds `token`,
    /// allowed `limit` requests per `hour` (scale it down in tests).
    pub async fn start(token: &str, limit: u32, hour: Duration) -> Self {
        let state = Arc::new(Mutex::new(TogglState {
            users: HashMap::from([(token.to_string(), (ADMIN_USER, true))]),
            entries: BTreeMap::new(),
            window: Window::new(limit, hour),
            injected: VecDeque::new(),
            counters: TogglCounters::default(),
            sinces: Vec::new(),
            report_bodies: Vec::new(),
        }));
        let app = axum::Router::new()
            .route("/api/v9/me/time_entries", get(list))
            .route(
                "/reports/api/v3/workspace/{workspace}/search/time_entries",
                post(report),
            )
            .with_state(state.clone());
        let (addr, task) = serve(app).await;
        Self {
            addr,
            state,
            _task: task,
        }
    }

    /// Another member of the workspace, with their own token.
    pub fn add_user(&self, token: &str, user: u64, admin: bool) {
        self.state().users.insert(token.to_string(), (user, admin));
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

/// The user id of the admin whose token `start` registers.
pub const ADMIN_USER: u64 = 9001;

type Shared = State<Arc<Mutex<TogglState>>>;

fn error(status: StatusCode, message: &str) -> Response {
    (status, message.to_string()).into_response()
}

/// The user the Basic `<token>:api_token` credentials name.
fn user_of(h: &HeaderMap, s: &TogglState) -> Option<(u64, bool)> {
    let b64 = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))?;
    let decoded = crate::fake_common::decode_basic(b64)?;
    let token = decoded.strip_suffix(":api_token")?;
    s.users.get(token).copied()
}

/// Injected faults, credentials and the rate limit: `Err` is the answer.
fn gate(s: &mut TogglState, h: &HeaderMap) -> Result<(u64, bool), Response> {
    s.counters.requests += 1;
    if let Some(fault) = s.injected.pop_front() {
        match fault {
            Inject::StatusBefore(code) | Inject::StatusAfter(code) => {
                let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                return Err(error(code, "injected"));
            }
            Inject::Throttle(after) => {
                s.counters.throttled += 1;
                let mut r = error(StatusCode::TOO_MANY_REQUESTS, "throttled");
                if let Some(a) = after {
                    if let Ok(v) = format!("{a}").parse() {
                        r.headers_mut().insert("retry-after", v);
                    }
                }
                return Err(r);
            }
            _ => {}
        }
    }
    let Some(user) = user_of(h, s) else {
        s.counters.unauthorised += 1;
        return Err(error(
            StatusCode::FORBIDDEN,
            "Incorrect username and/or password",
        ));
    };
    if let Err(wait) = s.window.hit(Instant::now()) {
        s.counters.throttled += 1;
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "too many requests");
        if let Ok(v) = format!("{}", wait.as_secs_f64().ceil().max(1.0)).parse() {
            r.headers_mut().insert("retry-after", v);
        }
        return Err(r);
    }
    Ok(user)
}

async fn list(
    State(st): Shared,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    let (me, _) = match gate(&mut s, &h) {
        Ok(u) => u,
        Err(r) => return r,
    };
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
        // Scoped to the token's user.
        .filter(|e| e["user_id"].as_u64() == Some(me))
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

fn date_of(v: &Value) -> Option<chrono::NaiveDate> {
    v.as_str()?
        .parse::<DateTime<Utc>>()
        .ok()
        .map(|d| d.date_naive())
}

async fn report(
    State(st): Shared,
    h: HeaderMap,
    Path(workspace): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    let (_, admin) = match gate(&mut s, &h) {
        Ok(u) => u,
        Err(r) => return r,
    };
    if !admin {
        s.counters.forbidden += 1;
        return error(StatusCode::FORBIDDEN, "Forbidden");
    }
    let Ok(q) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "Invalid JSON body");
    };
    s.report_bodies.push(q.clone());
    let day = |k: &str| {
        q[k].as_str()
            .and_then(|d| d.parse::<chrono::NaiveDate>().ok())
    };
    let (Some(from), Some(to)) = (day("start_date"), day("end_date")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "start_date and end_date are required",
        );
    };
    if to < from {
        return error(
            StatusCode::BAD_REQUEST,
            "End date should be greater than Start date",
        );
    }
    let ids: Option<Vec<u64>> = q["time_entry_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect());
    let users: Option<Vec<u64>> = q["user_ids"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect());
    let page_size = q["page_size"].as_u64().unwrap_or(50).clamp(1, 1000) as usize;
    let first_row = q["first_row_number"].as_u64().unwrap_or(1).max(1) as usize;
    let mut matching: Vec<&Value> = s
        .entries
        .values()
        .filter(|e| e["workspace_id"].as_u64().map(|w| w.to_string()) == Some(workspace.clone()))
        .filter(|e| e["server_deleted_at"].is_null())
        .filter(|e| date_of(&e["start"]).is_some_and(|d| d >= from && d <= to))
        .filter(|e| {
            ids.as_ref()
                .is_none_or(|ids| e["id"].as_u64().is_some_and(|i| ids.contains(&i)))
        })
        .filter(|e| {
            users
                .as_ref()
                .is_none_or(|u| e["user_id"].as_u64().is_some_and(|i| u.contains(&i)))
        })
        .collect();
    // Newest start first, then id, as a detailed report lists them.
    matching.sort_by(|a, b| {
        b["start"]
            .as_str()
            .cmp(&a["start"].as_str())
            .then(a["id"].as_u64().cmp(&b["id"].as_u64()))
    });
    let rows: Vec<Value> = matching
        .iter()
        .enumerate()
        .skip(first_row - 1)
        .take(page_size)
        .map(|(i, e)| {
            json!({
                "user_id": e["user_id"],
                "username": format!("User {}", e["user_id"]),
                "project_id": e["project_id"],
                "task_id": e["task_id"],
                "billable": e["billable"],
                "description": e["description"],
                "tag_ids": e["tag_ids"],
                "hourly_rate_in_cents": null,
                "billable_amount_in_cents": null,
                "currency": "USD",
                "row_number": i + 1,
                "time_entries": [{
                    "id": e["id"],
                    "seconds": e["duration"],
                    "start": e["start"],
                    "stop": e["stop"],
                    "at": e["at"],
                    "at_tz": e["at"],
                }]
            })
        })
        .collect();
    let next = first_row - 1 + rows.len();
    let mut r = axum::Json(rows).into_response();
    if let Some(e) = matching.get(next) {
        for (k, v) in [
            ("x-next-id", e["id"].as_u64().unwrap_or(0).to_string()),
            ("x-next-row-number", (next + 1).to_string()),
        ] {
            if let Ok(v) = v.parse() {
                r.headers_mut().insert(k, v);
            }
        }
    }
    s.counters.report_pages += 1;
    s.counters.served += 1;
    r
}
