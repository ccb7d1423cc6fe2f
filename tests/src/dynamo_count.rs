//! Counting what a DynamoDB client asks for: an SDK interceptor that sees
//! every operation once (before serialisation, not per retry attempt) and
//! its output, so a test or the scale bench can say how many read and
//! write requests a page view or a write made, and how many items they
//! read or wrote. Attach it with [`counting_client`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::{
    batch_get_item::{BatchGetItemInput, BatchGetItemOutput},
    batch_write_item::BatchWriteItemInput,
    delete_item::DeleteItemInput,
    get_item::{GetItemInput, GetItemOutput},
    put_item::PutItemInput,
    query::{QueryInput, QueryOutput},
    scan::{ScanInput, ScanOutput},
    transact_write_items::TransactWriteItemsInput,
    update_item::UpdateItemInput,
};

/// Requests and items so far.
#[derive(Debug, Default)]
pub struct Counts {
    /// Query, GetItem, BatchGetItem and Scan calls.
    pub reads: AtomicU64,
    /// Items those calls returned.
    pub items_read: AtomicU64,
    /// PutItem, UpdateItem, DeleteItem, BatchWriteItem and
    /// TransactWriteItems calls.
    pub writes: AtomicU64,
    /// Items those calls wrote (a transaction's actions, a batch's
    /// requests).
    pub items_written: AtomicU64,
}

/// A snapshot of [`Counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub reads: u64,
    pub items_read: u64,
    pub writes: u64,
    pub items_written: u64,
}

impl std::ops::Sub for Snapshot {
    type Output = Snapshot;
    fn sub(self, o: Snapshot) -> Snapshot {
        Snapshot {
            reads: self.reads - o.reads,
            items_read: self.items_read - o.items_read,
            writes: self.writes - o.writes,
            items_written: self.items_written - o.items_written,
        }
    }
}

/// The interceptor; clones share their counts.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(pub Arc<Counts>);

impl RequestCounter {
    pub fn snapshot(&self) -> Snapshot {
        let c = &self.0;
        Snapshot {
            reads: c.reads.load(Ordering::SeqCst),
            items_read: c.items_read.load(Ordering::SeqCst),
            writes: c.writes.load(Ordering::SeqCst),
            items_written: c.items_written.load(Ordering::SeqCst),
        }
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let i = context.input();
        let c = &self.0;
        let read = i.downcast_ref::<QueryInput>().is_some()
            || i.downcast_ref::<GetItemInput>().is_some()
            || i.downcast_ref::<BatchGetItemInput>().is_some()
            || i.downcast_ref::<ScanInput>().is_some();
        let written: Option<usize> = if let Some(t) = i.downcast_ref::<TransactWriteItemsInput>() {
            Some(t.transact_items().len())
        } else if let Some(b) = i.downcast_ref::<BatchWriteItemInput>() {
            Some(
                b.request_items()
                    .map(|m| m.values().map(Vec::len).sum())
                    .unwrap_or(0),
            )
        } else if i.downcast_ref::<PutItemInput>().is_some()
            || i.downcast_ref::<UpdateItemInput>().is_some()
            || i.downcast_ref::<DeleteItemInput>().is_some()
        {
            Some(1)
        } else {
            None
        };
        if read {
            c.reads.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(n) = written {
            c.writes.fetch_add(1, Ordering::SeqCst);
            c.items_written.fetch_add(n as u64, Ordering::SeqCst);
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Ok(o)) = context.output_or_error() else {
            return Ok(());
        };
        let n = if let Some(q) = o.downcast_ref::<QueryOutput>() {
            q.items().len()
        } else if let Some(s) = o.downcast_ref::<ScanOutput>() {
            s.items().len()
        } else if let Some(g) = o.downcast_ref::<GetItemOutput>() {
            usize::from(g.item().is_some())
        } else if let Some(b) = o.downcast_ref::<BatchGetItemOutput>() {
            b.responses()
                .map(|m| m.values().map(Vec::len).sum())
                .unwrap_or(0)
        } else {
            0
        };
        self.0.items_read.fetch_add(n as u64, Ordering::SeqCst);
        Ok(())
    }
}

/// A DynamoDB client on `config` whose requests `counter` counts.
pub fn counting_client(
    config: &aws_config::SdkConfig,
    counter: &RequestCounter,
) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::config::Builder::from(config)
        .interceptor(counter.clone())
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}
