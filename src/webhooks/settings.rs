//! Webhook settings: their defaults, their bounds and their validation.
//!
//! Validation reports every problem with the place it was found, relative to a prefix the
//! caller gives (`input.webhooks[0]`, `input`), so `createVerifySession`, `addWebhook` and
//! `updateWebhook` explain problems the same way.

use reqwest::Url;
use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::signing::WebhookSecret;
use super::targets::TargetPolicy;
use crate::domain::session::EventKind;
use crate::graphql::error::FieldError;
use crate::store::{NewWebhook, WebhookChanges};

/// Most webhooks one session may have.
pub const MAX_WEBHOOKS_PER_SESSION: usize = 10;
/// Longest URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Most retries after the first attempt.
pub const MAX_RETRIES: i32 = 20;
pub const DEFAULT_RETRIES: i32 = 0;
/// Longest first backoff, in seconds (one day).
pub const MAX_INITIAL_BACKOFF: i32 = 86_400;
pub const DEFAULT_INITIAL_BACKOFF: i32 = 10;
pub const MAX_BACKOFF_MULTIPLIER: f64 = 10.0;
pub const DEFAULT_BACKOFF_MULTIPLIER: f64 = 2.0;
/// Most distinct custom header names.
pub const MAX_HEADERS: usize = 20;
/// Most values of one custom header.
pub const MAX_HEADER_VALUES: usize = 10;
/// Longest custom header name, in bytes.
pub const MAX_HEADER_NAME_LEN: usize = 128;
/// Longest custom header value, in bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 2048;
/// Most bytes of names and values of every custom header together.
pub const MAX_HEADERS_BYTES: usize = 8 * 1024;

/// Headers keyproof sets itself, or that describe the message framing; custom headers may not
/// use these names.
pub const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "host",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "proxy-authorization",
    "proxy-connection",
];

/// The HTTP method of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HttpMethod {
    #[default]
    Post,
    Put,
    Patch,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "POST" => Some(Self::Post),
            "PUT" => Some(Self::Put),
            "PATCH" => Some(Self::Patch),
            _ => None,
        }
    }
}

/// One custom header: a name and its values, sent in order.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderSetting {
    pub name: String,
    pub values: Vec<String>,
}

/// Header values may carry credentials: `Debug` shows names only.
impl std::fmt::Debug for HeaderSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: <{} values>", self.name, self.values.len())
    }
}

/// Webhook settings as a caller gave them; absent fields take their defaults on creation and
/// stay unchanged on update.
#[derive(Debug, Clone, Default)]
pub struct WebhookDraft {
    pub url: Option<String>,
    pub method: Option<HttpMethod>,
    pub headers: Option<Vec<HeaderSetting>>,
    pub events: Option<Vec<EventKind>>,
    pub retries: Option<i32>,
    pub initial_backoff: Option<i32>,
    pub backoff_multiplier: Option<f64>,
    pub secret: Option<SecretText>,
}

/// A secret as typed by a caller, not yet checked. `Debug` never shows it.
#[derive(Clone)]
pub struct SecretText(pub String);

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretText(redacted)")
    }
}

impl WebhookDraft {
    /// Validates a new webhook: `url` is required, everything else has a default.
    pub fn validate_new(self, prefix: &str) -> Result<NewWebhook, Vec<FieldError>> {
        let changes = self.validate_changes(prefix)?;
        let Some(url) = changes.url else {
            return Err(vec![FieldError::new(
                format!("{prefix}.url"),
                "is required",
            )]);
        };

        Ok(NewWebhook {
            url,
            method: changes.method.unwrap_or_default(),
            headers: changes.headers.unwrap_or_default(),
            events: changes.events.unwrap_or_default(),
            retries: changes.retries.unwrap_or(DEFAULT_RETRIES),
            initial_backoff: changes.initial_backoff.unwrap_or(DEFAULT_INITIAL_BACKOFF),
            backoff_multiplier: changes
                .backoff_multiplier
                .unwrap_or(DEFAULT_BACKOFF_MULTIPLIER),
            secret: changes.secret.unwrap_or_else(WebhookSecret::generate),
        })
    }

    /// Validates the fields that are present, for an update.
    pub fn validate_changes(self, prefix: &str) -> Result<WebhookChanges, Vec<FieldError>> {
        let mut errors = Vec::new();
        let at = |field: &str| format!("{prefix}.{field}");

        let url = self
            .url
            .and_then(|url| push_err(&mut errors, validate_url(&url, &at("url"))));
        if let Some(headers) = &self.headers {
            validate_headers(headers, &at("headers"), &mut errors);
        }
        if let Some(retries) = self.retries {
            check_range(&mut errors, &at("retries"), retries, 0, MAX_RETRIES);
        }
        if let Some(backoff) = self.initial_backoff {
            check_range(
                &mut errors,
                &at("initialBackoff"),
                backoff,
                1,
                MAX_INITIAL_BACKOFF,
            );
        }
        if let Some(multiplier) = self.backoff_multiplier
            && !(1.0..=MAX_BACKOFF_MULTIPLIER).contains(&multiplier)
        {
            errors.push(
                FieldError::new(
                    at("backoffMultiplier"),
                    format!("must be between 1 and {MAX_BACKOFF_MULTIPLIER}"),
                )
                .with_value(multiplier),
            );
        }
        let secret = self.secret.and_then(|secret| {
            let parsed = WebhookSecret::parse(&secret.0)
                .map_err(|reason| FieldError::new(at("secret"), reason.to_string()));
            push_err(&mut errors, parsed)
        });
        let events = self.events.map(|mut events| {
            let mut seen = Vec::with_capacity(events.len());
            events.retain(|kind| {
                let first = !seen.contains(kind);
                seen.push(*kind);
                first
            });
            events
        });

        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(WebhookChanges {
            url,
            method: self.method,
            headers: self.headers,
            events,
            retries: self.retries,
            initial_backoff: self.initial_backoff,
            backoff_multiplier: self.backoff_multiplier,
            secret,
        })
    }
}

/// The target check made when a webhook is configured (resolving host names), reported at
/// `location`.
pub async fn check_target(
    policy: TargetPolicy,
    url: &str,
    location: &str,
) -> Result<(), FieldError> {
    let url = Url::parse(url).map_err(|_| FieldError::new(location, "is not a valid URL"))?;
    policy
        .check_url(&url)
        .await
        .map_err(|refusal| FieldError::new(location, refusal.to_string()))
}

/// [`check_target`] for each of a new session's webhooks; `location_of(index)` names the URL
/// field of webhook `index` (`input.webhooks[0].url`, `body.webhooks[0].url`).
pub async fn check_new_targets(
    policy: TargetPolicy,
    webhooks: &[NewWebhook],
    location_of: impl Fn(usize) -> String,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for (index, webhook) in webhooks.iter().enumerate() {
        if let Err(error) = check_target(policy, &webhook.url, &location_of(index)).await {
            errors.push(error);
        }
    }
    errors
}

fn push_err<T>(errors: &mut Vec<FieldError>, result: Result<T, FieldError>) -> Option<T> {
    result.map_err(|error| errors.push(error)).ok()
}

fn check_range(errors: &mut Vec<FieldError>, location: &str, value: i32, min: i32, max: i32) {
    if !(min..=max).contains(&value) {
        errors.push(
            FieldError::new(location, format!("must be between {min} and {max}")).with_value(value),
        );
    }
}

/// Checks the form of a webhook URL (the target check is separate, and asynchronous).
pub fn validate_url(text: &str, location: &str) -> Result<String, FieldError> {
    if text.len() > MAX_URL_LEN {
        return Err(FieldError::new(
            location,
            format!("must be at most {MAX_URL_LEN} bytes long"),
        ));
    }
    let url = Url::parse(text.trim())
        .map_err(|_| FieldError::new(location, "is not a valid absolute URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FieldError::new(location, "must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(FieldError::new(location, "must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(FieldError::new(
            location,
            "must not hold credentials; send them in a custom header instead",
        ));
    }

    Ok(url.to_string())
}

fn validate_headers(headers: &[HeaderSetting], location: &str, errors: &mut Vec<FieldError>) {
    if headers.len() > MAX_HEADERS {
        errors.push(FieldError::new(
            location,
            format!("list at most {MAX_HEADERS} headers"),
        ));
        return;
    }
    let total: usize = headers
        .iter()
        .map(|header| header.name.len() + header.values.iter().map(String::len).sum::<usize>())
        .sum();
    if total > MAX_HEADERS_BYTES {
        errors.push(FieldError::new(
            location,
            format!("must be at most {MAX_HEADERS_BYTES} bytes of names and values together"),
        ));
        return;
    }

    let mut seen: Vec<String> = Vec::with_capacity(headers.len());
    for (index, header) in headers.iter().enumerate() {
        let at = format!("{location}[{index}]");
        match validate_header_name(&header.name) {
            Ok(lower) if seen.contains(&lower) => errors.push(
                FieldError::new(
                    format!("{at}.name"),
                    "appears twice; list every value under one name",
                )
                .with_value(header.name.clone()),
            ),
            Ok(lower) => seen.push(lower),
            Err(reason) => errors.push(FieldError::new(format!("{at}.name"), reason)),
        }
        if header.values.is_empty() || header.values.len() > MAX_HEADER_VALUES {
            errors.push(FieldError::new(
                format!("{at}.values"),
                format!("list between 1 and {MAX_HEADER_VALUES} values"),
            ));
        }
        for (value_index, value) in header.values.iter().enumerate() {
            if let Err(reason) = validate_header_value(value) {
                errors.push(FieldError::new(
                    format!("{at}.values[{value_index}]"),
                    reason,
                ));
            }
        }
    }
}

/// The lower-case name, or why it cannot be used. Never echoes the name when it holds a line
/// break (it would be an injection attempt, and makes a confusing message).
fn validate_header_name(name: &str) -> Result<String, String> {
    if name.contains(['\r', '\n']) {
        return Err("must not contain CR or LF".to_owned());
    }
    if name.is_empty() || name.len() > MAX_HEADER_NAME_LEN {
        return Err(format!(
            "must be between 1 and {MAX_HEADER_NAME_LEN} bytes long"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lower.as_str()) {
        return Err(format!(
            "`{lower}` is set by keyproof and cannot be replaced"
        ));
    }
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(
            "is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)".to_owned(),
        );
    }

    Ok(lower)
}

fn validate_header_value(value: &str) -> Result<(), String> {
    if value.contains(['\r', '\n']) {
        return Err("must not contain CR or LF".to_owned());
    }
    if value.len() > MAX_HEADER_VALUE_LEN {
        return Err(format!("must be at most {MAX_HEADER_VALUE_LEN} bytes long"));
    }
    if HeaderValue::from_str(value).is_err() {
        return Err("must be printable ASCII".to_owned());
    }

    Ok(())
}

/// The stored form of custom headers.
pub fn encode_headers(headers: &[HeaderSetting]) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".to_owned())
}

/// Custom headers from their stored form (written by [`encode_headers`] only).
pub fn decode_headers(stored: &str) -> Vec<HeaderSetting> {
    serde_json::from_str(stored).unwrap_or_default()
}

/// The stored form of an event filter: snake_case kinds, comma-separated; empty for all.
pub fn encode_events(events: &[EventKind]) -> String {
    events
        .iter()
        .map(|kind| kind.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

pub fn decode_events(stored: &str) -> Vec<EventKind> {
    stored.split(',').filter_map(EventKind::parse).collect()
}

/// Whether a webhook with this stored filter wants events of `kind`.
pub fn wants(stored_events: &str, kind: EventKind) -> bool {
    stored_events.is_empty() || decode_events(stored_events).contains(&kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(url: &str) -> WebhookDraft {
        WebhookDraft {
            url: Some(url.to_owned()),
            ..WebhookDraft::default()
        }
    }

    fn header(name: &str, values: &[&str]) -> HeaderSetting {
        HeaderSetting {
            name: name.to_owned(),
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    fn locations(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.location.as_str()).collect()
    }

    #[test]
    fn defaults_apply_and_a_secret_is_generated() {
        let new = draft("https://hooks.example.com/kp")
            .validate_new("input")
            .unwrap();

        assert_eq!(new.method, HttpMethod::Post);
        assert_eq!(new.retries, 0);
        assert_eq!(new.initial_backoff, 10);
        assert_eq!(new.backoff_multiplier, 2.0);
        assert!(new.events.is_empty());
        assert!(new.secret.expose().starts_with("whsec_"));
    }

    #[test]
    fn bad_urls_are_refused_with_their_location() {
        for url in [
            "ftp://example.com/",
            "not a url",
            "/relative",
            "https://user:pw@example.com/",
            &format!("https://example.com/{}", "a".repeat(MAX_URL_LEN)),
        ] {
            let errors = draft(url).validate_new("input.webhooks[0]").unwrap_err();
            assert_eq!(locations(&errors), ["input.webhooks[0].url"], "{url}");
        }
    }

    #[test]
    fn reserved_and_malformed_headers_are_refused() {
        let mut input = draft("https://example.com/");
        input.headers = Some(vec![
            header("X-Ok", &["1"]),
            header("Webhook-Signature", &["v1,forged"]),
            header("User-Agent", &["me"]),
            header("X-Bad\r\nInjected", &["1"]),
            header("X-Value", &["a\r\nInjected: 1"]),
            header("x-ok", &["dup"]),
            header("X-Empty", &[]),
        ]);

        let errors = input.validate_new("input").unwrap_err();

        assert_eq!(
            locations(&errors),
            [
                "input.headers[1].name",
                "input.headers[2].name",
                "input.headers[3].name",
                "input.headers[4].values[0]",
                "input.headers[5].name",
                "input.headers[6].values",
            ]
        );
        assert!(errors[2].message.contains("CR or LF"));
        assert!(errors[3].message.contains("CR or LF"));
    }

    #[test]
    fn too_many_headers_are_refused_as_a_whole() {
        let mut input = draft("https://example.com/");
        input.headers = Some(
            (0..=MAX_HEADERS)
                .map(|i| header(&format!("x-{i}"), &["v"]))
                .collect(),
        );

        let errors = input.validate_new("input").unwrap_err();

        assert_eq!(locations(&errors), ["input.headers"]);
    }

    #[test]
    fn numeric_bounds_are_checked() {
        let mut input = draft("https://example.com/");
        input.retries = Some(MAX_RETRIES + 1);
        input.initial_backoff = Some(0);
        input.backoff_multiplier = Some(0.5);
        input.secret = Some(SecretText("nope".to_owned()));

        let errors = input.validate_new("input").unwrap_err();

        assert_eq!(
            locations(&errors),
            [
                "input.retries",
                "input.initialBackoff",
                "input.backoffMultiplier",
                "input.secret"
            ]
        );
        assert!(errors[3].value.is_none(), "a secret is never echoed");
    }

    #[test]
    fn event_filters_round_trip() {
        let events = [EventKind::Verified, EventKind::StatusChanged];
        let stored = encode_events(&events);

        assert_eq!(decode_events(&stored), events);
        assert!(wants(&stored, EventKind::Verified));
        assert!(!wants(&stored, EventKind::NewConnection));
        assert!(wants("", EventKind::NewConnection));
    }
}
