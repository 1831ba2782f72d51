//! Input types and their validation. Every problem is reported with the place it was found
//! (`input.keys[1].publicKey`) and a reason; key material is never echoed back.

use async_graphql::InputObject;
use chrono::{DateTime, Duration, Utc};

use super::error::{ApiError, ApiResult, FieldError};
use super::webhooks::{WebhookInput, validate_session_webhooks};
use crate::domain::keys::parse_public_key;
use crate::domain::text::strip_control;
use crate::store::{NewKey, NewSession};

/// Most keys one session may list.
pub const MAX_KEYS: usize = 32;
/// Most failed attempts a session may allow.
pub const MAX_ATTEMPTS_LIMIT: i32 = 100;
/// Longest session lifetime, from `timeout` or `expiredAt`.
pub const MAX_LIFETIME_SECS: i64 = 30 * 24 * 3600;
/// Longest external id or key name.
pub const MAX_NAME_LEN: usize = 255;
/// Longest banner or message.
pub const MAX_TEXT_LEN: usize = 4096;
/// Longest pasted public key (an RSA 8192 key in PEM is about 1.5 KiB).
pub const MAX_KEY_INPUT_LEN: usize = 16 * 1024;

#[derive(InputObject, Debug, Clone)]
pub struct CreateVerifySessionInput {
    /// The keys to prove; any one proves the session unless `matchAllKeys`.
    pub keys: Vec<VerifyKeyInput>,
    /// Your reference for this session.
    pub external_id: Option<String>,
    /// Every key must be proven within one connection.
    #[graphql(default = false)]
    pub match_all_keys: bool,
    /// Failed attempts allowed before the session fails (at least 1).
    #[graphql(default = 1)]
    pub max_attempts: i32,
    /// Keep accepting connections after a success until completed or expired.
    #[graphql(default = false)]
    pub multi_connection: bool,
    /// Keep checking further keys after the first proven one.
    #[graphql(default = false)]
    pub multi_key: bool,
    /// The person must press `y` in the terminal before the session verifies.
    #[graphql(default = false)]
    pub must_confirm: bool,
    /// Text shown by the SSH client before authentication finishes.
    pub ssh_banner: Option<String>,
    /// Text shown in the terminal after connecting.
    pub ssh_message: Option<String>,
    /// When the session expires (RFC 3339). Mutually exclusive with `timeout`.
    pub expired_at: Option<DateTime<Utc>>,
    /// Lifetime in seconds. Mutually exclusive with `expiredAt`.
    pub timeout: Option<i32>,
    /// Webhook endpoints to send this session's events to.
    pub webhooks: Option<Vec<WebhookInput>>,
}

#[derive(InputObject, Debug, Clone)]
pub struct VerifyKeyInput {
    /// OpenSSH one-line, `authorized_keys` line, RFC 4716, PEM SPKI or PEM PKCS#1.
    pub public_key: String,
    pub name: Option<String>,
    pub external_id: Option<String>,
}

impl CreateVerifySessionInput {
    /// Validates everything and returns the session to store, or every problem found.
    pub fn validate(
        self,
        now: DateTime<Utc>,
        default_timeout: std::time::Duration,
        client_token_hash: String,
    ) -> ApiResult<NewSession> {
        let mut errors = Vec::new();

        let keys = validate_keys(&self.keys, &mut errors);
        check_len(
            &mut errors,
            "input.externalId",
            self.external_id.as_deref(),
            MAX_NAME_LEN,
        );
        check_len(
            &mut errors,
            "input.sshBanner",
            self.ssh_banner.as_deref(),
            MAX_TEXT_LEN,
        );
        check_len(
            &mut errors,
            "input.sshMessage",
            self.ssh_message.as_deref(),
            MAX_TEXT_LEN,
        );
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&self.max_attempts) {
            errors.push(
                FieldError::new(
                    "input.maxAttempts",
                    format!("must be between 1 and {MAX_ATTEMPTS_LIMIT}"),
                )
                .with_value(self.max_attempts),
            );
        }
        let expired_at = validate_expiry(self.expired_at, self.timeout, now, default_timeout)
            .map_err(|error| errors.push(error))
            .ok();
        let webhooks = validate_session_webhooks(self.webhooks.unwrap_or_default(), &mut errors);

        match expired_at {
            Some(expired_at) if errors.is_empty() => Ok(NewSession {
                keys,
                external_id: self.external_id,
                match_all_keys: self.match_all_keys,
                max_attempts: self.max_attempts,
                multi_connection: self.multi_connection,
                multi_key: self.multi_key,
                must_confirm: self.must_confirm,
                ssh_banner: self.ssh_banner.map(|text| strip_control(&text)),
                ssh_message: self.ssh_message.map(|text| strip_control(&text)),
                expired_at,
                client_token_hash,
                webhooks,
            }),
            _ => Err(ApiError::BadInput(errors)),
        }
    }
}

fn validate_keys(inputs: &[VerifyKeyInput], errors: &mut Vec<FieldError>) -> Vec<NewKey> {
    if inputs.is_empty() {
        errors.push(FieldError::new(
            "input.keys",
            "list at least one public key",
        ));
    }
    if inputs.len() > MAX_KEYS {
        errors.push(FieldError::new(
            "input.keys",
            format!("list at most {MAX_KEYS} keys"),
        ));
    }

    let mut keys: Vec<NewKey> = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let location = format!("input.keys[{index}]");
        check_len(
            errors,
            &format!("{location}.name"),
            input.name.as_deref(),
            MAX_NAME_LEN,
        );
        check_len(
            errors,
            &format!("{location}.externalId"),
            input.external_id.as_deref(),
            MAX_NAME_LEN,
        );
        if input.public_key.len() > MAX_KEY_INPUT_LEN {
            errors.push(FieldError::new(
                format!("{location}.publicKey"),
                format!("is longer than {MAX_KEY_INPUT_LEN} bytes"),
            ));
            continue;
        }

        match parse_public_key(&input.public_key) {
            Ok(key) => {
                if let Some(first) = keys
                    .iter()
                    .position(|k| k.key.public_key_ssh == key.public_key_ssh)
                {
                    errors.push(FieldError::new(
                        format!("{location}.publicKey"),
                        format!("is the same key as input.keys[{first}].publicKey"),
                    ));
                }
                keys.push(NewKey {
                    key,
                    name: input.name.clone(),
                    external_id: input.external_id.clone(),
                });
            }
            Err(reason) => {
                errors.push(FieldError::new(
                    format!("{location}.publicKey"),
                    reason.to_string(),
                ));
            }
        }
    }
    keys
}

fn validate_expiry(
    expired_at: Option<DateTime<Utc>>,
    timeout: Option<i32>,
    now: DateTime<Utc>,
    default_timeout: std::time::Duration,
) -> Result<DateTime<Utc>, FieldError> {
    let max = Duration::seconds(MAX_LIFETIME_SECS);
    match (expired_at, timeout) {
        (Some(_), Some(_)) => Err(FieldError::new(
            "input.expiredAt",
            "give either expiredAt or timeout, not both",
        )),
        (Some(at), None) if at <= now => {
            Err(FieldError::new("input.expiredAt", "must be in the future")
                .with_value(at.to_rfc3339()))
        }
        (Some(at), None) if at - now > max => Err(FieldError::new(
            "input.expiredAt",
            format!("must be at most {MAX_LIFETIME_SECS} seconds from now"),
        )
        .with_value(at.to_rfc3339())),
        (Some(at), None) => Ok(at),
        (None, Some(seconds)) if seconds < 1 || i64::from(seconds) > MAX_LIFETIME_SECS => {
            Err(FieldError::new(
                "input.timeout",
                format!("must be between 1 and {MAX_LIFETIME_SECS} seconds"),
            )
            .with_value(seconds))
        }
        (None, Some(seconds)) => Ok(now + Duration::seconds(i64::from(seconds))),
        (None, None) => {
            let default = Duration::from_std(default_timeout).unwrap_or(max).min(max);
            Ok(now + default)
        }
    }
}

fn check_len(errors: &mut Vec<FieldError>, location: &str, value: Option<&str>, max: usize) {
    if value.is_some_and(|value| value.len() > max) {
        errors.push(FieldError::new(
            location,
            format!("must be at most {max} bytes long"),
        ));
    }
}
