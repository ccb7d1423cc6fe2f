//! The poller function on the AWS stack against moto and the fake Harvest
//! API: the watermark (DynamoDB) advances only after the enqueue (SQS)
//! succeeded, and a schedule naming an unconfigured source is refused in
//! words an admin can act on.

use std::time::Duration;

use timepost::aws::{AwsStack, SecretsManagerStore};
use timepost::ports::{Queue, Secrets, WatermarkStore};
use timepost_fn_poller::{PollFnError, PollInput};
use timepost_tests::harvest_fake::{self, HarvestServer};
use timepost_tests::moto;

const ACCOUNT: &str = "987654";
const TOKEN: &str = "harvest-pat";

fn config(base: &str) -> String {
    format!(
        "{}\n[intake.harvest]\naccount_id = \"{ACCOUNT}\"\nbase_url = \"{base}\"\n\
         user_agent = \"timepost tests (ops@example.com)\"\nbackoff_base_ms = 10\n\
         backoff_cap_ms = 50\nmax_wait_secs = 5\nrequests_per_15s = 1000\n",
        timepost_tests::aws_world::config_without_approval()
    )
}

fn harvest() -> PollInput {
    PollInput {
        source: "harvest".into(),
    }
}

#[tokio::test]
async fn the_watermark_moves_only_after_sqs_accepted_the_entries() {
    let Some(sdk) = moto::sdk_config().await else {
        return;
    };
    let fake = HarvestServer::start(ACCOUNT, TOKEN, 100, Duration::from_secs(15)).await;
    let day = chrono::Utc::now().date_naive() - chrono::Duration::days(2);
    for id in [41, 42, 43] {
        fake.put(harvest_fake::entry(id, 1001, 2001, 3001, day, "1.5"));
    }
    let name = moto::unique("poll");
    let settings = timepost_tests::aws_world::provision(&sdk, &name, &config(&fake.base_url()))
        .await
        .expect("provision");
    SecretsManagerStore::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
        &settings.secret_prefix,
        Duration::from_secs(60),
    )
    .put("harvest_token", TOKEN)
    .await
    .expect("token");
    let watermark = format!("harvest:{ACCOUNT}");

    // The ingest queue is gone (deleted, or a wrong URL): nothing is
    // enqueued and the watermark stays where it was.
    let mut broken = settings.clone();
    broken.queue_url = format!("{}-missing", settings.queue_url);
    let stack = AwsStack::connect(&sdk, broken, None).await.expect("stack");
    let err = timepost_fn_poller::handle(&stack, harvest())
        .await
        .expect_err("enqueue fails");
    assert!(err.to_string().contains("watermark unchanged"), "{err}");
    assert_eq!(
        stack.store.get_watermark(&watermark).await.expect("wm"),
        None
    );
    // The failed run is marked for the failing-poller alert.
    let failed = stack
        .store
        .get_watermark(&timepost::alerts::gather::poll_failed_mark("harvest"))
        .await
        .expect("mark")
        .expect("failure recorded");

    // With the queue there, the entries are on SQS and then the watermark
    // moves.
    let stack = AwsStack::connect(&sdk, settings, None)
        .await
        .expect("stack");
    let report = timepost_fn_poller::handle(&stack, harvest())
        .await
        .expect("poll");
    assert_eq!(report.enqueued, 3, "{report:?}");
    assert_eq!(stack.queue.depth().await.expect("depth"), 3);
    let wm = stack
        .store
        .get_watermark(&watermark)
        .await
        .expect("wm")
        .expect("advanced");
    assert_eq!(report.watermark_after, Some(wm));
    // … and the success after it clears the condition.
    let ok = stack
        .store
        .get_watermark(&timepost::alerts::gather::poll_ok_mark("harvest"))
        .await
        .expect("mark")
        .expect("success recorded");
    assert!(ok >= failed, "{ok} {failed}");
}

#[tokio::test]
async fn a_schedule_for_an_unconfigured_source_says_what_to_configure() {
    let Some(sdk) = moto::sdk_config().await else {
        return;
    };
    let name = moto::unique("poll");
    let settings = timepost_tests::aws_world::provision(
        &sdk,
        &name,
        &timepost_tests::aws_world::config_without_approval(),
    )
    .await
    .expect("provision");
    let stack = AwsStack::connect(&sdk, settings, None)
        .await
        .expect("stack");
    let err = timepost_fn_poller::handle(&stack, harvest())
        .await
        .expect_err("not configured");
    assert!(matches!(err, PollFnError::NotConfigured(_)), "{err}");
    assert!(err.to_string().contains("[intake.harvest]"), "{err}");
    // The schedule's input is checked too: an unknown field is refused.
    let bad: Result<PollInput, _> = serde_json::from_str(r#"{"source":"harvest","extra":1}"#);
    assert!(bad.is_err());
}
