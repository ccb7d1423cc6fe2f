//! The archive function on the AWS stack against moto: posted entries of a
//! closed period are archived under `archive/` in the bucket
//! `TIMEPOST_ARCHIVE_BUCKET` names (not the stack's bucket, which keeps the
//! rules file), the library's verify passes on what it wrote, a second run
//! writes nothing, and a period that is not one is refused in words.

use chrono::{TimeZone, Utc};
use timepost::archive::snapshot;
use timepost::aws::{AwsStack, S3Archive};
use timepost::ports::{Archive, EntryStore, MappingStore, QueueMessage};
use timepost::state::Status;
use timepost_fn_archive::{ArchiveFnError, ArchiveInput};
use timepost_tests::moto;

/// Long after the sandbox's March 2026 entries and their grace window.
fn later() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 6, 0, 0).unwrap()
}

/// The first `n` sandbox entries, handed to the stack's engine as the sync
/// function would.
async fn post_sandbox_entries(stack: &AwsStack, n: usize) {
    let mappings = stack.store.snapshot().await.expect("mappings");
    let ctx = timepost::intake::parse_context(&stack.config.intake, &mappings);
    let columns = timepost::sources::csv_import::CsvColumns::default();
    let entries =
        timepost::sources::csv_import::reader(timepost::demo::ENTRIES.as_bytes(), &columns, &ctx)
            .expect("csv")
            .take(n)
            .collect::<Result<Vec<_>, _>>()
            .expect("entries");
    for entry in entries {
        let message = QueueMessage::Entry {
            entry: Box::new(entry),
            received_at: Utc.with_ymd_and_hms(2026, 3, 20, 12, 0, 0).unwrap(),
        };
        stack
            .engine
            .handle(&message, "archive-test")
            .await
            .expect("handle");
    }
}

#[tokio::test]
async fn the_archive_function_snapshots_closed_periods_into_the_archive_bucket_once() {
    let Some(sdk) = moto::sdk_config().await else {
        return;
    };
    let name = moto::unique("arch");
    let mut settings = timepost_tests::aws_world::provision(
        &sdk,
        &name,
        &timepost_tests::aws_world::config_without_approval(),
    )
    .await
    .expect("provision");
    settings.archive_bucket = format!("{name}-snapshots");
    S3Archive::new(S3Archive::client(&sdk, true), &settings.archive_bucket)
        .create_bucket()
        .await
        .expect("archive bucket");
    let stack = AwsStack::connect(&sdk, settings.clone(), None)
        .await
        .expect("stack");
    post_sandbox_entries(&stack, 6).await;
    let posted = stack
        .store
        .all()
        .await
        .expect("all")
        .iter()
        .filter(|s| s.status() == Status::Posted)
        .count();
    assert!(posted > 0, "some sandbox entries post");

    let summary = timepost_fn_archive::handle(&stack, ArchiveInput::default(), later())
        .await
        .expect("archive run");
    assert_eq!(
        (summary.written, summary.new_revisions, summary.unchanged),
        (1, 0, 0),
        "{summary:?}"
    );
    let json = serde_json::to_value(&summary).expect("json");
    assert_eq!(json["periods"][0]["period"], "2026-03", "{json}");
    assert_eq!(json["periods"][0]["outcome"], "written", "{json}");

    let snapshots = S3Archive::new(S3Archive::client(&sdk, true), &settings.archive_bucket);
    let keys = snapshots.list("archive/").await.expect("list");
    assert!(
        keys.contains(&"archive/snapshots/2026-03/rev-1/manifest.json".to_string()),
        "{keys:?}"
    );
    let stack_bucket = S3Archive::new(S3Archive::client(&sdk, true), &settings.bucket);
    assert!(
        stack_bucket
            .list("archive/")
            .await
            .expect("list")
            .is_empty(),
        "nothing is archived into the stack's bucket"
    );

    // What `timepost --backend aws archive verify` checks.
    let audit = snapshot::all_audit(stack.store.as_ref())
        .await
        .expect("audit");
    assert!(audit.iter().any(|a| a.action == "archive.written"));
    let report = timepost::archive::verify::verify_with(&stack.snapshots(), None, &audit)
        .await
        .expect("verify");
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.checked.len(), 1, "{report:?}");

    // Nothing changed: the second run writes nothing.
    let again = timepost_fn_archive::handle(&stack, ArchiveInput::default(), later())
        .await
        .expect("second run");
    assert_eq!(
        (again.written, again.new_revisions, again.unchanged),
        (0, 0, 1),
        "{again:?}"
    );
    assert_eq!(snapshots.list("archive/").await.expect("list"), keys);

    let err = timepost_fn_archive::handle(
        &stack,
        ArchiveInput {
            period: Some("2026-13".into()),
        },
        later(),
    )
    .await
    .expect_err("not a period");
    assert!(matches!(err, ArchiveFnError::Period { .. }), "{err}");
    assert!(err.to_string().contains("2026-13"), "{err}");
}

/// The schedule's `Input` is `{}`; anything else it might carry by mistake
/// is refused rather than ignored.
#[test]
fn the_schedule_input_is_an_empty_object_or_one_period() {
    let empty: ArchiveInput = serde_json::from_str("{}").expect("empty input");
    assert_eq!(empty, ArchiveInput::default());
    let one: ArchiveInput = serde_json::from_str(r#"{"period":"2026-03"}"#).expect("period");
    assert_eq!(one.period.as_deref(), Some("2026-03"));
    assert!(serde_json::from_str::<ArchiveInput>(r#"{"source":"harvest"}"#).is_err());
}

/// The Object Lock archive bucket the template creates when
/// `ArchiveLockMode` is set (versioning on, default retention in years):
/// the function's plain puts are accepted and every snapshot file carries
/// the bucket's retention, so a locked version cannot be deleted.
#[tokio::test]
async fn snapshots_written_to_an_object_lock_bucket_carry_its_default_retention() {
    use aws_sdk_s3::types::{
        DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode,
        ObjectLockRule,
    };
    let Some(sdk) = moto::sdk_config().await else {
        return;
    };
    let name = moto::unique("lock");
    let mut settings = timepost_tests::aws_world::provision(
        &sdk,
        &name,
        &timepost_tests::aws_world::config_without_approval(),
    )
    .await
    .expect("provision");
    settings.archive_bucket = format!("{name}-locked");
    let s3 = S3Archive::client(&sdk, true);
    // Object Lock is enabled when the bucket is created (which turns on
    // versioning), then the default retention is set: as CloudFormation's
    // ObjectLockEnabled + ObjectLockConfiguration do
    // (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html).
    s3.create_bucket()
        .bucket(&settings.archive_bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .expect("locked bucket");
    s3.put_object_lock_configuration()
        .bucket(&settings.archive_bucket)
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Compliance)
                                .years(10)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("default retention");
    let stack = AwsStack::connect(&sdk, settings.clone(), None)
        .await
        .expect("stack");
    post_sandbox_entries(&stack, 3).await;

    let summary = timepost_fn_archive::handle(&stack, ArchiveInput::default(), later())
        .await
        .expect("archive run into the locked bucket");
    assert_eq!(summary.written, 1, "{summary:?}");

    let key = "archive/snapshots/2026-03/rev-1/manifest.json";
    let head = s3
        .head_object()
        .bucket(&settings.archive_bucket)
        .key(key)
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.object_lock_mode(),
        Some(&aws_sdk_s3::types::ObjectLockMode::Compliance)
    );
    let until = head
        .object_lock_retain_until_date()
        .expect("retain-until date");
    let written = head.last_modified().expect("last modified");
    let years = (until.secs() - written.secs()) / 86_400 / 365;
    assert_eq!(
        years, 10,
        "locked ten years from the write: {written:?} → {until:?}"
    );
    let deleted = s3
        .delete_object()
        .bucket(&settings.archive_bucket)
        .key(key)
        .version_id(head.version_id().expect("a version"))
        .send()
        .await;
    assert!(deleted.is_err(), "a locked version cannot be deleted");

    let audit = snapshot::all_audit(stack.store.as_ref())
        .await
        .expect("audit");
    let report = timepost::archive::verify::verify_with(&stack.snapshots(), None, &audit)
        .await
        .expect("verify");
    assert!(report.ok(), "{report:?}");
}

/// What the Archives page shows of a snapshot in the bucket: its storage
/// class from `HeadObject` (STANDARD when S3 names none), and once the
/// lifecycle rule has moved its largest file to Glacier Instant Retrieval
/// (done here by copying that file onto itself with that class, as a
/// transition would), `GLACIER_IR`, cold but read at once; the console's verify is
/// recorded in the audit log and read back as the row's last verification.
#[tokio::test]
async fn the_archives_page_reads_storage_class_and_verification_from_the_bucket() {
    use aws_sdk_s3::types::StorageClass;
    use timepost::archive::status::{self, Temperature};
    let Some(sdk) = moto::sdk_config().await else {
        return;
    };
    let name = moto::unique("archpage");
    let settings = timepost_tests::aws_world::provision(
        &sdk,
        &name,
        &timepost_tests::aws_world::config_without_approval(),
    )
    .await
    .expect("provision");
    let stack = AwsStack::connect(&sdk, settings.clone(), None)
        .await
        .expect("stack");
    post_sandbox_entries(&stack, 3).await;
    timepost_fn_archive::handle(&stack, ArchiveInput::default(), later())
        .await
        .expect("archive run");
    let retention = timepost::archive::RetentionConfig::default();
    let today = later().date_naive();
    let rows = status::rows(&stack.snapshots(), stack.store.as_ref(), &retention, today)
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].storage_class.as_deref(), Some("STANDARD"));
    assert_eq!(rows[0].temperature, Temperature::Hot);
    assert!(rows[0].last_verify.is_none());

    let biggest = rows[0]
        .files
        .iter()
        .max_by_key(|(_, f)| f.bytes)
        .map(|(n, _)| n.clone())
        .expect("files");
    let key = format!("archive/snapshots/2026-03/rev-1/{biggest}");
    let client = S3Archive::client(&sdk, true);
    client
        .copy_object()
        .bucket(&settings.archive_bucket)
        .key(&key)
        .copy_source(format!("{}/{key}", settings.archive_bucket))
        .storage_class(StorageClass::GlacierIr)
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Copy)
        .send()
        .await
        .expect("copy with storage class");
    let report = status::verify_as(
        &stack.snapshots(),
        stack.store.as_ref(),
        Some("2026-03"),
        "auditor@example.com",
        "auditor",
    )
    .await
    .expect("verify");
    assert!(report.ok(), "{report:?}");
    let rows = status::rows(&stack.snapshots(), stack.store.as_ref(), &retention, today)
        .await
        .expect("rows");
    assert_eq!(rows[0].storage_class.as_deref(), Some("GLACIER_IR"));
    assert_eq!(rows[0].temperature, Temperature::ColdInstant);
    let v = rows[0].last_verify.as_ref().expect("recorded");
    assert!(v.ok, "{v:?}");
    assert_eq!(v.who, "auditor@example.com");
}

/// A snapshot file a bucket owner's own lifecycle rule moved to an archive
/// storage class (S3 Glacier Flexible Retrieval, Deep Archive) cannot be
/// read at once: reading it asks S3 for a restore and says in words how
/// long it takes; once S3 has restored it, it reads as before.
#[tokio::test]
async fn a_snapshot_in_an_archive_storage_class_gets_a_restore_request_and_a_sentence() {
    use aws_sdk_s3::types::StorageClass;
    let Some(sdk) = moto::sdk_config().await else {
        return;
    };
    let client = S3Archive::client(&sdk, true);
    let bucket = moto::unique("coldarch");
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket");
    let archive = S3Archive::new(client.clone(), &bucket);
    for (class, takes) in [
        (StorageClass::Glacier, "within 3 to 5 hours"),
        (StorageClass::DeepArchive, "within 12 hours"),
    ] {
        let key = format!(
            "archive/snapshots/2026-03/rev-1/{}.jsonl.gz",
            class.as_str()
        );
        client
            .put_object()
            .bucket(&bucket)
            .key(&key)
            .storage_class(class.clone())
            .body(b"snapshot bytes".to_vec().into())
            .send()
            .await
            .expect("put");
        let err = archive.get(&key).await.expect_err("cold").to_string();
        assert!(err.contains("a restore was requested"), "{err}");
        assert!(err.contains(takes), "{err}");
        assert!(err.contains(class.as_str()), "{err}");
        // S3 records the request on the object (moto restores at once).
        let head = client
            .head_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .expect("head");
        assert!(
            head.restore().is_some(),
            "no restore was requested for {key}"
        );
        assert_eq!(
            archive.get(&key).await.expect("restored").as_deref(),
            Some(&b"snapshot bytes"[..])
        );
    }
}
