//! `[console.oidc]`: the settings of browser sign-in through an OpenID
//! Connect provider (the flow itself is `crate::oidc`).

use serde::{Deserialize, Serialize};

/// The claim holding the role unless configured otherwise (a Cognito custom
/// attribute: custom attributes appear in ID tokens as `custom:<name>`).
pub const DEFAULT_ROLE_CLAIM: &str = "custom:timepost_role";

/// `[console.oidc]`: browser sign-in through an OpenID Connect provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL; its discovery document is read from
    /// `<issuer>/.well-known/openid-configuration`. `https://` (plain
    /// `http://` only for a provider on this machine: localhost, 127.0.0.1).
    pub issuer: String,
    /// The app client's id (the ID token's audience).
    #[serde(default)]
    pub client_id: String,
    /// Name of a secret holding the client id instead (the stack creates
    /// one: its app client cannot be named to the function directly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_secret: Option<String>,
    /// Name of the secret holding the client secret, for a confidential
    /// client (sent to the token endpoint with HTTP Basic). None: a public
    /// client, protected by PKCE alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_name: Option<String>,
    /// Where the provider sends the browser back (must be registered with
    /// the app client). Default: `<public_url>/auth/callback`, else the
    /// address the request came to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    /// The claim holding the user's role.
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Scopes asked for (`openid` is always asked for).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The provider's name on the sign-in button.
    #[serde(default = "default_provider_name")]
    pub provider_name: String,
    /// The provider's logout endpoint when its discovery document names
    /// none (Cognito: `https://<domain>/logout`); sign-out then also ends
    /// the provider's session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout_url: Option<String>,
}

fn default_role_claim() -> String {
    DEFAULT_ROLE_CLAIM.to_string()
}

fn default_scopes() -> Vec<String> {
    ["openid", "email", "profile"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn default_provider_name() -> String {
    "your sign-in provider".to_string()
}

impl OidcConfig {
    /// What is wrong with these settings: the field and a sentence.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if !is_acceptable_url(&self.issuer) {
            return Some((
                "issuer",
                format!(
                    "issuer `{}` must be an https:// URL (http:// only for localhost)",
                    self.issuer
                ),
            ));
        }
        if self.client_id.trim().is_empty() && self.client_id_secret.is_none() {
            return Some((
                "client_id",
                "client_id (or client_id_secret) is required".into(),
            ));
        }
        if self.role_claim.trim().is_empty() {
            return Some(("role_claim", "role_claim must name a claim".into()));
        }
        for (field, url) in [
            ("redirect_url", &self.redirect_url),
            ("logout_url", &self.logout_url),
        ] {
            if let Some(u) = url.as_deref().filter(|u| !is_acceptable_url(u)) {
                return Some((
                    field,
                    format!("{field} `{u}` must be an https:// URL (http:// only for localhost)"),
                ));
            }
        }
        None
    }

    /// These settings overridden by the `TIMEPOST_OIDC_*` variables the
    /// stack's template gives the admin function (read through `get`):
    /// `ISSUER`, `CLIENT_ID`, `CLIENT_ID_SECRET`, `CLIENT_SECRET_NAME`,
    /// `REDIRECT_URL`, `ROLE_CLAIM`, `SCOPES` (space-separated),
    /// `PROVIDER_NAME`, `LOGOUT_URL`. An empty variable is unset. None
    /// when neither names an issuer and a client.
    pub fn with_env(
        base: Option<OidcConfig>,
        get: impl Fn(&str) -> Option<String>,
    ) -> Option<OidcConfig> {
        let var = |k: &str| {
            get(&format!("TIMEPOST_OIDC_{k}"))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let issuer = var("ISSUER").or_else(|| base.as_ref().map(|b| b.issuer.clone()))?;
        let mut c = base.unwrap_or_else(|| OidcConfig {
            issuer: issuer.clone(),
            client_id: String::new(),
            client_id_secret: None,
            client_secret_name: None,
            redirect_url: None,
            role_claim: default_role_claim(),
            scopes: default_scopes(),
            provider_name: default_provider_name(),
            logout_url: None,
        });
        c.issuer = issuer;
        if let Some(v) = var("CLIENT_ID") {
            c.client_id = v;
        }
        if let Some(v) = var("CLIENT_ID_SECRET") {
            c.client_id_secret = Some(v);
        }
        if let Some(v) = var("CLIENT_SECRET_NAME") {
            c.client_secret_name = Some(v);
        }
        if let Some(v) = var("REDIRECT_URL") {
            c.redirect_url = Some(v);
        }
        if let Some(v) = var("ROLE_CLAIM") {
            c.role_claim = v;
        }
        if let Some(v) = var("SCOPES") {
            c.scopes = v.split_whitespace().map(str::to_string).collect();
        }
        if let Some(v) = var("PROVIDER_NAME") {
            c.provider_name = v;
        }
        if let Some(v) = var("LOGOUT_URL") {
            c.logout_url = Some(v);
        }
        (!c.client_id.is_empty() || c.client_id_secret.is_some()).then_some(c)
    }
}

/// `https://…`, or `http://` to this machine (a provider in a test or on a
/// developer's laptop).
fn is_acceptable_url(u: &str) -> bool {
    let Ok(url) = url::Url::parse(u.trim()) else {
        return false;
    };
    match url.scheme() {
        "https" => url.host_str().is_some(),
        "http" => matches!(
            url.host_str(),
            Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
        ),
        _ => false,
    }
}
