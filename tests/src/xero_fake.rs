//! A fake Xero organisation (Projects API) that behaves as documented:
//! every request body is validated against the vendor's OpenAPI document
//! (`shared/specs/xero-projects.yaml`), `xero-tenant-id` is required,
//! `Idempotency-Key` replays the original answer, time entries that are
//! LOCKED or INVOICED refuse changes (Xero's answer to a concurrent edit —
//! it has no sync tokens), 60 calls/min, 5 in flight and 5000 per rolling
//! 24 hours (VENDOR-FACTS.md "Xero": "not a calendar day") answered
//! with 429 + `Retry-After` + `X-Rate-Limit-Problem`, remaining-allowance
//! headers on every answer, OAuth with rotating refresh tokens, and
//! injectable 5xx / timeouts / dropped connections after the work is done.
//! Time entries and projects are listed with Xero's paging (`page`,
//! `pageSize`, `pagination.pageCount`), each answer checked against the
//! spec's `TimeEntries` / `Projects` schema. Tests change the books as
//! someone in Xero would ([`XeroServer::create_by_hand`],
//! [`XeroServer::edit_by_hand`], [`XeroServer::delete_by_hand`],
//! [`XeroServer::set_status`]).
//!
//! The organisation (Accounting API `GET /api.xro/2.0/Organisation`, Xero
//! "Accounting API › Organisation"): `{"Organisations": [{…, "Timezone"}]}`
//! with `Timezone` one of the API's `TimeZone` values (Windows zone ids in
//! capitals, e.g. `NEWZEALANDSTANDARDTIME`); it dates time entries, since
//! `dateUtc` is an instant shown in that zone (VENDOR-FACTS.md "Xero").

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::fake_common::{dropped_connection, parse_form, serve, Inject, OAuthFake, Window};
use crate::openapi::Spec;

#[derive(Debug, Clone)]
pub struct XeroFakeLimits {
    pub per_minute: u32,
    pub per_day: u32,
    pub concurrent: u32,
    pub minute: Duration,
}

impl Default for XeroFakeLimits {
    fn default() -> Self {
        Self {
            per_minute: 60,
            per_day: 5000,
            concurrent: 5,
            minute: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct TimeEntry {
    pub id: String,
    pub project: String,
    pub body: Value,
    pub status: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    pub calls: u64,
    pub creates: u64,
    pub duplicates: u64,
    pub throttled: u64,
    pub replays: u64,
    pub invalid_bodies: u64,
    /// List calls answered (`GET …/Time`, `GET /Projects`; each page is one).
    pub lists: u64,
    /// `GET /Organisation` calls answered.
    pub organisation_reads: u64,
    /// `GET /Projects/{projectId}/Tasks` pages answered.
    pub task_lists: u64,
}

pub struct XeroState {
    pub tenant: String,
    /// Project id → its task ids.
    pub projects: BTreeMap<String, BTreeSet<String>>,
    pub users: BTreeSet<String>,
    pub entries: BTreeMap<String, TimeEntry>,
    replies: HashMap<String, (u16, String)>,
    pub oauth: OAuthFake,
    minute: Window,
    /// Starts of the calls of the last 24 hours (the rolling daily window).
    day_calls: VecDeque<Instant>,
    /// What `X-AppMinLimit-Remaining` says (the app-wide 10,000 per minute,
    /// shared by every tenant; tests set 0 to play another tenant's load).
    pub app_minute_remaining: u32,
    pub limits: XeroFakeLimits,
    pub injected: VecDeque<Inject>,
    pub counters: Counters,
    /// Every validation problem seen (for assertions).
    pub problems: Vec<String>,
    /// The organisation's `Timezone` (Accounting API `TimeZone` value).
    pub org_timezone: String,
    /// Task id → `chargeType` (`TIME`, `FIXED`, `NON_CHARGEABLE`); a task
    /// not listed here is `NON_CHARGEABLE`.
    pub charge_types: HashMap<String, String>,
}

pub struct FakeXero {
    pub state: Mutex<XeroState>,
    spec: Spec,
    in_flight: AtomicU32,
}

pub struct XeroServer {
    pub addr: SocketAddr,
    pub fake: Arc<FakeXero>,
    _task: tokio::task::JoinHandle<()>,
}

impl XeroServer {
    pub async fn start(
        spec: Spec,
        tenant: &str,
        projects: BTreeMap<String, BTreeSet<String>>,
        users: BTreeSet<String>,
        limits: XeroFakeLimits,
        refresh_token: &str,
    ) -> Self {
        let fake = Arc::new(FakeXero {
            state: Mutex::new(XeroState {
                tenant: tenant.into(),
                projects,
                users,
                entries: BTreeMap::new(),
                replies: HashMap::new(),
                oauth: OAuthFake::new(refresh_token),
                minute: Window::new(limits.per_minute, limits.minute),
                day_calls: VecDeque::new(),
                app_minute_remaining: 9_999,
                limits,
                injected: VecDeque::new(),
                counters: Counters::default(),
                problems: Vec::new(),
                org_timezone: "UTC".into(),
                charge_types: HashMap::new(),
            }),
            spec,
            in_flight: AtomicU32::new(0),
        });
        let app = axum::Router::new()
            .route(
                "/projects.xro/2.0/Projects/{project}/Time",
                post(create).get(list_time),
            )
            .route("/projects.xro/2.0/Projects", get(list_projects))
            .route(
                "/projects.xro/2.0/Projects/{project}/Tasks",
                get(list_tasks),
            )
            .route(
                "/projects.xro/2.0/Projects/{project}/Time/{entry}",
                put(change).delete(change),
            )
            .route("/api.xro/2.0/Organisation", get(organisation))
            .route("/connect/token", post(token))
            .with_state(fake.clone());
        let (addr, task) = serve(app).await;
        Self {
            addr,
            fake,
            _task: task,
        }
    }

    pub fn api_base(&self) -> String {
        format!("http://{}/projects.xro/2.0", self.addr)
    }

    /// The Accounting API base (`…/api.xro/2.0`).
    pub fn accounting_base(&self) -> String {
        format!("http://{}/api.xro/2.0", self.addr)
    }

    pub fn token_url(&self) -> String {
        format!("http://{}/connect/token", self.addr)
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, XeroState> {
        self.fake.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn inject(&self, i: Inject) {
        self.lock().injected.push_back(i);
    }

    pub fn counters(&self) -> Counters {
        self.lock().counters.clone()
    }

    pub fn entries(&self) -> BTreeMap<String, TimeEntry> {
        self.lock().entries.clone()
    }

    /// Log time as someone would in Xero's screens (no API call: nothing
    /// is validated, counted or replayed). `body` is a
    /// `TimeEntryCreateOrUpdate`; returns the new `timeEntryId`.
    pub fn create_by_hand(&self, project: &str, body: Value) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.lock().entries.insert(
            id.clone(),
            TimeEntry {
                id: id.clone(),
                project: project.to_string(),
                body,
                status: "ACTIVE".into(),
            },
        );
        id
    }

    /// Change one field of a time entry as someone in Xero would.
    pub fn edit_by_hand(&self, id: &str, field: &str, value: Value) {
        if let Some(e) = self.lock().entries.get_mut(id) {
            e.body[field] = value;
        }
    }

    /// Delete a time entry as someone in Xero would.
    pub fn delete_by_hand(&self, id: &str) {
        if let Some(e) = self.lock().entries.get_mut(id) {
            e.status = "DELETED".into();
        }
    }

    /// Set a time entry's status (`INVOICED` or `LOCKED`: as if billed in
    /// Xero; `ACTIVE` again).
    pub fn set_status(&self, id: &str, status: &str) {
        if let Some(e) = self.lock().entries.get_mut(id) {
            e.status = status.to_string();
        }
    }
}

async fn token(State(f): State<Arc<FakeXero>>, h: HeaderMap, body: Bytes) -> Response {
    let form = parse_form(&body);
    let mut s = f.state.lock().unwrap_or_else(|p| p.into_inner());
    s.oauth.token(&h, &form)
}

fn error(status: StatusCode, message: &str, model_state: Value) -> Response {
    (
        status,
        axum::Json(json!({"message": message, "modelState": model_state})),
    )
        .into_response()
}

struct InFlight<'a>(&'a AtomicU32);
impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

enum Gate {
    Go(Option<Inject>),
    Stop(Response),
}

impl XeroState {
    /// Calls in the rolling 24 hours before `now`.
    fn day_in_window(&mut self, now: Instant) -> u32 {
        let day = Duration::from_secs(24 * 3600);
        while self.day_calls.front().is_some_and(|t| *t + day <= now) {
            self.day_calls.pop_front();
        }
        u32::try_from(self.day_calls.len()).unwrap_or(u32::MAX)
    }

    fn limit_headers(&mut self, r: &mut Response) {
        let now = Instant::now();
        let min = self.minute.remaining(now);
        let day = self.limits.per_day.saturating_sub(self.day_in_window(now));
        let h = r.headers_mut();
        for (k, v) in [
            ("x-minlimit-remaining", min),
            ("x-daylimit-remaining", day),
            ("x-appminlimit-remaining", self.app_minute_remaining),
        ] {
            if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
                h.insert(k, v);
            }
        }
    }

    /// Authentication, tenant, rate limits, replay and injected faults.
    fn gate(&mut self, h: &HeaderMap, in_flight: u32, idem: Option<&str>) -> Gate {
        if self.injected.front() == Some(&Inject::ExpireTokens) {
            self.injected.pop_front();
            self.oauth.access.clear();
        }
        if !self.oauth.authorised(h) {
            return Gate::Stop(error(StatusCode::UNAUTHORIZED, "Unauthorized", Value::Null));
        }
        let tenant = h.get("xero-tenant-id").and_then(|v| v.to_str().ok());
        if tenant != Some(self.tenant.as_str()) {
            return Gate::Stop(error(
                StatusCode::FORBIDDEN,
                "AuthorizationUnsuccessful: xero-tenant-id missing or not connected",
                Value::Null,
            ));
        }
        let now = Instant::now();
        let problem = if in_flight > self.limits.concurrent {
            Some(("concurrent", Duration::from_secs(1)))
        } else if self.day_in_window(now) >= self.limits.per_day {
            Some(("day", Duration::from_secs(3600)))
        } else {
            self.minute.hit(now).err().map(|d| ("minute", d))
        };
        let injected = match self.injected.front() {
            Some(Inject::Throttle(r)) => {
                let r = *r;
                self.injected.pop_front();
                Some(r)
            }
            _ => None,
        };
        if problem.is_some() || injected.is_some() {
            self.counters.throttled += 1;
            let (what, wait) = problem.unwrap_or(("minute", Duration::from_secs(1)));
            let retry = injected.flatten().unwrap_or(wait.as_secs_f64().max(0.001));
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit exceeded",
                Value::Null,
            );
            if let Ok(v) = HeaderValue::from_str(&format!("{retry:.3}")) {
                r.headers_mut().insert("retry-after", v);
            }
            r.headers_mut()
                .insert("x-rate-limit-problem", HeaderValue::from_static(what));
            self.limit_headers(&mut r);
            return Gate::Stop(r);
        }
        self.day_calls.push_back(now);
        self.counters.calls += 1;
        if let Some((status, body)) = idem.and_then(|k| self.replies.get(k)).cloned() {
            self.counters.replays += 1;
            let mut r = (
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                [("content-type", "application/json")],
                body,
            )
                .into_response();
            self.limit_headers(&mut r);
            return Gate::Stop(r);
        }
        match self.injected.front() {
            Some(Inject::StatusBefore(code)) => {
                let code = *code;
                self.injected.pop_front();
                Gate::Stop(
                    (
                        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                        "injected",
                    )
                        .into_response(),
                )
            }
            Some(Inject::ErrorIn200) => {
                self.injected.pop_front();
                Gate::Stop(error(StatusCode::OK, "An error occurred in Xero. Check the API Status page http://status.developer.xero.com for current service status.", Value::Null))
            }
            Some(_) => Gate::Go(self.injected.pop_front()),
            None => Gate::Go(None),
        }
    }

    fn validate(&mut self, spec: &Spec, project: &str, body: &[u8]) -> Result<Value, Response> {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                &format!("Invalid JSON: {e}"),
                Value::Null,
            )
        })?;
        let schema = spec
            .request_schema("/Projects/{projectId}/Time", "post")
            .unwrap_or_else(|| "TimeEntryCreateOrUpdate".into());
        let mut problems = spec.validate(&schema, &v, false);
        // Documented in the schema's description: 1..=59940 minutes.
        if let Some(d) = v.get("duration").and_then(Value::as_i64) {
            if !(1..=59_940).contains(&d) {
                problems.push(format!("$.duration: {d} is outside 1..=59940"));
            }
        }
        if !problems.is_empty() {
            self.counters.invalid_bodies += 1;
            self.problems.extend(problems.iter().cloned());
            return Err(error(
                StatusCode::BAD_REQUEST,
                "Validation failed",
                json!({"body": problems}),
            ));
        }
        let Some(tasks) = self.projects.get(project) else {
            return Err(error(
                StatusCode::NOT_FOUND,
                &format!("Project {project} not found"),
                Value::Null,
            ));
        };
        let task = v.get("taskId").and_then(Value::as_str).unwrap_or("");
        if !tasks.contains(task) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "Validation failed",
                json!({"taskId": [format!("Task {task} is not a task of project {project}")]}),
            ));
        }
        let user = v.get("userId").and_then(Value::as_str).unwrap_or("");
        if !self.users.contains(user) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "Validation failed",
                json!({"userId": [format!("User {user} is not a project user")]}),
            ));
        }
        Ok(v)
    }

    fn remember(&mut self, idem: Option<&str>, status: u16, body: &str) {
        if let Some(k) = idem {
            self.replies
                .insert(k.to_string(), (status, body.to_string()));
        }
    }
}

async fn finish(after: Option<Inject>, mut resp: Response, f: &FakeXero) -> Response {
    {
        let mut s = f.state.lock().unwrap_or_else(|p| p.into_inner());
        s.limit_headers(&mut resp);
    }
    match after {
        Some(Inject::StatusAfter(code)) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "injected after the work",
        )
            .into_response(),
        Some(Inject::TimeoutAfter(d)) => {
            tokio::time::sleep(d).await;
            resp
        }
        Some(Inject::DropAfter) => dropped_connection(),
        _ => resp,
    }
}

async fn create(
    State(f): State<Arc<FakeXero>>,
    Path(project): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let n = f.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _g = InFlight(&f.in_flight);
    let idem = h
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (resp, after) = {
        let mut s = f.state.lock().unwrap_or_else(|p| p.into_inner());
        let after = match s.gate(&h, n, idem.as_deref()) {
            Gate::Stop(r) => return r,
            Gate::Go(i) => i,
        };
        let v = match s.validate(&f.spec, &project, &body) {
            Ok(v) => v,
            Err(mut r) => {
                s.limit_headers(&mut r);
                return r;
            }
        };
        if s.entries
            .values()
            .any(|e| e.project == project && e.status != "DELETED" && e.body == v)
        {
            s.counters.duplicates += 1;
        }
        s.counters.creates += 1;
        let id = uuid::Uuid::new_v4().to_string();
        s.entries.insert(
            id.clone(),
            TimeEntry {
                id: id.clone(),
                project: project.clone(),
                body: v.clone(),
                status: "ACTIVE".into(),
            },
        );
        let mut out = v.clone();
        out["timeEntryId"] = json!(id);
        out["projectId"] = json!(project);
        out["status"] = json!("ACTIVE");
        out["dateEnteredUtc"] = json!(chrono::Utc::now().to_rfc3339());
        let text = out.to_string();
        s.remember(idem.as_deref(), 200, &text);
        (
            (StatusCode::OK, [("content-type", "application/json")], text).into_response(),
            after,
        )
    };
    finish(after, resp, &f).await
}

async fn change(
    State(f): State<Arc<FakeXero>>,
    method: Method,
    Path((project, entry)): Path<(String, String)>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    let n = f.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _g = InFlight(&f.in_flight);
    let idem = h
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (resp, after) = {
        let mut s = f.state.lock().unwrap_or_else(|p| p.into_inner());
        let after = match s.gate(&h, n, idem.as_deref()) {
            Gate::Stop(r) => return r,
            Gate::Go(i) => i,
        };
        let status = match s.entries.get(&entry) {
            Some(e) if e.project == project && e.status != "DELETED" => e.status.clone(),
            _ => {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!("Time entry {entry} not found"),
                    Value::Null,
                )
            }
        };
        if status != "ACTIVE" {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("The time entry cannot be changed because it is {status}"),
                Value::Null,
            );
        }
        if method == Method::PUT {
            let v = match s.validate(&f.spec, &project, &body) {
                Ok(v) => v,
                Err(mut r) => {
                    s.limit_headers(&mut r);
                    return r;
                }
            };
            if let Some(e) = s.entries.get_mut(&entry) {
                e.body = v;
            }
        } else if let Some(e) = s.entries.get_mut(&entry) {
            e.status = "DELETED".into();
        }
        s.remember(idem.as_deref(), 204, "");
        (StatusCode::NO_CONTENT.into_response(), after)
    };
    finish(after, resp, &f).await
}

/// `page` and `pageSize` as the Projects API documents them
/// (xero-projects.yaml, `GET /Projects/{projectId}/Time` and
/// `GET /Projects` parameters: `page` "set to 1 by default … must be a
/// number greater than 0", `pageSize` "set to 50 by default … must be a
/// number between 1 and 500").
fn paging(q: &HashMap<String, String>) -> Result<(usize, usize), String> {
    let num = |k: &str, default: usize| -> Result<usize, String> {
        q.get(k).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("{k}: {v} is not a number"))
        })
    };
    let page = num("page", 1)?;
    let size = num("pageSize", 50)?;
    if page == 0 {
        return Err("page must be a number greater than 0".into());
    }
    if !(1..=500).contains(&size) {
        return Err("pageSize must be a number between 1 and 500".into());
    }
    Ok((page, size))
}

/// One page of `items` and the `pagination` object (`Pagination` schema:
/// `page`, `pageSize`, `pageCount` "number of pages available",
/// `itemCount`; the spec's example — 9 items on one page — cannot tell the
/// page's count from the total, so the fake gives the total, as pageCount
/// is derived from it).
fn page_of(items: Vec<Value>, page: usize, size: usize) -> Value {
    let total = items.len();
    let count = total.div_ceil(size);
    let items: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    json!({
        "pagination": {"page": page, "pageSize": size, "pageCount": count, "itemCount": total},
        "items": items,
    })
}

fn instant(v: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(v)
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

impl XeroState {
    /// Check a list answer against the spec (a fake that answers off
    /// contract would hide an adapter's parsing bug).
    fn check_answer(&mut self, spec: &Spec, schema: &str, answer: &Value) {
        let problems = spec.validate(schema, answer, true);
        self.problems.extend(
            problems
                .into_iter()
                .map(|p| format!("answer {schema}: {p}")),
        );
    }
}

/// `GET /Projects/{projectId}/Time` (xero-projects.yaml, operation
/// `getTimeEntries`; Xero "Projects › Time"): the project's time entries,
/// filtered by `dateAfterUtc` / `dateBeforeUtc` ("on or after" / "on or
/// before", on the `dateUtc` field), `userId`, `taskId` and `states`, paged
/// by `page` / `pageSize`, answered as `TimeEntries` (`pagination`,
/// `items`). Deleted entries are gone from the list.
async fn list_time(
    State(f): State<Arc<FakeXero>>,
    Path(project): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let n = f.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _g = InFlight(&f.in_flight);
    let (resp, after) = {
        let mut s = f.state.lock().unwrap_or_else(|p| p.into_inner());
        let after = match s.gate(&h, n, None) {
            Gate::Stop(r) => return r,
            Gate::Go(i) => i,
        };
        s.counters.lists += 1;
        let (page, size) = match paging(&q) {
            Ok(p) => p,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e, Value::Null),
        };
        if !s.projects.contains_key(&project) {
            return error(
                StatusCode::NOT_FOUND,
                &format!("Project {project} not found"),
                Value::Null,
            );
        }
        let mut bounds = [None, None];
        for (slot, key) in bounds.iter_mut().zip(["dateAfterUtc", "dateBeforeUtc"]) {
            if let Some(v) = q.get(key) {
                match instant(v) {
                    Some(t) => *slot = Some(t),
                    None => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            &format!("{key}: {v} is not an ISO 8601 UTC date-time"),
                            Value::Null,
                        )
                    }
                }
            }
        }
        let states: Option<Vec<&str>> = q.get("states").map(|v| v.split(',').collect());
        let items: Vec<Value> = s
            .entries
            .values()
            .filter(|e| e.project == project && e.status != "DELETED")
            .filter(|e| {
                let at = e.body["dateUtc"].as_str().and_then(instant);
                bounds[0].is_none_or(|b| at.is_some_and(|t| t >= b))
                    && bounds[1].is_none_or(|b| at.is_some_and(|t| t <= b))
            })
            .filter(|e| {
                q.get("userId")
                    .is_none_or(|u| e.body["userId"].as_str() == Some(u.as_str()))
            })
            .filter(|e| {
                q.get("taskId")
                    .is_none_or(|t| e.body["taskId"].as_str() == Some(t.as_str()))
            })
            .filter(|e| {
                states
                    .as_ref()
                    .is_none_or(|st| st.contains(&e.status.as_str()))
            })
            .map(|e| {
                let mut v = e.body.clone();
                v["timeEntryId"] = json!(e.id);
                v["projectId"] = json!(e.project);
                v["status"] = json!(e.status);
                if v.get("dateEnteredUtc").is_none() {
                    v["dateEnteredUtc"] = v["dateUtc"].clone();
                }
                v
            })
            .collect();
        let answer = page_of(items, page, size);
        s.check_answer(&f.spec, "TimeEntries", &answer);
        (
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                answer.to_string(),
            )
                .into_response(),
            after,
        )
    };
    finish(after, resp, &f).await
}

/// `GET /Projects` (xero-projects.yaml, operation `getProjects`; Xero
/// "Projects › Projects"): the organisation's projects, paged by `page` /
/// `pageSize`, answered as `Projects` (`pagination`, `items`). The fake's
/// projects are all `INPROGRESS`.
async fn list_projects(
    State(f): State<Arc<FakeXero>>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let n = f.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _g = InFlight(&f.in_flight);
    let (resp, after) = {
        let mut s = f.state.lock().unwrap_or_else(|p| p.into_inner());
        let after = match s.gate(&h, n, None) {
            Gate::Stop(r) => return r,
            Gate::Go(i) => i,
        };
        s.counters.lists += 1;
        let (page, size) = match paging(&q) {
            Ok(p) => p,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e, Value::Null),
        };
        let items: Vec<Value> = s
            .projects
            .keys()
            .filter(|_| q.get("states").is_none_or(|st| st.contains("INPROGRESS")))
            .map(
                |p| json!({"projectId": p, "name": format!("Project {p}"), "status": "INPROGRESS"}),
            )
            .collect();
        let answer = page_of(items, page, size);
        s.check_answer(&f.spec, "Projects", &answer);
        (
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                answer.to_string(),
            )
                .into_response(),
            after,
        )
    };
    finish(after, resp, &f).await
}

/// `GET /api.xro/2.0/Organisation` (Xero Accounting API › Organisation): the
/// connected organisation, its `Timezone` among the fields. Counted toward
/// the tenant's limits like every call (Xero's limits are per tenant and
/// app, across its APIs).
async fn organisation(State(f): State<Arc<FakeXero>>, h: HeaderMap) -> Response {
    let n = f.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _g = InFlight(&f.in_flight);
    let (resp, after) = {
        let mut s = f.state.lock().unwrap_or_else(|p| p.into_inner());
        let after = match s.gate(&h, n, None) {
            Gate::Stop(r) => return r,
            Gate::Go(i) => i,
        };
        s.counters.organisation_reads += 1;
        let answer = json!({
            "Id": uuid::Uuid::new_v4().to_string(),
            "Status": "OK",
            "ProviderName": "timepost tests",
            "Organisations": [{
                "OrganisationID": s.tenant,
                "Name": "Demo Company",
                "BaseCurrency": "USD",
                "CountryCode": "US",
                "OrganisationType": "COMPANY",
                "Timezone": s.org_timezone,
            }]
        });
        (
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                answer.to_string(),
            )
                .into_response(),
            after,
        )
    };
    finish(after, resp, &f).await
}

/// `GET /Projects/{projectId}/Tasks` (xero-projects.yaml, operation
/// `getTasks`): the project's tasks with their `chargeType` ("Can be `TIME`,
/// `FIXED` or `NON_CHARGEABLE`, defines how the task will be charged"),
/// paged, answered as `Tasks` and checked against that schema. Whether time
/// is chargeable is the task's, not the time entry's (VENDOR-FACTS.md
/// "Xero", corrected).
async fn list_tasks(
    State(f): State<Arc<FakeXero>>,
    Path(project): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    let n = f.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _g = InFlight(&f.in_flight);
    let (resp, after) = {
        let mut s = f.state.lock().unwrap_or_else(|p| p.into_inner());
        let after = match s.gate(&h, n, None) {
            Gate::Stop(r) => return r,
            Gate::Go(i) => i,
        };
        s.counters.task_lists += 1;
        let (page, size) = match paging(&q) {
            Ok(p) => p,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e, Value::Null),
        };
        let Some(tasks) = s.projects.get(&project) else {
            return error(
                StatusCode::NOT_FOUND,
                &format!("Project {project} not found"),
                Value::Null,
            );
        };
        let items: Vec<Value> = tasks
            .iter()
            .map(|t| {
                let ct = s
                    .charge_types
                    .get(t)
                    .cloned()
                    .unwrap_or_else(|| "NON_CHARGEABLE".into());
                json!({"taskId": t, "name": format!("Task {t}"), "chargeType": ct,
                       "rate": {"currency": "USD", "value": 0.0},
                       "projectId": project, "status": "ACTIVE", "estimateMinutes": 0})
            })
            .collect();
        let answer = page_of(items, page, size);
        s.check_answer(&f.spec, "Tasks", &answer);
        (
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                answer.to_string(),
            )
                .into_response(),
            after,
        )
    };
    finish(after, resp, &f).await
}
