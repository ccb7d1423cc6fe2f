//! Lambda entry point of the `admin` function.

use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    // A start-up failure is reported to Lambda in its sentence.
    let stack = timepost::aws::init_error::stack_from_env().await?;
    for u in &stack.config.console.users {
        if let Some(warning) = u.unkeyed_warning() {
            tracing::warn!("{warning} (with --backend aws)");
        }
    }
    let role_claim = std::env::var("TIMEPOST_JWT_ROLE_CLAIM")
        .ok()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| timepost_fn_admin::DEFAULT_ROLE_CLAIM.to_string());
    let mut state = timepost_web::AppState::aws(&stack);
    match timepost_fn_admin::oidc_provider(&stack, |k| std::env::var(k).ok()).await {
        None => tracing::info!("browser sign-in is not configured"),
        Some(Ok(provider)) => state = state.with_oidc(provider),
        // The console still serves bearer tokens and the token sign-in
        // form; the sign-in page says no provider is configured.
        Some(Err(e)) => tracing::error!("browser sign-in is off: {e}"),
    }
    lambda_http::run(timepost_fn_admin::app_with_state(state, &role_claim)).await
}
