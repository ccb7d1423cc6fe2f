//! Alerts end to end: delivered to a real SMTP receiver (an in-process
//! listener speaking enough SMTP to accept messages: test code only) and a
//! webhook receiver started here, and to SNS on moto read back through a
//! subscribed SQS queue; one notice per condition across passes, cleared
//! then fired again, the digest grouping them; and the finance export.

use std::sync::{Arc, Mutex};

use chrono::{Duration, Utc};
use timepost::model::NormalisedEntry;
use timepost::ports::AlertStore;
use timepost::stack::alert_job::AlertJob;
use timepost::stack::LocalStack;
use timepost_tests::kit::{deliver, stack_with, E};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// One message the SMTP receiver accepted.
#[derive(Debug, Clone, Default)]
struct Mail {
    rcpt: Vec<String>,
    data: String,
}

/// A minimal SMTP receiver (RFC 5321 greeting, EHLO, MAIL, RCPT, DATA,
/// QUIT), on 127.0.0.1, for as long as the test runs.
async fn smtp_receiver() -> (u16, Arc<Mutex<Vec<Mail>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind smtp");
    let port = listener.local_addr().expect("addr").port();
    let got: Arc<Mutex<Vec<Mail>>> = Arc::default();
    let inbox = got.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let inbox = inbox.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                let _ = w.write_all(b"220 test ESMTP\r\n").await;
                let mut mail = Mail::default();
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let cmd = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                        b"250 test\r\n"
                    } else if cmd.starts_with("MAIL FROM") {
                        mail = Mail::default();
                        b"250 ok\r\n"
                    } else if cmd.starts_with("RCPT TO") {
                        mail.rcpt.push(line.trim_end()[8..].trim().to_string());
                        b"250 ok\r\n"
                    } else if cmd == "DATA" {
                        let _ = w.write_all(b"354 go on\r\n").await;
                        let mut data = String::new();
                        loop {
                            let mut l = String::new();
                            if r.read_line(&mut l).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if l == ".\r\n" {
                                break;
                            }
                            data.push_str(&l);
                        }
                        mail.data = data;
                        inbox.lock().expect("inbox").push(mail.clone());
                        b"250 queued\r\n"
                    } else if cmd == "QUIT" {
                        let _ = w.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = w.write_all(reply).await;
                }
            });
        }
    });
    (port, got)
}

/// A webhook receiver: every JSON body POSTed to `/hook`.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let inbox = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let inbox = inbox.clone();
            async move {
                inbox.lock().expect("hooks").push(v);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind hook");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hook"), got)
}

fn config(hook: &str, smtp_port: u16, digest: bool) -> String {
    format!(
        "{}\n[alerts]\nwebhook_url = \"{hook}\"\ndigest = {digest}\nconsole_url = \"https://tp.example.com\"\n\
         workspaces = [\"csv:ws\"]\nmax_entry_hours = 10\nwork_days = []\nearliest_hour = 0\n\
         latest_hour = 24\nsilence_factor = 0\nmax_week_hours = 0\n\
         [alerts.project_owners]\n\"p-unmapped\" = \"owner@example.com\"\n\
         [alerts.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"none\"\n\
         from = \"timepost <alerts@example.com>\"\nto = [\"finance@example.com\"]\ntimeout_secs = 10\n",
        timepost_tests::aws_world::config_without_approval()
    )
}

fn day(back: i64) -> String {
    (Utc::now().date_naive() - Duration::days(back)).to_string()
}

/// A 12-hour day (longer than the 10 the rules allow) …
fn long(updated: &str) -> NormalisedEntry {
    E::new("long", "u-ann", &day(2), "06:00", "18:00")
        .updated(updated)
        .build()
}

/// … the same entry corrected to 4 hours …
fn short(updated: &str) -> NormalisedEntry {
    E::new("long", "u-ann", &day(2), "08:00", "12:00")
        .updated(updated)
        .build()
}

/// … and work on a project no mapping knows.
fn unmapped() -> NormalisedEntry {
    E::new("um", "u-ann", &day(3), "09:00", "10:00")
        .project("p-unmapped")
        .build()
}

async fn setup(
    digest: bool,
) -> (
    tempfile::TempDir,
    LocalStack,
    Arc<Mutex<Vec<Mail>>>,
    Arc<Mutex<Vec<serde_json::Value>>>,
) {
    let (port, mails) = smtp_receiver().await;
    let (hook, hooks) = webhook_receiver().await;
    let dir = tempfile::tempdir().expect("tmp");
    let stack = stack_with(dir.path(), &config(&hook, port, digest), "").await;
    (dir, stack, mails, hooks)
}

#[tokio::test]
async fn each_condition_fires_once_clears_and_fires_again() {
    let (_dir, stack, mails, hooks) = setup(false).await;
    deliver(&stack, &[long("2026-03-09T00:00:00Z"), unmapped()]).await;
    let job = AlertJob::local(&stack).await.expect("job");
    assert_eq!(job.notifiers.len(), 2, "webhook and smtp");

    let r = job.run(Utc::now(), false).await.expect("pass 1");
    let mut fired = r.fired.clone();
    fired.sort();
    assert_eq!(
        fired,
        vec!["long_entry:csv:ws:long", "unmapped_work:p-unmapped"],
        "{r:?}"
    );
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(r.notices, 2);
    {
        let mails = mails.lock().expect("mails");
        assert_eq!(mails.len(), 2, "{mails:?}");
        let owner = mails
            .iter()
            .find(|m| m.rcpt.iter().any(|r| r.contains("owner@example.com")))
            .expect("the unmapped-work alert reached the project owner");
        assert!(owner.rcpt.iter().any(|r| r.contains("finance@example.com")));
        assert!(
            owner
                .data
                .contains("https://tp.example.com/console/mappings"),
            "{}",
            owner.data
        );
        let long = mails
            .iter()
            .find(|m| m.data.contains("12.0 hours"))
            .expect("long entry mail");
        assert!(!long.rcpt.iter().any(|r| r.contains("owner@")), "{long:?}");
        let hooks = hooks.lock().expect("hooks");
        assert_eq!(hooks.len(), 2);
        assert!(hooks.iter().all(|h| h["text"].is_string()), "{hooks:?}");
        assert!(hooks.iter().any(|h| h["text"]
            .as_str()
            .unwrap_or("")
            .contains("/console/exceptions/csv%3Aws%3Along")));
    }

    // The same conditions on the next passes: no new notices.
    for _ in 0..2 {
        let r = job.run(Utc::now(), false).await.expect("again");
        assert!(r.fired.is_empty() && r.cleared.is_empty(), "{r:?}");
        assert_eq!(r.notices, 0);
    }
    assert_eq!(mails.lock().expect("mails").len(), 2);
    assert_eq!(hooks.lock().expect("hooks").len(), 2);

    // The entry is corrected: the condition clears, nothing is sent.
    deliver(&stack, &[short("2026-03-10T00:00:00Z")]).await;
    let r = job.run(Utc::now(), false).await.expect("clear");
    assert_eq!(r.cleared, vec!["long_entry:csv:ws:long"]);
    assert_eq!(r.notices, 0);
    let history = stack.store.alert_history(10).await.expect("history");
    let cleared = history
        .iter()
        .find(|s| s.key == "long_entry:csv:ws:long")
        .expect("kept");
    assert!(cleared.cleared.is_some() && cleared.notified.is_some());

    // It comes back: it fires again, once.
    deliver(&stack, &[long("2026-03-11T00:00:00Z")]).await;
    let r = job.run(Utc::now(), false).await.expect("refire");
    assert_eq!(r.fired, vec!["long_entry:csv:ws:long"]);
    assert_eq!(r.notices, 1);
    assert_eq!(mails.lock().expect("mails").len(), 3);
    assert_eq!(hooks.lock().expect("hooks").len(), 3);
    let r = job.run(Utc::now(), false).await.expect("quiet");
    assert_eq!(r.notices, 0);
}

#[tokio::test]
async fn the_digest_groups_pending_alerts_into_one_message() {
    let (_dir, stack, mails, hooks) = setup(true).await;
    deliver(&stack, &[long("2026-03-09T00:00:00Z"), unmapped()]).await;
    let job = AlertJob::local(&stack).await.expect("job");
    // Digest due at 08:00 UTC: an hour before, nothing goes out.
    let today = Utc::now().date_naive();
    let at = |h: u32| today.and_hms_opt(h, 0, 0).expect("time").and_utc();
    let r = job.run(at(7), false).await.expect("before");
    assert_eq!(r.fired.len(), 2);
    assert_eq!(r.notices, 0);
    assert!(mails.lock().expect("mails").is_empty());
    // At the digest hour: one message holding both.
    let r = job.run(at(9), false).await.expect("digest");
    assert_eq!((r.notices, r.alerts_sent), (1, 2), "{r:?}");
    {
        let mails = mails.lock().expect("mails");
        assert_eq!(mails.len(), 1);
        let m = &mails[0];
        assert!(m.data.contains("daily digest: 2 alert(s)"), "{}", m.data);
        assert!(
            m.data.contains("12.0 hours") && m.data.contains("p-unmapped"),
            "{}",
            m.data
        );
        assert!(m.rcpt.iter().any(|r| r.contains("owner@example.com")));
        let hooks = hooks.lock().expect("hooks");
        assert_eq!(hooks.len(), 1);
    }
    // Later the same day: nothing new, nothing sent.
    let r = job.run(at(10), false).await.expect("after");
    assert_eq!(r.notices, 0);
    assert_eq!(mails.lock().expect("mails").len(), 1);
}

#[tokio::test]
async fn a_period_export_writes_the_finance_csvs() {
    let (dir, stack, _mails, _hooks) = setup(false).await;
    deliver(&stack, &[long("2026-03-09T00:00:00Z"), unmapped()]).await;
    let job = AlertJob::local(&stack).await.expect("job");
    let from = Utc::now().date_naive() - Duration::days(10);
    let to = Utc::now().date_naive();
    let period = timepost::reconcile::Period { from, to };
    let out = dir.path().join("out");
    let w = job.export(&period, Some(&out)).await.expect("export");
    assert_eq!(w.exceptions, 1);
    let folder = out.join(format!("{from}_{to}"));
    let project = std::fs::read_to_string(folder.join("hours_by_project.csv")).expect("projects");
    assert!(
        project.starts_with("\"project\",\"lines\",\"hours\""),
        "{project}"
    );
    let acme = project
        .lines()
        .find(|l| l.starts_with("\"Acme website\","))
        .unwrap_or_else(|| panic!("{project}"));
    let hours: f64 = acme
        .split(',')
        .nth(2)
        .and_then(|h| h.parse().ok())
        .unwrap_or(0.0);
    assert!((hours - 12.0).abs() < 1e-9, "{project}");
    let exceptions = std::fs::read_to_string(folder.join("exceptions.csv")).expect("exceptions");
    assert!(exceptions.contains("UNMAPPED_PROJECT"), "{exceptions}");
    assert!(folder.join("hours_by_employee.csv").exists());
    assert!(folder.join("reconciliation.csv").exists());
    assert!(folder.join("manifest.json").exists());
}

#[tokio::test]
async fn sns_on_moto_carries_one_alert_per_condition() {
    use timepost::ports::{EntryStore, Notice, Notifier};
    let Some(sdk) = timepost_tests::moto::sdk_config().await else {
        return;
    };
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let name = timepost_tests::moto::unique("alerts");
    let topic = sns
        .create_topic()
        .name(&name)
        .send()
        .await
        .expect("topic")
        .topic_arn
        .expect("arn");
    let queue = sqs
        .create_queue()
        .queue_name(format!("{name}-subscriber"))
        .send()
        .await
        .expect("queue")
        .queue_url
        .expect("url");
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attrs")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("queue arn");
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await
        .expect("subscribe");

    // The deployed function's pass: an entry held for an unmapped project
    // in the table, the topic as the only notifier.
    let config = format!(
        "{}\n[alerts]\n[alerts.project_owners]\n\"p-unmapped\" = \"owner@example.com\"\n",
        timepost_tests::aws_world::config_without_approval()
    );
    let settings = timepost_tests::aws_world::provision(&sdk, &name, &config)
        .await
        .expect("provision");
    let stack = timepost::aws::AwsStack::connect(&sdk, settings, None)
        .await
        .expect("stack");
    let mut held = timepost::state::EntryState::new(unmapped(), Utc::now());
    held.set_status(timepost::state::Status::Held, held.updated_at);
    held.reason = Some(timepost::exceptions::Exception::new(
        timepost::exceptions::ExceptionCode::UnmappedProject,
        "p-unmapped",
    ));
    stack.store.put(&held).await.expect("held entry");
    let f = timepost_fn_alerts::AlertsFn::new(stack, &sdk, Some(topic.clone()))
        .await
        .expect("function");
    let input = timepost_fn_alerts::TaskInput {
        task: timepost_fn_alerts::Task::Alerts,
    };
    for _ in 0..3 {
        f.handle(input.clone()).await.expect("pass");
    }
    // The export task: the last closed month under exports/ in the bucket,
    // once, with a notice on the topic.
    let export = timepost_fn_alerts::TaskInput {
        task: timepost_fn_alerts::Task::Export,
    };
    let written = match f.handle(export.clone()).await.expect("export") {
        timepost_fn_alerts::Output::Export(Some(w)) => w,
        other => panic!("expected an export, got {other:?}"),
    };
    let folder = timepost::exports::folder(&written.period);
    let keys = timepost::ports::Archive::list(&f.bucket, "exports/")
        .await
        .expect("list exports");
    for file in timepost::exports::FILES
        .iter()
        .chain(["manifest.json"].iter())
    {
        let k = format!("exports/{folder}/{file}");
        assert!(keys.contains(&k), "{k} not in {keys:?}");
    }
    assert!(matches!(
        f.handle(export).await.expect("export again"),
        timepost_fn_alerts::Output::Export(None)
    ));
    // Directly, too: the adapter's subject stays within SNS's limits.
    let notifier = timepost::aws::sns::SnsNotifier::new(sns.clone(), &topic);
    notifier
        .notify(&Notice {
            subject: format!("a very long subject {}\nwith a newline", "x".repeat(200)),
            text: "direct".into(),
            extra_to: vec![],
        })
        .await
        .expect("direct publish");

    let mut bodies = Vec::new();
    for _ in 0..5 {
        let out = sqs
            .receive_message()
            .queue_url(&queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        let msgs = out.messages.unwrap_or_default();
        if msgs.is_empty() && bodies.len() >= 3 {
            break;
        }
        for m in msgs {
            bodies.push(
                serde_json::from_str::<serde_json::Value>(m.body().unwrap_or("{}"))
                    .expect("sns envelope"),
            );
            sqs.delete_message()
                .queue_url(&queue)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
    let alerts: Vec<_> = bodies
        .iter()
        .filter(|b| b["Subject"] == "timepost alert: unmapped work")
        .collect();
    assert_eq!(alerts.len(), 1, "one alert across three passes: {bodies:?}");
    let text = alerts[0]["Message"].as_str().unwrap_or("");
    assert!(
        text.contains("p-unmapped") && text.contains("owner@example.com"),
        "{text}"
    );
    let exports: Vec<_> = bodies
        .iter()
        .filter(|b| {
            b["Subject"]
                .as_str()
                .is_some_and(|x| x.starts_with("timepost export "))
        })
        .collect();
    assert_eq!(exports.len(), 1, "{bodies:?}");
    let direct = bodies
        .iter()
        .find(|b| b["Message"] == "direct")
        .expect("direct message");
    let subject = direct["Subject"].as_str().unwrap_or("");
    assert!(subject.len() <= 100 && !subject.contains('\n'), "{subject}");
}

/// The alert state on DynamoDB (moto) and SQLite alike: replace by key,
/// active ones without the cleared, history newest first; a cleared item
/// carries the TTL attribute so the table drops it later.
#[tokio::test]
async fn alert_state_stores_agree() {
    use timepost::ports::AlertState;
    let at = |s: &str| s.parse::<chrono::DateTime<Utc>>().expect("instant");
    let state = |key: &str, seen: &str, cleared: Option<&str>| AlertState {
        key: key.into(),
        rule: "dead_letters".into(),
        said: format!("about {key}"),
        link: "/console/exceptions".into(),
        owner: None,
        first_fired: at("2026-03-01T00:00:00Z"),
        last_seen: at(seen),
        notified: Some(at("2026-03-01T00:00:00Z")),
        cleared: cleared.map(at),
    };
    async fn exercise(
        store: &dyn AlertStore,
        state: &dyn Fn(&str, &str, Option<&str>) -> AlertState,
    ) {
        store
            .put_alert(&state("a#1", "2026-03-02T00:00:00Z", None))
            .await
            .expect("put a");
        store
            .put_alert(&state("b", "2026-03-03T00:00:00Z", None))
            .await
            .expect("put b");
        // b clears: replaced under the same key.
        store
            .put_alert(&state(
                "b",
                "2026-03-04T00:00:00Z",
                Some("2026-03-04T00:00:00Z"),
            ))
            .await
            .expect("clear b");
        let active = store.active_alerts().await.expect("active");
        assert_eq!(
            active.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(),
            vec!["a#1"]
        );
        let history = store.alert_history(10).await.expect("history");
        assert_eq!(
            history.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(),
            vec!["b", "a#1"]
        );
        assert!(history[0].cleared.is_some());
        assert_eq!(store.alert_history(1).await.expect("one").len(), 1);
    }
    let dir = tempfile::tempdir().expect("tmp");
    let sqlite = timepost::local::SqliteStore::open(&dir.path().join("s.sqlite")).expect("sqlite");
    exercise(&sqlite, &state).await;

    let Some(sdk) = timepost_tests::moto::sdk_config().await else {
        return;
    };
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let table = timepost_tests::moto::unique("alerts");
    let dynamo = timepost::aws::DynamoStore::new(client.clone(), &table);
    dynamo.create_table().await.expect("table");
    exercise(&dynamo, &state).await;
    let item = client
        .get_item()
        .table_name(&table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("alerts".into()),
        )
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("b".into()))
        .send()
        .await
        .expect("get")
        .item
        .expect("cleared item");
    let ttl: i64 = match item.get("expires_at") {
        Some(aws_sdk_dynamodb::types::AttributeValue::N(n)) => n.parse().expect("number"),
        other => panic!("no TTL on a cleared alert: {other:?}"),
    };
    assert_eq!(
        ttl,
        at("2026-04-03T00:00:00Z").timestamp(),
        "30 days after clearing"
    );
}
