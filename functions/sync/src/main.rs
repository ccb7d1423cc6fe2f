//! Lambda entry point of the `sync` function (see the library for what it
//! does). The stack is built once per instance, at init.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use timepost::aws::AwsStack;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let stack = Arc::new(AwsStack::from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let stack = stack.clone();
        async move {
            let deadline = deadline(&event.context);
            let (response, summary) =
                timepost_fn_sync::handle(&stack, event.payload, deadline).await;
            tracing::info!(?summary, "batch settled");
            Ok::<SqsBatchResponse, Error>(response)
        }
    }))
    .await
}

/// The invocation's deadline as an `Instant`.
fn deadline(ctx: &lambda_runtime::Context) -> Option<std::time::Instant> {
    let left = ctx
        .deadline()
        .duration_since(std::time::SystemTime::now())
        .ok()?;
    Some(std::time::Instant::now() + left)
}
