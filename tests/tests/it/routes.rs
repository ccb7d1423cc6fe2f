//! Routes are declared in one table and the three things built from them
//! agree: every guarded route of the permission table (`auth::ROUTES`, and
//! the public sign-in pair `auth::PUBLIC`) reaches a handler of the router,
//! the OpenAPI document describes exactly those routes, and every
//! operation it describes is in the table. A route added to the router but
//! not to the table is unreachable (the guard refuses it), so the table is
//! where a route is declared; these tests fail when the router or the
//! document drift from it.

use std::collections::BTreeSet;

use timepost::stack::LocalStack;
use timepost_tests::kit::{call_router, sandbox_stack_with_admin};
use timepost_web::auth::{PUBLIC, ROUTES};

const TOKEN: &str = "routes-test-admin-token-0123456789abcdef01";

async fn stack(dir: &std::path::Path) -> LocalStack {
    sandbox_stack_with_admin(dir, TOKEN).await
}

/// `method path` through the router as the admin: (status, body).
async fn call(s: &LocalStack, method: &str, path: &str) -> (u16, String) {
    call_router(s, TOKEN, method, path).await
}

/// A concrete path for a route pattern.
fn concrete(pattern: &str) -> String {
    pattern
        .replace("{key}", "toggl:555:424242")
        .replace("{id}", "no-such-id")
        .replace("{seq}", "1")
        .replace("{period}", "2026-03")
        .replace("{revision}", "1")
        .replace("{file}", "manifest.json")
}

/// Whether the router has no handler for what was asked: axum's own
/// answers (404 or 405 with an empty body), never a handler's (whose 404
/// names what it did not find).
fn unrouted(status: u16, body: &str) -> bool {
    matches!(status, 404 | 405) && body.trim().is_empty()
}

/// The OpenAPI document's guarded operations, as (METHOD, path).
async fn documented(s: &LocalStack) -> BTreeSet<(String, String)> {
    let (status, body) = call(s, "GET", "/openapi.json").await;
    assert_eq!(status, 200, "{body}");
    let doc: serde_json::Value = serde_json::from_str(&body).expect("OpenAPI JSON");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() > 10, "read the document's paths");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        if !(path.starts_with("/api") || path.starts_with("/console")) {
            continue;
        }
        for method in item.as_object().expect("path item").keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

fn table() -> BTreeSet<(String, String)> {
    ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .chain(PUBLIC.iter().map(|(m, p)| (m.to_string(), p.to_string())))
        .collect()
}

#[tokio::test]
async fn every_route_of_the_permission_table_reaches_a_handler() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = stack(dir.path()).await;
    assert!(ROUTES.len() > 40, "read the permission table");
    let mut missing = Vec::new();
    for (method, pattern) in table() {
        let (status, body) = call(&s, &method, &concrete(&pattern)).await;
        assert!(status < 500, "{method} {pattern}: {status} {body}");
        if unrouted(status, &body) {
            missing.push(format!("{method} {pattern} ({status})"));
        }
    }
    assert!(
        missing.is_empty(),
        "routes in the permission table the router does not serve:\n{}",
        missing.join("\n")
    );
}

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_permission_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = stack(dir.path()).await;
    let documented = documented(&s).await;
    let table = table();
    let undocumented: Vec<_> = table.difference(&documented).collect();
    let unlisted: Vec<_> = documented.difference(&table).collect();
    assert!(
        undocumented.is_empty(),
        "routes the OpenAPI document does not describe: {undocumented:?}"
    );
    assert!(
        unlisted.is_empty(),
        "operations the document describes that the permission table does not list \
         (the guard refuses them): {unlisted:?}"
    );
}

#[tokio::test]
async fn a_route_outside_the_table_is_refused_not_served() {
    // The guard answers for a path the table does not list (404 naming
    // it) and for a listed path with another method (405 with `Allow`), so
    // what `unrouted` detects can only come from a route the table lists
    // and the router lacks.
    let dir = tempfile::tempdir().expect("tempdir");
    let s = stack(dir.path()).await;
    let (status, body) = call(&s, "GET", "/api/no-such-route").await;
    assert_eq!(status, 404);
    assert!(body.contains("no route GET /api/no-such-route"), "{body}");
    let (status, body) = call(&s, "DELETE", "/api/report").await;
    assert_eq!(status, 405);
    assert!(body.contains("it takes GET"), "{body}");
    assert!(unrouted(404, ""));
    assert!(!unrouted(404, "{\"error\":\"no entry toggl:555:424242\"}"));
}
