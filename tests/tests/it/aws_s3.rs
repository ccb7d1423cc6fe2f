//! The S3 archive adapter against moto server through the real
//! aws-sdk-s3 client: encryption on every put, missing keys, paginated
//! listing, and the bucket's protections.

use aws_sdk_s3::types::ServerSideEncryption;
use timepost::aws::S3Archive;
use timepost::ports::Archive;
use timepost_tests::moto;

async fn archive(kms: Option<&str>) -> Option<(S3Archive, aws_sdk_s3::Client, String)> {
    let sdk = moto::sdk_config().await?;
    let client = S3Archive::client(&sdk, true);
    let bucket = moto::unique("archive");
    let a = S3Archive::new(client.clone(), &bucket)
        .with_kms_key(kms.map(str::to_string))
        .with_page_size(2);
    a.create_bucket().await.expect("create bucket");
    Some((a, client, bucket))
}

#[tokio::test]
async fn put_get_roundtrip_encrypted_with_aes256_and_missing_is_none() {
    let Some((a, client, bucket)) = archive(None).await else {
        return;
    };
    a.put("reports/2026-03.csv", b"hours\n8\n".to_vec())
        .await
        .expect("put");
    assert_eq!(
        a.get("reports/2026-03.csv").await.expect("get").as_deref(),
        Some(&b"hours\n8\n"[..])
    );
    assert_eq!(a.get("reports/none.csv").await.expect("get missing"), None);
    let head = client
        .head_object()
        .bucket(&bucket)
        .key("reports/2026-03.csv")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    // Overwrite keeps the latest, and versioning keeps the old one.
    a.put("reports/2026-03.csv", b"hours\n9\n".to_vec())
        .await
        .expect("put again");
    assert_eq!(
        a.get("reports/2026-03.csv").await.expect("get").as_deref(),
        Some(&b"hours\n9\n"[..])
    );
    let versions = client
        .list_object_versions()
        .bucket(&bucket)
        .prefix("reports/2026-03.csv")
        .send()
        .await
        .expect("versions");
    assert_eq!(versions.versions().len(), 2);
}

#[tokio::test]
async fn a_configured_kms_key_is_used_for_every_put() {
    let Some((a, client, bucket)) = archive(Some("alias/timepost-archive")).await else {
        return;
    };
    a.put("a.json", b"{}".to_vec()).await.expect("put");
    let head = client
        .head_object()
        .bucket(&bucket)
        .key("a.json")
        .send()
        .await
        .expect("head");
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert_eq!(head.ssekms_key_id(), Some("alias/timepost-archive"));
}

#[tokio::test]
async fn list_follows_continuation_across_pages_and_respects_the_prefix() {
    let Some((a, _, _)) = archive(None).await else {
        return;
    };
    for i in 0..7 {
        a.put(&format!("exports/e{i}.csv"), vec![b'x'; i])
            .await
            .expect("put");
    }
    a.put("other/x.csv", vec![]).await.expect("put");
    // Page size 2: seven keys take four pages.
    let mut keys = a.list("exports/").await.expect("list");
    keys.sort();
    let want: Vec<String> = (0..7).map(|i| format!("exports/e{i}.csv")).collect();
    assert_eq!(keys, want);
    assert_eq!(a.list("").await.expect("list all").len(), 8);
    assert!(a.list("nothing/").await.expect("list none").is_empty());
}

#[tokio::test]
async fn the_bucket_blocks_public_access() {
    let Some((_, client, bucket)) = archive(None).await else {
        return;
    };
    // Versioning is shown by the two versions kept in the round-trip test
    // (moto's GetBucketVersioning answer has an XML root the SDK rejects).
    let pab = client
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .expect("public access block");
    let c = pab
        .public_access_block_configuration()
        .expect("configuration");
    assert_eq!(c.block_public_acls(), Some(true));
    assert_eq!(c.ignore_public_acls(), Some(true));
    assert_eq!(c.block_public_policy(), Some(true));
    assert_eq!(c.restrict_public_buckets(), Some(true));
}
