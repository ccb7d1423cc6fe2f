//! The admin API's body and query extractors. axum's own `Json` and `Query`
//! answer a malformed request with a plain-text 400 / 415 / 422; these wrap
//! them so every such answer is the API's JSON error, `400` with the field
//! named (`"field": "entries"`), and `415` for a body that is not JSON at all.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

use super::ApiError;

/// A JSON request body; `Option<ApiJson<T>>` is None when the request has
/// no `Content-Type` (no body given).
pub struct ApiJson<T>(pub T);

/// A query string.
pub struct ApiQuery<T>(pub T);

/// The field a serde error names, and the rest of its message. The errors
/// read "path: message" (the path of the value that failed, e.g. `entries`
/// or `entries[0]`), or "missing field `name`" at the top level.
fn field_and_message(detail: &str) -> (Option<String>, String) {
    if let Some((path, message)) = detail.split_once(": ") {
        let is_path = !path.is_empty() && !path.contains(char::is_whitespace);
        if is_path {
            return (Some(path.to_string()), message.to_string());
        }
    }
    let missing = detail
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .map(str::to_string);
    (missing, detail.to_string())
}

/// The serde part of an axum rejection text ("Failed to … : detail").
fn detail<'a>(text: &'a str, after: &str) -> &'a str {
    text.split_once(after).map(|(_, d)| d).unwrap_or(text)
}

fn json_error(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => {
            let text = e.body_text();
            let (field, message) = field_and_message(detail(&text, "target type: "));
            ApiError::bad_request(
                format!("the JSON body does not fit: {message}"),
                Some(field.unwrap_or_else(|| "body".into())),
            )
        }
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            format!(
                "the body is not valid JSON: {}",
                detail(&e.body_text(), "as JSON: ")
            ),
            Some("body".into()),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "send the body as JSON (Content-Type: application/json)".into(),
            field: Some("Content-Type".into()),
        },
        JsonRejection::BytesRejection(e) => ApiError {
            status: e.status(),
            message: format!("the body could not be read: {}", e.body_text()),
            field: Some("body".into()),
        },
        other => ApiError::bad_request(other.body_text(), Some("body".into())),
    }
}

fn query_error(r: QueryRejection) -> ApiError {
    let text = r.body_text();
    let (field, message) = field_and_message(detail(&text, "query string: "));
    ApiError::bad_request(
        format!("bad query parameter: {message}"),
        Some(field.unwrap_or_else(|| "query".into())),
    )
}

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        <Json<T> as FromRequest<S>>::from_request(req, state)
            .await
            .map(|Json(v)| ApiJson(v))
            .map_err(json_error)
    }
}

impl<T, S> OptionalFromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        <Json<T> as OptionalFromRequest<S>>::from_request(req, state)
            .await
            .map(|o| o.map(|Json(v)| ApiJson(v)))
            .map_err(json_error)
    }
}

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        <Query<T> as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(query_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failing_field_is_named() {
        assert_eq!(
            field_and_message("entries: invalid type: string \"x\", expected a sequence"),
            (
                Some("entries".into()),
                "invalid type: string \"x\", expected a sequence".into()
            )
        );
        assert_eq!(
            field_and_message("entries[0]: invalid type: integer `1`").0,
            Some("entries[0]".into())
        );
        assert_eq!(
            field_and_message("missing field `reason` at line 1 column 2").0,
            Some("reason".into())
        );
        assert_eq!(
            field_and_message("invalid type: integer `1`, expected struct X").0,
            None
        );
    }
}
