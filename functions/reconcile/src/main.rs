//! Lambda entry point of the `reconcile` function.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use timepost_fn_reconcile::ReconcileInput;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A start-up failure is reported to Lambda in its sentence.
    let stack = Arc::new(timepost::aws::init_error::stack_from_env().await?);
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
            Ok::<_, timepost_fn_reconcile::ReconcileFnError>(summary)
        }
    }))
    .await
}
