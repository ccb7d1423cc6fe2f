//! Fakes of the external APIs and helpers shared by the integration tests.
//!
//! - [`qbo_fake`]: a QuickBooks Online company (batch, requestid, faults,
//!   limits, OAuth) on 127.0.0.1:0;
//! - [`xero_fake`]: a Xero organisation (Projects time), validating every
//!   body against the vendor's OpenAPI document ([`openapi`]);
//! - [`harvest_fake`], [`toggl_fake`]: tracker APIs the pollers read
//!   (pagination, filters, 429 + `Retry-After`, required headers, faults);
//! - [`moto`]: the moto server endpoint for the AWS adapter tests;
//! - [`fake_common`]: injectable faults, rate windows, the token endpoint;
//! - [`week_race`]: many engines settling the same worker-weeks at once;
//! - below: an in-memory secrets store and request builders.

pub mod aws_world;
pub mod contracts;
pub mod dynamo_count;
pub mod fake_common;
pub mod harvest_fake;
pub mod kit;
pub mod memory;
pub mod moto;
pub mod oidc_fake;
pub mod openapi;
pub mod qbo_fake;
pub mod qbo_xsd;
pub mod sim;
pub mod toggl_fake;
pub mod week_race;
pub mod xero_fake;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::NaiveDate;
use timepost::ledger::{LedgerOp, LedgerRequest, Party, PostingLine};
use timepost::model::{idempotency_key, Currency, EntryKey, Money, Source, Version};
use timepost::ports::{Secrets, StoreResult};

/// Secrets in memory, counting writes.
#[derive(Default)]
pub struct MemSecrets {
    pub values: Mutex<BTreeMap<String, String>>,
    pub writes: AtomicU64,
}

impl MemSecrets {
    pub fn with(pairs: &[(&str, &str)]) -> Self {
        let s = Self::default();
        {
            let mut v = s.values.lock().unwrap_or_else(|p| p.into_inner());
            for (k, val) in pairs {
                v.insert(k.to_string(), val.to_string());
            }
        }
        s
    }

    pub fn get_now(&self, k: &str) -> Option<String> {
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(k)
            .cloned()
    }
}

#[async_trait]
impl Secrets for MemSecrets {
    async fn get(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(self.get_now(name))
    }
    async fn put(&self, name: &str, value: &str) -> StoreResult<()> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.values
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), value.to_string());
        Ok(())
    }
}

/// The secrets a QBO (`qbo`) or Xero (`xero`) connection needs.
pub fn oauth_secrets(prefix: &str, refresh: &str) -> MemSecrets {
    MemSecrets::with(&[
        (&format!("{prefix}_client_id"), "client-id"),
        (&format!("{prefix}_client_secret"), "client-secret"),
        (&format!("{prefix}_refresh_token"), refresh),
    ])
}

/// A plain posting line for `party` on 2026-03-02.
pub fn line(party: Party, minutes: i64, description: &str) -> PostingLine {
    PostingLine {
        tier: "regular".into(),
        party,
        txn_date: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default(),
        minutes,
        customer: None,
        service_item: None,
        class: None,
        department: None,
        payroll_item: None,
        account: "5000-labour".into(),
        billable: false,
        hourly_rate: None,
        original_rate: None,
        fx_rate: None,
        fx_date: None,
        description: description.into(),
    }
}

/// Make `l` billable to `customer` at `rate` USD.
pub fn billable(mut l: PostingLine, customer: &str, rate: &str) -> PostingLine {
    l.billable = true;
    l.customer = Some(customer.into());
    let currency: Currency = "USD".parse().unwrap_or_else(|e: String| panic!("{e}"));
    l.hourly_rate = Some(Money::new(rate.parse().unwrap_or_default(), currency));
    l
}

pub fn key(id: &str) -> EntryKey {
    EntryKey::new(Source::Csv, "ws", id)
}

pub fn version(n: i64) -> Version {
    Version {
        updated_at: chrono::DateTime::from_timestamp(1_770_000_000 + n, 0).unwrap_or_default(),
        content_hash: format!("hash{n}"),
    }
}

/// A request with the engine's kind of idempotency key.
pub fn request(id: &str, v: i64, op: LedgerOp) -> LedgerRequest {
    let k = key(id);
    let ver = version(v);
    LedgerRequest {
        idempotency_key: idempotency_key(&k, &ver, op.name()),
        key: k,
        version: ver,
        intent: format!("intent-{id}-{v}"),
        op,
    }
}

/// A QBO connection to `server` with its limits, using `secrets`.
pub fn qbo_config(
    server: &qbo_fake::QboServer,
    max_batch: usize,
    limits: timepost::ledger::cloud::QboLimits,
) -> timepost::ledger::cloud::QboConfig {
    timepost::ledger::cloud::QboConfig {
        realm_id: "9130".into(),
        environment: timepost::ledger::cloud::QboEnvironment::Sandbox,
        payroll: server.lock().prefs.payroll,
        api_base: Some(server.base()),
        token_url: server.token_url(),
        minor_version: 75,
        max_batch,
        secret_prefix: "qbo".into(),
        timeout_secs: 2,
        limits,
    }
}

/// A Xero connection to `server`.
pub fn xero_config(
    server: &xero_fake::XeroServer,
    limits: timepost::ledger::cloud::XeroLimits,
) -> timepost::ledger::cloud::XeroConfig {
    timepost::ledger::cloud::XeroConfig {
        tenant_id: "tenant-1".into(),
        api_base: server.api_base(),
        accounting_base: server.accounting_base(),
        time_zone: None,
        token_url: server.token_url(),
        secret_prefix: "xero".into(),
        timeout_secs: 2,
        limits,
    }
}

/// The sandbox company's chart, as a fake QBO chart.
pub fn sandbox_chart() -> qbo_fake::Chart {
    let cfg = timepost::config::Config::parse(timepost::demo::CONFIG, "sandbox")
        .unwrap_or_else(|e| panic!("{e}"));
    let c = cfg.ledger.sandbox;
    qbo_fake::Chart {
        employees: c.employees,
        vendors: c.vendors,
        customers: c.customers,
        items: c.items,
        classes: c.classes,
        departments: c.departments,
        payroll_items: c.payroll_items,
        accounts: c.accounts,
        inactive: Default::default(),
    }
}

/// The sandbox config and mappings on a store in `dir`, posting to the fake
/// QBO `server` (or the sandbox ledger when `None`), with quick retries.
pub async fn sandbox_stack(
    dir: &std::path::Path,
    server: Option<&qbo_fake::QboServer>,
) -> timepost::stack::LocalStack {
    use timepost::ports::MappingStore;
    let mut cfg = timepost::config::Config::parse(timepost::demo::CONFIG, "sandbox")
        .unwrap_or_else(|e| panic!("{e}"));
    cfg.store.path = dir.join("timepost.sqlite");
    cfg.store.archive_dir = dir.join("archive");
    cfg.store.secrets_file = dir.join("secrets.toml");
    cfg.worker.backoff_base_ms = 20;
    cfg.worker.backoff_cap_ms = 500;
    cfg.worker.ledger_attempts = 6;
    if let Some(s) = server {
        write_secrets(
            &cfg.store.secrets_file,
            "qbo_client_id = \"client-id\"\nqbo_client_secret = \"client-secret\"\nqbo_refresh_token = \"rt-initial\"\n",
        );
        cfg.ledger.kind = timepost::config::LedgerKind::Qbo;
        cfg.ledger.qbo = Some(qbo_config(s, 10, fast_qbo_limits()));
        // As `Config::parse` does for `[ledger.qbo] payroll = false`.
        cfg.rules.no_payroll = cfg.ledger.has_no_payroll();
    }
    let store =
        timepost::local::SqliteStore::open(&cfg.store.path).unwrap_or_else(|e| panic!("{e}"));
    let stack =
        timepost::stack::LocalStack::with_store(cfg, store).unwrap_or_else(|e| panic!("{e}"));
    let rows = timepost::mapping::csv_io::read(timepost::demo::MAPPINGS.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let current = stack
        .store
        .snapshot()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let changes = timepost::mapping::diff(
        &current,
        &rows,
        false,
        "test",
        chrono::Utc::now(),
        "sandbox",
    );
    stack
        .store
        .apply(changes)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    stack
}

/// QBO's limits with the minute compressed tenfold (tests).
pub fn fast_qbo_limits() -> timepost::ledger::cloud::QboLimits {
    timepost::ledger::cloud::QboLimits {
        minute_ms: 6_000,
        ..Default::default()
    }
}

/// A 0600 secrets file.
pub fn write_secrets(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Entries from CSV text in the sandbox export format.
pub fn entries_from_csv(
    stack: &timepost::stack::LocalStack,
    mappings: &timepost::mapping::Mappings,
    csv: &str,
) -> Vec<timepost::model::NormalisedEntry> {
    let ctx = timepost::intake::parse_context(&stack.config.intake, mappings);
    let columns = timepost::sources::csv_import::CsvColumns::default();
    timepost::sources::csv_import::reader(csv.as_bytes(), &columns, &ctx)
        .unwrap_or_else(|e| panic!("{e}"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The header of the sandbox entries export.
pub fn entries_header() -> &'static str {
    timepost::demo::ENTRIES.lines().next().unwrap_or_default()
}

/// Like [`entries_from_csv`], skipping rows the parser refuses (as
/// `timepost ingest` would report them).
pub fn entries_from_csv_lenient(
    stack: &timepost::stack::LocalStack,
    mappings: &timepost::mapping::Mappings,
    csv: &str,
) -> Vec<timepost::model::NormalisedEntry> {
    let ctx = timepost::intake::parse_context(&stack.config.intake, mappings);
    let columns = timepost::sources::csv_import::CsvColumns::default();
    timepost::sources::csv_import::reader(csv.as_bytes(), &columns, &ctx)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(Result::ok)
        .collect()
}
