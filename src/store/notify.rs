//! Events across replicas on PostgreSQL.
//!
//! Inside the transaction that writes a session's events, the writing replica queues a
//! `NOTIFY` carrying ids only; PostgreSQL delivers it to every listener when (and only when)
//! the transaction commits. Every replica listens, re-reads the events and the session from
//! the database — the row is always the truth — and publishes them on its local bus. After
//! the listener reconnects, notifications may have been lost, so readers are told to re-read
//! what they follow.

use std::sync::Arc;
use std::time::Duration;

use entity::session_event;
use sea_orm::sqlx::postgres::PgListener;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, Statement,
};
use uuid::Uuid;

use super::views::load_view;
use super::{SessionEvent, Store, StoreResult};
use crate::domain::session::EventKind;
use crate::shutdown::Shutdown;

/// The PostgreSQL channel keyproof replicas talk on.
pub const CHANNEL: &str = "keyproof_events";

/// What one notification says: which replica committed what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notice {
    Events {
        replica: Uuid,
        session_id: Uuid,
        first_seq: i64,
        last_seq: i64,
    },
    Deleted {
        replica: Uuid,
        session_id: Uuid,
    },
}

impl Notice {
    fn encode(self) -> String {
        match self {
            Self::Events {
                replica,
                session_id,
                first_seq,
                last_seq,
            } => {
                format!("{replica}:{session_id}:{first_seq}:{last_seq}")
            }
            Self::Deleted {
                replica,
                session_id,
            } => format!("{replica}:{session_id}:deleted"),
        }
    }

    fn decode(payload: &str) -> Option<Self> {
        let mut parts = payload.split(':');
        let replica = parts.next()?.parse().ok()?;
        let session_id = parts.next()?.parse().ok()?;
        let notice = match (parts.next()?, parts.next()) {
            ("deleted", None) => Self::Deleted {
                replica,
                session_id,
            },
            (first, Some(last)) => Self::Events {
                replica,
                session_id,
                first_seq: first.parse().ok()?,
                last_seq: last.parse().ok()?,
            },
            _ => return None,
        };
        parts.next().is_none().then_some(notice)
    }

    fn replica(self) -> Uuid {
        match self {
            Self::Events { replica, .. } | Self::Deleted { replica, .. } => replica,
        }
    }
}

async fn notify(tx: &DatabaseTransaction, notice: Notice) -> StoreResult<()> {
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), notice.encode().into()],
    );
    tx.execute_raw(statement).await?;
    Ok(())
}

impl Store {
    /// Queues the cross-replica notice for events `first_seq..=last_seq` of a session; a no-op
    /// on SQLite, which has one process.
    pub(crate) async fn notify_events(
        &self,
        tx: &DatabaseTransaction,
        session_id: Uuid,
        first_seq: i64,
        last_seq: i64,
    ) -> StoreResult<()> {
        if self.backend() != DbBackend::Postgres {
            return Ok(());
        }
        let replica = self.replica_id;
        notify(
            tx,
            Notice::Events {
                replica,
                session_id,
                first_seq,
                last_seq,
            },
        )
        .await
    }

    /// Queues the cross-replica notice that a session was deleted.
    pub(crate) async fn notify_deleted(
        &self,
        tx: &DatabaseTransaction,
        session_id: Uuid,
    ) -> StoreResult<()> {
        if self.backend() != DbBackend::Postgres {
            return Ok(());
        }
        notify(
            tx,
            Notice::Deleted {
                replica: self.replica_id,
                session_id,
            },
        )
        .await
    }

    /// Re-reads committed events `first_seq..=last_seq` of a session from the database, each
    /// with the session as it is now.
    pub async fn committed_events(
        &self,
        session_id: Uuid,
        first_seq: i64,
        last_seq: i64,
    ) -> StoreResult<Vec<Arc<SessionEvent>>> {
        let rows = session_event::Entity::find()
            .filter(session_event::Column::SessionId.eq(session_id))
            .filter(session_event::Column::Seq.between(first_seq, last_seq))
            .order_by_asc(session_event::Column::Seq)
            .all(self.db())
            .await?;
        let session = entity::verify_session::Entity::find_by_id(session_id)
            .one(self.db())
            .await?;
        let Some(session) = session else {
            return Ok(Vec::new());
        };
        let view = Arc::new(load_view(self.db(), session).await?);

        Ok(rows
            .into_iter()
            .filter_map(|row| {
                Some(Arc::new(SessionEvent {
                    id: row.id,
                    session_id,
                    project_id: view.session.project_id,
                    seq: row.seq,
                    kind: EventKind::parse(&row.kind)?,
                    connection_id: row.connection_id,
                    key_id: row.key_id,
                    connection_key_id: row.connection_key_id,
                    occurred_at: row.occurred_at,
                    session: view.clone(),
                }))
            })
            .collect())
    }

    async fn relay(&self, notice: Notice) {
        if notice.replica() == self.replica_id {
            return;
        }
        match notice {
            Notice::Deleted { session_id, .. } => self.bus().publish_deleted(session_id),
            Notice::Events {
                session_id,
                first_seq,
                last_seq,
                ..
            } => match self.committed_events(session_id, first_seq, last_seq).await {
                Ok(events) => events
                    .into_iter()
                    .for_each(|event| self.bus().publish(event)),
                Err(error) => {
                    tracing::warn!(%error, "cannot re-read events of another replica");
                    self.bus().publish_resync();
                }
            },
        }
    }
}

/// How long to wait before connecting the listener again after a failure.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// Relays events committed by other replicas onto the local bus until shutdown. On SQLite,
/// which has one process, it only waits for shutdown.
pub async fn relay_other_replicas(store: Store, mut shutdown: Shutdown) {
    if store.backend() != DbBackend::Postgres {
        return shutdown.wait().await;
    }
    loop {
        let mut listener = match connect_listener(&store).await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for other replicas' events; retrying");
                tokio::select! {
                    () = tokio::time::sleep(RECONNECT_DELAY) => continue,
                    () = shutdown.wait() => return,
                }
            }
        };
        // Whatever was committed while not listening is re-read by its readers.
        store.bus().publish_resync();

        loop {
            let received = tokio::select! {
                received = listener.try_recv() => received,
                () = shutdown.wait() => return,
            };
            match received {
                Ok(Some(notification)) => match Notice::decode(notification.payload()) {
                    Some(notice) => store.relay(notice).await,
                    None => tracing::warn!("ignored a malformed cross-replica notice"),
                },
                // The connection was lost and re-established: notices may be lost.
                Ok(None) => {
                    tracing::warn!("cross-replica listener reconnected");
                    store.bus().publish_resync();
                }
                Err(error) => {
                    tracing::warn!(%error, "cross-replica listener failed; reconnecting");
                    break;
                }
            }
        }
    }
}

async fn connect_listener(store: &Store) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect(&store.url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_round_trip_and_garbage_is_refused() {
        let (replica, session_id) = (Uuid::now_v7(), Uuid::now_v7());
        let events = Notice::Events {
            replica,
            session_id,
            first_seq: 3,
            last_seq: 4,
        };
        let deleted = Notice::Deleted {
            replica,
            session_id,
        };

        assert_eq!(Notice::decode(&events.encode()), Some(events));
        assert_eq!(Notice::decode(&deleted.encode()), Some(deleted));
        assert_eq!(Notice::decode("x:y:1:2"), None);
        assert_eq!(Notice::decode(&format!("{}:1:2:3", events.encode())), None);
    }
}
