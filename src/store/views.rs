//! What readers get: a session with its keys and connections, and committed events.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use entity::{connection_key, session_event, verify_connection, verify_key, verify_session};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::{Store, StoreError, StoreResult, WriteTx};
use crate::domain::session::{EventKind, FailureReason, MatchRule, SessionState, SessionStatus};

/// A session with everything attributed to it, as of one moment.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub session: verify_session::Model,
    pub keys: Vec<verify_key::Model>,
    pub connections: Vec<ConnectionView>,
}

/// A connection with the distinct keys it offered.
#[derive(Debug, Clone)]
pub struct ConnectionView {
    pub connection: verify_connection::Model,
    pub keys: Vec<connection_key::Model>,
}

/// An event that has been committed, with the session as of that commit.
#[derive(Debug, Clone)]
pub struct SessionEvent {
    pub id: Uuid,
    pub session_id: Uuid,
    pub project_id: Uuid,
    pub seq: i64,
    pub kind: EventKind,
    pub connection_id: Option<Uuid>,
    pub key_id: Option<Uuid>,
    pub connection_key_id: Option<Uuid>,
    pub occurred_at: DateTime<Utc>,
    pub session: Arc<SessionView>,
}

/// An event to be written in the current transaction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventDraft {
    pub kind: EventKind,
    pub connection_id: Option<Uuid>,
    pub key_id: Option<Uuid>,
    pub connection_key_id: Option<Uuid>,
}

impl EventDraft {
    pub fn new(kind: EventKind) -> Self {
        Self {
            kind,
            connection_id: None,
            key_id: None,
            connection_key_id: None,
        }
    }

    pub fn on_connection(mut self, connection_id: Uuid) -> Self {
        self.connection_id = Some(connection_id);
        self
    }
}

impl SessionView {
    pub fn status(&self) -> SessionStatus {
        status_of(&self.session)
    }

    pub fn failure_reason(&self) -> Option<FailureReason> {
        self.session
            .failure_reason
            .as_deref()
            .and_then(FailureReason::parse)
    }

    pub fn state(&self) -> SessionState {
        state_of(&self.session)
    }
}

pub(crate) fn status_of(session: &verify_session::Model) -> SessionStatus {
    // Only the store writes this column, always from `SessionStatus::as_str`.
    SessionStatus::parse(&session.status).unwrap_or(SessionStatus::Failed)
}

pub(crate) fn state_of(session: &verify_session::Model) -> SessionState {
    SessionState {
        status: status_of(session),
        failure_reason: session
            .failure_reason
            .as_deref()
            .and_then(FailureReason::parse),
        failed_attempts: session.failed_attempts,
        max_attempts: session.max_attempts,
        multi_connection: session.multi_connection,
        expired_at: session.expired_at,
        completed_at: session.completed_at,
    }
}

pub(crate) fn rule_of(session: &verify_session::Model) -> MatchRule {
    MatchRule {
        match_all_keys: session.match_all_keys,
        multi_key: session.multi_key,
    }
}

/// Loads a session's keys and connections.
pub(crate) async fn load_view<C: ConnectionTrait>(
    db: &C,
    session: verify_session::Model,
) -> StoreResult<SessionView> {
    let mut views = load_views(db, vec![session]).await?;
    views
        .pop()
        .ok_or(StoreError::Corrupt("a loaded session vanished"))
}

/// Loads the keys and connections of many sessions with one query per table, keeping the
/// sessions' order.
pub(crate) async fn load_views<C: ConnectionTrait>(
    db: &C,
    sessions: Vec<verify_session::Model>,
) -> StoreResult<Vec<SessionView>> {
    if sessions.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = sessions.iter().map(|session| session.id).collect();
    let keys = verify_key::Entity::find()
        .filter(verify_key::Column::SessionId.is_in(ids.clone()))
        .order_by_asc(verify_key::Column::Position)
        .all(db)
        .await?;
    let connections = verify_connection::Entity::find()
        .filter(verify_connection::Column::SessionId.is_in(ids.clone()))
        .order_by_asc(verify_connection::Column::CreatedAt)
        .order_by_asc(verify_connection::Column::Id)
        .all(db)
        .await?;
    let offered = connection_key::Entity::find()
        .filter(connection_key::Column::SessionId.is_in(ids))
        .order_by_asc(connection_key::Column::CreatedAt)
        .order_by_asc(connection_key::Column::Id)
        .all(db)
        .await?;

    let mut keys_by_session: HashMap<Uuid, Vec<verify_key::Model>> = HashMap::new();
    for key in keys {
        keys_by_session.entry(key.session_id).or_default().push(key);
    }
    let mut offered_by_connection: HashMap<Uuid, Vec<connection_key::Model>> = HashMap::new();
    for key in offered {
        offered_by_connection
            .entry(key.connection_id)
            .or_default()
            .push(key);
    }
    let mut connections_by_session: HashMap<Uuid, Vec<ConnectionView>> = HashMap::new();
    for connection in connections {
        let keys = offered_by_connection
            .remove(&connection.id)
            .unwrap_or_default();
        let views = connections_by_session
            .entry(connection.session_id)
            .or_default();
        views.push(ConnectionView { connection, keys });
    }

    Ok(sessions
        .into_iter()
        .map(|session| SessionView {
            keys: keys_by_session.remove(&session.id).unwrap_or_default(),
            connections: connections_by_session
                .remove(&session.id)
                .unwrap_or_default(),
            session,
        })
        .collect())
}

/// Reads a session row, locked for update on PostgreSQL (SQLite is serialised by the writer
/// lock already).
pub(crate) async fn lock_session(
    store: &Store,
    tx: &WriteTx,
    session_id: Uuid,
) -> StoreResult<Option<verify_session::Model>> {
    let query = verify_session::Entity::find_by_id(session_id);
    let query = match store.backend() {
        sea_orm::DbBackend::Postgres => query.lock_exclusive(),
        _ => query,
    };

    Ok(query.one(&tx.tx).await?)
}

impl Store {
    /// Writes `drafts` as the session's next events, commits, then publishes them.
    pub(crate) async fn commit_with_events(
        &self,
        tx: WriteTx,
        session_id: Uuid,
        drafts: &[EventDraft],
    ) -> StoreResult<Vec<Arc<SessionEvent>>> {
        if drafts.is_empty() {
            tx.tx.commit().await?;
            return Ok(Vec::new());
        }

        let now = Utc::now();
        let session = verify_session::Entity::find_by_id(session_id)
            .one(&tx.tx)
            .await?
            .ok_or(StoreError::Corrupt(
                "session vanished inside its transaction",
            ))?;
        let mut rows = Vec::with_capacity(drafts.len());
        let mut seq = session.event_seq;
        for draft in drafts {
            seq += 1;
            let row = session_event::ActiveModel {
                id: Set(Uuid::now_v7()),
                session_id: Set(session_id),
                seq: Set(seq),
                kind: Set(draft.kind.as_str().to_owned()),
                connection_id: Set(draft.connection_id),
                key_id: Set(draft.key_id),
                connection_key_id: Set(draft.connection_key_id),
                occurred_at: Set(now),
            }
            .insert(&tx.tx)
            .await?;
            rows.push(row);
        }
        let mut active: verify_session::ActiveModel = session.into();
        active.event_seq = Set(seq);
        active.updated_at = Set(now);
        let session = active.update(&tx.tx).await?;
        let view = Arc::new(load_view(&tx.tx, session).await?);
        // The outbox: deliveries commit with the events they announce, or not at all.
        super::webhooks::enqueue_deliveries(&tx.tx, &view, &rows).await?;

        let first_seq = seq + 1 - drafts.len() as i64;
        self.notify_events(&tx.tx, session_id, first_seq, seq)
            .await?;

        let WriteTx { tx, writer } = tx;
        tx.commit().await?;

        let events: Vec<Arc<SessionEvent>> = rows
            .into_iter()
            .zip(drafts)
            .map(|(row, draft)| {
                Arc::new(SessionEvent {
                    id: row.id,
                    session_id,
                    project_id: view.session.project_id,
                    seq: row.seq,
                    kind: draft.kind,
                    connection_id: row.connection_id,
                    key_id: row.key_id,
                    connection_key_id: row.connection_key_id,
                    occurred_at: row.occurred_at,
                    session: view.clone(),
                })
            })
            .collect();
        // On SQLite this runs before the writer lock is released, so events reach the bus in
        // commit order. On PostgreSQL they may not (and other replicas' events arrive later
        // still): readers put them in order by `seq` and re-read any gap.
        for event in &events {
            self.bus.publish(event.clone());
        }
        drop(writer);

        Ok(events)
    }
}
