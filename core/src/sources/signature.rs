//! Webhook authenticity checks. Both accept several secrets so a secret can be
//! rotated without dropping deliveries: a delivery is genuine if ANY secret
//! matches. Every secret is always tried (no early exit), so timing does not
//! tell which one matched. Empty secrets never match; a missing or malformed
//! header never verifies.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Toggl: header `X-Webhook-Signature-256: sha256=<hex>`, the hex being
/// HMAC-SHA256 of the raw body with the subscription secret. The MAC is
/// compared in constant time (`Mac::verify_slice`).
pub fn verify_toggl(body: &[u8], header: Option<&str>, secrets: &[&[u8]]) -> bool {
    let Some(header) = header else {
        return false;
    };
    let header = header.trim();
    let hex_part = match header.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256=") => &header[7..],
        _ => return false,
    };
    let Ok(expected) = hex::decode(hex_part.trim()) else {
        return false;
    };
    if expected.len() != 32 {
        return false;
    }
    let mut ok = false;
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
            continue;
        };
        mac.update(body);
        ok |= mac.verify_slice(&expected).is_ok();
    }
    ok
}

/// Clockify: header `Clockify-Signature` carries the webhook's secret token
/// itself; compared in constant time with each stored token.
pub fn verify_clockify(header: Option<&str>, secrets: &[&[u8]]) -> bool {
    let Some(header) = header else {
        return false;
    };
    let token = header.trim().as_bytes();
    if token.is_empty() {
        return false;
    }
    let mut ok = subtle::Choice::from(0u8);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        ok |= token.ct_eq(secret);
    }
    ok.into()
}

/// The Toggl signature header value for `body` (for tests and fakes).
pub fn sign_toggl(body: &[u8], secret: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty MAC is
    // returned rather than panicking should it ever.
    match HmacSha256::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => "sha256=".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toggl_documented_example_shape() {
        let body = br#"{"event_id":0,"payload":"ping"}"#;
        let header = sign_toggl(body, b"PGuRrhCFajIyEvFlreKL");
        assert!(header.starts_with("sha256="));
        assert_eq!(header.len(), 7 + 64);
        assert!(verify_toggl(
            body,
            Some(&header),
            &[b"PGuRrhCFajIyEvFlreKL"]
        ));
        assert!(verify_toggl(
            body,
            Some(&header.to_uppercase().replacen("SHA256=", "sha256=", 1)),
            &[b"PGuRrhCFajIyEvFlreKL"]
        ));
    }

    #[test]
    fn toggl_rotation_and_rejections() {
        let body = b"{\"a\":1}";
        let old: &[u8] = b"old-secret";
        let new: &[u8] = b"new-secret";
        let header = sign_toggl(body, old);
        assert!(verify_toggl(body, Some(&header), &[new, old]));
        assert!(!verify_toggl(body, Some(&header), &[new]));
        assert!(!verify_toggl(body, None, &[old]));
        assert!(!verify_toggl(body, Some(&header), &[]));
        assert!(!verify_toggl(body, Some(&header), &[b""]));
        assert!(!verify_toggl(b"{\"a\":2}", Some(&header), &[old]));
        assert!(!verify_toggl(body, Some(&header[7..]), &[old]));
        assert!(!verify_toggl(body, Some("sha256=zz"), &[old]));
        assert!(!verify_toggl(body, Some("sha256=abcd"), &[old]));
        assert!(!verify_toggl(body, Some("é"), &[old]));
        assert!(!verify_toggl(body, Some(""), &[old]));
    }

    #[test]
    fn clockify_tokens() {
        let a: &[u8] = b"tok-a";
        let b: &[u8] = b"tok-b";
        assert!(verify_clockify(Some("tok-a"), &[a]));
        assert!(verify_clockify(Some(" tok-b "), &[a, b]));
        assert!(!verify_clockify(Some("tok-c"), &[a, b]));
        assert!(!verify_clockify(Some("tok-"), &[a]));
        assert!(!verify_clockify(None, &[a]));
        assert!(!verify_clockify(Some(""), &[b""]));
        assert!(!verify_clockify(Some("tok-a"), &[]));
    }
}
