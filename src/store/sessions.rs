//! Creating, reading, listing and expiring verify sessions.

use chrono::{DateTime, Utc};
use entity::{verify_key, verify_session};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use uuid::Uuid;

use super::views::{EventDraft, load_view, load_views, lock_session, state_of};
use super::webhooks::{NewWebhook, insert_webhooks};
use super::{SessionView, Store, StoreResult, WriteTx};
use crate::domain::identifiers::new_connection_identifier;
use crate::domain::keys::PublicKeyInfo;
use crate::domain::session::{EventKind, FailureReason, SessionStatus};

/// A session to create; every field already validated.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub keys: Vec<NewKey>,
    pub external_id: Option<String>,
    pub match_all_keys: bool,
    pub max_attempts: i32,
    pub multi_connection: bool,
    pub multi_key: bool,
    pub must_confirm: bool,
    pub ssh_banner: Option<String>,
    pub ssh_message: Option<String>,
    pub expired_at: DateTime<Utc>,
    /// Hash of the session's client token.
    pub client_token_hash: String,
    /// Webhooks, created with the session.
    pub webhooks: Vec<NewWebhook>,
}

/// A configured key of a new session.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub key: PublicKeyInfo,
    pub name: Option<String>,
    pub external_id: Option<String>,
}

/// Filters for listing sessions.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub status: Option<SessionStatus>,
    pub external_id: Option<String>,
    /// Only sessions older than this one (keyset pagination, newest first).
    pub before_id: Option<Uuid>,
}

/// One page of sessions, newest first.
#[derive(Debug, Clone)]
pub struct SessionPage {
    pub sessions: Vec<SessionView>,
    pub has_next_page: bool,
}

impl SessionFilter {
    /// The query condition: the project's sessions that match every given filter.
    pub(crate) fn condition(&self, project_id: Uuid) -> Condition {
        let mut condition = Condition::all().add(verify_session::Column::ProjectId.eq(project_id));
        if let Some(status) = self.status {
            condition = condition.add(verify_session::Column::Status.eq(status.as_str()));
        }
        if let Some(external_id) = &self.external_id {
            condition = condition.add(verify_session::Column::ExternalId.eq(external_id.as_str()));
        }
        if let Some(before) = self.before_id {
            condition = condition.add(verify_session::Column::Id.lt(before));
        }
        condition
    }
}

impl Store {
    /// Creates a session and its keys in one transaction.
    pub async fn create_session(
        &self,
        project_id: Uuid,
        new: NewSession,
    ) -> StoreResult<SessionView> {
        let now = Utc::now();
        let session_id = Uuid::now_v7();

        let tx = self.begin_write().await?;
        let session = verify_session::ActiveModel {
            id: Set(session_id),
            project_id: Set(project_id),
            connection_identifier: Set(new_connection_identifier()),
            status: Set(SessionStatus::Pending.as_str().to_owned()),
            failure_reason: Set(None),
            external_id: Set(new.external_id),
            match_all_keys: Set(new.match_all_keys),
            max_attempts: Set(new.max_attempts),
            failed_attempts: Set(0),
            multi_connection: Set(new.multi_connection),
            multi_key: Set(new.multi_key),
            must_confirm: Set(new.must_confirm),
            ssh_banner: Set(new.ssh_banner),
            ssh_message: Set(new.ssh_message),
            client_token_hash: Set(new.client_token_hash),
            event_seq: Set(0),
            created_at: Set(now),
            updated_at: Set(now),
            expired_at: Set(new.expired_at),
            completed_at: Set(None),
        }
        .insert(&tx.tx)
        .await?;
        let mut keys = Vec::with_capacity(new.keys.len());
        for (position, key) in new.keys.into_iter().enumerate() {
            let row = verify_key::ActiveModel {
                id: Set(Uuid::now_v7()),
                session_id: Set(session_id),
                position: Set(i32::try_from(position).unwrap_or(i32::MAX)),
                name: Set(key.name),
                external_id: Set(key.external_id),
                public_key_algorithm: Set(key.key.algorithm),
                public_key_ssh: Set(key.key.public_key_ssh),
                public_key_pem: Set(key.key.public_key_pem),
                public_key_md5: Set(key.key.md5),
                public_key_sha256: Set(key.key.sha256),
                verified_at: Set(None),
            }
            .insert(&tx.tx)
            .await?;
            keys.push(row);
        }
        insert_webhooks(&tx.tx, project_id, session_id, 0, new.webhooks).await?;
        tx.tx.commit().await?;

        Ok(SessionView {
            session,
            keys,
            connections: Vec::new(),
        })
    }

    /// The session `id` if it belongs to `project_id`.
    pub async fn session_view(
        &self,
        project_id: Uuid,
        id: Uuid,
    ) -> StoreResult<Option<SessionView>> {
        let session = verify_session::Entity::find_by_id(id)
            .filter(verify_session::Column::ProjectId.eq(project_id))
            .one(self.db())
            .await?;

        match session {
            Some(session) => Ok(Some(load_view(self.db(), session).await?)),
            None => Ok(None),
        }
    }

    /// The session whose client token hashes to `token_hash`.
    pub async fn session_by_client_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<verify_session::Model>> {
        Ok(verify_session::Entity::find()
            .filter(verify_session::Column::ClientTokenHash.eq(token_hash))
            .one(self.db())
            .await?)
    }

    /// Up to `first` sessions of the project matching `filter`, newest first.
    pub async fn list_sessions(
        &self,
        project_id: Uuid,
        filter: &SessionFilter,
        first: u64,
    ) -> StoreResult<SessionPage> {
        // UUIDv7 ids grow with creation time, so id order is creation order.
        let mut rows = verify_session::Entity::find()
            .filter(filter.condition(project_id))
            .order_by_desc(verify_session::Column::Id)
            .limit(first + 1)
            .all(self.db())
            .await?;
        let has_next_page = rows.len() as u64 > first;
        rows.truncate(first as usize);
        let sessions = load_views(self.db(), rows).await?;

        Ok(SessionPage {
            sessions,
            has_next_page,
        })
    }

    /// Rule 8 and 9: fails every pending session whose expiry has passed, and closes every
    /// verified multi-connection session whose expiry has passed as if completed. Returns how
    /// many changed.
    pub async fn expire_due(&self, now: DateTime<Utc>) -> StoreResult<usize> {
        let due: Vec<Uuid> = verify_session::Entity::find()
            .select_only()
            .column(verify_session::Column::Id)
            .filter(
                Condition::any()
                    .add(verify_session::Column::Status.eq(SessionStatus::Pending.as_str()))
                    .add(
                        Condition::all()
                            .add(
                                verify_session::Column::Status.eq(SessionStatus::Verified.as_str()),
                            )
                            .add(verify_session::Column::MultiConnection.eq(true))
                            .add(verify_session::Column::CompletedAt.is_null()),
                    ),
            )
            .filter(verify_session::Column::ExpiredAt.lte(now))
            .limit(500)
            .into_tuple()
            .all(self.db())
            .await?;

        let mut expired = 0;
        for session_id in due {
            if self.expire_one(session_id, now).await? {
                expired += 1;
            }
        }

        Ok(expired)
    }

    async fn expire_one(&self, session_id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
        let tx = self.begin_write().await?;
        let Some(session) = lock_session(self, &tx, session_id).await? else {
            return Ok(false);
        };
        let state = state_of(&session);
        let mut active: verify_session::ActiveModel = session.into();
        if state.expires(now) {
            active.status = Set(SessionStatus::Failed.as_str().to_owned());
            active.failure_reason = Set(Some(FailureReason::Expired.as_str().to_owned()));
        } else if state.closes_by_expiry(now) {
            active.completed_at = Set(Some(now));
        } else {
            return Ok(false);
        }
        active.update(&tx.tx).await?;
        self.commit_with_events(tx, session_id, &[EventDraft::new(EventKind::StatusChanged)])
            .await?;

        Ok(true)
    }
}

/// Why a session cannot be completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompleteRefusal {
    /// Only multi-connection sessions are completed; the others close by themselves.
    NotMultiConnection,
    /// A multi-connection session is completed after it verified; before that, delete it.
    NotVerified,
}

impl Store {
    /// Closes a verified multi-connection session to new connections (`STATUS_CHANGED`).
    /// Completing a completed session changes nothing. `None` when the project has no such
    /// session.
    pub async fn complete_session(
        &self,
        project_id: Uuid,
        session_id: Uuid,
    ) -> StoreResult<Option<Result<SessionView, CompleteRefusal>>> {
        let now = Utc::now();
        let tx = self.begin_write().await?;
        let session = match lock_session(self, &tx, session_id).await? {
            Some(session) if session.project_id == project_id => session,
            _ => return Ok(None),
        };
        if !session.multi_connection {
            return Ok(Some(Err(CompleteRefusal::NotMultiConnection)));
        }
        if session.completed_at.is_some() {
            let view = load_view(&tx.tx, session).await?;
            return Ok(Some(Ok(view)));
        }
        if state_of(&session).status != SessionStatus::Verified {
            return Ok(Some(Err(CompleteRefusal::NotVerified)));
        }

        let mut active: verify_session::ActiveModel = session.into();
        active.completed_at = Set(Some(now));
        active.update(&tx.tx).await?;
        let events = self
            .commit_with_events(tx, session_id, &[EventDraft::new(EventKind::StatusChanged)])
            .await?;
        let view = events
            .first()
            .map(|event| (*event.session).clone())
            .ok_or(super::StoreError::Corrupt("completion produced no event"))?;

        Ok(Some(Ok(view)))
    }

    /// Deletes a session with everything attributed to it. Returns whether it existed.
    pub async fn delete_session(&self, project_id: Uuid, session_id: Uuid) -> StoreResult<bool> {
        let tx = self.begin_write().await?;
        let result = verify_session::Entity::delete_many()
            .filter(verify_session::Column::Id.eq(session_id))
            .filter(verify_session::Column::ProjectId.eq(project_id))
            .exec(&tx.tx)
            .await?;
        if result.rows_affected > 0 {
            self.notify_deleted(&tx.tx, session_id).await?;
        }
        let WriteTx { tx, writer } = tx;
        tx.commit().await?;
        if result.rows_affected > 0 {
            self.bus().publish_deleted(session_id);
        }
        drop(writer);

        Ok(result.rows_affected > 0)
    }
}
