//! Request bodies: decoded from JSON with a located message for every field of the wrong type,
//! then handed to the GraphQL input's own validation, whose error locations and messages are
//! translated to REST names (`input.keys[1].publicKey` → `body.keys[1].public_key`,
//! `input.expiredAt` → `body.expired_at`). There is one validator; this module only decodes.
//!
//! Type errors never echo the offending value unless it is a number, a boolean or null: a
//! string in the wrong place may be key material.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde_json::{Map, Value};

use super::problem::{Problem, ProblemError};
use crate::graphql::error::ApiError;
use crate::graphql::input::{
    CreateVerifySessionInput, MAX_ATTEMPTS_LIMIT, MAX_KEYS, MAX_LIFETIME_SECS, VerifyKeyInput,
};
use crate::store::NewSession;

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

/// Decodes and validates a create body into the session to store.
pub fn validate_create(
    body: &Value,
    now: DateTime<Utc>,
    default_timeout: std::time::Duration,
    client_token_hash: String,
) -> Result<NewSession, Problem> {
    let mut decoder = Decoder::default();
    let request = decoder.create_request(body);

    let input = CreateVerifySessionInput::from(request);
    let validated = input.validate(now, default_timeout, client_token_hash);

    match (validated, decoder.errors.is_empty()) {
        (Ok(new), true) => Ok(new),
        (Ok(_), false) => Err(Problem::bad_input(decoder.errors)),
        (Err(ApiError::BadInput(errors)), _) => Err(decoder.merge(errors)),
        (Err(other), _) => Err(other.into()),
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
            webhooks: None,
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

/// Collects type errors while decoding; fields in error get neutral placeholders so that
/// list positions (and so error locations) stay those of the request.
#[derive(Default)]
struct Decoder {
    errors: Vec<ProblemError>,
    /// Integers that did not fit and were clamped: location and the value as sent.
    clamped: Vec<(String, Value)>,
}

impl Decoder {
    fn create_request(&mut self, body: &Value) -> CreateVerifySessionRequest {
        let Some(object) = self.object("body", body) else {
            return CreateVerifySessionRequest::default();
        };
        self.refuse_unknown(
            "body",
            object,
            &[
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
            ],
        );

        let keys = match object.get("keys") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(index, item)| self.key_request(&format!("body.keys[{index}]"), item))
                .collect(),
            Some(other) => {
                self.type_error("body.keys", "must be an array of keys", other);
                Vec::new()
            }
        };
        CreateVerifySessionRequest {
            _schema: None,
            keys,
            external_id: self.string("body", object, "external_id"),
            match_all_keys: self.boolean("body", object, "match_all_keys"),
            max_attempts: self.integer("body", object, "max_attempts"),
            multi_connection: self.boolean("body", object, "multi_connection"),
            multi_key: self.boolean("body", object, "multi_key"),
            must_confirm: self.boolean("body", object, "must_confirm"),
            ssh_banner: self.string("body", object, "ssh_banner"),
            ssh_message: self.string("body", object, "ssh_message"),
            expired_at: self.time("body", object, "expired_at"),
            timeout: self.integer("body", object, "timeout"),
        }
    }

    fn key_request(&mut self, location: &str, value: &Value) -> VerifyKeyRequest {
        let Some(object) = self.object(location, value) else {
            return VerifyKeyRequest::default();
        };
        self.refuse_unknown(location, object, &["public_key", "name", "external_id"]);
        let public_key = self.string(location, object, "public_key");
        if object.get("public_key").is_none_or(Value::is_null) {
            self.errors.push(ProblemError::new(
                format!("{location}.public_key"),
                "is required",
            ));
        }

        VerifyKeyRequest {
            public_key: public_key.unwrap_or_default(),
            name: self.string(location, object, "name"),
            external_id: self.string(location, object, "external_id"),
        }
    }

    fn object<'v>(&mut self, location: &str, value: &'v Value) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(object) => Some(object),
            other => {
                self.type_error(location, "must be a JSON object", other);
                None
            }
        }
    }

    fn refuse_unknown(&mut self, location: &str, object: &Map<String, Value>, known: &[&str]) {
        for name in object.keys().filter(|name| !known.contains(&name.as_str())) {
            let shown: String = name.chars().take(64).collect();
            self.errors.push(ProblemError::new(
                format!("{location}.{shown}"),
                "is not a known field",
            ));
        }
    }

    fn string(&mut self, at: &str, object: &Map<String, Value>, name: &str) -> Option<String> {
        match object.get(name)? {
            Value::Null => None,
            Value::String(text) => Some(text.clone()),
            other => {
                self.type_error(&format!("{at}.{name}"), "must be a string", other);
                None
            }
        }
    }

    fn boolean(&mut self, at: &str, object: &Map<String, Value>, name: &str) -> Option<bool> {
        match object.get(name)? {
            Value::Null => None,
            Value::Bool(flag) => Some(*flag),
            other => {
                self.type_error(&format!("{at}.{name}"), "must be true or false", other);
                None
            }
        }
    }

    /// An integer; one outside `i32` is clamped so validation reports its range, and the
    /// value as sent is put back into that error.
    fn integer(&mut self, at: &str, object: &Map<String, Value>, name: &str) -> Option<i32> {
        let location = format!("{at}.{name}");
        let value = object.get(name)?;
        let wide = match value {
            Value::Null => return None,
            Value::Number(number) => number
                .as_i64()
                .or_else(|| number.as_u64().map(|_| i64::MAX)),
            _ => None,
        };
        let Some(wide) = wide else {
            self.type_error(&location, "must be an integer", value);
            return None;
        };
        let narrow = i32::try_from(wide).unwrap_or(if wide < 0 { i32::MIN } else { i32::MAX });
        if i64::from(narrow) != wide {
            self.clamped.push((location, value.clone()));
        }
        Some(narrow)
    }

    fn time(&mut self, at: &str, object: &Map<String, Value>, name: &str) -> Option<DateTime<Utc>> {
        let location = format!("{at}.{name}");
        match object.get(name)? {
            Value::Null => None,
            Value::String(text) => match DateTime::parse_from_rfc3339(text) {
                Ok(time) => Some(time.with_timezone(&Utc)),
                Err(_) => {
                    self.errors.push(ProblemError::new(
                        location,
                        "must be an RFC 3339 date-time such as 2030-01-31T12:00:00Z",
                    ));
                    None
                }
            },
            other => {
                self.type_error(&location, "must be an RFC 3339 date-time string", other);
                None
            }
        }
    }

    fn type_error(&mut self, location: &str, message: &str, value: &Value) {
        let error = ProblemError::new(location, message);
        self.errors.push(match value {
            Value::Null | Value::Bool(_) | Value::Number(_) => error.with_value(value.clone()),
            Value::String(_) | Value::Array(_) | Value::Object(_) => error,
        });
    }

    /// The decoder's errors followed by the validator's, leaving out validator errors about a
    /// field that already has a type error (they describe its placeholder, not the request).
    fn merge(self, validation: Vec<crate::graphql::error::FieldError>) -> Problem {
        let Self {
            mut errors,
            clamped,
        } = self;
        let decoded = errors.len();
        for error in validation.into_iter().map(ProblemError::from) {
            let covered = errors[..decoded]
                .iter()
                .any(|own| is_within(&error.location, &own.location));
            if covered {
                continue;
            }
            let sent = clamped
                .iter()
                .find(|(location, _)| *location == error.location);
            errors.push(match sent {
                Some((_, value)) => error.with_value(value.clone()),
                None => error,
            });
        }
        Problem::bad_input(errors)
    }
}

/// Whether `location` is `outer` or a part of it (`body.keys[0].public_key` is within
/// `body.keys[0]` and `body.keys`).
fn is_within(location: &str, outer: &str) -> bool {
    location == outer
        || location
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// A GraphQL input location in REST terms: `input.keys[1].publicKey` → `body.keys[1].public_key`.
pub fn rest_location(location: &str) -> String {
    let rest = match location.strip_prefix("input") {
        Some(rest) if rest.is_empty() || rest.starts_with(['.', '[']) => format!("body{rest}"),
        _ => location.to_owned(),
    };
    snake_identifiers(&rest)
}

/// A message in REST terms: GraphQL locations and camelCase field names become snake_case.
pub fn rest_text(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut token = String::new();
    for c in message.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '[' || c == ']' {
            token.push(c);
            continue;
        }
        if token.starts_with("input.") || token.starts_with("input[") {
            out.push_str(&rest_location(&token));
        } else {
            out.push_str(&snake_identifiers(&token));
        }
        token.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// Converts every camelCase identifier in `text` to snake_case; other text is kept.
fn snake_identifiers(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut word = String::new();
    for c in text.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_alphanumeric() {
            word.push(c);
            continue;
        }
        out.push_str(&snake_case(&word));
        word.clear();
        if c != '\0' {
            out.push(c);
        }
    }
    out
}

/// `publicKey` → `public_key`; words that do not start lowercase are left alone.
fn snake_case(word: &str) -> String {
    if !word.starts_with(|c: char| c.is_ascii_lowercase()) {
        return word.to_owned();
    }
    let mut out = String::with_capacity(word.len() + 4);
    for c in word.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graphql_locations_become_body_locations() {
        assert_eq!(
            rest_location("input.keys[1].publicKey"),
            "body.keys[1].public_key"
        );
        assert_eq!(rest_location("input.expiredAt"), "body.expired_at");
        assert_eq!(rest_location("input.keys"), "body.keys");
        assert_eq!(rest_location("input"), "body");
    }

    #[test]
    fn messages_name_rest_fields() {
        assert_eq!(
            rest_text("give either expiredAt or timeout, not both"),
            "give either expired_at or timeout, not both"
        );
        assert_eq!(
            rest_text("is the same key as input.keys[0].publicKey"),
            "is the same key as body.keys[0].public_key"
        );
        assert_eq!(
            rest_text("RSA keys must have at least 2048 bits; this one has 1024"),
            "RSA keys must have at least 2048 bits; this one has 1024"
        );
    }

    #[test]
    fn within_means_the_same_field_or_a_part_of_it() {
        assert!(is_within("body.keys[0].public_key", "body.keys[0]"));
        assert!(is_within("body.keys[0].public_key", "body.keys"));
        assert!(is_within("body.keys", "body.keys"));
        assert!(!is_within("body.keys_extra", "body.keys"));
    }

    #[test]
    fn type_errors_are_located_and_strings_are_not_echoed() {
        let body = serde_json::json!({
            "keys": [{"public_key": 7}, "-----BEGIN OPENSSH PRIVATE KEY-----"],
            "max_attempts": "three",
            "multi_key": 1,
            "publicKey": "x",
        });
        let mut decoder = Decoder::default();

        decoder.create_request(&body);

        let located: Vec<(&str, Option<&Value>)> = decoder
            .errors
            .iter()
            .map(|e| (e.location.as_str(), e.value.as_ref()))
            .collect();
        assert!(located.contains(&("body.publicKey", None)));
        assert!(located.contains(&("body.keys[0].public_key", Some(&Value::from(7)))));
        assert!(located.contains(&("body.keys[1]", None)));
        assert!(located.contains(&("body.max_attempts", None)));
        assert!(located.contains(&("body.multi_key", Some(&Value::from(1)))));
    }
}
