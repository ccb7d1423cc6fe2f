//! Lambda entry point of the `webhook` function.

use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::tracing::init_default_subscriber();
    // A broken rules file must not turn tracker deliveries away: the
    // function starts on the newest version of the file that loads (and
    // says so in the log); the sync function holds messages back until the
    // current file is fixed. A missing file, or no version that loads, is
    // logged and reported to Lambda in its sentence, not as a `Debug` dump.
    let state = match timepost_fn_webhook::state_from_env().await {
        Ok((state, None)) => state,
        Ok((state, Some(fallback))) => {
            tracing::error!(%fallback, "started on an earlier rules file");
            state
        }
        Err(e) => {
            timepost::aws::init_error::report(&e).await;
            return Err(e.into());
        }
    };
    lambda_http::run(timepost_fn_webhook::app(state)).await
}
