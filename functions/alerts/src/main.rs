//! Lambda entry point of the `alerts` function.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use timepost_fn_alerts::{AlertsFn, TaskInput};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = timepost::aws::sdk_config().await;
    // A start-up failure is reported to Lambda in its sentence.
    let stack = timepost::aws::init_error::stack_from_env().await?;
    let f =
        Arc::new(AlertsFn::new(stack, &sdk, std::env::var("TIMEPOST_ALERT_TOPIC_ARN").ok()).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<TaskInput>| {
        let f = f.clone();
        async move {
            let out = f.handle(event.payload).await?;
            tracing::info!(?out, "alerts task done");
            Ok::<_, timepost_fn_alerts::AlertsFnError>(out)
        }
    }))
    .await
}
