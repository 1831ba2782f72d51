//! The store: the only code that talks to SeaORM.
//!
//! Every change runs in one transaction together with the event rows it produces; after the
//! commit the events are published on the [`EventBus`]. Nothing is published that was not
//! committed, and a change is never committed without its events.
//!
//! Concurrency: SQLite has one writer, so write transactions on SQLite take a process-wide
//! lock first (a deferred SQLite transaction that upgrades to a writer can fail with "database
//! is locked" instead of waiting). On PostgreSQL the session row is locked with
//! `SELECT … FOR UPDATE` instead. Either way, the rules for one session always see the state
//! left by the previous change (DESIGN rule 10).

mod connections;
pub mod notify;
mod projects;
mod rest;
mod sessions;
mod views;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::sqlite::SqliteJournalMode;
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, TransactionTrait,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::events::EventBus;

pub use connections::{OfferRecord, ProofOutcome, SessionForConnection};
pub use rest::SessionSlice;
pub use sessions::{CompleteRefusal, NewKey, NewSession, SessionFilter, SessionPage};
pub(crate) use views::rule_of;
pub use views::{ConnectionView, SessionEvent, SessionView};
pub use webhooks::{
    AddWebhookRefusal, AttemptRecord, ClaimedDelivery, DeliveryStatus, DeliveryStep, DeliveryView,
    NewWebhook, RedeliverRefusal, WebhookChanges,
};

/// A failure of the store. Its text is for logs only: callers map it to a safe message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(&'static str),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How long a readiness check waits for the database.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    bus: EventBus,
    sqlite_writer: Option<Arc<Mutex<()>>>,
    /// The database URL, for connections outside the pool (migration lock, listener). It may
    /// hold a password: never log it.
    url: Arc<str>,
    /// Identifies this process among replicas, so it ignores its own notices.
    replica_id: uuid::Uuid,
}

/// A PostgreSQL advisory lock held on a connection of its own (advisory locks belong to the
/// connection that took them; if this process dies, the server releases it).
struct MigrationLock(DatabaseConnection);

impl MigrationLock {
    /// An arbitrary constant that names keyproof's migration lock.
    const KEY: i64 = 0x6b65_7970_726f_6f66;

    async fn acquire(url: &str) -> anyhow::Result<Self> {
        use sea_orm::ConnectionTrait;

        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(1)
            .min_connections(1)
            .sqlx_logging(false);
        let db = Database::connect(options).await?;
        db.execute_unprepared(&format!("SELECT pg_advisory_lock({})", Self::KEY))
            .await?;
        Ok(Self(db))
    }

    async fn release(self) {
        use sea_orm::ConnectionTrait;

        let unlock = format!("SELECT pg_advisory_unlock({})", Self::KEY);
        if let Err(error) = self.0.execute_unprepared(&unlock).await {
            tracing::warn!(%error, "cannot release the migration lock; closing its connection");
        }
        let _ = self.0.close().await;
    }
}

/// A write transaction, holding SQLite's writer lock when on SQLite. Fields drop in order:
/// an uncommitted transaction rolls back before the writer lock is released.
pub(crate) struct WriteTx {
    pub(crate) tx: DatabaseTransaction,
    pub(crate) writer: Option<OwnedMutexGuard<()>>,
}

impl Store {
    /// Connects to `database_url` (`sqlite://…` or `postgres://…`).
    pub async fn connect(database_url: &str, bus: EventBus) -> anyhow::Result<Self> {
        let mut options = ConnectOptions::new(database_url.to_owned());
        options
            .sqlx_logging(false)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(5))
            .map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        if database_url.starts_with("sqlite:") {
            options.max_connections(8).min_connections(1);
        } else {
            options.max_connections(16);
        }

        let db = Database::connect(options).await?;
        let sqlite_writer = match db.get_database_backend() {
            DbBackend::Sqlite => Some(Arc::new(Mutex::new(()))),
            _ => None,
        };

        Ok(Self {
            db,
            bus,
            sqlite_writer,
            url: database_url.into(),
            replica_id: uuid::Uuid::now_v7(),
        })
    }

    /// Applies every pending migration.
    ///
    /// On PostgreSQL the migrations run under an advisory lock, so replicas starting together
    /// never race: the others wait, then find nothing left to apply.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        use migration::MigratorTrait;

        let lock = match self.backend() {
            DbBackend::Postgres => Some(MigrationLock::acquire(&self.url).await?),
            _ => None,
        };
        let migrated = migration::Migrator::up(&self.db, None).await;
        if let Some(lock) = lock {
            lock.release().await;
        }

        Ok(migrated?)
    }

    /// Whether the database answers a trivial query within [`PING_TIMEOUT`].
    pub async fn ping(&self) -> bool {
        matches!(
            tokio::time::timeout(PING_TIMEOUT, self.db.ping()).await,
            Ok(Ok(()))
        )
    }

    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    pub(crate) fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Begins a write transaction, first taking SQLite's writer lock when on SQLite.
    pub(crate) async fn begin_write(&self) -> StoreResult<WriteTx> {
        let writer = match &self.sqlite_writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let tx = self.db.begin().await?;

        Ok(WriteTx { tx, writer })
    }
}
