//! The cross-instance rate limit on DynamoDB: one item per company
//! (`pk = rate#<company>`, `sk = rate`) holding the next allowed start
//! (`next_ms`, epoch milliseconds) and a shared pause (`paused_until_ms`).
//!
//! A reservation is GCRA with a bucket of one: read the item (strongly
//! consistent), start at `max(now, next_ms, paused_until_ms)`, and move
//! `next_ms` to `start + spacing` with a write conditioned on `next_ms`
//! still being what was read; a conflict (another instance reserved in
//! between) reads again. Every instance therefore gets a distinct start at
//! least `spacing` after the previous one, whatever the number of
//! instances. Times are wall-clock epoch milliseconds: Lambda hosts keep
//! NTP time within a few milliseconds, well inside the limiter's 2 %
//! safety margin. The item carries `expires_at` (a day on) so idle
//! companies' items are removed by the table's TTL.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::net::ratelimit::{PacerError, SharedPacer};

/// Conflicting reservations are read and tried again this many times
/// before the call is failed as transient.
const ATTEMPTS: u32 = 50;
/// How long an idle company's item is kept.
const KEEP: Duration = Duration::from_secs(24 * 3600);

/// A [`SharedPacer`] on the stack's DynamoDB table.
#[derive(Clone)]
pub struct DynamoPacer {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn err(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> PacerError {
    PacerError(format!(
        "{what}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
    ))
}

fn num(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl DynamoPacer {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn key(company: &str) -> [(String, AttributeValue); 2] {
        [
            ("pk".into(), AttributeValue::S(format!("rate#{company}"))),
            ("sk".into(), AttributeValue::S("rate".into())),
        ]
    }

    /// `(next_ms, paused_until_ms)` as stored, `None` when no item.
    async fn read(&self, company: &str) -> Result<Option<(i64, i64)>, PacerError> {
        let [(pk, pv), (sk, sv)] = Self::key(company);
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(pk, pv)
            .key(sk, sv)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| err("read rate bucket", e))?;
        let Some(item) = out.item() else {
            return Ok(None);
        };
        let get = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0)
        };
        Ok(Some((get("next_ms"), get("paused_until_ms"))))
    }
}

#[async_trait]
impl SharedPacer for DynamoPacer {
    async fn reserve(&self, company: &str, spacing: Duration) -> Result<Duration, PacerError> {
        // Whole milliseconds, rounded up: never closer than asked.
        let spacing_ms = spacing.as_micros().div_ceil(1000) as i64;
        for _ in 0..ATTEMPTS {
            let stored = self.read(company).await?;
            let now = now_ms();
            let (next, paused) = stored.unwrap_or((0, 0));
            let start = now.max(next).max(paused);
            let [(pk, pv), (sk, sv)] = Self::key(company);
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(pk, pv)
                .key(sk, sv)
                .update_expression("SET next_ms = :new, expires_at = :exp")
                .expression_attribute_values(":new", num(start + spacing_ms))
                .expression_attribute_values(":exp", num((start + KEEP.as_millis() as i64) / 1000));
            req = match stored {
                Some(_) => req
                    .condition_expression("next_ms = :old")
                    .expression_attribute_values(":old", num(next)),
                None => req.condition_expression("attribute_not_exists(pk)"),
            };
            match req.send().await {
                Ok(_) => return Ok(Duration::from_millis((start - now).max(0) as u64)),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
                {
                    continue
                }
                Err(e) => return Err(err("reserve rate slot", e)),
            }
        }
        Err(PacerError(format!(
            "{ATTEMPTS} conflicting reservations in a row for {company}"
        )))
    }

    async fn pause(&self, company: &str, after: Duration) -> Result<(), PacerError> {
        let until = now_ms() + after.as_millis() as i64;
        let [(pk, pv), (sk, sv)] = Self::key(company);
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(pk, pv)
            .key(sk, sv)
            .update_expression("SET paused_until_ms = :u, expires_at = :exp")
            .condition_expression("attribute_not_exists(paused_until_ms) OR paused_until_ms < :u")
            .expression_attribute_values(":u", num(until))
            .expression_attribute_values(":exp", num((until + KEEP.as_millis() as i64) / 1000))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            // A later pause is already stored: it stands.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(err("share rate-limit pause", e)),
        }
    }
}
