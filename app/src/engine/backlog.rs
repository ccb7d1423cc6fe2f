//! Posting a backlog of requests through [`Ledger::apply_many`], so an
//! adapter that batches (QBO) fills every call.
//!
//! Requests are cut into fixed chunks once; a chunk that fails transiently
//! is retried as the same chunk (the same batch, hence the same QBO
//! `requestid`), so a retry after a lost answer is replayed by the ledger
//! instead of posting twice. Retries follow the engine's policy (full
//! jitter, `Retry-After` honoured) with `attempts` tries per chunk.

// `LedgerError` is the port's error type and carries the exception inline.

use std::sync::Arc;

use futures_util::stream::{self, StreamExt};

use super::backoff;
use crate::config::WorkerConfig;
use timepost_core::ledger::{Ledger, LedgerError, LedgerRequest, RecordRef};

pub type Posted = Result<Vec<RecordRef>, LedgerError>;

/// Post `requests` in chunks of `chunk`, at most `in_flight` chunks at
/// once; the results come back in request order.
pub async fn post_backlog(
    ledger: Arc<dyn Ledger>,
    requests: Vec<LedgerRequest>,
    chunk: usize,
    in_flight: usize,
    worker: &WorkerConfig,
) -> Vec<Posted> {
    let chunks: Vec<Vec<LedgerRequest>> =
        requests.chunks(chunk.max(1)).map(<[_]>::to_vec).collect();
    let runs = chunks.into_iter().enumerate().map(|(n, c)| {
        let ledger = ledger.clone();
        async move { (n, post_chunk(ledger.as_ref(), &c, worker).await) }
    });
    let mut done: Vec<(usize, Vec<Posted>)> = stream::iter(runs)
        .buffer_unordered(in_flight.max(1))
        .collect()
        .await;
    done.sort_by_key(|(n, _)| *n);
    done.into_iter().flat_map(|(_, r)| r).collect()
}

async fn post_chunk(
    ledger: &dyn Ledger,
    chunk: &[LedgerRequest],
    worker: &WorkerConfig,
) -> Vec<Posted> {
    let mut attempt = 0;
    loop {
        let results = ledger.apply_many(chunk).await;
        let retry = results
            .iter()
            .find_map(|r| r.as_ref().err().filter(|e| e.is_retryable()).cloned());
        match retry {
            Some(e) if attempt + 1 < worker.ledger_attempts.max(1) => {
                attempt += 1;
                tokio::time::sleep(backoff(worker, attempt, &e)).await;
            }
            _ => return results,
        }
    }
}
