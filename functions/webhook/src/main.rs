//! Lambda entry point of the `webhook` function.

use lambda_http::Error;
use timepost::aws::AwsStack;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let stack = AwsStack::from_env().await?;
    lambda_http::run(timepost_fn_webhook::app(&stack)).await
}
