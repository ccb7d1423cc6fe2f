//! The admin API's OpenAPI 3.0 document, served at `/openapi.json`.

use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

/// An entry key (`source:workspace:id`, a `:` inside a part written `%3A`
/// and a `%` `%25`), as the server parses it.
const KEY_PATTERN: &str = "^(clockify|toggl|harvest|csv):([^:%]|%25|%3A)*:([^:%]|%25|%3A)+$";

/// A JSON operation answering 200 with an object.
fn op(summary: &str, params: Value, ok: &str) -> Value {
    op_as(summary, params, ok, "object")
}

/// A JSON operation answering 200 with a value of JSON type `ok_type`
/// (`object` or `array`); a JSON body that is not JSON is 415.
fn op_as(summary: &str, params: Value, ok: &str, ok_type: &str) -> Value {
    json!({
        "summary": summary,
        "parameters": params,
        "security": [{ "bearer": [] }],
        "responses": {
            "200": { "description": ok, "content": { "application/json": { "schema": { "type": ok_type } } } },
            "400": { "$ref": "#/components/responses/Error" },
            "401": { "$ref": "#/components/responses/Error" },
            "403": { "$ref": "#/components/responses/Error" },
            "404": { "$ref": "#/components/responses/Error" },
            "415": { "$ref": "#/components/responses/Error" },
            "429": { "$ref": "#/components/responses/Error" }
        }
    })
}

fn path_param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string", "minLength": 1 } })
}

fn key_param() -> Value {
    json!({ "name": "key", "in": "path", "required": true, "schema": { "type": "string", "pattern": KEY_PATTERN } })
}

fn enum_query_param(name: &str, values: Vec<&str>) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string", "enum": values } })
}

fn tables() -> Vec<&'static str> {
    crate::mapping::MappingTable::ALL
        .iter()
        .map(|t| t.as_str())
        .collect()
}

fn query_param(name: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string" } })
}

/// A console page (HTML). Signed-in pages accept the session cookie or a
/// bearer token.
fn html_page(summary: &str, signed_in: bool) -> Value {
    let mut o = json!({
        "summary": summary,
        "responses": {
            "200": { "description": "the page", "content": { "text/html": { "schema": { "type": "string" } } } }
        }
    });
    if signed_in {
        o["security"] = json!([{ "bearer": [] }, { "session": [] }]);
        o["responses"]["401"] = json!({ "description": "not signed in" });
        o["responses"]["403"] = json!({ "description": "the role may not see this" });
        o["responses"]["429"] =
            json!({ "description": "too many failed tokens from this client (see Retry-After)" });
    }
    o
}

/// A console form POST (urlencoded); `csrf` is required with a session
/// cookie, not with a bearer token.
fn form_post(summary: &str, required: &[&str], signed_in: bool) -> Value {
    let props: serde_json::Map<String, Value> = [
        "token", "csrf", "key", "code", "reason", "decision", "all_week", "table", "target",
        "attrs", "seq", "remove", "from", "to", "preview", "id", "action", "period",
    ]
    .iter()
    .filter(|f| signed_in != (**f == "token"))
    .map(|f| {
        let schema = match *f {
            "key" | "all_week" => json!({ "type": "string", "pattern": KEY_PATTERN }),
            "seq" => json!({ "type": "string", "pattern": "^[0-9]{1,18}$" }),
            "from" | "to" => json!({ "type": "string", "format": "date" }),
            "table" => json!({ "type": "string", "enum": tables() }),
            "decision" => json!({ "type": "string", "enum": ["approve", "reject"] }),
            "action" => json!({ "type": "string", "enum": ["repost", "accept_books", "dismiss"] }),
            "code" => json!({ "type": "string", "enum": crate::exceptions::ExceptionCode::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>() }),
            // Blank (or only spaces) is refused like a missing field.
            _ if required.contains(f) => json!({ "type": "string", "pattern": "\\S" }),
            _ => json!({ "type": "string" }),
        };
        (f.to_string(), schema)
    })
    .collect();
    let mut schema = json!({ "type": "object", "properties": props });
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    let mut o = json!({
        "summary": summary,
        "requestBody": { "required": true, "content": { "application/x-www-form-urlencoded": { "schema": schema } } },
        "responses": {
            "303": { "description": "done; see the page it redirects to" },
            "400": { "description": "a field is missing or invalid (named on the page)" },
            "401": { "description": "not signed in, or a bad token" },
            "415": { "description": "the body is not a urlencoded form" },
            "429": { "description": "too many failed tokens from this client (see Retry-After)" }
        }
    });
    if signed_in {
        o["security"] = json!([{ "bearer": [] }, { "session": [] }]);
        o["responses"]["403"] =
            json!({ "description": "role without the right, or CSRF token missing" });
        o["responses"]["404"] = json!({ "description": "no such entry" });
    }
    o
}

pub fn spec() -> Value {
    let accepted = |summary: &str, p: Value| {
        let mut o = op(summary, p, "accepted");
        o["responses"]["202"] = json!({ "description": "queued" });
        o
    };
    let mut discard = op(
        "Discard an exception or held entry with a reason (it becomes ignored; audited)",
        json!([key_param()]),
        "discarded",
    );
    discard["requestBody"] = json!({
        "required": true,
        "content": { "application/json": { "schema": {
            "type": "object", "required": ["reason"],
            "properties": { "reason": { "type": "string", "pattern": "\\S" } }
        } } }
    });
    discard["responses"]["409"] = json!({ "$ref": "#/components/responses/Error" });
    let mut approve = op(
        "Approve or reject entries awaiting approval: one Approval message per user-week and contiguous run of the selected dates (audited)",
        json!([]),
        "queued",
    );
    approve["requestBody"] = json!({
        "required": true,
        "content": { "application/json": { "schema": {
            "type": "object", "required": ["entries", "decision"],
            "properties": {
                "entries": { "type": "array", "minItems": 1, "items": { "type": "string", "pattern": KEY_PATTERN } },
                "decision": { "type": "string", "enum": ["approve", "reject"] }
            }
        } } }
    });
    approve["responses"]["202"] = json!({ "description": "queued" });
    approve["responses"]["409"] = json!({ "$ref": "#/components/responses/Error" });
    let mut set_mapping = op(
        "Add, change (`target`, `attrs`) or remove (`remove: true`) one mapping row with a required reason, through review: when it would change more stored entries (any work date) than `mapping_approval_threshold` it is stored as a proposal (202) for a second named admin (the shared admin token may not propose it: 403); otherwise one transaction, audited, then the held entries it can release are re-checked (in the request locally; queued for the sync function on a deployed stack)",
        json!([]),
        "the change (or changed: false when the row is already so)",
    );
    set_mapping["requestBody"] = json!({
        "required": true,
        "content": { "application/json": { "schema": {
            "type": "object", "required": ["table", "key", "reason"],
            "properties": {
                "table": { "type": "string", "enum": tables() }, "key": { "type": "string", "pattern": "\\S" },
                "target": { "type": "string", "pattern": "\\S" },
                "attrs": { "type": "object", "additionalProperties": { "type": "string" } },
                "remove": { "type": "boolean" }, "reason": { "type": "string", "pattern": "\\S" }
            }
        } } }
    });
    let mut revert_mapping = op(
        "Apply change `seq`'s before-state as a new change (revert to that version), with a required reason",
        json!([]),
        "the new change",
    );
    revert_mapping["requestBody"] = json!({
        "required": true,
        "content": { "application/json": { "schema": {
            "type": "object", "required": ["seq", "reason"],
            "properties": { "seq": { "type": "integer", "minimum": 1 }, "reason": { "type": "string", "pattern": "\\S" } }
        } } }
    });
    // Signing out needs no body with a bearer token (a session sends its
    // CSRF token).
    let mut logout = form_post("Sign out (ends the session)", &[], true);
    logout["requestBody"]["required"] = json!(false);
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": { "title": "timepost admin API", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/healthz": { "get": { "summary": "Health and queue depth", "responses": { "200": { "description": "healthy" } } } },
            "/api/report": { "get": op("The store's summary: entries and hours per status, posted totals by project and employee, KPIs (from the maintained aggregates) and the oldest held, waiting and exception entries (at most 50 each, with how many more); with `full=true` the full outcome report (every entry, reconciliation against the ledger's read-back); with `period` (all, 2026, 2026-03, 2026-W10, 2026-03-02) one period's figures from the maintained aggregates", json!([{ "name": "period", "in": "query", "required": false, "schema": { "type": "string", "pattern": "^(all|[0-9]{4}(-W[0-9]{2}|-[0-9]{2}(-[0-9]{2})?)?)$" } }, { "name": "full", "in": "query", "required": false, "schema": { "type": "boolean" } }]), "the report") },
            "/api/entries": { "get": op_as("Entries by status (oldest first; the page after `after` = `<updated_at>|<key>` of the previous page's last entry), or without `status` one page in key order after the entry key `after` (the previous page's last key); with `worker` (tracker user id or e-mail) and / or `project` (tracker project id or name) one page of that worker's / project's entries in key order after `after`, `status` then filtering it, read over the mapped-key index", json!([enum_query_param("status", crate::state::Status::ALL.iter().map(|s| s.as_str()).collect()), { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0, "maximum": 10000 } }, { "name": "after", "in": "query", "required": false, "schema": { "type": "string" } }, { "name": "worker", "in": "query", "required": false, "schema": { "type": "string" } }, { "name": "project", "in": "query", "required": false, "schema": { "type": "string" } }]), "entry states", "array") },
            "/api/entries/{key}": { "get": op("One entry's state", json!([key_param()]), "the entry state") },
            "/api/entries/{key}/redrive": { "post": accepted("Re-evaluate one entry", json!([key_param()])) },
            "/api/dead-letters": { "get": op_as("Messages parked in the dead-letter queue, with reasons", json!([]), "dead letters", "array") },
            "/api/dead-letters/{id}/redrive": { "post": accepted("Put one dead letter back on the queue", json!([path_param("id")])) },
            "/api/mappings": { "get": op("Current mappings", json!([enum_query_param("table", tables())]), "mapping rows"), "post": set_mapping },
            "/api/mappings/revert": { "post": revert_mapping },
            "/console/mappings": {
                "get": html_page("Every mapping table's rows, with the add / change / remove form for admins", true),
                "post": form_post("Add or change (`table`, `key`, `target`, `attrs`) or remove (`remove`) one row; `reason` required", &["csrf", "table", "key", "reason"], true)
            },
            "/console/mappings/history": { "get": html_page("Mapping versions (who, when, why, before → after), optionally for one `table` and `key`", true) },
            "/console/mappings/revert": { "post": form_post("Revert to the version before change `seq` (applied as a new change); `reason` required", &["csrf", "seq", "reason"], true) },
            "/api/mappings/history": { "get": op_as("Mapping change log", json!([enum_query_param("table", tables()), query_param("key")]), "changes", "array") },
            "/api/exception-codes": { "get": op_as("Every exception code, explained", json!([]), "codes", "array") },
            "/api/entries/{key}/discard": { "post": discard },
            "/api/audit": { "get": op_as("The audit log, newest first: who did what, when, to which entry", json!([{ "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0, "maximum": 10000 } }]), "audit records", "array") },
            "/api/approvals": {
                "get": op_as("Entries awaiting approval, oldest first, `limit` at a time (500 unless given); the page after `after` = `<updated_at>|<key>` of the previous page's last entry", json!([{ "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0, "maximum": 10000 } }, { "name": "after", "in": "query", "required": false, "schema": { "type": "string" } }]), "entry states", "array"),
                "post": approve
            },
            "/console/approvals": {
                "get": html_page("Entries awaiting approval, by week then employee, with bulk approve / reject", true),
                "post": form_post("Approve or reject the checked entries (`key`, repeated; `decision`), or approve a whole employee-week (`all_week` = any entry key of it)", &["csrf"], true)
            },
            "/console/login": {
                "get": html_page("The sign-in form", false),
                "post": form_post("Sign in with a token; sets the HttpOnly, SameSite=Strict session cookie", &["token"], false)
            },
            "/console": { "get": html_page("The dashboard: counts by status, unmapped entries, approval backlog, posted hours by project and employee (CSS bars), KPIs", true) },
            "/console/hours-by-project.csv": { "get": { "summary": "Posted hours by project as CSV (formula-like cells prefixed with ')", "security": [{ "bearer": [] }, { "session": [] }], "responses": { "200": { "description": "CSV", "content": { "text/csv": { "schema": { "type": "string" } } } }, "401": { "description": "not signed in" } } } },
            "/console/exceptions.csv": { "get": { "summary": "The exceptions table as CSV (formula-like cells prefixed with ')", "security": [{ "bearer": [] }, { "session": [] }], "responses": { "200": { "description": "CSV", "content": { "text/csv": { "schema": { "type": "string" } } } }, "401": { "description": "not signed in" } } } },
            "/console/logout": { "post": logout },
            "/console/exceptions": { "get": html_page("Entries that could not be posted, grouped by reason, with fix hints", true) },
            "/console/exceptions/redrive": { "post": form_post("Redrive one entry (`key`) or every open entry of a reason (`code`) through the queue", &["csrf"], true) },
            "/console/exceptions/discard": { "post": form_post("Discard an exception or held entry with a required reason (audited)", &["csrf", "key", "reason"], true) }
        },
        "components": {
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer" },
                "session": { "type": "apiKey", "in": "cookie", "name": "tp_session" }
            },
            "responses": {
                "Error": {
                    "description": "error",
                    "content": { "application/json": { "schema": {
                        "type": "object",
                        "required": ["error"],
                        "properties": { "error": { "type": "string" }, "field": { "type": "string" } }
                    } } }
                }
            }
        }
    });
    console_paths(&mut doc["paths"]);
    doc
}

/// The console features added after the first cut (entry trace, inline
/// mapping fix, holding account, mapping approvals), kept apart so the big
/// literal above stays within the macro's recursion limit.
fn console_paths(paths: &mut Value) {
    paths["/api/entries/{key}/trace"] = json!({ "get": op(
        "One entry's decision trace: the stored (normalised) entry, the decision re-run against the current mappings and rules with every rule and mapping row that applied, the lines it would post, and the ledger journal",
        json!([path_param("key")]),
        "the trace",
    ) });
    paths["/console/exceptions/{key}"] = json!({ "get": {
        "summary": "One entry in detail: where it stands, the decision trace in words, what the books hold, the entry as received",
        "parameters": [path_param("key")],
        "security": [{ "bearer": [] }, { "session": [] }],
        "responses": {
            "200": { "description": "the page", "content": { "text/html": { "schema": { "type": "string" } } } },
            "400": { "description": "not an entry key" },
            "401": { "description": "not signed in" },
            "404": { "description": "no such entry" }
        }
    } });
    let mut fix = form_post(
        "Add the mapping row an open (held or exception) entry is missing (`table`, `key`, `target`, `reason`), through the same review as any change: applied, audited and every open entry missing it redriven, or, when it would change more stored entries than `mapping_approval_threshold`, stored as a proposal for an admin; never changes an existing row (409) nor adds one no open entry is missing (403)",
        &["csrf", "table", "key", "target", "reason"],
        true,
    );
    fix["responses"]["409"] = json!({ "description": "the row exists already" });
    fix["responses"]["403"] = json!({ "description": "role without the right, CSRF token missing, or no open entry is missing this row" });
    paths["/console/exceptions/fix-mapping"] = json!({ "post": fix });
    let mut hold = form_post(
        "Route entries to the holding account: `key` (one, or repeated for a selection) or `code` (every open entry of a reason); recorded on the entry, audited, posted once through the queue",
        &["csrf"],
        true,
    );
    hold["responses"]["409"] =
        json!({ "description": "no holding account configured, or an entry is not open" });
    paths["/console/exceptions/holding"] = json!({ "post": hold });
    let mut api_hold = op(
        "Route exceptions or held entries to the configured holding (suspense) account: `entries` (keys) or `code` (every open entry of that reason); 409 when no holding account is configured or an entry is not open",
        json!([]),
        "routed",
    );
    api_hold["requestBody"] = json!({
        "required": true,
        "content": { "application/json": { "schema": {
            "type": "object",
            "properties": {
                "entries": { "type": "array", "items": { "type": "string" } },
                "code": { "type": "string" }
            }
        } } }
    });
    api_hold["responses"]["202"] = json!({ "description": "routed and queued" });
    api_hold["responses"]["409"] = json!({ "$ref": "#/components/responses/Error" });
    paths["/api/holding"] = json!({ "post": api_hold });
    // The dashboard's filters (400 naming the field when invalid).
    let filters = json!([
        { "name": "from", "in": "query", "required": false, "schema": { "type": "string", "format": "date" } },
        { "name": "to", "in": "query", "required": false, "schema": { "type": "string", "format": "date" } },
        { "name": "billable", "in": "query", "required": false, "schema": { "type": "string", "enum": ["", "all", "billable", "non_billable"] } },
        { "name": "currency", "in": "query", "required": false, "schema": { "type": "string" } }
    ]);
    for p in ["/console", "/console/hours-by-project.csv"] {
        paths[p]["get"]["parameters"] = filters.clone();
        paths[p]["get"]["responses"]["400"] =
            json!({ "description": "a filter is invalid (named)" });
    }
    mapping_review_paths(paths);
    reconciliation_paths(paths);
    archives_paths(paths);
    paths["/console"]["get"]["summary"] = json!("The dashboard: counts by status, unmapped entries, approval backlog, posted hours by project and employee filtered by period / billable / currency (CSS bars), the integration KPIs over the period as inline SVG charts");
}

/// Mapping change review: impact previews, proposals waiting for a second
/// admin, approve / reject.
fn mapping_review_paths(paths: &mut Value) {
    let date = |name: &str| json!({ "name": name, "in": "query", "required": false, "schema": { "type": "string", "format": "date" } });
    let row = json!([
        enum_query_param("table", tables()),
        query_param("key"),
        query_param("target"),
        query_param("attrs"),
        query_param("remove"),
        date("from"),
        date("to")
    ]);
    paths["/api/mappings/preview"] = json!({ "get": op(
        "The impact of one proposed row change (`table`, `key`, `target`, `attrs`, or `remove`): `entries_in_reach` counts every stored entry the change can affect, whatever its work date (those indexed under the row's key; every entry for a GL account, payroll item or `*` row): what decides whether saving it needs a second admin. The entries of `from`..`to` (work dates, default the last 30 days) the change can touch are replayed with their worker-weeks against the current and the proposed mappings, and those that would post differently are listed (before → after lines, state moves)",
        row.clone(),
        "the preview",
    ) });
    let mut page = html_page("The impact preview of one proposed row change (same fields as the API), with the save form for admins", true);
    page["parameters"] = row;
    page["responses"]["400"] = json!({ "description": "a field is missing or invalid (named)" });
    paths["/console/mappings/preview"] = json!({ "get": page });
    paths["/api/mappings/pending"] = json!({ "get": op_as(
        "Mapping change proposals with their previews, newest first: pending (default) or `status` applied / rejected / all",
        json!([enum_query_param("status", vec!["pending", "applied", "rejected", "all"])]),
        "proposals",
        "array",
    ) });
    paths["/api/mappings/pending/{id}"] = json!({ "get": op("One mapping change proposal with its saved preview", json!([path_param("id")]), "the proposal") });
    let mut approve = op(
        "Approve a pending mapping change: a named admin other than the proposer (the proposer, or the shared admin token that names nobody: 403); applied in one transaction, audited, then the held entries it can release are re-checked (in the request locally; queued for the sync function on a deployed stack) and open entries missing a row it added redriven; 409 when it is no longer pending or the mappings changed since its preview",
        json!([path_param("id")]),
        "applied",
    );
    approve["responses"]["409"] = json!({ "$ref": "#/components/responses/Error" });
    paths["/api/mappings/pending/{id}/approve"] = json!({ "post": approve });
    let mut reject = op("Reject a pending mapping change with a required `reason` (audited); the mappings stay unchanged", json!([path_param("id")]), "rejected");
    reject["requestBody"] = json!({
        "required": true,
        "content": { "application/json": { "schema": {
            "type": "object", "required": ["reason"],
            "properties": { "reason": { "type": "string", "pattern": "\\S" } }
        } } }
    });
    reject["responses"]["409"] = json!({ "$ref": "#/components/responses/Error" });
    paths["/api/mappings/pending/{id}/reject"] = json!({ "post": reject });
    paths["/console/mappings/pending/{id}"] = json!({ "get": {
        "summary": "One mapping change proposal: its preview, status, and approve / reject for admins",
        "parameters": [path_param("id")],
        "security": [{ "bearer": [] }, { "session": [] }],
        "responses": {
            "200": { "description": "the page", "content": { "text/html": { "schema": { "type": "string" } } } },
            "400": { "description": "not a proposal number" },
            "401": { "description": "not signed in" },
            "403": { "description": "the role may not see this" },
            "404": { "description": "no such proposal" }
        }
    } });
    let mut approve_form = form_post(
        "Approve and apply a pending mapping change (not your own, not with the shared admin token: 403; stale preview: 409)",
        &["csrf"],
        true,
    );
    approve_form["parameters"] = json!([path_param("id")]);
    approve_form["requestBody"]["required"] = json!(false);
    approve_form["responses"]["409"] =
        json!({ "description": "no longer pending, or the mappings changed since the preview" });
    paths["/console/mappings/pending/{id}/approve"] = json!({ "post": approve_form });
    let mut reject_form = form_post(
        "Reject a pending mapping change with a required reason",
        &["csrf", "reason"],
        true,
    );
    reject_form["parameters"] = json!([path_param("id")]);
    reject_form["responses"]["409"] = json!({ "description": "no longer pending" });
    paths["/console/mappings/pending/{id}/reject"] = json!({ "post": reject_form });
    // Saves are counted over every stored entry and list `from`..`to`; a
    // large change answers 202 (pending) instead of applying.
    for p in ["/api/mappings", "/api/mappings/revert"] {
        let props = &mut paths[p]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["properties"];
        props["from"] = json!({ "type": "string", "format": "date" });
        props["to"] = json!({ "type": "string", "format": "date" });
        paths[p]["post"]["responses"]["202"] = json!({ "description": "stored as a proposal waiting for a second admin (with its preview)" });
    }
}

/// Reconciliation: stored runs, their breaks, resolve, run now.
fn reconciliation_paths(paths: &mut Value) {
    let run_param = json!({ "name": "run", "in": "query", "required": false, "schema": { "type": "string", "pattern": "^[0-9]{1,18}$" } });
    paths["/api/reconciliation/runs"] = json!({ "get": op_as(
        "Stored reconciliation runs, newest first (period, when, counts per class, duration)",
        json!([{ "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 1, "maximum": 100 } }]),
        "runs",
        "array",
    ) });
    paths["/api/reconciliation/runs/{seq}/breaks"] = json!({ "get": op_as(
        "The breaks of one stored run (code, sentence, fix hint, entry, dismissed reason), information lines included",
        json!([path_param("seq")]),
        "breaks",
        "array",
    ) });
    let mut resolve = op(
        "Resolve one break (read from the newest run that holds it) as `timepost reconcile resolve` does: `repost`, `accept_books`, or `dismiss` with a `reason`; audited; 409 when the break's class allows no such action",
        json!([path_param("id")]),
        "the stored resolution",
    );
    resolve["requestBody"] = json!({
        "required": true,
        "content": { "application/json": { "schema": {
            "type": "object", "required": ["action"],
            "properties": {
                "action": { "type": "string", "enum": ["repost", "accept_books", "dismiss"] },
                "reason": { "type": "string" }
            }
        } } }
    });
    resolve["responses"]["409"] = json!({ "$ref": "#/components/responses/Error" });
    paths["/api/reconciliation/breaks/{id}/resolve"] = json!({ "post": resolve });
    let mut run = op(
        "Reconcile a `period` (`week`, `month` or `FROM..TO`) now and store the run (what timepost received, timepost, the books; no tracker listing); audited",
        json!([]),
        "the run",
    );
    run["requestBody"] = json!({
        "required": true,
        "content": { "application/json": { "schema": {
            "type": "object", "required": ["period"],
            "properties": { "period": { "type": "string" } }
        } } }
    });
    run["responses"]["201"] = json!({ "description": "the run, stored" });
    run["responses"]["409"] = json!({ "$ref": "#/components/responses/Error" });
    paths["/api/reconciliation/run"] = json!({ "post": run });
    paths["/api/reconciliation/kpi"] = json!({ "get": op(
        "The KPI reconciliation time per period of the newest 500 runs (period end, midnight UTC after its last day, to the first run after it with zero breaks; `not_yet` while none did, `open` before the end) and its median in minutes (null when no period was reconciled)",
        json!([]),
        "median_minutes and periods",
    ) });
    let mut page = html_page("Reconciliation: the stored runs, one run's breaks (`run`, the newest by default) with code, sentence, fix hint and the entry's page, and for admin and finance the resolve actions and Run now", true);
    page["parameters"] = json!([run_param.clone()]);
    page["responses"]["400"] = json!({ "description": "not a run number" });
    page["responses"]["404"] = json!({ "description": "no such run" });
    paths["/console/reconciliation"] = json!({ "get": page });
    paths["/console/reconciliation.csv"] = json!({ "get": {
        "summary": "The breaks of one run (`run`, the newest by default) as CSV",
        "parameters": [run_param],
        "security": [{ "bearer": [] }, { "session": [] }],
        "responses": {
            "200": { "description": "CSV", "content": { "text/csv": { "schema": { "type": "string" } } } },
            "400": { "description": "not a run number" },
            "401": { "description": "not signed in" },
            "403": { "description": "the role may not see this" },
            "404": { "description": "no such run" }
        }
    } });
    let mut resolve_form = form_post(
        "Resolve one break: `id`, `action` (repost, accept_books, dismiss) and `reason` (required to dismiss); audited",
        &["csrf", "id", "action"],
        true,
    );
    resolve_form["responses"]["404"] = json!({ "description": "no such break" });
    resolve_form["responses"]["409"] =
        json!({ "description": "the break's class allows no such action" });
    paths["/console/reconciliation/resolve"] = json!({ "post": resolve_form });
    let mut run_form = form_post(
        "Reconcile a `period` now (week, month, FROM..TO) and store the run",
        &["csrf", "period"],
        true,
    );
    run_form["responses"]["409"] =
        json!({ "description": "the ledger cannot read its books back" });
    paths["/console/reconciliation/run"] = json!({ "post": run_form });
}

/// Archives: stored period snapshots, verify, downloads.
fn archives_paths(paths: &mut Value) {
    paths["/api/archives"] = json!({ "get": op_as(
        "Stored period snapshots, oldest period first: counts, bytes, manifest SHA-256, revision, storage class and temperature, retention (expires, expired, purged), files with their SHA-256, and the last verification recorded in the audit log",
        json!([]),
        "snapshots",
        "array",
    ) });
    let mut verify = op(
        "Verify every snapshot (or one `period`) as `timepost archive verify` does: files re-hashed, manifests, the chain; one `archive.verified` audit record per revision; `ok` false with the problems when anything differs",
        json!([]),
        "the verification: ok, checked, problems",
    );
    verify["requestBody"] = json!({
        "required": false,
        "content": { "application/json": { "schema": {
            "type": "object",
            "properties": { "period": { "type": "string", "pattern": "^[0-9]{4}-(W[0-9]{2}|[0-9]{2})$" } }
        } } }
    });
    paths["/api/archives/verify"] = json!({ "post": verify });
    paths["/console/archives"] = json!({ "get": html_page("Archives: stored period snapshots with counts, hashes, revision, storage class, retention and last verification; Verify actions and the snapshot files to download", true) });
    paths["/console/archives.csv"] = json!({ "get": {
        "summary": "The stored snapshots as CSV (one row per revision)",
        "security": [{ "bearer": [] }, { "session": [] }],
        "responses": {
            "200": { "description": "CSV", "content": { "text/csv": { "schema": { "type": "string" } } } },
            "401": { "description": "not signed in" },
            "403": { "description": "the role may not see this" }
        }
    } });
    let mut verify_form = form_post(
        "Verify every snapshot, or one `period`; audited; back to the page with the result",
        &["csrf"],
        true,
    );
    verify_form["responses"]["404"] = json!({ "description": "no snapshot of that period" });
    paths["/console/archives/verify"] = json!({ "post": verify_form });
    paths["/console/archives/{period}/{revision}/{file}"] = json!({ "get": {
        "summary": "One file of a snapshot (listed in its manifest, or the manifest and its hash), byte for byte as stored",
        "parameters": [path_param("period"), path_param("revision"), path_param("file")],
        "security": [{ "bearer": [] }, { "session": [] }],
        "responses": {
            "200": { "description": "the file" },
            "400": { "description": "not a period or revision (named)" },
            "401": { "description": "not signed in" },
            "403": { "description": "the role may not see this" },
            "404": { "description": "no such snapshot or file" }
        }
    } });
}

pub async fn document() -> impl IntoResponse {
    Json(spec())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_guarded_route_is_documented() {
        let spec = super::spec();
        for (method, path, _) in crate::auth::ROUTES {
            assert!(
                spec["paths"][path][method.to_ascii_lowercase()].is_object(),
                "{method} {path} missing from the OpenAPI document"
            );
        }
    }
}
