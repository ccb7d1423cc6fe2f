//! Console tokens: how strong one must be, how one is made, and how it is
//! kept in `timepost.toml`.
//!
//! A user's token is kept as `token_hmac`: HMAC-SHA256 of the token under
//! the server's `token_key` secret (32 random bytes, hex; locally in the
//! secrets file, mode 0600, beside the store; in AWS in Secrets Manager).
//! `timepost.toml` alone (what `config push` uploads) then lets nobody
//! test guesses: without the key a hash says nothing about any token. The
//! older `token_sha256` (unkeyed) is still accepted, with a warning at
//! start, until the admin issues new tokens (`timepost token new`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The shortest token accepted.
pub const MIN_CHARS: usize = 24;
/// The least estimated randomness accepted, in bits.
pub const MIN_BITS: f64 = 96.0;

/// How to make a good token (every refusal ends with it).
pub const HOW_TO_MAKE_ONE: &str = "use a random token of at least 24 characters: \
     `timepost token new --user NAME --role ROLE` makes one (or `openssl rand -hex 32`)";

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeakToken {
    #[error(
        "the token has {chars} characters; at least {MIN_CHARS} are needed: {HOW_TO_MAKE_ONE}"
    )]
    TooShort { chars: usize },
    #[error(
        "the token is too predictable (about {bits} bits of randomness, at least 96 needed: \
         repeated characters, or too few kinds of character): {HOW_TO_MAKE_ONE}"
    )]
    TooPredictable { bits: u32 },
}

/// An estimate of a token's randomness, in bits: its length times the
/// bits of the alphabet its character classes suggest (hex digits 4;
/// lower case and digits 5.2; both cases and digits 5.95; anything else
/// 6.5), counting a character repeated right after itself as nothing,
/// and never more than the distinct characters used can give. Generous to
/// real random tokens, hard on `aaaa…`, `abcabc…`, or a word padded out.
pub fn estimated_bits(token: &str) -> f64 {
    let chars: Vec<char> = token.chars().collect();
    let hex = chars.iter().all(|c| c.is_ascii_hexdigit());
    let lower = chars.iter().any(|c| c.is_ascii_lowercase());
    let upper = chars.iter().any(|c| c.is_ascii_uppercase());
    let other = chars.iter().any(|c| !c.is_ascii_alphanumeric());
    let per_char: f64 = if hex {
        4.0
    } else if other {
        6.5
    } else if lower && upper {
        5.95
    } else {
        5.2
    };
    let counted = chars
        .iter()
        .enumerate()
        .filter(|(i, c)| *i == 0 || chars[i - 1] != **c)
        .count();
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    // A token drawn from k symbols carries at most log2(k) bits a char.
    let alphabet = (distinct.len().max(1) as f64).log2().max(0.0);
    counted as f64 * per_char.min(alphabet.max(1.0))
}

/// Refuse a token too short or too predictable to be a credential.
pub fn check_strength(token: &str) -> Result<(), WeakToken> {
    let chars = token.chars().count();
    if chars < MIN_CHARS {
        return Err(WeakToken::TooShort { chars });
    }
    let bits = estimated_bits(token);
    if bits < MIN_BITS {
        return Err(WeakToken::TooPredictable { bits: bits as u32 });
    }
    Ok(())
}

/// A new random token: `tpu_` and 64 hex digits (256 bits).
pub fn generate() -> String {
    format!(
        "tpu_{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A new `token_key`: 32 random bytes, hex.
pub fn generate_key() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The `token_hmac` of `token` under `key` (hex).
pub fn hmac_hex(key: &str, token: &str) -> String {
    hex::encode(hmac_bytes(key, token))
}

pub(crate) fn hmac_bytes(key: &str, token: &str) -> Vec<u8> {
    // HMAC takes a key of any length.
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes()) else {
        return Vec::new();
    };
    mac.update(b"timepost-console-token|");
    mac.update(token.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_tokens_are_refused_with_how_to_make_a_good_one() {
        for weak in [
            "",
            "admin",
            "tok-admin-0123456789",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "abababababababababababababababab",
            "password-password-password",
            "0123456789012345678901234",
        ] {
            let e = check_strength(weak).expect_err(weak);
            assert!(e.to_string().contains("timepost token new"), "{e}");
        }
    }

    #[test]
    fn random_tokens_pass() {
        for _ in 0..50 {
            check_strength(&generate()).expect("generated");
        }
        // `openssl rand -hex 32`, `openssl rand -base64 24`, a long passphrase.
        check_strength("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08")
            .expect("hex");
        check_strength("q2Vx7ZkP1mWb9RtYc3LnHs8D4fJg0aEe").expect("base64");
        check_strength("correct horse battery staple orbit lantern").expect("passphrase");
    }

    /// A copy of `timepost.toml` holds the `token_hmac` only: checking a
    /// guess against it needs the key, which the copy does not hold.
    #[test]
    fn the_hash_cannot_be_checked_without_the_key() {
        let token = generate();
        let key = generate_key();
        let stored = hmac_hex(&key, &token);
        assert_eq!(stored, hmac_hex(&key, &token));
        assert_ne!(stored, hmac_hex(&generate_key(), &token), "another key");
        assert_ne!(stored, hmac_hex("", &token), "no key");
        assert_ne!(stored, crate::auth::sha256_hex(&token), "an unkeyed hash");
    }
}
