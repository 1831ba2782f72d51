//! Request bodies: decoded from JSON (see `decode`), converted into the GraphQL input types and
//! checked by their validation, whose error locations and messages are translated to REST
//! names (`input.keys[1].publicKey` → `body.keys[1].public_key`, `input.expiredAt` →
//! `body.expired_at`). There is one validator; this module only decodes.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde_json::Value;

use super::decode::Decoder;
use super::problem::Problem;
use super::webhooks::{WebhookRequest, decode_webhook};
use crate::graphql::error::ApiError;
use crate::graphql::input::{
    CreateVerifySessionInput, MAX_ATTEMPTS_LIMIT, MAX_KEYS, MAX_LIFETIME_SECS, VerifyKeyInput,
};
use crate::store::NewSession;
use crate::webhooks::settings::MAX_WEBHOOKS_PER_SESSION;

/// The body of `POST /ssh/verify/sessions/`.
#[derive(Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVerifySessionRequest {
    /// The JSON Schema of this body; accepted and ignored.
    #[serde(rename = "$schema")]
    pub _schema: Option<String>,
    /// The keys to prove; any one proves the session unless `match_all_keys`.
    #[schemars(length(min = 1, max = MAX_KEYS))]
    pub keys: Vec<VerifyKeyRequest>,
    /// Your reference for this session.
    pub external_id: Option<String>,
    /// Every key must be proven within one connection.
    #[schemars(extend("default" = false))]
    pub match_all_keys: Option<bool>,
    /// Failed attempts allowed before the session fails.
    #[schemars(range(min = 1, max = MAX_ATTEMPTS_LIMIT), extend("default" = 1))]
    pub max_attempts: Option<i32>,
    /// Keep accepting connections after a success until completed or expired.
    #[schemars(extend("default" = false))]
    pub multi_connection: Option<bool>,
    /// Keep checking further keys after the first proven one.
    #[schemars(extend("default" = false))]
    pub multi_key: Option<bool>,
    /// The person must press `y` in the terminal before the session verifies.
    #[schemars(extend("default" = false))]
    pub must_confirm: Option<bool>,
    /// Text shown by the SSH client before authentication finishes.
    pub ssh_banner: Option<String>,
    /// Text shown in the terminal after connecting.
    pub ssh_message: Option<String>,
    /// When the session expires (RFC 3339). Mutually exclusive with `timeout`.
    pub expired_at: Option<DateTime<Utc>>,
    /// Lifetime in seconds. Mutually exclusive with `expired_at`.
    #[schemars(range(min = 1, max = MAX_LIFETIME_SECS))]
    pub timeout: Option<i32>,
    /// Webhook endpoints to send this session's events to.
    #[schemars(length(max = MAX_WEBHOOKS_PER_SESSION))]
    pub webhooks: Option<Vec<WebhookRequest>>,
}

/// A key to prove.
#[derive(Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyKeyRequest {
    /// OpenSSH one-line, `authorized_keys` line, RFC 4716, PEM SPKI or PEM PKCS#1.
    pub public_key: String,
    pub name: Option<String>,
    pub external_id: Option<String>,
}

const CREATE_FIELDS: [&str; 13] = [
    "$schema",
    "keys",
    "external_id",
    "match_all_keys",
    "max_attempts",
    "multi_connection",
    "multi_key",
    "must_confirm",
    "ssh_banner",
    "ssh_message",
    "expired_at",
    "timeout",
    "webhooks",
];
const KEY_FIELDS: [&str; 3] = ["public_key", "name", "external_id"];

/// Decodes and validates a create body into the session to store.
pub fn validate_create(
    body: &Value,
    now: DateTime<Utc>,
    default_timeout: std::time::Duration,
    client_token_hash: String,
) -> Result<NewSession, Problem> {
    let mut decoder = Decoder::default();
    let request = decode_create(&mut decoder, body);

    let input = CreateVerifySessionInput::from(request);
    match input.validate(now, default_timeout, client_token_hash) {
        Ok(new) if !decoder.has_errors() => Ok(new),
        Ok(_) => Err(decoder.into_problem()),
        Err(ApiError::BadInput(errors)) => Err(decoder.finish(errors)),
        Err(other) => Err(other.into()),
    }
}

fn decode_create(decoder: &mut Decoder, body: &Value) -> CreateVerifySessionRequest {
    let Some(object) = decoder.object("body", body) else {
        return CreateVerifySessionRequest::default();
    };
    decoder.refuse_unknown("body", object, &CREATE_FIELDS);
    let at = |name: &str| format!("body.{name}");
    let field = |name: &str| object.get(name).unwrap_or(&Value::Null);

    let keys = decoder
        .array("body.keys", field("keys"))
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(index, key)| decode_key(decoder, &format!("body.keys[{index}]"), key))
        .collect();
    let webhooks = decoder
        .array("body.webhooks", field("webhooks"))
        .map(|items| {
            items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    decode_webhook(decoder, &format!("body.webhooks[{index}]"), item)
                })
                .collect()
        });

    CreateVerifySessionRequest {
        _schema: None,
        keys,
        external_id: decoder.string(&at("external_id"), field("external_id")),
        match_all_keys: decoder.boolean(&at("match_all_keys"), field("match_all_keys")),
        max_attempts: decoder.integer(&at("max_attempts"), field("max_attempts")),
        multi_connection: decoder.boolean(&at("multi_connection"), field("multi_connection")),
        multi_key: decoder.boolean(&at("multi_key"), field("multi_key")),
        must_confirm: decoder.boolean(&at("must_confirm"), field("must_confirm")),
        ssh_banner: decoder.string(&at("ssh_banner"), field("ssh_banner")),
        ssh_message: decoder.string(&at("ssh_message"), field("ssh_message")),
        expired_at: decoder.time(&at("expired_at"), field("expired_at")),
        timeout: decoder.integer(&at("timeout"), field("timeout")),
        webhooks,
    }
}

fn decode_key(decoder: &mut Decoder, location: &str, value: &Value) -> VerifyKeyRequest {
    let Some(object) = decoder.object(location, value) else {
        return VerifyKeyRequest::default();
    };
    decoder.refuse_unknown(location, object, &KEY_FIELDS);
    decoder.require(location, object, "public_key");
    let mut string = |name: &str| {
        let value = object.get(name).unwrap_or(&Value::Null);
        decoder.string(&format!("{location}.{name}"), value)
    };

    VerifyKeyRequest {
        public_key: string("public_key").unwrap_or_default(),
        name: string("name"),
        external_id: string("external_id"),
    }
}

impl From<CreateVerifySessionRequest> for CreateVerifySessionInput {
    fn from(request: CreateVerifySessionRequest) -> Self {
        Self {
            keys: request.keys.into_iter().map(Into::into).collect(),
            external_id: request.external_id,
            match_all_keys: request.match_all_keys.unwrap_or(false),
            max_attempts: request.max_attempts.unwrap_or(1),
            multi_connection: request.multi_connection.unwrap_or(false),
            multi_key: request.multi_key.unwrap_or(false),
            must_confirm: request.must_confirm.unwrap_or(false),
            ssh_banner: request.ssh_banner,
            ssh_message: request.ssh_message,
            expired_at: request.expired_at,
            timeout: request.timeout,
            webhooks: request
                .webhooks
                .map(|webhooks| webhooks.into_iter().map(Into::into).collect()),
        }
    }
}

impl From<VerifyKeyRequest> for VerifyKeyInput {
    fn from(key: VerifyKeyRequest) -> Self {
        Self {
            public_key: key.public_key,
            name: key.name,
            external_id: key.external_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(body: Value) -> Vec<(String, Option<Value>)> {
        let mut decoder = Decoder::default();
        decode_create(&mut decoder, &body);
        let Problem { errors, .. } = decoder.into_problem();
        errors.into_iter().map(|e| (e.location, e.value)).collect()
    }

    #[test]
    fn type_errors_are_located_and_strings_are_not_echoed() {
        let found = located(serde_json::json!({
            "keys": [{"public_key": 7}, "-----BEGIN OPENSSH PRIVATE KEY-----"],
            "max_attempts": "three",
            "multi_key": 1,
            "publicKey": "x",
        }));

        let expect = |location: &str, value: Option<Value>| {
            assert!(
                found.contains(&(location.to_owned(), value)),
                "{location} in {found:?}"
            );
        };
        expect("body.publicKey", None);
        expect("body.keys[0].public_key", Some(Value::from(7)));
        expect("body.keys[1]", None);
        expect("body.max_attempts", None);
        expect("body.multi_key", Some(Value::from(1)));
    }
}
