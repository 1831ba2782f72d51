//! Random identifiers and secrets: connection identifiers, API keys and client tokens.

use rand::Rng;
use sha2::{Digest, Sha256};

const IDENTIFIER_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Length of a connection identifier: 24 characters of 36 give about 124 bits.
pub const CONNECTION_IDENTIFIER_LEN: usize = 24;

/// A fresh connection identifier: the SSH user name of a session, `[a-z0-9]`, ~124 bits.
pub fn new_connection_identifier() -> String {
    let mut rng = rand::rng();
    (0..CONNECTION_IDENTIFIER_LEN)
        .map(|_| IDENTIFIER_ALPHABET[rng.random_range(0..IDENTIFIER_ALPHABET.len())] as char)
        .collect()
}

/// Whether `user` has the shape of a connection identifier; anything else is never looked up.
pub fn is_connection_identifier(user: &str) -> bool {
    user.len() == CONNECTION_IDENTIFIER_LEN
        && user
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A fresh secret with a readable prefix: `prefix` then 43 characters of URL-safe base64
/// (256 bits).
pub fn new_secret(prefix: &str) -> String {
    use base64::Engine;

    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a secret: lowercase hex SHA-256. Secrets carry 256 bits of entropy, so
/// a plain hash is enough; lookups go by this hash.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_identifiers_are_lowercase_alphanumeric_and_distinct() {
        let a = new_connection_identifier();
        let b = new_connection_identifier();

        assert!(is_connection_identifier(&a));
        assert_ne!(a, b);
        assert!(!is_connection_identifier("Root"));
        assert!(!is_connection_identifier(&format!("{a}x")));
    }

    #[test]
    fn secrets_hash_to_stable_hex() {
        let secret = new_secret("kp_");

        assert!(secret.starts_with("kp_"));
        assert_eq!(secret.len(), 3 + 43);
        assert_eq!(hash_secret(&secret), hash_secret(&secret));
        assert_eq!(hash_secret(&secret).len(), 64);
    }
}
