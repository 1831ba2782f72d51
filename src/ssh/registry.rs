//! Open SSH connections by session, so that a session that closes (fails, expires, completes
//! or is deleted) can close the connections still waiting on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::connection::Ledger;
use super::terminal;
use crate::domain::session::{Closed, SessionStatus};
use crate::events::{BusMessage, EventBus};
use crate::shutdown::Shutdown;

/// The ledgers of one session's open connections, by connection id.
type SessionConnections = HashMap<Uuid, Arc<Mutex<Ledger>>>;

/// Ledgers of the attributed connections that are open, by session.
#[derive(Default)]
pub struct OpenConnections {
    sessions: Mutex<HashMap<Uuid, SessionConnections>>,
}

impl OpenConnections {
    pub fn insert(&self, session_id: Uuid, connection_id: Uuid, ledger: Arc<Mutex<Ledger>>) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions
                .entry(session_id)
                .or_default()
                .insert(connection_id, ledger);
        }
    }

    pub fn remove(&self, session_id: Uuid, connection_id: Uuid) {
        let Ok(mut sessions) = self.sessions.lock() else {
            return;
        };
        if let Some(connections) = sessions.get_mut(&session_id) {
            connections.remove(&connection_id);
            if connections.is_empty() {
                sessions.remove(&session_id);
            }
        }
    }

    /// Disconnects every connection of the session that has not reached its own decision,
    /// telling the person why. Those connections count no failed attempt: the session is
    /// no longer pending.
    pub fn close_undecided(&self, session_id: Uuid, reason: Closed) {
        let ledgers: Vec<_> = match self.sessions.lock() {
            Ok(sessions) => sessions
                .get(&session_id)
                .map(|connections| connections.values().cloned().collect())
                .unwrap_or_default(),
            Err(_) => return,
        };

        for ledger in ledgers {
            let handle = match ledger.lock() {
                Ok(mut ledger) => ledger.undecided.take().and(ledger.handle.clone()),
                Err(_) => None,
            };
            if let Some(handle) = handle {
                let text = terminal::refused(terminal::Refusal::Closed(reason));
                tokio::spawn(async move {
                    let _ = handle
                        .disconnect(russh::Disconnect::ByApplication, text, String::new())
                        .await;
                });
            }
        }
    }
}

/// Closes the open connections of sessions that reach a final state (rule 8: an expired
/// session's connections are closed with a message).
pub async fn close_finished_sessions(
    open: Arc<OpenConnections>,
    bus: EventBus,
    mut shutdown: Shutdown,
) {
    let mut receiver = bus.subscribe();
    loop {
        let message = tokio::select! {
            message = receiver.recv() => message,
            () = shutdown.wait() => return,
        };
        match message {
            Ok(BusMessage::Event(event)) => {
                let state = event.session.state();
                if !state.is_final() {
                    continue;
                }
                let reason =
                    state
                        .check_open(chrono::Utc::now())
                        .err()
                        .unwrap_or(match state.status {
                            SessionStatus::Verified => Closed::Verified,
                            _ => Closed::Failed,
                        });
                open.close_undecided(event.session_id, reason);
            }
            Ok(BusMessage::Deleted { session_id }) => {
                open.close_undecided(session_id, Closed::Deleted)
            }
            // Sessions that closed meanwhile refuse these connections' proofs anyway.
            Ok(BusMessage::Resync) => {}
            Err(RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "connection closer fell behind the event bus");
            }
            Err(RecvError::Closed) => return,
        }
    }
}
