//! What the SSH server records: connections, offered keys, proofs and failed attempts.

use chrono::Utc;
use entity::{connection_key, verify_connection, verify_key, verify_session};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use uuid::Uuid;

use super::views::{EventDraft, lock_session, state_of};
use super::{Store, StoreResult, WriteTx};
use crate::domain::keys::PublicKeyInfo;
use crate::domain::session::{AttemptOutcome, Closed, EventKind, FailureReason, SessionStatus};

/// A session as the SSH server needs it: its options and configured keys.
#[derive(Debug, Clone)]
pub struct SessionForConnection {
    pub session: verify_session::Model,
    pub keys: Vec<verify_key::Model>,
}

/// An offered key as recorded on a connection.
#[derive(Debug, Clone)]
pub struct OfferRecord {
    pub connection_key_id: Uuid,
    pub matched_key_id: Option<Uuid>,
}

/// What a checked signature did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProofOutcome {
    /// The proof is recorded; `session_verified` says whether this proof turned the session
    /// `VERIFIED` just now.
    Recorded { session_verified: bool },
    /// The session closed meanwhile (failed, expired, completed): nothing was recorded.
    Closed(Closed),
}

impl Store {
    /// The session whose connection identifier is `identifier`, with its keys.
    pub async fn session_for_identifier(
        &self,
        identifier: &str,
    ) -> StoreResult<Option<SessionForConnection>> {
        let session = verify_session::Entity::find()
            .filter(verify_session::Column::ConnectionIdentifier.eq(identifier))
            .one(self.db())
            .await?;
        let Some(session) = session else {
            return Ok(None);
        };
        let keys = verify_key::Entity::find()
            .filter(verify_key::Column::SessionId.eq(session.id))
            .order_by_asc(verify_key::Column::Position)
            .all(self.db())
            .await?;

        Ok(Some(SessionForConnection { session, keys }))
    }

    /// Rule 2: records a connection attributed to an open session (`NEW_CONNECTION`).
    pub async fn record_connection(
        &self,
        session_id: Uuid,
        ip_address: &str,
        client_version: &str,
    ) -> StoreResult<Result<verify_connection::Model, Closed>> {
        let now = Utc::now();
        let tx = self.begin_write().await?;
        let Some(session) = lock_session(self, &tx, session_id).await? else {
            return Ok(Err(Closed::Deleted));
        };
        if let Err(closed) = state_of(&session).check_open(now) {
            return Ok(Err(closed));
        }

        let connection = verify_connection::ActiveModel {
            id: Set(Uuid::now_v7()),
            session_id: Set(session_id),
            ip_address: Set(ip_address.to_owned()),
            client_version: Set(client_version.to_owned()),
            created_at: Set(now),
        }
        .insert(&tx.tx)
        .await?;
        let event = EventDraft::new(EventKind::NewConnection).on_connection(connection.id);
        self.commit_with_events(tx, session_id, &[event]).await?;

        Ok(Ok(connection))
    }

    /// Rule 3: records a distinct key offered on a connection. An offer proves nothing and
    /// changes no status, so it produces no event.
    pub async fn record_offer(
        &self,
        session_id: Uuid,
        connection_id: Uuid,
        key: &PublicKeyInfo,
        matched_key_id: Option<Uuid>,
    ) -> StoreResult<OfferRecord> {
        let tx = self.begin_write().await?;
        let row = connection_key::ActiveModel {
            id: Set(Uuid::now_v7()),
            connection_id: Set(connection_id),
            session_id: Set(session_id),
            matched_key_id: Set(matched_key_id),
            public_key_algorithm: Set(key.algorithm.clone()),
            public_key_ssh: Set(key.public_key_ssh.clone()),
            public_key_pem: Set(key.public_key_pem.clone()),
            public_key_md5: Set(key.md5.clone()),
            public_key_sha256: Set(key.sha256.clone()),
            created_at: Set(Utc::now()),
            verified_at: Set(None),
        }
        .insert(&tx.tx)
        .await?;
        tx.tx.commit().await?;

        Ok(OfferRecord {
            connection_key_id: row.id,
            matched_key_id,
        })
    }

    /// Locks a session that a connection is about to verify. `Ok((session, true))` when it
    /// becomes `VERIFIED` now, `Ok((session, false))` when it already is (multi-connection),
    /// otherwise why it is closed.
    async fn lock_for_verification(
        &self,
        tx: &WriteTx,
        session_id: Uuid,
    ) -> StoreResult<Result<(verify_session::Model, bool), Closed>> {
        let now = Utc::now();
        let Some(session) = lock_session(self, tx, session_id).await? else {
            return Ok(Err(Closed::Deleted));
        };
        let state = state_of(&session);

        Ok(match state.verify(now) {
            Some(becomes_verified) => Ok((session, becomes_verified)),
            None => Err(state.check_open(now).err().unwrap_or(Closed::Expired)),
        })
    }

    /// Rule 4 and 6: a signature over `key_id` checked out on this connection. Records the
    /// proof (`VERIFIED`) and, when `rule_met`, turns the session `VERIFIED`
    /// (`STATUS_CHANGED`) in the same transaction.
    pub async fn record_proof(
        &self,
        session_id: Uuid,
        connection_id: Uuid,
        offer: &OfferRecord,
        key_id: Uuid,
        rule_met: bool,
    ) -> StoreResult<ProofOutcome> {
        let now = Utc::now();
        let tx = self.begin_write().await?;
        let (session, becomes_verified) = match self.lock_for_verification(&tx, session_id).await? {
            Ok(locked) => locked,
            Err(closed) => return Ok(ProofOutcome::Closed(closed)),
        };

        connection_key::Entity::update_many()
            .col_expr(connection_key::Column::VerifiedAt, now.into())
            .filter(connection_key::Column::Id.eq(offer.connection_key_id))
            .filter(connection_key::Column::VerifiedAt.is_null())
            .exec(&tx.tx)
            .await?;
        verify_key::Entity::update_many()
            .col_expr(verify_key::Column::VerifiedAt, now.into())
            .filter(verify_key::Column::Id.eq(key_id))
            .filter(verify_key::Column::SessionId.eq(session_id))
            .filter(verify_key::Column::VerifiedAt.is_null())
            .exec(&tx.tx)
            .await?;
        let mut events = vec![EventDraft {
            kind: EventKind::Verified,
            connection_id: Some(connection_id),
            key_id: Some(key_id),
            connection_key_id: Some(offer.connection_key_id),
        }];

        let session_verified = rule_met && becomes_verified;
        if session_verified {
            let mut active: verify_session::ActiveModel = session.into();
            active.status = Set(SessionStatus::Verified.as_str().to_owned());
            active.update(&tx.tx).await?;
            events.push(EventDraft::new(EventKind::StatusChanged));
        }
        self.commit_with_events(tx, session_id, &events).await?;

        Ok(ProofOutcome::Recorded { session_verified })
    }

    /// Rule 6: the rule is met (and, with `mustConfirm`, confirmed) on a connection whose
    /// proofs are already recorded: the session becomes `VERIFIED` (`STATUS_CHANGED`) unless it
    /// already is.
    pub async fn record_rule_met(&self, session_id: Uuid) -> StoreResult<ProofOutcome> {
        let tx = self.begin_write().await?;
        let (session, becomes_verified) = match self.lock_for_verification(&tx, session_id).await? {
            Ok(locked) => locked,
            Err(closed) => return Ok(ProofOutcome::Closed(closed)),
        };
        if !becomes_verified {
            tx.tx.commit().await?;
            return Ok(ProofOutcome::Recorded {
                session_verified: false,
            });
        }

        let mut active: verify_session::ActiveModel = session.into();
        active.status = Set(SessionStatus::Verified.as_str().to_owned());
        active.update(&tx.tx).await?;
        self.commit_with_events(tx, session_id, &[EventDraft::new(EventKind::StatusChanged)])
            .await?;

        Ok(ProofOutcome::Recorded {
            session_verified: true,
        })
    }

    /// Rule 7: a connection ended without meeting the rule. Counts one failed attempt
    /// (`FAILED_ATTEMPT`) while the session is pending, and fails it at `max_attempts`
    /// (`STATUS_CHANGED`).
    pub async fn record_failed_attempt(
        &self,
        session_id: Uuid,
        connection_id: Uuid,
    ) -> StoreResult<AttemptOutcome> {
        let now = Utc::now();
        let tx = self.begin_write().await?;
        let Some(session) = lock_session(self, &tx, session_id).await? else {
            return Ok(AttemptOutcome::NotCounted);
        };
        let outcome = state_of(&session).failed_attempt(now);

        let mut active: verify_session::ActiveModel = session.into();
        let mut events =
            vec![EventDraft::new(EventKind::FailedAttempt).on_connection(connection_id)];
        match outcome {
            AttemptOutcome::NotCounted => return Ok(outcome),
            AttemptOutcome::Counted { failed_attempts } => {
                active.failed_attempts = Set(failed_attempts);
            }
            AttemptOutcome::CountedAndFailed { failed_attempts } => {
                active.failed_attempts = Set(failed_attempts);
                active.status = Set(SessionStatus::Failed.as_str().to_owned());
                active.failure_reason = Set(Some(FailureReason::MaxAttempts.as_str().to_owned()));
                events.push(EventDraft::new(EventKind::StatusChanged));
            }
        }
        active.update(&tx.tx).await?;
        self.commit_with_events(tx, session_id, &events).await?;

        Ok(outcome)
    }
}
