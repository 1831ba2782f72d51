//! `verifySessionEvents`: a snapshot first, then every committed event in order, completing
//! after the session's final status.

use std::sync::{Arc, LazyLock};

use async_graphql::{Context, ID, Subscription};
use chrono::Utc;
use futures_util::Stream;
use tokio::sync::Semaphore;
use tokio::sync::broadcast::error::RecvError;

use super::GraphqlState;
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::query::visible_session;
use super::types::{VerifySessionEvent, VerifySessionEventKind};
use crate::domain::session::EventKind;
use crate::events::BusMessage;
use crate::metrics::{GaugeGuard, METRICS};
use crate::store::{SessionEvent, SessionView};

/// Most subscriptions open at once in this process; each holds a permit while it runs.
pub const MAX_SUBSCRIPTIONS: usize = 10_000;

static SUBSCRIPTION_PERMITS: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(MAX_SUBSCRIPTIONS)));

pub struct SubscriptionRoot;

#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Every change of one session. Starts with a `SNAPSHOT`; completes after the final
    /// `STATUS_CHANGED`.
    async fn verify_session_events(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<impl Stream<Item = VerifySessionEvent> + use<>> {
        Ok(session_events(ctx, id).await?)
    }
}

async fn session_events(
    ctx: &Context<'_>,
    id: ID,
) -> ApiResult<impl Stream<Item = VerifySessionEvent> + use<>> {
    ctx.data_unchecked::<Caller>().principal()?;
    let state = ctx.data_unchecked::<GraphqlState>().clone();
    let permit = SUBSCRIPTION_PERMITS
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::RateLimited("too many open subscriptions; try again later"))?;

    // Subscribe before reading the snapshot, so nothing committed in between is missed; events
    // already contained in the snapshot are skipped by their sequence number.
    let mut receiver = state.store.bus().subscribe();
    let snapshot = visible_session(ctx, &id).await?.ok_or(ApiError::NotFound)?;
    let session_id = snapshot.0.session.id;
    let project_id = snapshot.0.session.project_id;

    Ok(async_stream::stream! {
        let _open = GaugeGuard::raise(&METRICS.subscriptions_open);
        let _permit = permit;
        let mut last_seq = snapshot.0.session.event_seq;
        let done = snapshot.0.state().is_final();
        yield snapshot_event(snapshot.0);
        if done {
            return;
        }

        // Set when a re-read failed: the next message re-reads before anything else.
        let mut stale = false;
        loop {
            let message = receiver.recv().await;
            let upto = match message {
                Ok(BusMessage::Event(event)) if event.session_id != session_id => continue,
                Ok(BusMessage::Deleted { session_id: deleted }) if deleted != session_id => continue,
                Ok(BusMessage::Deleted { .. }) | Err(RecvError::Closed) => return,
                Ok(BusMessage::Event(event)) if event.seq <= last_seq => continue,
                Ok(BusMessage::Event(event)) if event.seq == last_seq + 1 && !stale => {
                    last_seq = event.seq;
                    let done = is_last(&event);
                    yield event_of(event);
                    if done {
                        return;
                    }
                    continue;
                }
                // Events of one session can reach the bus out of order (two replicas, or two
                // transactions that committed close together): fetch what is missing from
                // the database, where the order is kept.
                Ok(BusMessage::Event(event)) => Some(event.seq),
                // Too far behind, or the cross-replica listener reconnected: start again from
                // the current state, never from a silent gap.
                Ok(BusMessage::Resync) | Err(RecvError::Lagged(_)) => None,
            };

            match upto {
                Some(upto) if !stale => {
                    match state.store.committed_events(session_id, last_seq + 1, upto).await {
                        Ok(events) => {
                            for event in events {
                                last_seq = event.seq;
                                let done = is_last(&event);
                                yield event_of(event);
                                if done {
                                    return;
                                }
                            }
                        }
                        Err(_) => stale = true,
                    }
                }
                _ => match state.store.session_view(project_id, session_id).await {
                    Ok(Some(view)) => {
                        stale = false;
                        last_seq = view.session.event_seq;
                        let done = view.state().is_final();
                        yield snapshot_event(Arc::new(view));
                        if done {
                            return;
                        }
                    }
                    Ok(None) => return,
                    // The database is unreachable: try again on the next message (the
                    // listener sends a resync once it is back).
                    Err(_) => stale = true,
                },
            }
        }
    })
}

/// Whether this event is the session's last: its final status change.
fn is_last(event: &SessionEvent) -> bool {
    event.kind == EventKind::StatusChanged && event.session.state().is_final()
}

fn event_of(event: Arc<SessionEvent>) -> VerifySessionEvent {
    VerifySessionEvent {
        kind: event.kind.into(),
        session: event.session.clone(),
        occurred_at: event.occurred_at,
        event: Some(event),
    }
}

fn snapshot_event(view: Arc<SessionView>) -> VerifySessionEvent {
    VerifySessionEvent {
        kind: VerifySessionEventKind::Snapshot,
        session: view,
        event: None,
        occurred_at: Utc::now(),
    }
}
