//! Response bodies, field for field as DESIGN §9 lists them (snake_case, every field present,
//! `null` where empty), plus keyproof's own additions. Built from the store's views, exactly as
//! the GraphQL types are, so both APIs show the same values.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use entity::{connection_key, verify_key};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::Serialize;
use uuid::Uuid;

use super::context::Links;
use super::webhooks::Webhook;
use crate::domain::session;
use crate::public::PublicSsh;
use crate::store::{ConnectionView, SessionView};

/// An RFC 3339 time, written exactly as the GraphQL API writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub DateTime<Utc>);

impl Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0.to_rfc3339())
    }
}

impl JsonSchema for Time {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Time".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string", "format": "date-time" })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(rename = "VerifySessionStatus")]
pub enum Status {
    Pending,
    Verified,
    Failed,
}

impl From<session::SessionStatus> for Status {
    fn from(status: session::SessionStatus) -> Self {
        match status {
            session::SessionStatus::Pending => Self::Pending,
            session::SessionStatus::Verified => Self::Verified,
            session::SessionStatus::Failed => Self::Failed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    MaxAttempts,
    Expired,
}

impl From<session::FailureReason> for FailureReason {
    fn from(reason: session::FailureReason) -> Self {
        match reason {
            session::FailureReason::MaxAttempts => Self::MaxAttempts,
            session::FailureReason::Expired => Self::Expired,
        }
    }
}

/// A verify session.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VerifySession {
    /// The JSON Schema of this body.
    #[serde(rename = "$schema")]
    pub schema: String,
    /// When the session was completed (multi-connection sessions only).
    pub completed_at: Option<Time>,
    /// The SSH user name that attributes a connection to this session.
    pub connection_identifier: String,
    /// Every SSH connection attributed to the session, oldest first.
    pub connections: Vec<VerifyConnection>,
    pub created_at: Time,
    pub expired_at: Time,
    /// Your reference for this session.
    pub external_id: Option<String>,
    /// Failed attempts so far.
    pub failed_attempts: i32,
    /// Why the session failed, when `status` is `failed`.
    pub failure_reason: Option<FailureReason>,
    pub id: Uuid,
    /// The configured keys, in the order they were given.
    pub keys: Vec<VerifyKey>,
    pub match_all_keys: bool,
    pub max_attempts: i32,
    pub multi_connection: bool,
    pub multi_key: bool,
    pub must_confirm: bool,
    pub ssh_banner: Option<String>,
    /// A ready-to-copy `ssh` command.
    pub ssh_command: String,
    pub ssh_message: Option<String>,
    pub status: Status,
    pub updated_at: Time,
    /// Webhook endpoints of this session.
    pub webhooks: Vec<Webhook>,
}

/// A key configured on a session.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VerifyKey {
    pub external_id: Option<String>,
    pub id: Uuid,
    pub name: Option<String>,
    pub public_key_algorithm: String,
    /// MD5 fingerprint, as `ssh-keygen -l -E md5` prints it.
    pub public_key_md5: String,
    /// SPKI PEM (`BEGIN PUBLIC KEY`).
    pub public_key_pem: String,
    /// SHA-256 fingerprint, as `ssh-keygen -l -E sha256` prints it.
    pub public_key_sha256: String,
    /// One line, `algorithm base64`, no comment.
    pub public_key_ssh: String,
    /// When a client first proved this key by signing with it.
    pub verified_at: Option<Time>,
}

/// An SSH connection attributed to a session.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VerifyConnection {
    /// The identification line the client sent, e.g. `SSH-2.0-OpenSSH_9.6`.
    pub client_version: String,
    pub created_at: Time,
    pub id: Uuid,
    /// The client's address (from the PROXY protocol header when enabled).
    pub ip_address: String,
    /// Every distinct key the client offered on this connection.
    pub keys: Vec<ConnectionKey>,
}

/// A key a client offered on a connection.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ConnectionKey {
    /// External id of the matched configured key.
    pub external_id: Option<String>,
    pub id: Uuid,
    /// The configured key this offer matches, if any.
    pub matched_key_id: Option<Uuid>,
    /// Name of the matched configured key.
    pub name: Option<String>,
    pub public_key_algorithm: String,
    pub public_key_md5: String,
    pub public_key_pem: String,
    pub public_key_sha256: String,
    pub public_key_ssh: String,
    /// Set only when the client signed with this key and the signature checked out.
    pub verified_at: Option<Time>,
}

/// A new session, with the token a browser may use to follow it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VerifySessionCreated {
    #[serde(flatten)]
    pub session: VerifySession,
    /// Reads and subscribes to this one session only (GraphQL); safe to hand to a browser.
    pub client_token: String,
}

/// One page of sessions, newest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VerifySessionList {
    /// The JSON Schema of this body.
    #[serde(rename = "$schema")]
    pub schema: String,
    pub items: Vec<VerifySession>,
    /// How many sessions match, over all pages.
    pub total: u64,
    pub offset: u64,
    pub limit: u64,
    /// Whether sessions follow this page.
    pub has_more: bool,
}

/// The caller's project and API key.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuthInfo {
    /// The JSON Schema of this body.
    #[serde(rename = "$schema")]
    pub schema: String,
    pub api_key: Named,
    pub project: Named,
}

/// Something with an id and a name.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Named {
    pub id: Uuid,
    pub name: String,
}

impl VerifySession {
    /// The body of `view`; `webhooks` are the session's webhook endpoints.
    pub fn new(
        view: &SessionView,
        webhooks: Vec<Webhook>,
        public: &PublicSsh,
        links: &Links,
    ) -> Self {
        let session = &view.session;
        Self {
            schema: links.schema_url::<Self>(),
            completed_at: session.completed_at.map(Time),
            connection_identifier: session.connection_identifier.clone(),
            connections: view
                .connections
                .iter()
                .map(|connection| VerifyConnection::new(connection, &view.keys))
                .collect(),
            created_at: Time(session.created_at),
            expired_at: Time(session.expired_at),
            external_id: session.external_id.clone(),
            failed_attempts: session.failed_attempts,
            failure_reason: view.failure_reason().map(Into::into),
            id: session.id,
            keys: view.keys.iter().map(VerifyKey::new).collect(),
            match_all_keys: session.match_all_keys,
            max_attempts: session.max_attempts,
            multi_connection: session.multi_connection,
            multi_key: session.multi_key,
            must_confirm: session.must_confirm,
            ssh_banner: session.ssh_banner.clone(),
            ssh_command: public.ssh_command(&session.connection_identifier),
            ssh_message: session.ssh_message.clone(),
            status: view.status().into(),
            updated_at: Time(session.updated_at),
            webhooks,
        }
    }
}

impl VerifyKey {
    fn new(key: &verify_key::Model) -> Self {
        Self {
            external_id: key.external_id.clone(),
            id: key.id,
            name: key.name.clone(),
            public_key_algorithm: key.public_key_algorithm.clone(),
            public_key_md5: key.public_key_md5.clone(),
            public_key_pem: key.public_key_pem.clone(),
            public_key_sha256: key.public_key_sha256.clone(),
            public_key_ssh: key.public_key_ssh.clone(),
            verified_at: key.verified_at.map(Time),
        }
    }
}

impl VerifyConnection {
    fn new(view: &ConnectionView, configured: &[verify_key::Model]) -> Self {
        let connection = &view.connection;
        Self {
            client_version: connection.client_version.clone(),
            created_at: Time(connection.created_at),
            id: connection.id,
            ip_address: connection.ip_address.clone(),
            keys: view
                .keys
                .iter()
                .map(|key| ConnectionKey::new(key, configured))
                .collect(),
        }
    }
}

impl ConnectionKey {
    fn new(key: &connection_key::Model, configured: &[verify_key::Model]) -> Self {
        let matched = key
            .matched_key_id
            .and_then(|id| configured.iter().find(|k| k.id == id));
        Self {
            external_id: matched.and_then(|k| k.external_id.clone()),
            id: key.id,
            matched_key_id: key.matched_key_id,
            name: matched.and_then(|k| k.name.clone()),
            public_key_algorithm: key.public_key_algorithm.clone(),
            public_key_md5: key.public_key_md5.clone(),
            public_key_pem: key.public_key_pem.clone(),
            public_key_sha256: key.public_key_sha256.clone(),
            public_key_ssh: key.public_key_ssh.clone(),
            verified_at: key.verified_at.map(Time),
        }
    }
}
