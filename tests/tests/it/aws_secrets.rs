//! The Secrets Manager adapter against moto server through the real
//! aws-sdk-secretsmanager client: missing secrets, creation on first write,
//! the in-memory cache (stale until its TTL or an invalidation), and a
//! rotated token written back and seen by another instance.

use std::time::Duration;

use timepost::aws::SecretsManagerStore;
use timepost::ports::Secrets;
use timepost_tests::moto;

const HOUR: Duration = Duration::from_secs(3600);

async fn client() -> Option<aws_sdk_secretsmanager::Client> {
    Some(aws_sdk_secretsmanager::Client::new(
        &moto::sdk_config().await?,
    ))
}

/// Change a secret behind every cache, as another instance or an operator
/// would.
async fn change_behind(c: &aws_sdk_secretsmanager::Client, id: &str, value: &str) {
    c.put_secret_value()
        .secret_id(id)
        .secret_string(value)
        .send()
        .await
        .expect("put behind the cache");
}

#[tokio::test]
async fn missing_is_none_and_put_creates_the_secret_under_the_prefix() {
    let Some(c) = client().await else { return };
    let prefix = format!("{}/", moto::unique("tp"));
    let s = SecretsManagerStore::new(c.clone(), &prefix, HOUR);
    assert_eq!(s.get("toggl_webhook_secret").await.expect("get"), None);
    s.put("toggl_webhook_secret", "s3cr3t")
        .await
        .expect("create");
    // The cached miss was replaced by the write.
    assert_eq!(
        s.get("toggl_webhook_secret").await.expect("get").as_deref(),
        Some("s3cr3t")
    );
    let stored = c
        .get_secret_value()
        .secret_id(format!("{prefix}toggl_webhook_secret"))
        .send()
        .await
        .expect("read back");
    assert_eq!(stored.secret_string(), Some("s3cr3t"));
    // A second write updates the existing secret.
    s.put("toggl_webhook_secret", "s3cr3t-2")
        .await
        .expect("update");
    let fresh = SecretsManagerStore::new(c, &prefix, HOUR);
    assert_eq!(
        fresh
            .get("toggl_webhook_secret")
            .await
            .expect("get")
            .as_deref(),
        Some("s3cr3t-2")
    );
}

#[tokio::test]
async fn a_value_changed_behind_the_cache_is_seen_after_invalidate() {
    let Some(c) = client().await else { return };
    let prefix = format!("{}/", moto::unique("tp"));
    let s = SecretsManagerStore::new(c.clone(), &prefix, HOUR);
    s.put("qbo_refresh_token", "rt-1").await.expect("put");
    assert_eq!(
        s.get("qbo_refresh_token").await.expect("get").as_deref(),
        Some("rt-1")
    );
    change_behind(&c, &format!("{prefix}qbo_refresh_token"), "rt-2").await;
    // Within the TTL the cached value is served (no call to the service).
    assert_eq!(
        s.get("qbo_refresh_token").await.expect("get").as_deref(),
        Some("rt-1")
    );
    s.invalidate("qbo_refresh_token");
    assert_eq!(
        s.get("qbo_refresh_token").await.expect("get").as_deref(),
        Some("rt-2")
    );
    // The trait's refresh does the same for callers that only see `Secrets`.
    change_behind(&c, &format!("{prefix}qbo_refresh_token"), "rt-3").await;
    let dynamic: &dyn Secrets = &s;
    dynamic.refresh("qbo_refresh_token").await.expect("refresh");
    assert_eq!(
        dynamic
            .get("qbo_refresh_token")
            .await
            .expect("get")
            .as_deref(),
        Some("rt-3")
    );
}

#[tokio::test]
async fn an_expired_cache_entry_is_read_again() {
    let Some(c) = client().await else { return };
    let prefix = format!("{}/", moto::unique("tp"));
    // A zero TTL: every entry is already expired when read.
    let s = SecretsManagerStore::new(c.clone(), &prefix, Duration::ZERO);
    s.put("admin_token", "a-1").await.expect("put");
    assert_eq!(
        s.get("admin_token").await.expect("get").as_deref(),
        Some("a-1")
    );
    change_behind(&c, &format!("{prefix}admin_token"), "a-2").await;
    assert_eq!(
        s.get("admin_token").await.expect("get").as_deref(),
        Some("a-2")
    );
}

#[tokio::test]
async fn a_rotation_written_by_one_instance_reaches_another() {
    let Some(c) = client().await else { return };
    let prefix = format!("{}/", moto::unique("tp"));
    let a = SecretsManagerStore::new(c.clone(), &prefix, HOUR);
    let b = SecretsManagerStore::new(c, &prefix, HOUR);
    a.put("qbo_token_state", "{\"current\":\"rt-1\"}")
        .await
        .expect("put");
    assert_eq!(
        b.get("qbo_token_state").await.expect("get").as_deref(),
        Some("{\"current\":\"rt-1\"}")
    );
    // A rotates; its own cache has the new value at once.
    a.put("qbo_token_state", "{\"current\":\"rt-2\"}")
        .await
        .expect("rotate");
    assert_eq!(
        a.get("qbo_token_state").await.expect("get").as_deref(),
        Some("{\"current\":\"rt-2\"}")
    );
    // B still serves its cached copy until told to re-read.
    assert_eq!(
        b.get("qbo_token_state").await.expect("get").as_deref(),
        Some("{\"current\":\"rt-1\"}")
    );
    b.invalidate("qbo_token_state");
    assert_eq!(
        b.get("qbo_token_state").await.expect("get").as_deref(),
        Some("{\"current\":\"rt-2\"}")
    );
}
