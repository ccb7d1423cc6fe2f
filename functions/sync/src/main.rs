//! Lambda entry point of the `sync` function (see the library for what it
//! does). The stack is built once per instance, at init.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use timepost::aws::AwsSettings;
use timepost_fn_sync::Instance;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = match AwsSettings::from_env() {
        Ok(s) => s,
        Err(e) => {
            timepost::aws::init_error::report(&e).await;
            return Err(e.into());
        }
    };
    // Starts even when the rules file is missing or invalid: messages are
    // then handed back, never consumed (see `Instance`).
    let instance = Arc::new(Instance::start(timepost::aws::sdk_config().await, settings).await);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let instance = instance.clone();
        async move {
            let deadline = deadline(&event.context);
            let (response, summary) = instance.invoke(event.payload, deadline).await;
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
