//! Secrets Manager: webhook secrets and OAuth tokens, cached with a TTL.
//! SKELETON: the implementation lands with the Secrets Manager adapter work.

use std::time::Duration;

use async_trait::async_trait;

use crate::ports::*;

pub struct SecretsManagerStore {
    pub(crate) client: aws_sdk_secretsmanager::Client,
    pub(crate) prefix: String,
    pub(crate) ttl: Duration,
}

impl SecretsManagerStore {
    pub fn new(
        client: aws_sdk_secretsmanager::Client,
        prefix: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        Self {
            client,
            prefix: prefix.into(),
            ttl,
        }
    }
}

#[async_trait]
impl Secrets for SecretsManagerStore {
    async fn get(&self, _name: &str) -> StoreResult<Option<String>> {
        todo!()
    }
    async fn put(&self, _name: &str, _value: &str) -> StoreResult<()> {
        todo!()
    }
}
