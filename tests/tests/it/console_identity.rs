//! The AWS identity hook: a router hosted behind an API Gateway JWT
//! authorizer receives `auth::Identity` as a request extension (built by
//! `identity_from_claims`) and serves the console pages and actions to it
//! without a bearer token, a session or a CSRF token, while the permission
//! table still decides.

use axum::Extension;
use timepost::ports::EntryStore;
use timepost::state::Status;
use timepost_tests::kit::{deliver, sandbox_stack, E};
use timepost_web::auth::{identity_from_claims, Identity};
use timepost_web::{router, AppState};

/// Serve the router with `identity` inserted by an outer layer, as the
/// admin Lambda function's hosting layer does; returns the base URL.
async fn serve_as(state: AppState, identity: Identity) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let app = router(state).layer(Extension(identity));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn pages_and_actions_work_for_an_identity_from_jwt_claims() {
    let dir = tempfile::tempdir().expect("dir");
    let stack = sandbox_stack(dir.path()).await;
    // u-zed is mapped to nobody: an UNMAPPED_EMPLOYEE exception.
    let e = E::new("z1", "u-zed", "2026-03-03", "09:00", "11:00").build();
    deliver(&stack, std::slice::from_ref(&e)).await;
    let st = stack.store.get(&e.key).await.expect("get").expect("stored");
    assert_eq!(st.status(), Status::Exception);

    let claims = serde_json::json!({
        "sub": "8f2c", "email": "fin@example.com", "custom:role": "finance"
    });
    let finance = identity_from_claims(&claims, "custom:role").expect("identity");
    let base = serve_as(AppState::local(&stack), finance).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    let page = http
        .get(format!("{base}/console/exceptions"))
        .send()
        .await
        .expect("get");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("body");
    assert!(html.contains("fin@example.com · finance"), "{html}");
    assert!(html.contains("UNMAPPED_EMPLOYEE"));
    // No session, so the forms carry no CSRF field and need none.
    assert!(!html.contains("name=\"csrf\""));

    let r = http
        .post(format!("{base}/console/exceptions/discard"))
        .form(&[("key", e.key.to_string()), ("reason", "test entry".into())])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let st = stack.store.get(&e.key).await.expect("get").expect("stored");
    assert_eq!(st.status(), Status::Ignored);
    assert!(st.note.unwrap_or_default().contains("fin@example.com"));

    // The permission table still applies: finance may not edit mappings.
    let r = http
        .post(format!("{base}/api/mappings"))
        .json(
            &serde_json::json!({"table": "project", "key": "x", "target": "C-ACME", "reason": "r"}),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_viewer_identity_is_refused_actions() {
    let dir = tempfile::tempdir().expect("dir");
    let stack = sandbox_stack(dir.path()).await;
    let claims = serde_json::json!({"sub": "v1", "cognito:groups": "[staff viewer]"});
    let viewer = identity_from_claims(&claims, "cognito:groups").expect("identity");
    let base = serve_as(AppState::local(&stack), viewer).await;
    let http = timepost_tests::kit::http();
    let r = http
        .get(format!("{base}/console/exceptions"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{base}/console/exceptions/redrive"))
        .form(&[("code", "UNMAPPED_EMPLOYEE")])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
}
