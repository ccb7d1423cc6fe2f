//! The admin API's OpenAPI 3.0 document, served at `/openapi.json`.

use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

fn op(summary: &str, params: Value, ok: &str) -> Value {
    json!({
        "summary": summary,
        "parameters": params,
        "security": [{ "bearer": [] }],
        "responses": {
            "200": { "description": ok, "content": { "application/json": { "schema": { "type": "object" } } } },
            "400": { "$ref": "#/components/responses/Error" },
            "401": { "$ref": "#/components/responses/Error" },
            "403": { "$ref": "#/components/responses/Error" },
            "404": { "$ref": "#/components/responses/Error" }
        }
    })
}

fn path_param(name: &str) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
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
    }
    o
}

/// A console form POST (urlencoded); `csrf` is required with a session
/// cookie, not with a bearer token.
fn form_post(summary: &str, required: &[&str], signed_in: bool) -> Value {
    let props: serde_json::Map<String, Value> = [
        "token", "csrf", "key", "code", "reason", "decision", "all_week", "table", "target",
        "attrs", "seq", "remove",
    ]
    .iter()
    .filter(|f| signed_in != (**f == "token"))
    .map(|f| (f.to_string(), json!({ "type": "string" })))
    .collect();
    let mut o = json!({
        "summary": summary,
        "requestBody": { "required": true, "content": { "application/x-www-form-urlencoded": { "schema": {
            "type": "object", "required": required, "properties": props
        } } } },
        "responses": {
            "303": { "description": "done; see the page it redirects to" },
            "400": { "description": "a field is missing or invalid (named on the page)" },
            "401": { "description": "not signed in, or a bad token" }
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
        json!([path_param("key")]),
        "discarded",
    );
    discard["requestBody"] = json!({
        "required": true,
        "content": { "application/json": { "schema": {
            "type": "object", "required": ["reason"],
            "properties": { "reason": { "type": "string", "minLength": 1 } }
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
                "entries": { "type": "array", "items": { "type": "string" } },
                "decision": { "type": "string", "enum": ["approve", "reject"] }
            }
        } } }
    });
    approve["responses"]["202"] = json!({ "description": "queued" });
    approve["responses"]["409"] = json!({ "$ref": "#/components/responses/Error" });
    let mut set_mapping = op(
        "Add, change (`target`, `attrs`) or remove (`remove: true`) one mapping row with a required reason; one transaction, audited, then held entries are re-checked",
        json!([]),
        "the change (or changed: false when the row is already so)",
    );
    set_mapping["requestBody"] = json!({
        "required": true,
        "content": { "application/json": { "schema": {
            "type": "object", "required": ["table", "key", "reason"],
            "properties": {
                "table": { "type": "string" }, "key": { "type": "string" },
                "target": { "type": "string" },
                "attrs": { "type": "object", "additionalProperties": { "type": "string" } },
                "remove": { "type": "boolean" }, "reason": { "type": "string", "minLength": 1 }
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
            "properties": { "seq": { "type": "integer", "minimum": 1 }, "reason": { "type": "string", "minLength": 1 } }
        } } }
    });
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": { "title": "timepost admin API", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/healthz": { "get": { "summary": "Health and queue depth", "responses": { "200": { "description": "healthy" } } } },
            "/api/report": { "get": op("Outcome report: posted, held, waiting, exceptions, reconciliation, KPIs", json!([]), "the report") },
            "/api/entries": { "get": op("Entries, optionally by status", json!([query_param("status"), { "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0 } }]), "entry states") },
            "/api/entries/{key}": { "get": op("One entry's state", json!([path_param("key")]), "the entry state") },
            "/api/entries/{key}/redrive": { "post": accepted("Re-evaluate one entry", json!([path_param("key")])) },
            "/api/dead-letters": { "get": op("Messages parked in the dead-letter queue, with reasons", json!([]), "dead letters") },
            "/api/dead-letters/{id}/redrive": { "post": accepted("Put one dead letter back on the queue", json!([path_param("id")])) },
            "/api/mappings": { "get": op("Current mappings", json!([query_param("table")]), "mapping rows"), "post": set_mapping },
            "/api/mappings/revert": { "post": revert_mapping },
            "/console/mappings": {
                "get": html_page("Every mapping table's rows, with the add / change / remove form for admins", true),
                "post": form_post("Add or change (`table`, `key`, `target`, `attrs`) or remove (`remove`) one row; `reason` required", &["csrf", "table", "key", "reason"], true)
            },
            "/console/mappings/history": { "get": html_page("Mapping versions (who, when, why, before → after), optionally for one `table` and `key`", true) },
            "/console/mappings/revert": { "post": form_post("Revert to the version before change `seq` (applied as a new change); `reason` required", &["csrf", "seq", "reason"], true) },
            "/api/mappings/history": { "get": op("Mapping change log", json!([query_param("table"), query_param("key")]), "changes") },
            "/api/exception-codes": { "get": op("Every exception code, explained", json!([]), "codes") },
            "/api/entries/{key}/discard": { "post": discard },
            "/api/audit": { "get": op("The audit log, newest first: who did what, when, to which entry", json!([{ "name": "limit", "in": "query", "required": false, "schema": { "type": "integer", "minimum": 0 } }]), "audit records") },
            "/api/approvals": {
                "get": op("Entries awaiting approval", json!([]), "entry states"),
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
            "/console/logout": { "post": form_post("Sign out (ends the session)", &["csrf"], true) },
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
        "Add the missing mapping row an exception names (`table`, `key`, `target`, `reason`; never changes an existing row: 409), audited, then redrive every open entry missing it",
        &["csrf", "table", "key", "target", "reason"],
        true,
    );
    fix["responses"]["409"] = json!({ "description": "the row exists already" });
    paths["/console/exceptions/fix-mapping"] = json!({ "post": fix });
}

pub async fn document() -> impl IntoResponse {
    Json(spec())
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_guarded_route_is_documented() {
        let spec = super::spec();
        for (method, path, _) in crate::http::auth::ROUTES {
            assert!(
                spec["paths"][path][method.to_ascii_lowercase()].is_object(),
                "{method} {path} missing from the OpenAPI document"
            );
        }
    }
}
