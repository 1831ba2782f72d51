//! Output types of the GraphQL schema.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{connection_key, verify_connection, verify_key};

use super::webhooks::Webhook;
use crate::domain::session::{self, EventKind};
use crate::public::PublicSsh;
use crate::store::{ConnectionView, SessionEvent, SessionView};

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum VerifySessionStatus {
    Pending,
    Verified,
    Failed,
}

impl From<session::SessionStatus> for VerifySessionStatus {
    fn from(status: session::SessionStatus) -> Self {
        match status {
            session::SessionStatus::Pending => Self::Pending,
            session::SessionStatus::Verified => Self::Verified,
            session::SessionStatus::Failed => Self::Failed,
        }
    }
}

impl From<VerifySessionStatus> for session::SessionStatus {
    fn from(status: VerifySessionStatus) -> Self {
        match status {
            VerifySessionStatus::Pending => Self::Pending,
            VerifySessionStatus::Verified => Self::Verified,
            VerifySessionStatus::Failed => Self::Failed,
        }
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
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

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum VerifySessionEventKind {
    /// The current state, sent first on every subscription and after any gap.
    Snapshot,
    NewConnection,
    Verified,
    FailedAttempt,
    StatusChanged,
}

impl From<EventKind> for VerifySessionEventKind {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::NewConnection => Self::NewConnection,
            EventKind::Verified => Self::Verified,
            EventKind::FailedAttempt => Self::FailedAttempt,
            EventKind::StatusChanged => Self::StatusChanged,
        }
    }
}

/// A verify session: the keys to prove, its options, its connections and its status.
#[derive(Clone)]
pub struct VerifySession(pub Arc<SessionView>);

#[Object]
impl VerifySession {
    async fn id(&self) -> ID {
        ID(self.0.session.id.to_string())
    }

    /// The SSH user name that attributes a connection to this session.
    async fn connection_identifier(&self) -> &str {
        &self.0.session.connection_identifier
    }

    /// A ready-to-copy `ssh` command.
    async fn ssh_command(&self, ctx: &Context<'_>) -> String {
        ctx.data_unchecked::<PublicSsh>()
            .ssh_command(&self.0.session.connection_identifier)
    }

    async fn status(&self) -> VerifySessionStatus {
        self.0.status().into()
    }

    async fn failure_reason(&self) -> Option<FailureReason> {
        self.0.failure_reason().map(Into::into)
    }

    async fn external_id(&self) -> Option<&str> {
        self.0.session.external_id.as_deref()
    }

    async fn keys(&self) -> Vec<VerifyKey> {
        self.0.keys.iter().cloned().map(VerifyKey).collect()
    }

    async fn connections(&self) -> Vec<VerifyConnection> {
        self.0
            .connections
            .iter()
            .map(|connection| VerifyConnection::new(connection, &self.0.keys))
            .collect()
    }

    async fn match_all_keys(&self) -> bool {
        self.0.session.match_all_keys
    }

    async fn max_attempts(&self) -> i32 {
        self.0.session.max_attempts
    }

    async fn failed_attempts(&self) -> i32 {
        self.0.session.failed_attempts
    }

    async fn multi_connection(&self) -> bool {
        self.0.session.multi_connection
    }

    async fn multi_key(&self) -> bool {
        self.0.session.multi_key
    }

    async fn must_confirm(&self) -> bool {
        self.0.session.must_confirm
    }

    async fn ssh_banner(&self) -> Option<&str> {
        self.0.session.ssh_banner.as_deref()
    }

    async fn ssh_message(&self) -> Option<&str> {
        self.0.session.ssh_message.as_deref()
    }

    /// Webhook endpoints of this session. Client tokens see them without secret, headers,
    /// deliveries or URL query.
    async fn webhooks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Webhook>> {
        Ok(super::webhooks::session_webhooks(ctx, self.0.session.id).await?)
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.session.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.session.updated_at
    }

    async fn expired_at(&self) -> DateTime<Utc> {
        self.0.session.expired_at
    }

    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.session.completed_at
    }
}

/// A key configured on a session.
#[derive(Clone)]
pub struct VerifyKey(pub verify_key::Model);

#[Object]
impl VerifyKey {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    async fn name(&self) -> Option<&str> {
        self.0.name.as_deref()
    }

    async fn external_id(&self) -> Option<&str> {
        self.0.external_id.as_deref()
    }

    async fn public_key_algorithm(&self) -> &str {
        &self.0.public_key_algorithm
    }

    /// One line, `algorithm base64`, no comment.
    async fn public_key_ssh(&self) -> &str {
        &self.0.public_key_ssh
    }

    /// SPKI PEM (`BEGIN PUBLIC KEY`).
    async fn public_key_pem(&self) -> &str {
        &self.0.public_key_pem
    }

    /// As `ssh-keygen -l -E md5` prints it.
    async fn public_key_md5(&self) -> &str {
        &self.0.public_key_md5
    }

    /// As `ssh-keygen -l -E sha256` prints it.
    async fn public_key_sha256(&self) -> &str {
        &self.0.public_key_sha256
    }

    /// When a client first proved this key by signing with it.
    async fn verified_at(&self) -> Option<DateTime<Utc>> {
        self.0.verified_at
    }
}

/// An SSH connection attributed to a session.
#[derive(Clone, SimpleObject)]
pub struct VerifyConnection {
    pub id: ID,
    /// The client's address (from the PROXY protocol header when enabled).
    pub ip_address: String,
    /// The identification line the client sent, e.g. `SSH-2.0-OpenSSH_9.6`.
    pub client_version: String,
    pub created_at: DateTime<Utc>,
    /// Every distinct key the client offered on this connection.
    pub keys: Vec<ConnectionKey>,
}

impl VerifyConnection {
    pub fn new(view: &ConnectionView, configured: &[verify_key::Model]) -> Self {
        Self::from_parts(&view.connection, &view.keys, configured)
    }

    pub fn from_parts(
        connection: &verify_connection::Model,
        keys: &[connection_key::Model],
        configured: &[verify_key::Model],
    ) -> Self {
        Self {
            id: ID(connection.id.to_string()),
            ip_address: connection.ip_address.clone(),
            client_version: connection.client_version.clone(),
            created_at: connection.created_at,
            keys: keys
                .iter()
                .map(|key| ConnectionKey::new(key, configured))
                .collect(),
        }
    }
}

/// A key a client offered on a connection.
#[derive(Clone, SimpleObject)]
pub struct ConnectionKey {
    pub id: ID,
    /// The configured key this offer matches, if any.
    pub matched_key_id: Option<ID>,
    /// Name of the matched configured key.
    pub name: Option<String>,
    /// External id of the matched configured key.
    pub external_id: Option<String>,
    pub public_key_algorithm: String,
    pub public_key_ssh: String,
    pub public_key_pem: String,
    pub public_key_md5: String,
    pub public_key_sha256: String,
    /// Set only when the client signed with this key and the signature checked out.
    pub verified_at: Option<DateTime<Utc>>,
}

impl ConnectionKey {
    fn new(key: &connection_key::Model, configured: &[verify_key::Model]) -> Self {
        let matched = key
            .matched_key_id
            .and_then(|id| configured.iter().find(|k| k.id == id));
        Self {
            id: ID(key.id.to_string()),
            matched_key_id: key.matched_key_id.map(|id| ID(id.to_string())),
            name: matched.and_then(|k| k.name.clone()),
            external_id: matched.and_then(|k| k.external_id.clone()),
            public_key_algorithm: key.public_key_algorithm.clone(),
            public_key_ssh: key.public_key_ssh.clone(),
            public_key_pem: key.public_key_pem.clone(),
            public_key_md5: key.public_key_md5.clone(),
            public_key_sha256: key.public_key_sha256.clone(),
            verified_at: key.verified_at,
        }
    }
}

/// One change of a session, or a snapshot of it.
#[derive(Clone)]
pub struct VerifySessionEvent {
    pub kind: VerifySessionEventKind,
    pub session: Arc<SessionView>,
    pub event: Option<Arc<SessionEvent>>,
    pub occurred_at: DateTime<Utc>,
}

#[Object]
impl VerifySessionEvent {
    async fn kind(&self) -> VerifySessionEventKind {
        self.kind
    }

    /// The session as of this event.
    async fn session(&self) -> VerifySession {
        VerifySession(self.session.clone())
    }

    /// The connection the event is about, if any.
    async fn connection(&self) -> Option<VerifyConnection> {
        let id = self.event.as_ref()?.connection_id?;
        let view = self
            .session
            .connections
            .iter()
            .find(|c| c.connection.id == id)?;
        Some(VerifyConnection::new(view, &self.session.keys))
    }

    /// The configured key the event is about (for `VERIFIED`).
    async fn key(&self) -> Option<VerifyKey> {
        let id = self.event.as_ref()?.key_id?;
        self.session
            .keys
            .iter()
            .find(|k| k.id == id)
            .cloned()
            .map(VerifyKey)
    }

    async fn occurred_at(&self) -> DateTime<Utc> {
        self.occurred_at
    }
}

/// An SSH host key of this server.
#[derive(Clone, SimpleObject)]
pub struct SshHostKey {
    pub algorithm: String,
    pub public_key_ssh: String,
    pub fingerprint_sha256: String,
}

/// The caller's project and credential.
#[derive(Clone, SimpleObject)]
pub struct AuthInfo {
    pub project: Project,
    /// The API key used.
    pub api_key: ApiKeyInfo,
}

#[derive(Clone, SimpleObject)]
pub struct Project {
    pub id: ID,
    pub name: String,
}

#[derive(Clone, SimpleObject)]
pub struct ApiKeyInfo {
    pub id: ID,
    pub name: String,
}
