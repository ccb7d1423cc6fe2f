//! A fake Harvest API v2 account (see `shared/VENDOR-FACTS.md`, "Harvest"):
//! `GET /v2/time_entries` filtered by `updated_since` / `from` / `to`,
//! cursor pagination through `links.next`, `GET /v2/time_entries/{id}`
//! (404 once deleted), `GET /v2/clients/{id}` (the client object, with its
//! `currency`; 403 when the token's user may not see clients), the
//! documented headers required (400 without `User-Agent`, 401 without or
//! with a wrong token or account id), a sliding-window rate limit answered
//! with 429 + `Retry-After`, and injectable faults. The test changes the
//! data between polls.
//!
//! Shapes (Harvest API v2 reference, help.getharvest.com/api-v2):
//! - "Time Entries" → "The time entry object": `client` is "an object
//!   containing the id and name of the associated client"; the documented
//!   example is `"client":{"id":5735774,"name":"ABC Corp"}` — no currency.
//! - "Clients" → "The client object": `id`, `name`, `is_active`, `address`,
//!   `statement_key`, `currency` ("The currency code associated with this
//!   client"), `created_at`, `updated_at`; "Required permissions": an
//!   Administrator or a Manager allowed to edit clients, else 403 Forbidden.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::fake_common::{serve, Inject, Window};

/// Counters the tests read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HarvestCounters {
    pub requests: u64,
    pub client_gets: u64,
    pub list_pages: u64,
    pub single_gets: u64,
    pub throttled: u64,
    pub unauthorised: u64,
    pub bad_request: u64,
    pub injected: u64,
}

/// A listing begun by a request without a cursor: the matching ids then.
struct Cursor {
    ids: Vec<u64>,
    per_page: usize,
}

pub struct HarvestState {
    pub account_id: String,
    pub token: String,
    /// Entries by id, as Harvest returns them.
    pub entries: BTreeMap<u64, Value>,
    pub default_per_page: usize,
    window: Window,
    /// `Retry-After` seconds the rate limit answers with (None: computed).
    pub retry_after: Option<f64>,
    pub injected: VecDeque<Inject>,
    pub counters: HarvestCounters,
    /// Answer this many listings by date (`from`/`to`, the look-back
    /// re-listing) with 500.
    pub fail_window_listings: u32,
    /// Query strings of list requests, in order.
    pub list_queries: Vec<HashMap<String, String>>,
    /// Client records by id, as `GET /v2/clients/{id}` returns them.
    pub clients: BTreeMap<u64, Value>,
    /// The token's user may not see clients: `/v2/clients` answers 403
    /// (Harvest API v2, "Clients" → "Required permissions").
    pub clients_forbidden: bool,
    cursors: HashMap<String, Cursor>,
    next_cursor: u64,
    base: String,
}

pub struct HarvestServer {
    pub addr: SocketAddr,
    state: Arc<Mutex<HarvestState>>,
    _task: tokio::task::JoinHandle<()>,
}

impl HarvestServer {
    /// An account allowing `limit` requests per `window`.
    pub async fn start(account_id: &str, token: &str, limit: u32, window: Duration) -> Self {
        let state = Arc::new(Mutex::new(HarvestState {
            account_id: account_id.into(),
            token: token.into(),
            entries: BTreeMap::new(),
            default_per_page: 2000,
            window: Window::new(limit, window),
            retry_after: None,
            fail_window_listings: 0,
            injected: VecDeque::new(),
            counters: HarvestCounters::default(),
            list_queries: Vec::new(),
            clients: BTreeMap::from([(5735776, client(5735776, "ABC Ltd", "USD"))]),
            clients_forbidden: false,
            cursors: HashMap::new(),
            next_cursor: 1,
            base: String::new(),
        }));
        let app = axum::Router::new()
            .route("/v2/time_entries", get(list))
            .route("/v2/time_entries/{id}", get(one))
            .route("/v2/clients/{id}", get(one_client))
            .with_state(state.clone());
        let (addr, task) = serve(app).await;
        state.lock().unwrap_or_else(|p| p.into_inner()).base = format!("http://{addr}");
        Self {
            addr,
            state,
            _task: task,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn state(&self) -> MutexGuard<'_, HarvestState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add or replace an entry; its `updated_at` becomes now (and later than
    /// its previous one, as Harvest's would).
    pub fn put(&self, entry: Value) {
        crate::fake_common::store_with_later_stamp(
            &mut self.state().entries,
            entry,
            "updated_at",
            "harvest",
        );
    }

    /// Change an entry in place (its `updated_at` moves on).
    pub fn edit(&self, id: u64, f: impl FnOnce(&mut Value)) {
        let entry = self.state().entries.get(&id).cloned();
        let Some(mut e) = entry else {
            panic!("harvest fake: no entry {id}");
        };
        f(&mut e);
        self.put(e);
    }

    /// Delete an entry (Harvest reports nothing about it afterwards).
    pub fn delete(&self, id: u64) {
        self.state().entries.remove(&id);
    }

    pub fn inject(&self, fault: Inject) {
        self.state().injected.push_back(fault);
    }

    pub fn counters(&self) -> HarvestCounters {
        self.state().counters.clone()
    }
}

/// A Harvest time entry as the API returns it (closed = approved).
pub fn entry(id: u64, user: u64, project: u64, task: u64, date: NaiveDate, hours: &str) -> Value {
    json!({
        "id": id,
        "spent_date": date.to_string(),
        "hours": hours.parse::<f64>().unwrap_or(1.0),
        "rounded_hours": hours.parse::<f64>().unwrap_or(1.0),
        "notes": format!("entry {id}"),
        "is_locked": false,
        "is_closed": true,
        "is_billed": false,
        "is_running": false,
        "billable": false,
        "billable_rate": null,
        "cost_rate": null,
        "started_time": null,
        "ended_time": null,
        "user": {"id": user, "name": format!("User {user}")},
        // Harvest API v2, "The time entry object": the client's id and name.
        "client": {"id": 5735776, "name": "ABC Ltd"},
        "project": {"id": project, "name": format!("Project {project}"), "code": null},
        "task": {"id": task, "name": format!("Task {task}")},
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z"
    })
}

/// A client record as `GET /v2/clients/{id}` returns it (Harvest API v2,
/// "Clients" → "The client object").
pub fn client(id: u64, name: &str, currency: &str) -> Value {
    json!({
        "id": id,
        "name": name,
        "is_active": true,
        "address": "123 Main St.\r\nAnytown, LA 71223",
        "statement_key": "0a39d3e33c8058cf7c3f8097d854c64e",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "currency": currency
    })
}

type Shared = State<Arc<Mutex<HarvestState>>>;

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

/// Headers, injected faults and the rate limit: `Err` is the answer.
fn gate(s: &mut HarvestState, h: &HeaderMap) -> Result<(), Response> {
    s.counters.requests += 1;
    if let Some(fault) = s.injected.pop_front() {
        s.counters.injected += 1;
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
    let ua = h
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ua.trim().is_empty() {
        s.counters.bad_request += 1;
        return Err(error(StatusCode::BAD_REQUEST, "User-Agent header required"));
    }
    let bearer = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let account = h.get("harvest-account-id").and_then(|v| v.to_str().ok());
    if bearer != Some(s.token.as_str()) || account != Some(s.account_id.as_str()) {
        s.counters.unauthorised += 1;
        return Err(error(StatusCode::UNAUTHORIZED, "invalid_token"));
    }
    if let Err(wait) = s.window.hit(Instant::now()) {
        s.counters.throttled += 1;
        let secs = s
            .retry_after
            .unwrap_or_else(|| wait.as_secs_f64().ceil().max(1.0));
        let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate limit exceeded");
        if let Ok(v) = format!("{secs}").parse() {
            r.headers_mut().insert("retry-after", v);
        }
        return Err(r);
    }
    Ok(())
}

fn matches(e: &Value, q: &HashMap<String, String>) -> bool {
    if let Some(since) = q
        .get("updated_since")
        .and_then(|s| s.parse::<DateTime<Utc>>().ok())
    {
        let at = e["updated_at"]
            .as_str()
            .and_then(|s| s.parse::<DateTime<Utc>>().ok());
        if at.is_none_or(|a| a < since) {
            return false;
        }
    }
    let date = e["spent_date"]
        .as_str()
        .and_then(|s| s.parse::<NaiveDate>().ok());
    if let Some(from) = q.get("from").and_then(|s| s.parse::<NaiveDate>().ok()) {
        if date.is_none_or(|d| d < from) {
            return false;
        }
    }
    if let Some(to) = q.get("to").and_then(|s| s.parse::<NaiveDate>().ok()) {
        if date.is_none_or(|d| d > to) {
            return false;
        }
    }
    true
}

async fn list(
    State(st): Shared,
    h: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(r) = gate(&mut s, &h) {
        return r;
    }
    if q.contains_key("from") && s.fail_window_listings > 0 {
        s.fail_window_listings -= 1;
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "injected (window listing)",
        );
    }
    s.counters.list_pages += 1;
    s.list_queries.push(q.clone());
    // A cursor (`<listing>.<offset>`) continues a listing; otherwise start
    // one from the filters. The same cursor always gives the same page.
    let (listing, offset) = match q.get("cursor") {
        Some(c) => {
            let parsed = c
                .split_once('.')
                .and_then(|(l, o)| Some((l.to_string(), o.parse::<usize>().ok()?)));
            match parsed {
                Some((l, o)) if s.cursors.contains_key(&l) => (l, o),
                _ => return error(StatusCode::BAD_REQUEST, "unknown cursor"),
            }
        }
        None => {
            if q.contains_key("updated_since")
                && q.get("updated_since")
                    .and_then(|v| v.parse::<DateTime<Utc>>().ok())
                    .is_none()
            {
                return error(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "updated_since is not a datetime",
                );
            }
            let per_page = q
                .get("per_page")
                .and_then(|p| p.parse::<usize>().ok())
                .unwrap_or(s.default_per_page)
                .clamp(1, 2000);
            let ids: Vec<u64> = s
                .entries
                .iter()
                .filter(|(_, e)| matches(e, &q))
                .map(|(id, _)| *id)
                .collect();
            let id = format!("c{}", s.next_cursor);
            s.next_cursor += 1;
            s.cursors.insert(id.clone(), Cursor { ids, per_page });
            (id, 0)
        }
    };
    let base = s.base.clone();
    let (page_ids, next, total_pages, total) = {
        let Some(c) = s.cursors.get(&listing) else {
            return error(StatusCode::BAD_REQUEST, "unknown cursor");
        };
        let start = offset.min(c.ids.len());
        let end = (start + c.per_page).min(c.ids.len());
        let page_ids = c.ids[start..end].to_vec();
        let total_pages = c.ids.len().div_ceil(c.per_page).max(1);
        let next = (end < c.ids.len()).then(|| {
            format!(
                "{base}/v2/time_entries?cursor={listing}.{end}&per_page={}",
                c.per_page
            )
        });
        (page_ids, next, total_pages, c.ids.len())
    };
    // Entries deleted since the listing began are skipped, as a live
    // listing would.
    let entries: Vec<Value> = page_ids
        .iter()
        .filter_map(|id| s.entries.get(id).cloned())
        .collect();
    axum::Json(json!({
        "time_entries": entries,
        "per_page": entries.len(),
        "total_pages": total_pages,
        "total_entries": total,
        "next_page": null,
        "previous_page": null,
        "page": null,
        "links": {"first": null, "next": next, "previous": null, "last": null}
    }))
    .into_response()
}

async fn one(State(st): Shared, h: HeaderMap, Path(id): Path<String>) -> Response {
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(r) = gate(&mut s, &h) {
        return r;
    }
    s.counters.single_gets += 1;
    match id.parse::<u64>().ok().and_then(|id| s.entries.get(&id)) {
        Some(e) => axum::Json(e.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn one_client(State(st): Shared, h: HeaderMap, Path(id): Path<String>) -> Response {
    let mut s = st.lock().unwrap_or_else(|p| p.into_inner());
    if let Err(r) = gate(&mut s, &h) {
        return r;
    }
    s.counters.client_gets += 1;
    // "Insufficient permissions will result in a 403 Forbidden status code."
    if s.clients_forbidden {
        return error(StatusCode::FORBIDDEN, "forbidden");
    }
    match id.parse::<u64>().ok().and_then(|id| s.clients.get(&id)) {
        Some(c) => axum::Json(c.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}
