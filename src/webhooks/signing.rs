//! Signing secrets and signatures, as the Standard Webhooks specification defines them.
//!
//! A secret is `whsec_` followed by the standard base64 of the key bytes. The signature of a
//! request is `v1,` and the base64 HMAC-SHA256, keyed with those bytes, of
//! `{webhook-id}.{webhook-timestamp}.{body}`.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;

/// Every secret starts with this.
pub const SECRET_PREFIX: &str = "whsec_";
/// Key length of a generated secret, in bytes.
pub const GENERATED_KEY_LEN: usize = 32;
/// Shortest and longest key a caller may supply, in bytes (as the specification asks).
pub const MIN_KEY_LEN: usize = 24;
pub const MAX_KEY_LEN: usize = 64;

/// A signing secret in its `whsec_…` form. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(redacted)")
    }
}

/// Why a supplied secret is not usable; safe to show, it never echoes the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must start with `whsec_`")]
    Prefix,
    #[error("must be `whsec_` followed by standard base64")]
    Encoding,
    #[error("must encode between 24 and 64 bytes of key")]
    Length,
}

impl WebhookSecret {
    /// A fresh random secret.
    pub fn generate() -> Self {
        let mut key = [0u8; GENERATED_KEY_LEN];
        rand::rng().fill(&mut key);
        Self(format!("{SECRET_PREFIX}{}", STANDARD.encode(key)))
    }

    /// Accepts a caller's secret after checking its form.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        key_bytes(text)?;
        Ok(Self(text.to_owned()))
    }

    /// The `whsec_…` text, for storing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The key bytes of a `whsec_…` secret.
pub fn key_bytes(secret: &str) -> Result<Vec<u8>, SecretError> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SecretError::Prefix)?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| SecretError::Encoding)?;
    if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
        return Err(SecretError::Length);
    }
    Ok(key)
}

/// The `webhook-signature` header value for one request.
pub fn sign(key: &[u8], webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification's reference libraries.
        let key = key_bytes("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;

        let signature = sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);

        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn generated_secrets_are_well_formed_and_distinct() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();

        assert!(a.expose().starts_with(SECRET_PREFIX));
        assert_eq!(key_bytes(a.expose()).unwrap().len(), GENERATED_KEY_LEN);
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "WebhookSecret(redacted)");
    }

    #[test]
    fn malformed_secrets_are_refused() {
        assert_eq!(WebhookSecret::parse("abc"), Err(SecretError::Prefix));
        assert_eq!(
            WebhookSecret::parse("whsec_not base64!"),
            Err(SecretError::Encoding)
        );
        assert_eq!(
            WebhookSecret::parse(&format!("whsec_{}", STANDARD.encode([1u8; 8]))),
            Err(SecretError::Length)
        );
    }
}
