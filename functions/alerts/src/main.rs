//! Lambda entry point of the `alerts` function.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use timepost::aws::AwsStack;
use timepost_fn_alerts::{AlertsFn, TaskInput};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let sdk = timepost::aws::sdk_config().await;
    let stack = match AwsStack::from_env().await {
        Ok(stack) => stack,
        Err(e) => {
            timepost::aws::init_error::report(&e).await;
            return Err(e.into());
        }
    };
    let f =
        Arc::new(AlertsFn::new(stack, &sdk, std::env::var("TIMEPOST_ALERT_TOPIC_ARN").ok()).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<TaskInput>| {
        let f = f.clone();
        async move {
            let out = f.handle(event.payload).await?;
            tracing::info!(?out, "alerts task done");
            Ok::<_, Error>(out)
        }
    }))
    .await
}
