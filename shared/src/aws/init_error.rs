//! Reporting a function's start-up failure to Lambda the way the runtime
//! API documents it ("Initialization error": `POST
//! http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/init/error` with an
//! `errorMessage` / `errorType` JSON body and the
//! `Lambda-Runtime-Function-Error-Type` header,
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html#runtimes-api-initerror>).
//!
//! Without it a function that cannot start only exits, and Lambda shows
//! "Runtime exited without providing a reason"; with it the invocation's
//! error names the cause in the sentence timepost wrote for it (a missing
//! or invalid rules file says where to upload it and what is wrong).

use std::time::Duration;

/// The error type Lambda shows for a start-up failure timepost explains.
pub const CONFIG_ERROR_TYPE: &str = "Runtime.ConfigError";

/// The runtime API's path for initialization errors.
pub const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";

/// Log `error` (its sentence, never a `Debug` dump) and report it to the
/// runtime API named by `AWS_LAMBDA_RUNTIME_API`, when there is one (not
/// outside Lambda). A failure to report is logged, never hidden behind
/// the original error.
pub async fn report(error: &dyn std::fmt::Display) {
    let message = error.to_string();
    tracing::error!(error = %message, "the function cannot start");
    let Some(api) = std::env::var("AWS_LAMBDA_RUNTIME_API")
        .ok()
        .filter(|a| !a.is_empty())
    else {
        return;
    };
    if let Err(e) = report_to(&api, &message).await {
        tracing::error!(error = %e, "could not report the start-up error to the Lambda runtime API");
    }
}

/// Send `message` as the initialization error to the runtime API at
/// `api` (`host:port`, plain HTTP on the instance's loopback): one HTTP/1.1
/// request on hyper's client connection, five seconds in all.
pub async fn report_to(api: &str, message: &str) -> Result<(), String> {
    let body = serde_json::json!({
        "errorMessage": message,
        "errorType": CONFIG_ERROR_TYPE,
        "stackTrace": [],
    })
    .to_string();
    let request = hyper::Request::post(INIT_ERROR_PATH)
        .header(hyper::header::HOST, api)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header("Lambda-Runtime-Function-Error-Type", CONFIG_ERROR_TYPE)
        .body(body)
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(api)
            .await
            .map_err(|e| format!("cannot connect to {api}: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())
    };
    let response = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .map_err(|_| format!("the runtime API at {api} did not answer within 5 s"))??;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("the runtime API answered {}", response.status()))
    }
}

/// The stack a function runs on, from its environment; a start-up failure
/// (a missing or invalid rules file) is logged and reported to Lambda in
/// its sentence ([`report`]), not as a `Debug` dump, then returned.
#[cfg(feature = "stack")]
pub async fn stack_from_env() -> Result<super::AwsStack, super::stack::AwsStackError> {
    match super::AwsStack::from_env().await {
        Ok(stack) => Ok(stack),
        Err(e) => {
            report(&e).await;
            Err(e)
        }
    }
}

/// [`stack_from_env`] for a function that needs no ledger client or engine
/// (the poller): the stack's ports alone.
pub async fn ports_from_env() -> Result<super::AwsPorts, super::stack::AwsStackError> {
    match super::AwsPorts::from_env().await {
        Ok(ports) => Ok(ports),
        Err(e) => {
            report(&e).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;
    use std::sync::{Arc, Mutex};

    /// A stand-in for the runtime API's init-error endpoint, recording
    /// what it was sent.
    #[tokio::test]
    async fn the_sentence_reaches_the_runtime_api_as_an_init_error() {
        let seen: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
        let record = seen.clone();
        let app = axum::Router::new().route(
            INIT_ERROR_PATH,
            axum::routing::post(
                move |headers: HeaderMap, body: axum::Json<serde_json::Value>| async move {
                    let kind = headers
                        .get("Lambda-Runtime-Function-Error-Type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    record.lock().unwrap().push((kind, body.0));
                    axum::http::StatusCode::ACCEPTED
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let sentence =
            "the rules config is missing: upload your timepost.toml to s3://b/config/timepost.toml";
        report_to(&addr.to_string(), sentence).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, CONFIG_ERROR_TYPE);
        assert_eq!(seen[0].1["errorMessage"], sentence);
        assert_eq!(seen[0].1["errorType"], CONFIG_ERROR_TYPE);
    }

    #[tokio::test]
    async fn a_refusing_runtime_api_is_an_error_not_a_panic() {
        let app = axum::Router::new().route(
            INIT_ERROR_PATH,
            axum::routing::post(|| async { axum::http::StatusCode::FORBIDDEN }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let err = report_to(&addr.to_string(), "x").await.unwrap_err();
        assert!(err.contains("403"), "{err}");
    }
}
