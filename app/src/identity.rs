//! Who is asking: the five console roles, and the identity a verified
//! token's claims name (the admin function's JWT authorizer, the browser
//! sign-in). Plain data and pure functions, below the HTTP layer: the
//! configuration names roles, the sign-in and the router check them.

use serde::{Deserialize, Serialize};

/// What a user may do is decided by their role alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything: mappings, settings, and what finance does.
    Admin,
    /// Approves time; reads the rest.
    Manager,
    /// Works the exceptions: fixes, redrives, discards; reads everything.
    Finance,
    /// Reads everything, including the audit log; changes nothing.
    Auditor,
    /// Reads the entries, exceptions and report; changes nothing.
    Viewer,
}

impl Role {
    pub const ALL: &'static [Role] = &[
        Role::Admin,
        Role::Manager,
        Role::Finance,
        Role::Auditor,
        Role::Viewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Finance => "finance",
            Role::Auditor => "auditor",
            Role::Viewer => "viewer",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`"))
    }
}

/// A caller already authenticated by the hosting layer: in AWS, the API
/// Gateway JWT authorizer verified the token and the admin Lambda function
/// turns its claims into this (see [`identity_from_claims`]) and inserts it
/// as a request extension before the router runs. The router's guard
/// (`timepost_web::auth::guard`) then trusts it instead of bearer tokens
/// and sessions. A client cannot forge it: request
/// extensions are set by code in the process, never parsed from the wire.
/// Like a bearer token, a JWT is no ambient credential, so no CSRF token is
/// asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Who the claims name (email, else username, else subject).
    pub who: String,
    pub role: Role,
}

/// Why a set of JWT claims gives no console identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The claims name nobody (no `email`, `username`, `cognito:username`
    /// nor `sub`): the request is not authenticated (401).
    #[error("the token's claims name no user (no email, username or sub)")]
    NoSubject,
    /// The role claim is absent: authenticated but without a role (403).
    #[error("the token carries no `{0}` claim, so it grants no console role")]
    NoRole(String),
    /// The role claim names no known role (403).
    #[error("the `{claim}` claim ({value}) names no console role (admin, manager, finance, auditor, viewer)")]
    UnknownRole { claim: String, value: String },
}

/// The values of a role claim. API Gateway HTTP APIs pass every claim as a
/// string and render a list claim (e.g. `cognito:groups`) as `[a b]`; a
/// REST API or a test may pass a real JSON array. Both are accepted, as is
/// a comma- or space-separated string.
fn claim_values(v: &serde_json::Value) -> Vec<String> {
    match v {
        serde_json::Value::Array(items) => items.iter().flat_map(claim_values).collect(),
        serde_json::Value::String(s) => s
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(|c: char| c == ',' || c.is_whitespace())
            .map(|p| p.trim_matches('"').trim())
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// The console identity a verified JWT's claims grant: the user from
/// `email` (else `username`, `cognito:username`, `sub`), the role from the
/// claim named `role_claim` (case-insensitive role names). When the claim
/// holds several values (a list of groups), the most privileged known role
/// wins (the order of [`Role::ALL`]); values that are not roles are
/// ignored. No known role at all is a 403 (`timepost_web::auth::identity_status`).
pub fn identity_from_claims(
    claims: &serde_json::Value,
    role_claim: &str,
) -> Result<Identity, IdentityError> {
    let who = ["email", "username", "cognito:username", "sub"]
        .iter()
        .filter_map(|k| claims.get(*k).and_then(serde_json::Value::as_str))
        .map(str::trim)
        .find(|v| !v.is_empty())
        .ok_or(IdentityError::NoSubject)?
        .to_string();
    let raw = claims
        .get(role_claim)
        .filter(|v| !v.is_null())
        .ok_or_else(|| IdentityError::NoRole(role_claim.to_string()))?;
    let values: Vec<String> = claim_values(raw)
        .into_iter()
        .map(|v| v.to_ascii_lowercase())
        .collect();
    let role = Role::ALL
        .iter()
        .copied()
        .find(|r| values.iter().any(|v| v == r.as_str()))
        .ok_or_else(|| IdentityError::UnknownRole {
            claim: role_claim.to_string(),
            value: raw.to_string(),
        })?;
    Ok(Identity { who, role })
}
