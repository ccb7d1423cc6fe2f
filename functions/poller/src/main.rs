//! Lambda entry point of the `poller` function.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use timepost::aws::AwsStack;
use timepost_fn_poller::PollInput;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A start-up failure (a missing or invalid rules file) is logged and
    // reported to Lambda in its sentence, not as a `Debug` dump.
    let stack = match AwsStack::from_env().await {
        Ok(stack) => Arc::new(stack),
        Err(e) => {
            timepost::aws::init_error::report(&e).await;
            return Err(e.into());
        }
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<PollInput>| {
        let stack = stack.clone();
        async move {
            let report = timepost_fn_poller::handle(&stack, event.payload).await?;
            tracing::info!(?report, "poll done");
            Ok::<_, Error>(report)
        }
    }))
    .await
}
