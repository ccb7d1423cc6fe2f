//! The `admin` function: the admin API and the console behind API
//! Gateway's JWT authorizer, served by the same axum router as
//! `timepost serve`.
//!
//! API Gateway has already verified the token (issuer, audience, expiry,
//! signature) before the function runs; the function reads who and which
//! role from the authorizer's claims (the role claim is named by
//! `TIMEPOST_JWT_ROLE_CLAIM`) and hands them to the router as a trusted
//! [`timepost_web::auth::Identity`]. Every route's permission is then
//! checked by the router's one permission table, as locally. A request that
//! did not come through the JWT authorizer falls back to the router's own
//! bearer-token and session checks: the browser paths (`/console`,
//! `/auth/*`) are routed without the authorizer, and a browser signs in
//! through the stack's user pool ([`oidc_provider`], `timepost::oidc`).

use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lambda_http::request::RequestContext;
use timepost::aws::AwsStack;
use timepost::oidc::{OidcConfig, OidcError, Provider};
use timepost_web::auth::{identity_from_claims, Identity, IdentityError};

/// The default claim carrying the role (a Cognito custom attribute).
pub const DEFAULT_ROLE_CLAIM: &str = "custom:timepost_role";

/// The router this function serves, with identities from JWT claims.
pub fn app(stack: &AwsStack, role_claim: &str) -> axum::Router {
    app_with_state(timepost_web::AppState::aws(stack), role_claim)
}

/// The router on `state` (e.g. with browser sign-in added), with
/// identities from JWT claims.
pub fn app_with_state(state: timepost_web::AppState, role_claim: &str) -> axum::Router {
    let role_claim = role_claim.to_string();
    timepost_web::router(state).layer(middleware::from_fn(move |req: Request, next: Next| {
        let role_claim = role_claim.clone();
        async move { with_identity(&role_claim, req, next).await }
    }))
}

/// The identity the JWT authorizer's claims give, if the request carries
/// them: `None` when the request did not pass a JWT authorizer.
pub fn claims_identity(req: &Request, role_claim: &str) -> Option<Result<Identity, IdentityError>> {
    let Some(RequestContext::ApiGatewayV2(ctx)) = req.extensions().get::<RequestContext>() else {
        return None;
    };
    let jwt = ctx.authorizer.as_ref()?.jwt.as_ref()?;
    let claims = serde_json::to_value(&jwt.claims).ok()?;
    Some(identity_from_claims(&claims, role_claim))
}

/// API Gateway's `requestContext.http.sourceIp` (the HTTP API the stack
/// deploys).
pub fn source_ip(req: &Request) -> Option<std::net::IpAddr> {
    match req.extensions().get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.as_deref()?.parse().ok(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

async fn with_identity(role_claim: &str, mut req: Request, next: Next) -> Response {
    // The caller's address as API Gateway saw it: failed bearer tokens and
    // sign-ins are throttled per client.
    if let Some(ip) = source_ip(&req) {
        req.extensions_mut()
            .insert(timepost_web::throttle::ClientAddr(ip));
    }
    match claims_identity(&req, role_claim) {
        None => next.run(req).await,
        Some(Ok(identity)) => {
            req.extensions_mut().insert(identity);
            next.run(req).await
        }
        Some(Err(e)) => (
            timepost_web::auth::identity_status(&e),
            Json(serde_json::json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

/// Browser sign-in for this function: `[console.oidc]` of the rules file
/// overridden by the `TIMEPOST_OIDC_*` variables the template sets (read
/// through `get`), the client id read from its secret when the stack
/// created the user pool. Flow cookies are signed with a key derived from
/// the `token_key` secret, shared by every instance (a sign-in started on
/// one may come back to another); without that secret, with a key of this
/// instance. None when no provider is configured.
pub async fn oidc_provider(
    stack: &AwsStack,
    get: impl Fn(&str) -> Option<String>,
) -> Option<Result<Arc<Provider>, OidcError>> {
    let config = OidcConfig::with_env(stack.config.console.oidc.clone(), get)?;
    if let Some((field, message)) = config.problem() {
        return Some(Err(OidcError::Provider(format!(
            "browser sign-in setting {field}: {message}"
        ))));
    }
    let secrets = stack.secrets.as_ref();
    let flow_key = match timepost_web::secret_list(secrets, timepost_web::secret_names::TOKEN_KEY)
        .await
        .into_iter()
        .next()
    {
        Some(k) => timepost::oidc::derive_flow_key(&k),
        None => {
            tracing::warn!(
                "no token_key secret: browser sign-ins must come back to the instance that \
                 started them (create the secret; see docs/deploy.md)"
            );
            timepost::oidc::random_flow_key()
        }
    };
    Some(
        timepost_web::signin::provider(
            &config,
            stack.config.console.public_url.as_deref(),
            secrets,
            flow_key,
        )
        .await,
    )
}
