//! `timepost --backend aws` as an operator runs it, against moto server:
//! the real binary, the real AWS adapters, resources created as the SAM
//! template would. Each test makes its own table, queues and bucket.
//!
//! Run: `source scripts/moto.sh && moto_start && cargo test -p timepost-cli
//! --all-features --test aws_backend; moto_stop`.

#![cfg(feature = "aws")]

use std::path::Path;
use std::process::Command;

use timepost::aws::{DynamoStore, S3Archive, SqsQueue};
use timepost::mapping::{csv_io, MappingRow};
use timepost::ports::Archive as _;
use timepost_tests::moto;

const SANDBOX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/sandbox");

/// One deployed stack's resources in moto.
struct Stack {
    sdk: aws_config::SdkConfig,
    env: Vec<(&'static str, String)>,
    table: String,
    queue_url: String,
    dir: tempfile::TempDir,
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

impl Stack {
    /// Create the table, queues and bucket; `None` when moto is not running
    /// (outside CI).
    async fn create() -> Option<Stack> {
        let sdk = moto::sdk_config().await?;
        let name = moto::unique("cli");
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &name)
            .create_table()
            .await
            .expect("table");
        let (queue_url, dlq_url) =
            SqsQueue::create_queues(&aws_sdk_sqs::Client::new(&sdk), &name, 5)
                .await
                .expect("queues");
        S3Archive::new(S3Archive::client(&sdk, true), &name)
            .create_bucket()
            .await
            .expect("bucket");
        let env = vec![
            ("TIMEPOST_TABLE", name.clone()),
            ("TIMEPOST_QUEUE_URL", queue_url.clone()),
            ("TIMEPOST_DLQ_URL", dlq_url),
            ("TIMEPOST_BUCKET", name.clone()),
            ("TIMEPOST_SECRET_PREFIX", format!("{name}/")),
            ("TIMEPOST_S3_PATH_STYLE", "1".to_string()),
        ];
        let dir = tempfile::tempdir().expect("dir");
        for f in ["timepost.toml", "mappings.csv", "entries.csv"] {
            std::fs::copy(Path::new(SANDBOX).join(f), dir.path().join(f)).expect("copy");
        }
        Some(Stack {
            sdk,
            env,
            table: name,
            queue_url,
            dir,
        })
    }

    /// `timepost --backend aws ARGS` in the stack's working directory.
    fn timepost(&self, args: &[&str]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_timepost"));
        cmd.current_dir(self.dir.path())
            .env_remove("TIMEPOST_BACKEND")
            .env_remove("TIMEPOST_CONFIG")
            .env_remove("TIMEPOST_CONFIG_KEY")
            .env_remove("TIMEPOST_LEDGER")
            .args(["--backend", "aws"])
            .args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run timepost");
        Run {
            code: out.status.code().unwrap_or(-1),
            out: String::from_utf8_lossy(&out.stdout).into_owned(),
            err: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Push the config in the working directory, which must succeed.
    fn push_config(&self) {
        let r = self.timepost(&["config", "push"]);
        assert_eq!(r.code, 0, "config push: {}", r.err);
    }

    /// Switch the working directory's config to QBO (an unreachable API:
    /// only dry runs use it) so a dry run renders HTTP requests.
    fn use_qbo(&self) {
        let p = self.dir.path().join("timepost.toml");
        let cfg = std::fs::read_to_string(&p).expect("config");
        let cfg = cfg.replace("kind = \"sandbox\"", "kind = \"qbo\"")
            + "\n[ledger.qbo]\nrealm_id = \"9130\"\napi_base = \"http://127.0.0.1:9\"\nenvironment = \"sandbox\"\npayroll = true\n";
        std::fs::write(&p, cfg).expect("write config");
    }

    /// (visible, in flight) on the ingest queue, read straight from SQS.
    async fn queue_counts(&self) -> (u64, u64) {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let attrs = aws_sdk_sqs::Client::new(&self.sdk)
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("queue attributes");
        let get = |a: A| {
            attrs
                .attributes()
                .and_then(|m| m.get(&a))
                .and_then(|v| v.parse().ok())
                .expect("attribute")
        };
        (
            get(A::ApproximateNumberOfMessages),
            get(A::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Every item of the table, read straight from DynamoDB, in a stable
    /// order (what "the table is unchanged" compares).
    async fn table_items(&self) -> Vec<String> {
        let client = aws_sdk_dynamodb::Client::new(&self.sdk);
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let page = client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in page.items() {
                let mut fields: Vec<String> =
                    item.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                fields.sort();
                items.push(fields.join(","));
            }
            start = page.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
        items.sort();
        items
    }
}

fn sorted_rows(csv: &str) -> Vec<MappingRow> {
    let mut rows = csv_io::read(csv.as_bytes()).expect("mapping csv");
    rows.sort_by(|a, b| (a.table, &a.key).cmp(&(b.table, &b.key)));
    rows
}

#[tokio::test]
async fn config_push_validates_and_pull_returns_what_was_pushed() {
    let Some(s) = Stack::create().await else {
        return;
    };
    let local = s.dir.path().join("timepost.toml");
    let good = std::fs::read_to_string(&local).expect("config");

    // A broken file is refused before anything is uploaded.
    std::fs::write(&local, "[ledger]\nkind = 7\n").expect("write");
    let r = s.timepost(&["config", "push"]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("timepost.toml"), "{}", r.err);
    let r = s.timepost(&["config", "pull"]);
    assert_eq!(r.code, 2, "nothing uploaded yet: {}", r.err);
    assert!(r.err.contains("config push"), "{}", r.err);

    std::fs::write(&local, &good).expect("write");
    let r = s.timepost(&["config", "push"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("config/timepost.toml"), "{}", r.out);

    let r = s.timepost(&["config", "pull"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.out, good);
    let r = s.timepost(&["config", "pull", "--out", "pulled.toml"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(
        std::fs::read_to_string(s.dir.path().join("pulled.toml")).expect("pulled"),
        good
    );
}

#[tokio::test]
async fn mappings_import_then_export_round_trips_and_a_bad_csv_names_its_line() {
    let Some(s) = Stack::create().await else {
        return;
    };
    // Before any config: the command says how to provide one.
    let r = s.timepost(&["mappings", "export"]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("config push"), "{}", r.err);
    s.push_config();

    let file = std::fs::read_to_string(s.dir.path().join("mappings.csv")).expect("mappings");
    let bad = format!("{file}nonsense,k,v,\n");
    let bad_line = bad.lines().count();
    std::fs::write(s.dir.path().join("bad.csv"), &bad).expect("write");
    let r = s.timepost(&["mappings", "import", "bad.csv"]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(
        r.err.contains(&format!("line {bad_line}")),
        "names line {bad_line}: {}",
        r.err
    );
    let r = s.timepost(&["mappings", "export"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(sorted_rows(&r.out).is_empty(), "all or nothing: {}", r.out);

    let r = s.timepost(&["mappings", "import", "mappings.csv", "--by", "ops"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("held entr(y/ies) queued"), "{}", r.out);
    let r = s.timepost(&["mappings", "export"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(sorted_rows(&r.out), sorted_rows(&file));

    let r = s.timepost(&["mappings", "history", "--table", "employee"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.contains("ops") && r.out.contains("E-100"),
        "{}",
        r.out
    );

    // The report of the (empty) deployed stack.
    let r = s.timepost(&["status", "--json"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).expect("status json");
    assert_eq!(v["ledger"], "sandbox", "{}", r.out);
    assert_eq!(v["posted"]["entries"], 0, "{}", r.out);
}

#[tokio::test]
async fn ingest_enqueues_on_sqs_and_a_dry_run_changes_neither_queue_nor_table() {
    let Some(s) = Stack::create().await else {
        return;
    };
    s.use_qbo();
    s.push_config();
    let r = s.timepost(&["mappings", "import", "mappings.csv"]);
    assert_eq!(r.code, 0, "{}", r.err);

    // The same file through the local backend tells how many messages it is.
    let local = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(s.dir.path())
        .env_remove("TIMEPOST_BACKEND")
        .args([
            "ingest",
            "--source",
            "csv",
            "entries.csv",
            "--no-process",
            "--json",
        ])
        .output()
        .expect("local ingest");
    assert!(local.status.success());
    let local: serde_json::Value = serde_json::from_slice(&local.stdout).expect("json");
    let n = local["messages_enqueued"].as_u64().expect("count");
    assert!(n > 30, "the sandbox has some forty entries: {n}");

    let r = s.timepost(&["ingest", "--source", "csv", "entries.csv", "--json"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).expect("json");
    assert_eq!(v["messages_enqueued"].as_u64(), Some(n), "{}", r.out);
    assert!(v.get("posted").is_none(), "not processed here: {}", r.out);
    assert_eq!(s.queue_counts().await, (n, 0));
    let r = s.timepost(&["ingest", "--source", "csv", "entries.csv"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("deployed sync function"), "{}", r.out);
    let n = 2 * n;
    assert_eq!(s.queue_counts().await, (n, 0));

    let table = s.table_items().await;
    let r = s.timepost(&["sync", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out
            .contains("POST http://127.0.0.1:9/v3/company/9130/batch?requestid=tp-"),
        "{}",
        r.out
    );
    assert!(r.out.contains("\"TimeActivity\""), "{}", r.out);
    assert!(r.out.contains("still queued"), "{}", r.out);
    assert_eq!(
        s.queue_counts().await,
        (n, 0),
        "every message visible again"
    );
    assert_eq!(s.table_items().await, table, "the table is unchanged");

    let r = s.timepost(&["sync", "--dry-run", "--json"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).expect("json");
    let requests = v["requests"].as_array().expect("requests");
    // The second copy of each entry is a duplicate: one request per entry.
    assert!(
        !requests.is_empty() && requests.len() as u64 <= n / 2,
        "{}",
        requests.len()
    );
    assert_eq!(s.queue_counts().await, (n, 0));
}

#[tokio::test]
async fn rollback_of_an_unknown_batch_and_a_local_only_sync_are_bad_input() {
    let Some(s) = Stack::create().await else {
        return;
    };
    s.push_config();
    let r = s.timepost(&["rollback", "--batch", "b-nope"]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("b-nope"), "{}", r.err);
    let r = s.timepost(&["sync"]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("sync --dry-run"), "{}", r.err);
    let r = s.timepost(&["serve"]);
    assert_eq!(r.code, 2, "{}", r.err);
}

#[test]
fn a_missing_resource_variable_is_bad_input_naming_it() {
    // Needs no AWS at all: the settings are read before anything is called.
    let dir = tempfile::tempdir().expect("dir");
    std::fs::copy(
        Path::new(SANDBOX).join("timepost.toml"),
        dir.path().join("timepost.toml"),
    )
    .expect("copy");
    for args in [
        &["mappings", "list"][..],
        &["config", "push"][..],
        &["status"][..],
        &["sync", "--dry-run"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_timepost"))
            .current_dir(dir.path())
            .env_remove("TIMEPOST_TABLE")
            .env("TIMEPOST_QUEUE_URL", "http://127.0.0.1:9/q")
            .env("TIMEPOST_DLQ_URL", "http://127.0.0.1:9/d")
            .env("TIMEPOST_BUCKET", "b")
            .env("TIMEPOST_BACKEND", "aws")
            .args(args)
            .output()
            .expect("run timepost");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("TIMEPOST_TABLE"), "{args:?}: {err}");
    }
}

/// `mappings import --backend aws` is reviewed like a console change: two
/// held entries from long ago on the table make adding their project a
/// change for a second admin (threshold 1), stored as a proposal on
/// DynamoDB; `--approve-as` the importer is refused, another admin applies.
#[tokio::test]
async fn an_import_touching_stored_entries_waits_for_a_second_admin() {
    use timepost::ports::{EntryStore, PendingChanges, ProposalStatus};
    use timepost::state::{EntryState, Status};
    use timepost_tests::kit::E;

    let Some(s) = Stack::create().await else {
        return;
    };
    let cfg_path = s.dir.path().join("timepost.toml");
    let cfg = std::fs::read_to_string(&cfg_path).expect("config");
    std::fs::write(
        &cfg_path,
        cfg.replacen(
            "[rules]\n",
            "[console]\nmapping_approval_threshold = 1\n\n[rules]\n",
            1,
        ),
    )
    .expect("write config");
    s.push_config();
    let r = s.timepost(&["mappings", "import", "mappings.csv", "--by", "ops"]);
    assert_eq!(r.code, 0, "an empty table: nothing affected: {}", r.err);

    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&s.sdk), &s.table);
    for (id, date) in [("old-1", "2025-01-06"), ("old-2", "2025-01-07")] {
        let entry = E::new(id, "u-ann", date, "09:00", "11:00")
            .project("p-new")
            .build();
        let mut st = EntryState::new(entry, chrono::Utc::now());
        st.set_status(Status::Held, st.updated_at);
        store.put(&st).await.expect("put held entry");
    }
    let file = std::fs::read_to_string(s.dir.path().join("mappings.csv")).expect("mappings");
    std::fs::write(
        s.dir.path().join("new.csv"),
        format!("{file}project,p-new,C-ACME,\n"),
    )
    .expect("write");
    let has_p_new = |s: &Stack| {
        let r = s.timepost(&["mappings", "export"]);
        assert_eq!(r.code, 0, "{}", r.err);
        r.out.contains("p-new")
    };

    let r = s.timepost(&["mappings", "import", "new.csv", "--by", "ops"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("wait for a second admin"), "{}", r.out);
    assert!(!has_p_new(&s), "nothing applied");
    let pending = store
        .proposals(Some(ProposalStatus::Pending))
        .await
        .expect("proposals");
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].preview.in_reach(), 2);
    assert!(
        r.out.contains(&format!("proposal #{}", pending[0].id)),
        "{}",
        r.out
    );

    let r = s.timepost(&[
        "mappings",
        "import",
        "new.csv",
        "--by",
        "ops",
        "--approve-as",
        "ops",
    ]);
    assert_eq!(r.code, 2, "{}", r.out);
    assert!(!has_p_new(&s));

    let r = s.timepost(&[
        "mappings",
        "import",
        "new.csv",
        "--by",
        "ops",
        "--approve-as",
        "kim",
    ]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("approved by kim"), "{}", r.out);
    assert!(r.out.contains("2 held entr(y/ies) queued"), "{}", r.out);
    assert!(has_p_new(&s));
}

/// `doctor --json` on the stack: (exit code, the report).
fn doctor(s: &Stack) -> (i32, serde_json::Value, String) {
    let r = s.timepost(&["doctor", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.out)
        .unwrap_or_else(|e| panic!("doctor json ({e}): {} / {}", r.out, r.err));
    (r.code, v, r.out)
}

/// The status of step `n` (1-based) of a doctor report.
fn step(v: &serde_json::Value, n: usize) -> &serde_json::Value {
    let s = &v["steps"][n - 1];
    assert_eq!(s["step"], n, "{v}");
    s
}

fn texts(s: &serde_json::Value, field: &str) -> String {
    s[field]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// The after-deploy steps on a fresh stack: the rules file and the
/// mappings are reported missing with the commands that provide them (exit
/// 1); once provided every required step is OK (exit 0). Then a QBO rules
/// file names the QBO secrets it lacks (never a value), and once they
/// exist the stack is ready again.
#[tokio::test]
async fn doctor_walks_an_empty_stack_to_ready_naming_each_fix() {
    let Some(s) = Stack::create().await else {
        return;
    };
    let (code, v, _) = doctor(&s);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(step(&v, 1)["status"], "ok", "{v}");
    let s2 = step(&v, 2);
    assert_eq!(s2["status"], "missing", "{v}");
    assert!(texts(s2, "detail").contains("s3://"), "{v}");
    assert!(texts(s2, "fix").contains("config push"), "{v}");
    assert_eq!(step(&v, 3)["status"], "skipped", "{v}");
    let s4 = step(&v, 4);
    assert_eq!(s4["status"], "missing", "{v}");
    assert!(
        texts(s4, "detail").contains("no employee mapping row"),
        "{v}"
    );
    assert!(texts(s4, "fix").contains("mappings import"), "{v}");
    assert_eq!(step(&v, 5)["status"], "info", "{v}");
    assert!(
        texts(step(&v, 5), "detail").contains("dead-letter queue: 0"),
        "{v}"
    );
    // The text form says the same per step.
    let r = s.timepost(&["doctor"]);
    assert_eq!(r.code, 1, "{}", r.err);
    assert!(r.out.contains("step 2 rules file: MISSING"), "{}", r.out);
    assert!(r.out.contains("fix: timepost --backend aws"), "{}", r.out);

    s.push_config();
    let r = s.timepost(&["mappings", "import", "mappings.csv", "--by", "ops"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let (code, v, _) = doctor(&s);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    for n in 1..=4 {
        assert_eq!(step(&v, n)["status"], "ok", "step {n}: {v}");
    }
    assert!(
        texts(step(&v, 3), "detail").contains("need no secret"),
        "{v}"
    );

    // A QBO ledger needs its app's credentials and a refresh token.
    s.use_qbo();
    s.push_config();
    let (code, v, _) = doctor(&s);
    assert_eq!(code, 1, "{v}");
    let s3 = step(&v, 3);
    assert_eq!(s3["status"], "missing", "{v}");
    let prefix = &s
        .env
        .iter()
        .find(|(k, _)| *k == "TIMEPOST_SECRET_PREFIX")
        .expect("prefix")
        .1;
    for name in ["qbo_client_id", "qbo_client_secret", "qbo_refresh_token"] {
        assert!(
            texts(s3, "fix").contains(&format!(
                "aws secretsmanager create-secret --name '{prefix}{name}'"
            )),
            "{name}: {v}"
        );
    }
    let secrets = timepost::aws::SecretsManagerStore::new(
        timepost::aws::AwsClients::from_sdk(&s.sdk, true).secrets,
        prefix.as_str(),
        std::time::Duration::ZERO,
    );
    use timepost::ports::Secrets;
    for (name, value) in [
        ("qbo_client_id", "id-VALUE-1"),
        ("qbo_client_secret", "secret-VALUE-2"),
        ("qbo_refresh_token", "refresh-VALUE-3"),
    ] {
        secrets.put(name, value).await.expect("secret");
    }
    let (code, v, raw) = doctor(&s);
    assert_eq!(code, 0, "{v}");
    assert_eq!(step(&v, 3)["status"], "ok", "{v}");
    assert!(!raw.contains("VALUE"), "never a secret's value: {raw}");
}

/// Step 6, browser sign-in: information only while no provider is named;
/// with the stack's `SignInIssuer` exported it checks that the provider's
/// discovery document and keys answer and reads the console client id from
/// its secret; a provider that does not answer is missing (exit 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_checks_the_sign_in_provider_the_stack_outputs_name() {
    use timepost::ports::Secrets;
    use timepost_tests::oidc_fake::FakeOidc;
    let Some(mut s) = Stack::create().await else {
        return;
    };
    s.push_config();
    let r = s.timepost(&["mappings", "import", "mappings.csv", "--by", "ops"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let (code, v, _) = doctor(&s);
    assert_eq!(code, 0, "{v}");
    let s6 = step(&v, 6);
    assert_eq!(s6["status"], "info", "{v}");
    assert!(texts(s6, "detail").contains("TIMEPOST_OIDC_ISSUER"), "{v}");

    let fake = FakeOidc::start("console-client", &[], &[], Vec::new()).await;
    let prefix = s
        .env
        .iter()
        .find(|(k, _)| *k == "TIMEPOST_SECRET_PREFIX")
        .expect("prefix")
        .1
        .clone();
    let secrets = timepost::aws::SecretsManagerStore::new(
        timepost::aws::AwsClients::from_sdk(&s.sdk, true).secrets,
        prefix.as_str(),
        std::time::Duration::ZERO,
    );
    s.env.push(("TIMEPOST_OIDC_ISSUER", fake.issuer.clone()));
    s.env
        .push(("TIMEPOST_OIDC_CLIENT_ID_SECRET", "console_client_id".into()));
    // The stack writes this secret when it creates the pool; not yet here.
    let (code, v, _) = doctor(&s);
    assert_eq!(code, 1, "{v}");
    let s6 = step(&v, 6);
    assert_eq!(s6["status"], "missing", "{v}");
    assert!(texts(s6, "detail").contains("console_client_id"), "{v}");

    secrets
        .put("console_client_id", "console-client")
        .await
        .expect("secret");
    let (code, v, _) = doctor(&s);
    assert_eq!(code, 0, "{v}");
    let s6 = step(&v, 6);
    assert_eq!(s6["status"], "ok", "{v}");
    let said = texts(s6, "detail");
    assert!(
        said.contains("signing key(s), client console-client"),
        "{v}"
    );
    assert!(said.contains("token_key is not set"), "{v}");
    assert!(said.contains("admin-create-user"), "{v}");

    // A provider that does not answer.
    let dead = format!("http://localhost:{}", free_port());
    s.env.retain(|(k, _)| *k != "TIMEPOST_OIDC_ISSUER");
    s.env.push(("TIMEPOST_OIDC_ISSUER", dead.clone()));
    let (code, v, _) = doctor(&s);
    assert_eq!(code, 1, "{v}");
    let s6 = step(&v, 6);
    assert_eq!(s6["status"], "missing", "{v}");
    assert!(texts(s6, "detail").contains("does not answer"), "{v}");
}

/// A loopback port nothing listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Without the environment the first step names the variable and the
/// later ones wait for it (no AWS needed); locally the command is refused.
#[test]
fn doctor_without_the_environment_names_the_variable_and_local_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let out = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir.path())
        .env_remove("TIMEPOST_TABLE")
        .env("TIMEPOST_QUEUE_URL", "http://127.0.0.1:9/q")
        .env("TIMEPOST_DLQ_URL", "http://127.0.0.1:9/d")
        .env("TIMEPOST_BUCKET", "b")
        .args(["--backend", "aws", "doctor", "--json"])
        .output()
        .expect("run timepost");
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["steps"][0]["status"], "missing", "{v}");
    assert!(
        texts(&v["steps"][0], "detail").contains("TIMEPOST_TABLE"),
        "{v}"
    );
    for n in 1..6 {
        assert_eq!(v["steps"][n]["status"], "skipped", "{v}");
    }

    let out = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(dir.path())
        .env_remove("TIMEPOST_BACKEND")
        .args(["doctor"])
        .output()
        .expect("run timepost");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--backend aws"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A rules file that does not parse (uploaded around `config push`, which
/// would refuse it) is step 2 missing with the parser's own sentence, and
/// the secrets it would name are not guessed.
#[tokio::test]
async fn doctor_quotes_why_the_rules_file_in_the_bucket_does_not_parse() {
    let Some(s) = Stack::create().await else {
        return;
    };
    use timepost::ports::Archive;
    let bucket = &s.table; // the stack's bucket has the same unique name
    S3Archive::new(S3Archive::client(&s.sdk, true), bucket)
        .put("config/timepost.toml", b"[ledger]\nkind = 7\n".to_vec())
        .await
        .expect("upload");
    let (code, v, _) = doctor(&s);
    assert_eq!(code, 1, "{v}");
    let s2 = step(&v, 2);
    assert_eq!(s2["status"], "missing", "{v}");
    let detail = texts(s2, "detail");
    assert!(
        detail.contains(&format!("s3://{bucket}/config/timepost.toml")) && detail.contains("kind"),
        "{v}"
    );
    assert!(texts(s2, "fix").contains("config push"), "{v}");
    assert_eq!(step(&v, 3)["status"], "skipped", "{v}");
}

/// With `TIMEPOST_ARCHIVE_BUCKET` set (the stack output `ArchiveBucketName`
/// when the template made an Object Lock bucket), `archive run|list|verify`
/// work on that bucket and nothing is archived into the stack's bucket.
#[tokio::test]
async fn archive_commands_use_the_bucket_timepost_archive_bucket_names() {
    let Some(mut s) = Stack::create().await else {
        return;
    };
    let locked = format!("{}-snapshots", s.table);
    S3Archive::new(S3Archive::client(&s.sdk, true), &locked)
        .create_bucket()
        .await
        .expect("archive bucket");
    s.env.push(("TIMEPOST_ARCHIVE_BUCKET", locked.clone()));
    s.push_config();

    let r = s.timepost(&["archive", "run", "--period", "2026-03", "--json"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let keys = S3Archive::new(S3Archive::client(&s.sdk, true), &locked)
        .list("archive/")
        .await
        .expect("list");
    assert!(
        keys.contains(&"archive/snapshots/2026-03/rev-1/manifest.json".to_string()),
        "{keys:?}"
    );
    let stack_bucket = S3Archive::new(S3Archive::client(&s.sdk, true), &s.table)
        .list("archive/")
        .await
        .expect("list");
    assert!(stack_bucket.is_empty(), "{stack_bucket:?}");
    let r = s.timepost(&["archive", "list", "--json"]);
    assert!(r.out.contains("\"period\": \"2026-03\""), "{}", r.out);
    let r = s.timepost(&["archive", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
}

/// Archival through the same ports on a deployed stack: snapshots go to
/// the bucket under `archive/`, list and verify read them there, a restore
/// builds a local store from them; `export --all` reads the stack and a
/// local `import --bundle` loads it; a stack that holds records refuses
/// `import --bundle`.
#[tokio::test]
async fn archive_and_export_work_on_a_deployed_stack() {
    let Some(s) = Stack::create().await else {
        return;
    };
    s.push_config();
    let r = s.timepost(&["mappings", "import", "mappings.csv", "--by", "ops"]);
    assert_eq!(r.code, 0, "{}", r.err);

    let r = s.timepost(&["archive", "run", "--period", "2026-03", "--json"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let runs: serde_json::Value = serde_json::from_str(&r.out).expect("run json");
    assert_eq!(runs[0]["outcome"], "written", "{}", r.out);
    let keys = S3Archive::new(S3Archive::client(&s.sdk, true), &s.table)
        .list("archive/snapshots/2026-03/rev-1/")
        .await
        .expect("list");
    assert!(
        keys.contains(&"archive/snapshots/2026-03/rev-1/manifest.json".to_string()),
        "{keys:?}"
    );
    let r = s.timepost(&["archive", "run", "--period", "2026-03"]);
    assert!(r.out.contains("unchanged"), "{}", r.out);
    let r = s.timepost(&["archive", "list", "--json"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("\"period\": \"2026-03\""), "{}", r.out);
    let r = s.timepost(&["archive", "verify"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    let r = s.timepost(&[
        "archive", "restore", "--period", "2026-03", "--into", "audit",
    ]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(s.dir.path().join("audit/timepost.toml").exists());

    let r = s.timepost(&["export", "--all", "bundle"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let fresh = tempfile::tempdir().expect("dir");
    std::fs::copy(
        Path::new(SANDBOX).join("timepost.toml"),
        fresh.path().join("timepost.toml"),
    )
    .expect("copy");
    let bundle = s.dir.path().join("bundle");
    let out = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(fresh.path())
        .env_remove("TIMEPOST_BACKEND")
        .env_remove("TIMEPOST_CONFIG")
        .args(["import", "--bundle", bundle.to_str().expect("utf-8")])
        .output()
        .expect("import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_timepost"))
        .current_dir(fresh.path())
        .env_remove("TIMEPOST_BACKEND")
        .env_remove("TIMEPOST_CONFIG")
        .args(["mappings", "export"])
        .output()
        .expect("export");
    let file = std::fs::read_to_string(s.dir.path().join("mappings.csv")).expect("mappings");
    assert_eq!(
        sorted_rows(&String::from_utf8_lossy(&out.stdout)),
        sorted_rows(&file)
    );

    // The stack holds records: a bundle is not loaded on top of them.
    let r = s.timepost(&["import", "--bundle", "bundle"]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("already holds records"), "{}", r.err);
}

/// The sections of `status --json` the store determines: everything but
/// the ledger read-back (`reconciliation`, whose ledger columns come from
/// the books, and the ledger's name) and the dead-letter count. A stack's
/// sandbox ledger is per instance and its dead letters are SQS messages:
/// `import --bundle` on AWS loads neither (it says how many it left).
fn store_derived(status: &serde_json::Value) -> serde_json::Value {
    let mut v = status.clone();
    let o = v.as_object_mut().expect("status object");
    o.remove("reconciliation");
    o.remove("ledger");
    o.remove("dead_letters");
    o.get_mut("kpis")
        .and_then(|k| k.as_object_mut())
        .expect("kpis")
        .remove("dead_letters");
    v
}

/// `store_derived` of both equal, section by section (a failure names the
/// section).
fn assert_same_store(got: &serde_json::Value, want: &serde_json::Value) {
    let (got, want) = (store_derived(got), store_derived(want));
    let (g, w) = (
        got.as_object().expect("obj"),
        want.as_object().expect("obj"),
    );
    assert_eq!(
        g.keys().collect::<Vec<_>>(),
        w.keys().collect::<Vec<_>>(),
        "sections"
    );
    for (k, v) in w {
        assert_eq!(g.get(k), Some(v), "section `{k}` differs");
    }
}

/// Issue 15's round trip: the local demo store → `export --all` →
/// `--backend aws import --bundle` → the stack's `status --json` equals
/// the local one on every store-derived section (see `store_derived`);
/// a second import is refused, `--force` stops at the first item that
/// exists without changing the table, the import is audited; and back:
/// the stack's `export --all` → a local `import --bundle` into a fresh
/// store → the same status again.
#[tokio::test]
async fn a_local_export_loads_into_a_stack_and_back_with_the_same_status() {
    let Some(s) = Stack::create().await else {
        return;
    };
    s.push_config();
    let d = crate::archive::demo_dir();
    let local = crate::archive::json(&crate::archive::ok(d.path(), &["status", "--json"]));
    crate::archive::ok(d.path(), &["export", "--all", "bundle"]);
    let bundle = d.path().join("bundle");
    let bundle = bundle.to_str().expect("utf-8");

    let r = s.timepost(&["import", "--bundle", bundle]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert!(r.out.contains("imported 33 entries"), "{}", r.out);
    assert!(r.out.contains("2 dead letters"), "{}", r.out);
    let r = s.timepost(&["status", "--json"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let on_aws = crate::archive::json(&r.out);
    assert_same_store(&on_aws, &local);
    assert!(
        s.table_items()
            .await
            .iter()
            .any(|i| i.contains("bundle.imported")),
        "the import is audited"
    );

    // Loaded once: refused, and with --force nothing is overwritten.
    let r = s.timepost(&["import", "--bundle", bundle]);
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.err.contains("already holds records"), "{}", r.err);
    let items = s.table_items().await;
    let r = s.timepost(&["import", "--bundle", bundle, "--force"]);
    assert_ne!(r.code, 0, "{}", r.out);
    assert!(r.err.contains("already holds entry#"), "{}", r.err);
    assert_eq!(s.table_items().await, items, "nothing overwritten");

    // And back to a laptop.
    let r = s.timepost(&["export", "--all", "back"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let fresh = tempfile::tempdir().expect("dir");
    std::fs::copy(
        Path::new(SANDBOX).join("timepost.toml"),
        fresh.path().join("timepost.toml"),
    )
    .expect("copy");
    let back = s.dir.path().join("back");
    crate::archive::ok(
        fresh.path(),
        &["import", "--bundle", back.to_str().expect("utf-8")],
    );
    let again = crate::archive::json(&crate::archive::ok(fresh.path(), &["status", "--json"]));
    assert_same_store(&again, &local);
}

/// `archive purge --backend aws`: the entries of an archived, verified
/// month past `live_days` leave the table (state, journal, claim, week
/// membership), audited and recorded beside the snapshots; a month with an
/// open entry is kept whole; the snapshot still restores them.
#[tokio::test]
async fn purge_removes_an_archived_month_from_the_table_and_never_an_open_entry() {
    use chrono::Utc;
    use timepost::ports::{AuditLog as _, EntryStore as _, Journal as _, JournalRecord};
    use timepost::state::{EntryState, Status};
    use timepost_tests::kit::E;

    let Some(s) = Stack::create().await else {
        return;
    };
    let cfg = s.dir.path().join("timepost.toml");
    let text = std::fs::read_to_string(&cfg).expect("config") + "\n[retention]\nlive_days = 30\n";
    std::fs::write(&cfg, text).expect("config");
    s.push_config();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&s.sdk), &s.table);
    let now = Utc::now();
    let put = |id: &str, date: &str, status: Status| {
        let mut st = EntryState::new(E::new(id, "u1", date, "09:00", "10:00").0, now);
        st.set_status(status, now);
        st
    };
    let march = put("m1", "2026-03-03", Status::Posted);
    let april_posted = put("a1", "2026-04-07", Status::Posted);
    let april_held = put("a2", "2026-04-08", Status::Held);
    for st in [&march, &april_posted, &april_held] {
        store.put(st).await.expect("put");
    }
    store
        .append(JournalRecord {
            seq: 0,
            batch_id: "b1".into(),
            key: march.entry.key.clone(),
            version: march.entry.version.clone(),
            operation: "create".into(),
            request_id: "r1".into(),
            records: vec![],
            lines: vec![],
            ledger: "sandbox".into(),
            at: now,
            intent: String::new(),
        })
        .await
        .expect("journal");

    // The version received, kept once however often it is delivered.
    for _ in 0..2 {
        store
            .record_version(&march.entry, now)
            .await
            .expect("version");
    }
    assert_eq!(
        store
            .versions(&march.entry.key)
            .await
            .expect("versions")
            .len(),
        1
    );

    let r = s.timepost(&["archive", "run", "--json"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let r = s.timepost(&["archive", "purge", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(
        r.out.contains("2026-03 rev 1: would remove 1 entries"),
        "{}",
        r.out
    );
    assert!(
        r.out.contains("2026-04 rev 1: kept: 1 entries still open"),
        "{}",
        r.out
    );
    assert!(store.get(&march.entry.key).await.expect("get").is_some());

    let r = s.timepost(&["archive", "purge", "--json"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let v: serde_json::Value = serde_json::from_str(&r.out).expect("json");
    assert_eq!(v["removed"], 1, "{}", r.out);
    assert!(store.get(&march.entry.key).await.expect("get").is_none());
    assert!(store
        .by_entry(&march.entry.key)
        .await
        .expect("journal")
        .is_empty());
    assert!(store
        .versions(&march.entry.key)
        .await
        .expect("versions")
        .is_empty());
    assert_eq!(
        store
            .week(&timepost::ports::WorkerWeek::of(&march.entry))
            .await
            .expect("week")
            .len(),
        0
    );
    // The open month is whole.
    for st in [&april_posted, &april_held] {
        assert!(store.get(&st.entry.key).await.expect("get").is_some());
    }
    let audit = store.recent(50).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|a| a.action == "archive.purged"
                && a.detail.starts_with("period 2026-03: 1 entries")),
        "{audit:?}"
    );
    let r = s.timepost(&["archive", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&r.out).expect("list");
    assert_eq!(list[0]["period"], "2026-03");
    assert_eq!(list[0]["purged"]["entries"], 1, "{}", r.out);
    let r = s.timepost(&["archive", "run", "--period", "2026-03"]);
    assert!(r.out.contains("purged after revision 1"), "{}", r.out);
    // The snapshot still holds the purged entry.
    let r = s.timepost(&[
        "archive", "restore", "--period", "2026-03", "--into", "audit",
    ]);
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains("1 entries, 1 entry versions"), "{}", r.out);
}

/// `timepost --backend aws reconcile` lists the tracker's period too: the
/// Harvest token is read from Secrets Manager, and an entry Harvest lists
/// that the stack never received is a `NEVER_RECEIVED` break;
/// `--no-listing` leaves the listing out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_on_aws_lists_harvest_with_the_token_from_secrets_manager() {
    use timepost::ports::Secrets as _;
    use timepost_tests::harvest_fake::{self, HarvestServer};
    let Some(s) = Stack::create().await else {
        return;
    };
    let fake = HarvestServer::start(
        "987654",
        "harvest-pat",
        1000,
        std::time::Duration::from_secs(15),
    )
    .await;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 3, 3).expect("date");
    fake.put(harvest_fake::entry(7, 1001, 2001, 3001, day, "2.0"));
    let p = s.dir.path().join("timepost.toml");
    let cfg = std::fs::read_to_string(&p).expect("config")
        + &format!(
            "\n[intake.harvest]\naccount_id = \"987654\"\nbase_url = \"{}\"\n\
             user_agent = \"timepost tests (ops@example.com)\"\nrequests_per_15s = 1000\n",
            fake.base_url()
        );
    std::fs::write(&p, cfg).expect("write config");
    s.push_config();
    timepost::aws::SecretsManagerStore::new(
        timepost::aws::stack::AwsClients::from_sdk(&s.sdk, true).secrets,
        format!("{}/", s.table),
        std::time::Duration::from_secs(60),
    )
    .put("harvest_token", "harvest-pat")
    .await
    .expect("token");

    let r = s.timepost(&["reconcile", "--period", "2026-03-02..2026-03-08", "--json"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let run: serde_json::Value = serde_json::from_str(&r.out).expect("json");
    assert_eq!(run["summary"]["tracker"], "received + harvest listing");
    assert_eq!(run["summary"]["breaks"], 1, "{run}");
    let b = &run["breaks"][0];
    assert_eq!(b["code"], "NEVER_RECEIVED", "{run}");
    assert_eq!(b["entry"], "harvest:987654:7", "{run}");

    let r = s.timepost(&[
        "reconcile",
        "--period",
        "2026-03-02..2026-03-08",
        "--no-listing",
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.err);
    let run: serde_json::Value = serde_json::from_str(&r.out).expect("json");
    assert_eq!(run["summary"]["tracker"], "received");
    assert_eq!(run["summary"]["breaks"], 0, "{run}");
    let r = s.timepost(&["reconcile", "history", "--json"]);
    let runs: serde_json::Value = serde_json::from_str(&r.out).expect("json");
    assert_eq!(runs.as_array().map(Vec::len), Some(2), "{runs}");
}
