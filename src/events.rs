//! The event bus: every committed session event is published here once, after its commit.
//! GraphQL subscriptions, the SSH server and the webhook worker read from it. On PostgreSQL,
//! events committed by other replicas arrive here too (see `store::notify`).

use std::sync::Arc;

use tokio::sync::broadcast;

use crate::store::SessionEvent;

/// How many events the bus keeps for a slow subscriber. A subscriber that falls further
/// behind is told so and starts again from a fresh snapshot, never from a silent gap.
pub const BUS_CAPACITY: usize = 4096;

/// What the bus carries.
#[derive(Debug, Clone)]
pub enum BusMessage {
    /// A committed event of a session.
    Event(Arc<SessionEvent>),
    /// A session was deleted; nothing more will happen to it.
    Deleted { session_id: uuid::Uuid },
    /// Events may have been missed (the cross-replica listener reconnected): readers re-read
    /// the sessions they follow from the database.
    Resync,
}

impl BusMessage {
    /// The session the message is about; `None` for messages about every session.
    pub fn session_id(&self) -> Option<uuid::Uuid> {
        match self {
            Self::Event(event) => Some(event.session_id),
            Self::Deleted { session_id } => Some(*session_id),
            Self::Resync => None,
        }
    }
}

/// A cheap handle to the process-wide broadcast of committed events.
#[derive(Clone)]
pub struct EventBus {
    sender: broadcast::Sender<BusMessage>,
}

impl EventBus {
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(BUS_CAPACITY);
        Self { sender }
    }

    /// Publishes a committed event. Having no subscriber is normal.
    pub fn publish(&self, event: Arc<SessionEvent>) {
        let _ = self.sender.send(BusMessage::Event(event));
    }

    /// Announces that a session was deleted.
    pub fn publish_deleted(&self, session_id: uuid::Uuid) {
        let _ = self.sender.send(BusMessage::Deleted { session_id });
    }

    /// Tells every reader to re-read what it follows.
    pub fn publish_resync(&self) {
        let _ = self.sender.send(BusMessage::Resync);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.sender.subscribe()
    }
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}
