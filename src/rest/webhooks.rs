//! Webhooks over REST: their body in sessions, the body of
//! `PUT /ssh/verify/sessions/{session}/webhooks/{webhook}/` and that endpoint. Secrets are
//! write-only here (GraphQL shows them to API keys).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use entity::webhook;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::bodies::Time;
use super::context::{JsonBody, Links, PathParams, ProjectKey, Services, parse_session_id};
use super::decode::Decoder;
use super::handlers::{Answer, json, not_found};
use super::problem::{Problem, ProblemError};
use crate::domain::session::EventKind;
use crate::graphql::webhooks::{self as graphql, WebhookHeaderInput, WebhookInput};
use crate::store::WebhookChanges;
use crate::webhooks::settings::{
    DEFAULT_BACKOFF_MULTIPLIER, DEFAULT_INITIAL_BACKOFF, DEFAULT_RETRIES, HttpMethod, WebhookDraft,
    check_target, decode_events, decode_headers,
};

/// `PUT /ssh/verify/sessions/{session}/webhooks/{webhook}/`
pub async fn replace_webhook(
    key: ProjectKey,
    services: Services,
    links: Links,
    PathParams((session, webhook)): PathParams<(String, String)>,
    JsonBody(body): JsonBody,
) -> Answer {
    let session_id = parse_session_id(&session)?;
    let webhook_id = Uuid::parse_str(&webhook).map_err(|_| no_such_webhook())?;

    // The webhook must belong to this session of the caller's project.
    services
        .store
        .session_view(key.project_id, session_id)
        .await?
        .ok_or_else(not_found)?;
    let belongs = services
        .store
        .session_webhooks(session_id)
        .await?
        .iter()
        .any(|webhook| webhook.id == webhook_id);
    if !belongs {
        return Err(no_such_webhook());
    }
    let changes = validate_webhook_replacement(&body)?;
    if let Some(url) = &changes.url {
        check_target(services.webhook_targets, url, "body.url")
            .await
            .map_err(|error| Problem::bad_input(vec![ProblemError::from(error)]))?;
    }
    let model = services
        .store
        .update_webhook(key.project_id, webhook_id, changes)
        .await?
        .ok_or_else(no_such_webhook)?;
    tracing::info!(%session_id, %webhook_id, "webhook replaced");
    let body = Webhook::new(&model, &links);

    json(StatusCode::OK, &body.schema, &body)
}

fn no_such_webhook() -> Problem {
    Problem::not_found("the session has no such webhook")
}

/// A webhook endpoint of a session. Its signing secret is never shown.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Webhook {
    /// The JSON Schema of this body.
    #[serde(rename = "$schema")]
    pub schema: String,
    /// Each further retry waits this many times longer.
    pub backoff_multiplier: f64,
    pub created_at: Time,
    /// The events sent; empty means every event.
    pub events: Vec<WebhookEvent>,
    /// Custom headers, name to values.
    pub headers: BTreeMap<String, Vec<String>>,
    pub id: Uuid,
    /// Seconds before the first retry.
    pub initial_backoff: i32,
    pub method: WebhookMethod,
    /// Retries after a failed first attempt.
    pub retries: i32,
    pub updated_at: Time,
    pub url: String,
}

/// The HTTP method of webhook requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum WebhookMethod {
    Post,
    Put,
    Patch,
}

/// An event a webhook can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    NewConnection,
    Verified,
    FailedAttempt,
    StatusChanged,
}

/// A webhook endpoint: in a create body, or the whole new settings of `PUT …/webhooks/{id}/`.
#[derive(Debug, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// The JSON Schema of this body; accepted and ignored.
    #[serde(rename = "$schema")]
    pub _schema: Option<String>,
    /// `http` or `https` URL to send events to.
    pub url: String,
    #[schemars(extend("default" = "POST"))]
    pub method: Option<WebhookMethod>,
    /// Custom headers, name to values. They cannot replace the headers keyproof sets.
    pub headers: Option<BTreeMap<String, Vec<String>>>,
    /// The events to send; empty or absent for all of them.
    pub events: Option<Vec<WebhookEvent>>,
    /// Retries after a failed first attempt.
    #[schemars(extend("default" = DEFAULT_RETRIES))]
    pub retries: Option<i32>,
    /// Seconds before the first retry.
    #[schemars(extend("default" = DEFAULT_INITIAL_BACKOFF))]
    pub initial_backoff: Option<i32>,
    /// Each further retry waits this many times longer.
    #[schemars(extend("default" = DEFAULT_BACKOFF_MULTIPLIER))]
    pub backoff_multiplier: Option<f64>,
    /// Signing secret, `whsec_` and base64. Write-only: responses never show it. Generated when
    /// a webhook is created without one; kept as it is when a `PUT` leaves it out.
    pub secret: Option<String>,
}

const WEBHOOK_FIELDS: [&str; 9] = [
    "$schema",
    "url",
    "method",
    "headers",
    "events",
    "retries",
    "initial_backoff",
    "backoff_multiplier",
    "secret",
];
const METHODS: [(&str, WebhookMethod); 3] = [
    ("POST", WebhookMethod::Post),
    ("PUT", WebhookMethod::Put),
    ("PATCH", WebhookMethod::Patch),
];
const EVENTS: [(&str, WebhookEvent); 4] = [
    ("new_connection", WebhookEvent::NewConnection),
    ("verified", WebhookEvent::Verified),
    ("failed_attempt", WebhookEvent::FailedAttempt),
    ("status_changed", WebhookEvent::StatusChanged),
];

/// Decodes and validates the body of `PUT …/webhooks/{id}/` into the webhook's new settings:
/// every setting the body leaves out returns to its default, except the secret, which stays.
pub fn validate_webhook_replacement(body: &Value) -> Result<WebhookChanges, Problem> {
    let mut decoder = Decoder::default();
    let request = decode_webhook(&mut decoder, "body", body);
    let keep_secret = request.secret.is_none();

    let draft = WebhookDraft::from(WebhookInput::from(request));
    let new = match draft.validate_new("input") {
        Ok(new) if !decoder.has_errors() => new,
        Ok(_) => return Err(decoder.into_problem()),
        Err(errors) => return Err(decoder.finish(errors)),
    };

    Ok(WebhookChanges {
        url: Some(new.url),
        method: Some(new.method),
        headers: Some(new.headers),
        events: Some(new.events),
        retries: Some(new.retries),
        initial_backoff: Some(new.initial_backoff),
        backoff_multiplier: Some(new.backoff_multiplier),
        secret: (!keep_secret).then_some(new.secret),
    })
}

pub(super) fn decode_webhook(
    decoder: &mut Decoder,
    location: &str,
    value: &Value,
) -> WebhookRequest {
    let Some(object) = decoder.object(location, value) else {
        return WebhookRequest::default();
    };
    decoder.refuse_unknown(location, object, &WEBHOOK_FIELDS);
    decoder.require(location, object, "url");
    let at = |name: &str| format!("{location}.{name}");
    let field = |name: &str| object.get(name).unwrap_or(&Value::Null);

    let methods = "POST, PUT or PATCH";
    let events = decoder.array(&at("events"), field("events")).map(|items| {
        let kinds = "new_connection, verified, failed_attempt or status_changed";
        items
            .iter()
            .enumerate()
            .filter_map(|(index, item)| {
                decoder.choice(&format!("{location}.events[{index}]"), item, &EVENTS, kinds)
            })
            .collect()
    });

    WebhookRequest {
        _schema: None,
        url: decoder.string(&at("url"), field("url")).unwrap_or_default(),
        method: decoder.choice(&at("method"), field("method"), &METHODS, methods),
        headers: decode_header_map(decoder, &at("headers"), field("headers")),
        events,
        retries: decoder.integer(&at("retries"), field("retries")),
        initial_backoff: decoder.integer(&at("initial_backoff"), field("initial_backoff")),
        backoff_multiplier: decoder.number(&at("backoff_multiplier"), field("backoff_multiplier")),
        secret: decoder.string(&at("secret"), field("secret")),
    }
}

/// Headers as an object of names to lists of values. The validator reports headers by
/// position; each position is renamed to the header's name.
fn decode_header_map(
    decoder: &mut Decoder,
    location: &str,
    value: &Value,
) -> Option<BTreeMap<String, Vec<String>>> {
    if value.is_null() {
        return None;
    }
    let object: &Map<String, Value> = decoder.object(location, value)?;

    let mut headers = BTreeMap::new();
    for (name, values) in object {
        let at = format!("{location}.{name}");
        let values = decoder
            .array(&at, values)
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(index, item)| decoder.string(&format!("{at}[{index}]"), item))
            .map(Option::unwrap_or_default)
            .collect();
        headers.insert(name.clone(), values);
    }
    for (index, name) in headers.keys().enumerate() {
        decoder.rename(format!("{location}[{index}]"), format!("{location}.{name}"));
    }
    Some(headers)
}

impl Webhook {
    pub fn new(model: &webhook::Model, links: &Links) -> Self {
        Self {
            schema: links.schema_url::<Self>(),
            backoff_multiplier: model.backoff_multiplier,
            created_at: Time(model.created_at),
            events: decode_events(&model.events)
                .into_iter()
                .map(Into::into)
                .collect(),
            headers: decode_headers(&model.headers)
                .into_iter()
                .map(|header| (header.name, header.values))
                .collect(),
            id: model.id,
            initial_backoff: model.initial_backoff,
            method: HttpMethod::parse(&model.method).unwrap_or_default().into(),
            retries: model.retries,
            updated_at: Time(model.updated_at),
            url: model.url.clone(),
        }
    }
}

impl From<HttpMethod> for WebhookMethod {
    fn from(method: HttpMethod) -> Self {
        match method {
            HttpMethod::Post => Self::Post,
            HttpMethod::Put => Self::Put,
            HttpMethod::Patch => Self::Patch,
        }
    }
}

impl From<WebhookMethod> for graphql::WebhookMethod {
    fn from(method: WebhookMethod) -> Self {
        match method {
            WebhookMethod::Post => Self::Post,
            WebhookMethod::Put => Self::Put,
            WebhookMethod::Patch => Self::Patch,
        }
    }
}

impl From<EventKind> for WebhookEvent {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::NewConnection => Self::NewConnection,
            EventKind::Verified => Self::Verified,
            EventKind::FailedAttempt => Self::FailedAttempt,
            EventKind::StatusChanged => Self::StatusChanged,
        }
    }
}

impl From<WebhookEvent> for graphql::WebhookEventKind {
    fn from(kind: WebhookEvent) -> Self {
        match kind {
            WebhookEvent::NewConnection => Self::NewConnection,
            WebhookEvent::Verified => Self::Verified,
            WebhookEvent::FailedAttempt => Self::FailedAttempt,
            WebhookEvent::StatusChanged => Self::StatusChanged,
        }
    }
}

impl From<WebhookRequest> for WebhookInput {
    fn from(request: WebhookRequest) -> Self {
        Self {
            url: request.url,
            method: request.method.unwrap_or(WebhookMethod::Post).into(),
            headers: request.headers.map(|headers| {
                headers
                    .into_iter()
                    .map(|(name, values)| WebhookHeaderInput { name, values })
                    .collect()
            }),
            events: request
                .events
                .map(|events| events.into_iter().map(Into::into).collect()),
            retries: request.retries.unwrap_or(DEFAULT_RETRIES),
            initial_backoff: request.initial_backoff.unwrap_or(DEFAULT_INITIAL_BACKOFF),
            backoff_multiplier: request
                .backoff_multiplier
                .unwrap_or(DEFAULT_BACKOFF_MULTIPLIER),
            secret: request.secret,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_fields_are_decoded_with_their_locations() {
        let body = serde_json::json!({
            "method": "DELETE",
            "events": ["verified", "exploded"],
            "headers": {"X-Token": [1]},
            "retries": "many",
        });
        let mut decoder = Decoder::default();

        decode_webhook(&mut decoder, "body.webhooks[0]", &body);

        let Problem { errors, .. } = decoder.into_problem();
        let locations: Vec<&str> = errors.iter().map(|e| e.location.as_str()).collect();
        assert_eq!(
            locations,
            [
                "body.webhooks[0].url",
                "body.webhooks[0].events[1]",
                "body.webhooks[0].method",
                "body.webhooks[0].headers.X-Token[0]",
                "body.webhooks[0].retries",
            ]
        );
    }
}
