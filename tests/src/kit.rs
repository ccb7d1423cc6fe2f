//! Build entries and stacks for tests without repeating the boilerplate.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use timepost::config::Config;
use timepost::engine::Outcome;
use timepost::local::SqliteStore;
use timepost::mapping::{csv_io, diff};
use timepost::model::*;
use timepost::ports::{MappingStore, Queue, QueueMessage};
use timepost::stack::LocalStack;

/// A builder for one entry version.
#[derive(Clone)]
pub struct E(pub NormalisedEntry);

impl E {
    /// `user` works on `date` (YYYY-MM-DD) from `from` to `to` (HH:MM, Los Angeles).
    pub fn new(id: &str, user: &str, date: &str, from: &str, to: &str) -> Self {
        let tz: Tz = "America/Los_Angeles".parse().expect("tz");
        let d: NaiveDate = date.parse().expect("date");
        let at = |hm: &str| {
            let t = chrono::NaiveTime::parse_from_str(hm, "%H:%M").expect("time");
            tz.from_local_datetime(&d.and_time(t))
                .earliest()
                .expect("local time")
                .with_timezone(&Utc)
        };
        let (s, mut e) = (at(from), at(to));
        if e <= s {
            e += chrono::Duration::days(1);
        }
        E(NormalisedEntry {
            key: EntryKey::new(Source::Csv, "ws", id),
            version: Version {
                updated_at: "2026-03-09T00:00:00Z".parse().expect("instant"),
                content_hash: String::new(),
            },
            worker: Worker {
                tracker_user_id: user.into(),
                email: None,
                name: Some(user.into()),
                kind: None,
                form_1099: None,
            },
            time_zone: tz,
            work_date: d,
            start: Some(s),
            end: Some(e),
            duration_secs: (e - s).num_seconds(),
            project: Some(Ref::new("p-acme-web", Some("Acme website".into()))),
            client: None,
            task: Some(Ref::new("t-dev", Some("Development".into()))),
            tags: vec![],
            billable: true,
            rate: Some(Money::new(
                Decimal::new(15000, 2),
                "USD".parse().expect("ccy"),
            )),
            notes: format!("work {id}"),
            approval: ApprovalStatus::Approved,
            attachments: vec![],
            origin: Origin::Web,
            deleted: false,
            already_rounded: false,
        })
    }

    pub fn updated(mut self, at: &str) -> Self {
        self.0.version.updated_at = at.parse::<DateTime<Utc>>().expect("instant");
        self
    }
    pub fn project(mut self, id: &str) -> Self {
        self.0.project = Some(Ref::new(id, None));
        self
    }
    pub fn approval(mut self, a: ApprovalStatus) -> Self {
        self.0.approval = a;
        self
    }
    pub fn deleted(mut self) -> Self {
        self.0.deleted = true;
        self
    }
    pub fn notes(mut self, n: &str) -> Self {
        self.0.notes = n.into();
        self
    }
    pub fn with(mut self, f: impl FnOnce(&mut NormalisedEntry)) -> Self {
        f(&mut self.0);
        self
    }
    pub fn build(self) -> NormalisedEntry {
        self.0.seal()
    }
}

/// A fresh local stack in `dir` with the sandbox config and mappings.
/// Write the secrets file of a stack in `dir` holding only `token` as the
/// admin API token (0600, as `timepost serve` requires); its path.
pub fn admin_secrets(dir: &std::path::Path, token: &str) -> std::path::PathBuf {
    let secrets = dir.join("secrets.toml");
    std::fs::write(&secrets, format!("admin_token = \"{token}\"\n")).expect("secrets");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    secrets
}

/// A sandbox stack in `dir` whose admin API token is `token`.
pub async fn sandbox_stack_with_admin(dir: &std::path::Path, token: &str) -> LocalStack {
    admin_secrets(dir, token);
    sandbox_stack(dir).await
}

/// `method path` (no body) through the whole router of `stack`, in
/// process, with `token` as the bearer: (status, body).
pub async fn call_router(
    stack: &LocalStack,
    token: &str,
    method: &str,
    path: &str,
) -> (u16, String) {
    use lambda_http::tower::ServiceExt;
    let app = timepost_web::router(timepost_web::AppState::local(stack));
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .expect("request");
    let response = app.oneshot(request).await.expect("router");
    let status = response.status().as_u16();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

pub async fn sandbox_stack(dir: &std::path::Path) -> LocalStack {
    stack_with(dir, timepost::demo::CONFIG, "").await
}

/// A fresh local stack in `dir` from `config` (TOML text) and the sandbox
/// mappings plus `extra_mappings` (CSV rows without the header).
pub async fn stack_with(dir: &std::path::Path, config: &str, extra_mappings: &str) -> LocalStack {
    let mut config = Config::parse(config, "test config").expect("config");
    config.store.path = dir.join("t.sqlite");
    config.store.secrets_file = dir.join("secrets.toml");
    config.store.archive_dir = dir.join("archive");
    config.worker.backoff_base_ms = 1;
    config.worker.backoff_cap_ms = 5;
    let store = SqliteStore::open(&config.store.path).expect("store");
    let stack = LocalStack::with_store(config, store).expect("stack");
    let csv = format!("{}{extra_mappings}", timepost::demo::MAPPINGS);
    let rows = csv_io::read(csv.as_bytes()).expect("mappings");
    let changes = diff(
        &stack.store.snapshot().await.expect("snapshot"),
        &rows,
        false,
        "test",
        Utc::now(),
        "test",
    );
    stack.store.apply(changes).await.expect("apply");
    stack
}

/// Deliver entries one message at a time, processing each before the next.
pub async fn deliver(stack: &LocalStack, entries: &[NormalisedEntry]) -> Vec<Outcome> {
    let mut out = Vec::new();
    for e in entries {
        send(
            stack,
            QueueMessage::Entry {
                entry: Box::new(e.clone()),
                received_at: Utc::now(),
            },
        )
        .await;
        out.extend(
            timepost::worker::drain(&stack.engine, &stack.store)
                .await
                .expect("drain"),
        );
    }
    out
}

pub async fn send(stack: &LocalStack, m: QueueMessage) {
    stack.store.send_batch(&[m]).await.expect("send");
}

/// A plain HTTP client for tests that call a fake or a server directly,
/// with the crypto provider installed (reqwest is built without one, and a
/// test run alone has no other test to install it first).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
