//! S3: archives, reports and exports. Every object is written with
//! server-side encryption (SSE-S3 `AES256`, or SSE-KMS with the configured
//! key): payroll-adjacent data never rests unencrypted, whatever the
//! bucket's default says.

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    PublicAccessBlockConfiguration, ServerSideEncryption, VersioningConfiguration,
};

use super::backend;
use crate::ports::*;

/// ListObjectsV2's own maximum page size.
const MAX_PAGE: i32 = 1000;

/// Days a copy restored from an archive storage class stays readable.
const RESTORED_DAYS: i32 = 7;

#[derive(Clone)]
pub struct S3Archive {
    pub(crate) client: aws_sdk_s3::Client,
    pub(crate) bucket: String,
    kms_key_id: Option<String>,
    page_size: i32,
}

impl S3Archive {
    /// `client` should be built with [`S3Archive::client`] so path-style
    /// addressing follows the settings.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            kms_key_id: None,
            page_size: MAX_PAGE,
        }
    }

    /// Encrypt with SSE-KMS under this key (id, ARN or alias) instead of
    /// SSE-S3, for accounts whose policy asks for customer-managed keys.
    pub fn with_kms_key(mut self, key_id: Option<String>) -> Self {
        self.kms_key_id = key_id.filter(|k| !k.is_empty());
        self
    }

    /// Keys per `ListObjectsV2` page (1..=1000; tests use small pages to
    /// exercise the continuation).
    pub fn with_page_size(mut self, n: usize) -> Self {
        self.page_size = (n as i32).clamp(1, MAX_PAGE);
        self
    }

    /// An S3 client from the SDK config, path-style when asked (emulators).
    pub fn client(sdk: &aws_config::SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(path_style)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Create the bucket (tests, local emulators; the SAM template declares
    /// the deployed one the same way): versioning on, so an overwritten
    /// archive can be recovered, and every form of public access blocked.
    pub async fn create_bucket(&self) -> StoreResult<()> {
        let mut req = self.client.create_bucket().bucket(&self.bucket);
        // us-east-1 is the one region that refuses a location constraint.
        if let Some(region) = self.client.config().region().map(|r| r.to_string()) {
            if region != "us-east-1" {
                req = req.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(region.as_str()))
                        .build(),
                );
            }
        }
        req.send()
            .await
            .map_err(|e| backend("s3 create bucket", e))?;
        self.client
            .put_bucket_versioning()
            .bucket(&self.bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| backend("s3 put bucket versioning", e))?;
        self.client
            .put_public_access_block()
            .bucket(&self.bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| backend("s3 put public access block", e))?;
        Ok(())
    }
}

/// One stored version of an object (the bucket is versioned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub version_id: String,
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
    pub is_latest: bool,
}

impl S3Archive {
    /// The stored versions of `key`, newest first, at most `limit` of them
    /// (`ListObjectVersions` lists a key's versions newest first; delete
    /// markers are not versions and are left out).
    pub async fn versions(&self, key: &str, limit: usize) -> StoreResult<Vec<ObjectVersion>> {
        let mut out = Vec::new();
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        while out.len() < limit {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(key)
                .max_keys(self.page_size)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| backend(&format!("s3 list versions of {key}"), e))?;
            for v in page.versions() {
                if v.key() != Some(key) || out.len() >= limit {
                    continue;
                }
                let Some(id) = v.version_id() else { continue };
                out.push(ObjectVersion {
                    version_id: id.to_string(),
                    last_modified: v
                        .last_modified()
                        .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
                    is_latest: v.is_latest().unwrap_or(false),
                });
            }
            if !page.is_truncated().unwrap_or(false) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            version_marker = page.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// One stored version of `key`, `None` when it is gone.
    pub async fn get_version(&self, key: &str, version_id: &str) -> StoreResult<Option<Vec<u8>>> {
        self.fetch(key, Some(version_id)).await
    }

    /// For an object in an archive storage class (S3 Glacier Flexible
    /// Retrieval or Deep Archive, which a lifecycle rule of the bucket's
    /// owner may have moved it to; the template's own rule only moves
    /// snapshots to Glacier Instant Retrieval, which reads at once): ask S3
    /// for a temporary copy (Standard tier, kept 7 days) and say, in words,
    /// how long it takes. The error carries the sentence either way.
    async fn request_restore(
        &self,
        key: &str,
        version_id: Option<&str>,
        class: &str,
    ) -> StoreError {
        use aws_sdk_s3::types::{GlacierJobParameters, RestoreRequest, Tier};
        // AWS, "Understanding archive retrieval options": Standard
        // retrievals finish within 3–5 hours from S3 Glacier Flexible
        // Retrieval and within 12 hours from S3 Glacier Deep Archive.
        let takes = if class == "DEEP_ARCHIVE" {
            "within 12 hours"
        } else {
            "within 3 to 5 hours"
        };
        let request = GlacierJobParameters::builder()
            .tier(Tier::Standard)
            .build()
            .map(|job| {
                RestoreRequest::builder()
                    .days(RESTORED_DAYS)
                    .glacier_job_parameters(job)
                    .build()
            });
        let asked = match request {
            Ok(request) => self
                .client
                .restore_object()
                .bucket(&self.bucket)
                .key(key)
                .set_version_id(version_id.map(str::to_string))
                .restore_request(request)
                .send()
                .await
                .map(|_| ())
                .or_else(
                    |e| match e.as_service_error().and_then(|s| s.meta().code()) {
                        // Asked before and still running: the same wait.
                        Some("RestoreAlreadyInProgress") => Ok(()),
                        _ => Err(e.to_string()),
                    },
                ),
            Err(e) => Err(e.to_string()),
        };
        StoreError::Backend(match asked {
            Ok(()) => format!(
                "{key} is in cold storage (S3 {class}): a restore was requested and S3 makes it readable {takes}; run the command again then (the restored copy stays readable for {RESTORED_DAYS} days)"
            ),
            Err(why) => format!(
                "{key} is in cold storage (S3 {class}) and must be restored before it can be read, but the restore request failed ({why}); run `timepost --backend aws archive verify` with credentials allowed s3:RestoreObject, or restore it in the S3 console"
            ),
        })
    }

    /// The object's bytes (its current version unless one is named).
    async fn fetch(&self, key: &str, version_id: Option<&str>) -> StoreResult<Option<Vec<u8>>> {
        let what = match version_id {
            Some(v) => format!("{key} version {v}"),
            None => key.to_string(),
        };
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_string))
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => {
                if let Some(
                    aws_sdk_s3::operation::get_object::GetObjectError::InvalidObjectState(state),
                ) = e.as_service_error()
                {
                    let class = state
                        .storage_class()
                        .map(|c| c.as_str().to_string())
                        .unwrap_or_else(|| "an archive storage class".into());
                    return Err(self.request_restore(key, version_id, &class).await);
                }
                return Err(backend(&format!("s3 get {what}"), e));
            }
        };
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| backend(&format!("s3 read {what}"), e))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }
}

#[async_trait]
impl Archive for S3Archive {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> StoreResult<()> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(bytes));
        req = match &self.kms_key_id {
            Some(k) => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(k),
            None => req.server_side_encryption(ServerSideEncryption::Aes256),
        };
        req.send()
            .await
            .map_err(|e| backend(&format!("s3 put {key}"), e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.fetch(key, None).await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .max_keys(self.page_size)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| backend("s3 list objects", e))?;
            keys.extend(
                out.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match out.next_continuation_token() {
                Some(t) if out.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(keys)
    }

    /// `HeadObject`'s `x-amz-storage-class`, which S3 leaves out for
    /// `STANDARD` objects
    /// (<https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html>).
    async fn storage_class(&self, key: &str) -> StoreResult<Option<String>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.storage_class()
                    .map(|c| c.as_str().to_string())
                    .unwrap_or_else(|| "STANDARD".to_string()),
            )),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(backend(&format!("s3 head {key}"), e)),
        }
    }
}
