//! Lambda entry point of the `admin` function.

use lambda_http::Error;
use timepost::aws::AwsStack;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    let stack = AwsStack::from_env().await?;
    for u in &stack.config.console.users {
        if let Some(warning) = u.unkeyed_warning() {
            tracing::warn!("{warning} (with --backend aws)");
        }
    }
    let role_claim = std::env::var("TIMEPOST_JWT_ROLE_CLAIM")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| timepost_fn_admin::DEFAULT_ROLE_CLAIM.to_string());
    lambda_http::run(timepost_fn_admin::app(&stack, &role_claim)).await
}
