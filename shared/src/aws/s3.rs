//! S3: archives, reports and exports.
//! SKELETON: the implementation lands with the S3 adapter work.

use async_trait::async_trait;

use crate::ports::*;

#[derive(Clone)]
pub struct S3Archive {
    pub(crate) client: aws_sdk_s3::Client,
    pub(crate) bucket: String,
}

impl S3Archive {
    /// `client` should be built with [`S3Archive::client`] so path-style
    /// addressing follows the settings.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// An S3 client from the SDK config, path-style when asked (emulators).
    pub fn client(sdk: &aws_config::SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(path_style)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }
}

#[async_trait]
impl Archive for S3Archive {
    async fn put(&self, _key: &str, _bytes: Vec<u8>) -> StoreResult<()> {
        todo!()
    }
    async fn get(&self, _key: &str) -> StoreResult<Option<Vec<u8>>> {
        todo!()
    }
    async fn list(&self, _prefix: &str) -> StoreResult<Vec<String>> {
        todo!()
    }
}
