//! Lambda entry point of the `archive` function.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use timepost_fn_archive::ArchiveInput;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // A start-up failure is reported to Lambda in its sentence.
    let stack = Arc::new(timepost::aws::init_error::stack_from_env().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ArchiveInput>| {
        let stack = stack.clone();
        async move {
            let summary =
                timepost_fn_archive::handle(&stack, event.payload, chrono::Utc::now()).await?;
            tracing::info!(
                written = summary.written,
                new_revisions = summary.new_revisions,
                unchanged = summary.unchanged,
                in_grace = summary.in_grace,
                "archive run done"
            );
            Ok::<_, timepost_fn_archive::ArchiveFnError>(summary)
        }
    }))
    .await
}
