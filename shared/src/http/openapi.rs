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

pub fn spec() -> Value {
    let accepted = |summary: &str, p: Value| {
        let mut o = op(summary, p, "accepted");
        o["responses"]["202"] = json!({ "description": "queued" });
        o
    };
    json!({
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
            "/api/mappings": { "get": op("Current mappings", json!([query_param("table")]), "mapping rows") },
            "/api/mappings/history": { "get": op("Mapping change log", json!([query_param("table"), query_param("key")]), "changes") },
            "/api/exception-codes": { "get": op("Every exception code, explained", json!([]), "codes") }
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
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
    })
}

pub async fn document() -> impl IntoResponse {
    Json(spec())
}
