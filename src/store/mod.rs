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
mod projects;
mod rest;
mod sessions;
mod views;

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

/// A failure of the store. Its text is for logs only: callers map it to a safe message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(&'static str),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    bus: EventBus,
    sqlite_writer: Option<Arc<Mutex<()>>>,
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
            .acquire_timeout(Duration::from_secs(10))
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
        })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        use migration::MigratorTrait;

        migration::Migrator::up(&self.db, None).await?;
        Ok(())
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.db.ping().await.is_ok()
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
