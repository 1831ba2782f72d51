//! The delivery worker: claims due deliveries with a lease and sends them, a bounded number at
//! a time.

use std::time::Duration;

use chrono::Utc;
use serde_json::Value;
use tokio::sync::broadcast::error::TryRecvError;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::payload::{ENTITY, Envelope, timestamp};
use super::schedule::{AttemptVerdict, NextStep, RetryPolicy};
use super::sender::{Answer, Outgoing, Sender, loggable_url};
use super::settings::{HttpMethod, decode_headers};
use super::signing::{key_bytes, sign};
use crate::metrics::METRICS;
use crate::shutdown::Shutdown;
use crate::store::{AttemptRecord, ClaimedDelivery, DeliveryStep, Store};

/// Longest pause between two looks at the outbox, when nothing woke the worker earlier. Bounds
/// how late a retry, a redelivery or another replica's row is noticed.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Most deliveries claimed by one query.
pub const CLAIM_BATCH: usize = 32;
/// A lease outlives the request timeout by this much before another worker may take over.
pub const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// How the worker runs.
#[derive(Debug, Clone, Copy)]
pub struct WebhookConfig {
    pub request_timeout: Duration,
    /// Most requests in flight at once.
    pub max_in_flight: usize,
}

impl WebhookConfig {
    fn lease(&self) -> Duration {
        self.request_timeout + LEASE_MARGIN
    }
}

/// Runs until `shutdown`, then lets requests in flight finish within the request timeout.
/// Anything cut short keeps its lease until it expires and is sent again then.
pub async fn run(store: Store, sender: Sender, config: WebhookConfig, mut shutdown: Shutdown) {
    let mut bus = store.bus().subscribe();
    let mut in_flight = JoinSet::new();
    let max_in_flight = config.max_in_flight.max(1);

    loop {
        while in_flight.try_join_next().is_some() {}
        let wait = match claim_due(&store, &sender, config, &mut in_flight, max_in_flight).await {
            Ok(wait) => wait,
            Err(error) => {
                tracing::warn!(%error, "cannot read the webhook outbox; retrying");
                POLL_INTERVAL
            }
        };
        let full = in_flight.len() >= max_in_flight;

        tokio::select! {
            biased;
            () = shutdown.wait() => break,
            // Only a full worker waits for a request to finish before claiming more.
            Some(_) = in_flight.join_next(), if full => {}
            _ = bus.recv() => {}
            () = tokio::time::sleep(wait) => {}
        }
        // One look at the outbox serves every event committed meanwhile.
        while !matches!(
            bus.try_recv(),
            Err(TryRecvError::Empty | TryRecvError::Closed)
        ) {}
    }

    let drained = tokio::time::timeout(config.request_timeout + Duration::from_secs(1), async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            unfinished = in_flight.len(),
            "webhook requests still running at shutdown; they will be sent again"
        );
        in_flight.shutdown().await;
    }
}

/// Claims and starts what is due while there is room; returns how long to wait before looking
/// again.
async fn claim_due(
    store: &Store,
    sender: &Sender,
    config: WebhookConfig,
    in_flight: &mut JoinSet<()>,
    max_in_flight: usize,
) -> crate::store::StoreResult<Duration> {
    loop {
        // A read first: most wake-ups find nothing due, and a claim is a write.
        let now = Utc::now();
        let next = store.next_delivery_due(now).await?;
        let room = max_in_flight.saturating_sub(in_flight.len());
        match next {
            None => return Ok(POLL_INTERVAL),
            Some(at) if at > now => {
                let until = (at - now).to_std().unwrap_or(POLL_INTERVAL);
                return Ok(until.min(POLL_INTERVAL));
            }
            Some(_) if room == 0 => return Ok(POLL_INTERVAL),
            Some(_) => {}
        }

        let limit = room.min(CLAIM_BATCH);
        let claims = store
            .claim_due_deliveries(Utc::now(), limit as u64, config.lease())
            .await?;
        let claimed = claims.len();
        for claim in claims {
            in_flight.spawn(deliver(store.clone(), sender.clone(), claim));
        }
        if claimed < limit {
            // Whatever was due is claimed (or another replica took it).
            return Ok(Duration::from_millis(10));
        }
    }
}

/// Makes one attempt of a claimed delivery and records it.
async fn deliver(store: Store, sender: Sender, claim: ClaimedDelivery) {
    let attempt = claim.delivery.attempts.saturating_add(1);
    let span = tracing::info_span!(
        "webhook_delivery",
        webhook_id = %claim.webhook.id,
        delivery_id = %claim.delivery.id,
        attempt,
        event = %claim.delivery.event,
    );

    async move {
        let answer = attempt_once(&sender, &claim, attempt).await;
        count_attempt(&answer);
        let policy = RetryPolicy {
            retries: claim.webhook.retries,
            initial_backoff: claim.webhook.initial_backoff,
            backoff_multiplier: claim.webhook.backoff_multiplier,
        };
        let round_attempts = claim.delivery.round_attempts.saturating_add(1);
        let next = policy.next_step(answer.verdict, round_attempts, answer.retry_after);
        log_outcome(&claim, &answer, next);

        let step = match next {
            NextStep::Succeeded => DeliveryStep::Succeeded,
            NextStep::GaveUp => DeliveryStep::Failed,
            NextStep::RetryAfter(wait) => DeliveryStep::RetryAt(
                Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX),
            ),
        };
        let record = AttemptRecord {
            started_at: answer.started_at,
            duration: answer.duration,
            response_status: answer.status,
            response_body: answer.body,
            error: answer.error,
            succeeded: next == NextStep::Succeeded,
        };
        match store.record_attempt(&claim, record, step).await {
            Ok(true) => {}
            Ok(false) => tracing::info!("delivery was deleted or re-claimed meanwhile"),
            Err(error) => {
                tracing::error!(%error, "cannot record a webhook attempt; it will be sent again");
            }
        }
    }
    .instrument(span)
    .await
}

async fn attempt_once(sender: &Sender, claim: &ClaimedDelivery, attempt: i32) -> Answer {
    let webhook = &claim.webhook;
    let delivery = &claim.delivery;
    let payload: Value = serde_json::from_str(&delivery.payload).unwrap_or(Value::Null);
    let now = Utc::now();
    let envelope = Envelope {
        entity: ENTITY,
        id: delivery.session_id,
        event: &delivery.event,
        webhook_id: webhook.id,
        webhook_invocation_id: delivery.id,
        trigger_time: timestamp(delivery.trigger_time),
        request_time: timestamp(now),
        attempt,
        payload: &payload,
    };
    let body = serde_json::to_vec(&envelope).unwrap_or_default();
    let webhook_id = delivery.id.to_string();
    // Stored secrets were checked when configured; an unusable one signs with an empty key
    // rather than not at all, and the receiver will refuse the request.
    let key = key_bytes(&webhook.secret).unwrap_or_default();
    let signature = sign(&key, &webhook_id, now.timestamp(), &body);
    let headers = decode_headers(&webhook.headers);

    sender
        .send(Outgoing {
            url: &webhook.url,
            method: HttpMethod::parse(&webhook.method).unwrap_or_default(),
            headers: &headers,
            webhook_id,
            timestamp: now.timestamp(),
            signature,
            body,
        })
        .await
}

fn count_attempt(answer: &Answer) {
    METRICS
        .webhook_attempts
        .inc(match (answer.verdict, answer.status) {
            (AttemptVerdict::Delivered, _) => "success",
            (AttemptVerdict::Gone, _) => "gone",
            (AttemptVerdict::Failed, Some(_)) => "failure",
            (AttemptVerdict::Failed, None) => "error",
        });
    METRICS.webhook_attempt_seconds.observe(answer.duration);
}

fn log_outcome(claim: &ClaimedDelivery, answer: &Answer, next: NextStep) {
    let url = loggable_url(&claim.webhook.url);
    let status = answer.status;
    let duration_ms = u64::try_from(answer.duration.as_millis()).unwrap_or(u64::MAX);
    let error = answer.error.as_deref().unwrap_or("");
    match next {
        NextStep::Succeeded => tracing::info!(%url, ?status, duration_ms, "webhook delivered"),
        NextStep::RetryAfter(wait) => tracing::warn!(
            %url, ?status, duration_ms, error, retry_in_s = wait.as_secs_f64(),
            "webhook attempt failed; will retry"
        ),
        NextStep::GaveUp => tracing::warn!(
            %url, ?status, duration_ms, error,
            "webhook attempt failed; giving up"
        ),
    }
}
