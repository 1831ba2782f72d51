//! What a webhook request carries: the JSON envelope and the per-event payload.
//!
//! The payload is built from the session as of the commit that produced the event and stored
//! with the delivery, so every attempt sends the same facts. The envelope around it is built
//! per attempt (`request_time`, `attempt`).

use chrono::{DateTime, SecondsFormat, Utc};
use entity::session_event;
use serde::Serialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::domain::session::EventKind;
use crate::store::SessionView;

/// The `entity` of every envelope.
pub const ENTITY: &str = "verify_session";

/// The JSON body of one request.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    pub entity: &'static str,
    /// The session id.
    pub id: Uuid,
    /// The event kind, snake_case.
    pub event: &'a str,
    pub webhook_id: Uuid,
    /// The delivery id, also sent as `webhook-id`; the same on every attempt.
    pub webhook_invocation_id: Uuid,
    pub trigger_time: String,
    pub request_time: String,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub payload: &'a Value,
}

/// RFC 3339 in UTC with microseconds, as every time in a webhook is written.
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The connection fields shared by `new_connection` and `failed_attempt`.
fn insert_connection(
    payload: &mut Map<String, Value>,
    connection_id: Option<uuid::Uuid>,
    connection: Option<&entity::verify_connection::Model>,
) {
    payload.insert("verify_session_connection_id".into(), json!(connection_id));
    payload.insert(
        "ip_address".into(),
        json!(connection.map(|c| &c.ip_address)),
    );
    payload.insert(
        "client_version".into(),
        json!(connection.map(|c| &c.client_version)),
    );
}

/// The `payload` object of an event, from the session as of its commit.
pub fn event_payload(view: &SessionView, event: &session_event::Model, kind: EventKind) -> Value {
    let session = &view.session;
    let mut payload = Map::new();
    payload.insert("verify_session_id".into(), json!(session.id));
    payload.insert(
        "verify_session_external_id".into(),
        json!(session.external_id),
    );
    payload.insert(
        "verify_session_connection_identifier".into(),
        json!(session.connection_identifier),
    );

    let connection = event.connection_id.and_then(|id| {
        view.connections
            .iter()
            .find(|c| c.connection.id == id)
            .map(|c| &c.connection)
    });
    match kind {
        EventKind::NewConnection => {
            insert_connection(&mut payload, event.connection_id, connection);
        }
        EventKind::Verified => {
            payload.insert(
                "verify_session_connection_id".into(),
                json!(event.connection_id),
            );
            payload.insert("verify_session_key_id".into(), json!(event.key_id));
            payload.insert(
                "verify_session_connection_key_id".into(),
                json!(event.connection_key_id),
            );
            let key = event
                .key_id
                .and_then(|id| view.keys.iter().find(|key| key.id == id));
            payload.insert(
                "public_key_ssh".into(),
                json!(key.map(|k| &k.public_key_ssh)),
            );
            payload.insert(
                "public_key_pem".into(),
                json!(key.map(|k| &k.public_key_pem)),
            );
            payload.insert(
                "public_key_md5".into(),
                json!(key.map(|k| &k.public_key_md5)),
            );
            payload.insert(
                "public_key_sha256".into(),
                json!(key.map(|k| &k.public_key_sha256)),
            );
            payload.insert(
                "public_key_algorithm".into(),
                json!(key.map(|k| &k.public_key_algorithm)),
            );
        }
        EventKind::FailedAttempt => {
            insert_connection(&mut payload, event.connection_id, connection);
            payload.insert("failed_attempts".into(), json!(session.failed_attempts));
            payload.insert("max_attempts".into(), json!(session.max_attempts));
        }
        EventKind::StatusChanged => {
            payload.insert(
                "verify_session_status".into(),
                json!(view.status().as_str()),
            );
            payload.insert(
                "failure_reason".into(),
                json!(view.failure_reason().map(|reason| reason.as_str())),
            );
        }
    }

    Value::Object(payload)
}
