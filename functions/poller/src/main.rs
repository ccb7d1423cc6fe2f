//! Lambda entry point of the `poller` function.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use timepost_fn_poller::PollInput;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A start-up failure is reported to Lambda in its sentence.
    // The poller only lists and enqueues: the stack's ports, no ledger
    // client or engine.
    let stack = Arc::new(timepost::aws::init_error::ports_from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<PollInput>| {
        let stack = stack.clone();
        async move {
            let report = timepost_fn_poller::handle(&stack, event.payload).await?;
            tracing::info!(?report, "poll done");
            Ok::<_, timepost_fn_poller::PollFnError>(report)
        }
    }))
    .await
}
