//! Lambda entry point of the `reconcile` function.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use timepost::aws::AwsStack;
use timepost_fn_reconcile::ReconcileInput;

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
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ReconcileInput>| {
        let stack = stack.clone();
        async move {
            let summary =
                timepost_fn_reconcile::handle(&stack, event.payload, chrono::Utc::now()).await?;
            tracing::info!(
                runs = summary.runs,
                breaks = summary.breaks,
                "reconcile run done"
            );
            Ok::<_, Error>(summary)
        }
    }))
    .await
}
