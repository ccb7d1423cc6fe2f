//! Secrets Manager: webhook secrets and OAuth tokens, cached with a TTL.
//!
//! Every webhook and every ledger call needs a secret, and Secrets Manager
//! bills and throttles per call, so values are cached in memory for `ttl`
//! (misses too: a missing webhook secret is asked for on every request).
//! The cache is per instance: another Lambda instance may rotate a token
//! behind it, which is what [`Secrets::refresh`] (here: drop the cached
//! copy) is for. Values never reach a log line or an error message: errors
//! carry the SDK's error context only, which never echoes a request body.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::backend;
use crate::ports::*;

struct Cached {
    value: Option<String>,
    at: Instant,
}

pub struct SecretsManagerStore {
    pub(crate) client: aws_sdk_secretsmanager::Client,
    pub(crate) prefix: String,
    pub(crate) ttl: Duration,
    cache: Mutex<HashMap<String, Cached>>,
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
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Forget the cached value of `name`, so the next `get` reads Secrets
    /// Manager (a caller that was refused with it, or knows it changed).
    pub fn invalidate(&self, name: &str) {
        self.lock().remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn id(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn remember(&self, name: &str, value: Option<String>) {
        self.lock().insert(
            name.to_string(),
            Cached {
                value,
                at: Instant::now(),
            },
        );
    }

    async fn read(&self, name: &str) -> StoreResult<Option<String>> {
        let id = self.id(name);
        match self.client.get_secret_value().secret_id(&id).send().await {
            Ok(out) => Ok(out.secret_string().map(str::to_string)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(backend(&format!("secrets manager get {id}"), e)),
        }
    }

    async fn write(&self, name: &str, value: &str) -> StoreResult<()> {
        let id = self.id(name);
        let put = self
            .client
            .put_secret_value()
            .secret_id(&id)
            .secret_string(value)
            .send()
            .await;
        match put {
            Ok(_) => return Ok(()),
            Err(e)
                if !e
                    .as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Err(backend(&format!("secrets manager put {id}"), e));
            }
            Err(_) => {}
        }
        let created = self
            .client
            .create_secret()
            .name(&id)
            .secret_string(value)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Another instance created it meanwhile: write our value over it.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_exists_exception()) =>
            {
                self.client
                    .put_secret_value()
                    .secret_id(&id)
                    .secret_string(value)
                    .send()
                    .await
                    .map_err(|e| backend(&format!("secrets manager put {id}"), e))?;
                Ok(())
            }
            Err(e) => Err(backend(&format!("secrets manager create {id}"), e)),
        }
    }
}

#[async_trait]
impl Secrets for SecretsManagerStore {
    async fn get(&self, name: &str) -> StoreResult<Option<String>> {
        if let Some(c) = self.lock().get(name) {
            if c.at.elapsed() < self.ttl {
                return Ok(c.value.clone());
            }
        }
        let value = self.read(name).await?;
        self.remember(name, value.clone());
        Ok(value)
    }

    /// Write back (a rotated refresh token), creating the secret when it
    /// does not exist yet, and keep the new value in the cache.
    async fn put(&self, name: &str, value: &str) -> StoreResult<()> {
        self.write(name, value).await?;
        self.remember(name, Some(value.to_string()));
        Ok(())
    }

    async fn refresh(&self, name: &str) -> StoreResult<()> {
        self.invalidate(name);
        Ok(())
    }
}
