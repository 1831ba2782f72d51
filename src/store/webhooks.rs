//! Webhooks of sessions and their delivery outbox.
//!
//! Delivery rows are written by [`enqueue_deliveries`] inside the transaction that commits the
//! events they announce, so an event is never committed without its deliveries. Workers claim
//! due rows with a lease: one conditional `UPDATE` sets `lease_token` and `locked_until` on
//! rows that are pending, due and not leased (on PostgreSQL the candidate rows are picked
//! `FOR UPDATE SKIP LOCKED`, so replicas do not wait on each other). A worker that dies
//! mid-attempt leaves its lease to expire, and the delivery is claimed again: at-least-once.
//! The result of an attempt is recorded only by the holder of the lease.

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{session_event, webhook, webhook_attempt, webhook_delivery};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;

use super::views::lock_session;
use super::{SessionView, Store, StoreResult};
use crate::domain::session::EventKind;
use crate::webhooks::payload::event_payload;
use crate::webhooks::settings::{
    HeaderSetting, HttpMethod, MAX_WEBHOOKS_PER_SESSION, encode_events, encode_headers, wants,
};
use crate::webhooks::signing::WebhookSecret;

/// A webhook to create; every field already validated.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub method: HttpMethod,
    pub headers: Vec<HeaderSetting>,
    /// Empty for every kind.
    pub events: Vec<EventKind>,
    pub retries: i32,
    pub initial_backoff: i32,
    pub backoff_multiplier: f64,
    pub secret: WebhookSecret,
}

/// Changes to a webhook; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookChanges {
    pub url: Option<String>,
    pub method: Option<HttpMethod>,
    pub headers: Option<Vec<HeaderSetting>>,
    pub events: Option<Vec<EventKind>>,
    pub retries: Option<i32>,
    pub initial_backoff: Option<i32>,
    pub backoff_multiplier: Option<f64>,
    pub secret: Option<WebhookSecret>,
}

/// Why a webhook cannot be added to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddWebhookRefusal {
    /// The project has no such session.
    NoSession,
    /// The session already has [`MAX_WEBHOOKS_PER_SESSION`] webhooks.
    Full,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "pending" => Some(Self::Pending),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// A delivery with every attempt made for it, oldest attempt first.
#[derive(Debug, Clone)]
pub struct DeliveryView {
    pub delivery: webhook_delivery::Model,
    pub attempts: Vec<webhook_attempt::Model>,
}

/// A delivery a worker holds the lease of, with its webhook as of the claim.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery: webhook_delivery::Model,
    pub webhook: webhook::Model,
    pub lease_token: Uuid,
}

/// What one attempt produced, to keep.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    pub response_status: Option<u16>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub succeeded: bool,
}

/// What becomes of a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStep {
    Succeeded,
    Failed,
    RetryAt(DateTime<Utc>),
}

/// Why a delivery cannot be sent again right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedeliverRefusal {
    /// An attempt is in flight; its result would race the new request.
    InFlight,
}

/// Inserts `webhooks` for a session, in order, starting at `position`.
pub(crate) async fn insert_webhooks<C: ConnectionTrait>(
    db: &C,
    project_id: Uuid,
    session_id: Uuid,
    position: i32,
    webhooks: Vec<NewWebhook>,
) -> StoreResult<Vec<webhook::Model>> {
    let now = Utc::now();
    let mut rows = Vec::with_capacity(webhooks.len());
    for (offset, new) in webhooks.into_iter().enumerate() {
        let row = webhook::ActiveModel {
            id: Set(Uuid::now_v7()),
            session_id: Set(session_id),
            project_id: Set(project_id),
            position: Set(position.saturating_add(i32::try_from(offset).unwrap_or(i32::MAX))),
            url: Set(new.url),
            method: Set(new.method.as_str().to_owned()),
            headers: Set(encode_headers(&new.headers)),
            events: Set(encode_events(&new.events)),
            retries: Set(new.retries),
            initial_backoff: Set(new.initial_backoff),
            backoff_multiplier: Set(new.backoff_multiplier),
            secret: Set(new.secret.expose().to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(db)
        .await?;
        rows.push(row);
    }

    Ok(rows)
}

/// Writes one delivery per event and interested webhook of the session, in the transaction of
/// the events. The payload is fixed now, from the session as of this commit.
pub(crate) async fn enqueue_deliveries<C: ConnectionTrait>(
    db: &C,
    view: &SessionView,
    events: &[session_event::Model],
) -> StoreResult<usize> {
    let webhooks = webhook::Entity::find()
        .filter(webhook::Column::SessionId.eq(view.session.id))
        .order_by_asc(webhook::Column::Position)
        .all(db)
        .await?;
    if webhooks.is_empty() {
        return Ok(0);
    }

    let mut rows = Vec::new();
    for event in events {
        let Some(kind) = EventKind::parse(&event.kind) else {
            continue;
        };
        let payload = event_payload(view, event, kind).to_string();
        for webhook in webhooks.iter().filter(|w| wants(&w.events, kind)) {
            rows.push(webhook_delivery::ActiveModel {
                id: Set(Uuid::now_v7()),
                webhook_id: Set(webhook.id),
                session_id: Set(view.session.id),
                event_id: Set(event.id),
                event: Set(event.kind.clone()),
                trigger_time: Set(event.occurred_at),
                payload: Set(payload.clone()),
                status: Set(DeliveryStatus::Pending.as_str().to_owned()),
                attempts: Set(0),
                round_attempts: Set(0),
                next_attempt_at: Set(event.occurred_at),
                locked_until: Set(None),
                lease_token: Set(None),
                created_at: Set(event.occurred_at),
                completed_at: Set(None),
            });
        }
    }
    let count = rows.len();
    if count > 0 {
        webhook_delivery::Entity::insert_many(rows)
            .exec_without_returning(db)
            .await?;
    }

    Ok(count)
}

impl Store {
    /// The webhooks of a session, in the order they were added.
    pub async fn session_webhooks(&self, session_id: Uuid) -> StoreResult<Vec<webhook::Model>> {
        Ok(webhook::Entity::find()
            .filter(webhook::Column::SessionId.eq(session_id))
            .order_by_asc(webhook::Column::Position)
            .all(self.db())
            .await?)
    }

    /// Adds a webhook to a session of the project.
    pub async fn add_webhook(
        &self,
        project_id: Uuid,
        session_id: Uuid,
        new: NewWebhook,
    ) -> StoreResult<Result<webhook::Model, AddWebhookRefusal>> {
        let tx = self.begin_write().await?;
        match lock_session(self, &tx, session_id).await? {
            Some(session) if session.project_id == project_id => {}
            _ => return Ok(Err(AddWebhookRefusal::NoSession)),
        }
        let existing = self.session_webhooks_in(&tx.tx, session_id).await?;
        if existing.len() >= MAX_WEBHOOKS_PER_SESSION {
            return Ok(Err(AddWebhookRefusal::Full));
        }

        let position = existing.last().map_or(0, |w| w.position.saturating_add(1));
        let mut rows = insert_webhooks(&tx.tx, project_id, session_id, position, vec![new]).await?;
        tx.tx.commit().await?;

        rows.pop()
            .map(Ok)
            .ok_or(super::StoreError::Corrupt("inserted webhook vanished"))
    }

    async fn session_webhooks_in<C: ConnectionTrait>(
        &self,
        db: &C,
        session_id: Uuid,
    ) -> StoreResult<Vec<webhook::Model>> {
        Ok(webhook::Entity::find()
            .filter(webhook::Column::SessionId.eq(session_id))
            .order_by_asc(webhook::Column::Position)
            .all(db)
            .await?)
    }

    /// Applies `changes` to a webhook of the project. Deliveries not yet made use the new
    /// settings. `None` when the project has no such webhook.
    pub async fn update_webhook(
        &self,
        project_id: Uuid,
        webhook_id: Uuid,
        changes: WebhookChanges,
    ) -> StoreResult<Option<webhook::Model>> {
        let tx = self.begin_write().await?;
        let Some(existing) = webhook::Entity::find_by_id(webhook_id)
            .filter(webhook::Column::ProjectId.eq(project_id))
            .one(&tx.tx)
            .await?
        else {
            return Ok(None);
        };

        let mut active: webhook::ActiveModel = existing.into();
        if let Some(url) = changes.url {
            active.url = Set(url);
        }
        if let Some(method) = changes.method {
            active.method = Set(method.as_str().to_owned());
        }
        if let Some(headers) = changes.headers {
            active.headers = Set(encode_headers(&headers));
        }
        if let Some(events) = changes.events {
            active.events = Set(encode_events(&events));
        }
        if let Some(retries) = changes.retries {
            active.retries = Set(retries);
        }
        if let Some(backoff) = changes.initial_backoff {
            active.initial_backoff = Set(backoff);
        }
        if let Some(multiplier) = changes.backoff_multiplier {
            active.backoff_multiplier = Set(multiplier);
        }
        if let Some(secret) = changes.secret {
            active.secret = Set(secret.expose().to_owned());
        }
        active.updated_at = Set(Utc::now());
        let updated = active.update(&tx.tx).await?;
        tx.tx.commit().await?;

        Ok(Some(updated))
    }

    /// Deletes a webhook of the project with its deliveries. Returns whether it existed.
    pub async fn delete_webhook(&self, project_id: Uuid, webhook_id: Uuid) -> StoreResult<bool> {
        let tx = self.begin_write().await?;
        let result = webhook::Entity::delete_many()
            .filter(webhook::Column::Id.eq(webhook_id))
            .filter(webhook::Column::ProjectId.eq(project_id))
            .exec(&tx.tx)
            .await?;
        tx.tx.commit().await?;

        Ok(result.rows_affected > 0)
    }

    /// The newest `limit` deliveries of a webhook, newest first, with their attempts.
    pub async fn webhook_deliveries(
        &self,
        webhook_id: Uuid,
        limit: u64,
    ) -> StoreResult<Vec<DeliveryView>> {
        let deliveries = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::WebhookId.eq(webhook_id))
            .order_by_desc(webhook_delivery::Column::Id)
            .limit(limit)
            .all(self.db())
            .await?;

        self.with_attempts(deliveries).await
    }

    async fn with_attempts(
        &self,
        deliveries: Vec<webhook_delivery::Model>,
    ) -> StoreResult<Vec<DeliveryView>> {
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let mut attempts = webhook_attempt::Entity::find()
            .filter(webhook_attempt::Column::DeliveryId.is_in(deliveries.iter().map(|d| d.id)))
            .order_by_asc(webhook_attempt::Column::Attempt)
            .all(self.db())
            .await?;

        Ok(deliveries
            .into_iter()
            .map(|delivery| {
                let (own, rest): (Vec<_>, Vec<_>) = attempts
                    .drain(..)
                    .partition(|attempt| attempt.delivery_id == delivery.id);
                attempts = rest;
                DeliveryView {
                    delivery,
                    attempts: own,
                }
            })
            .collect())
    }

    /// Queues a delivery of the project again, due now, with a fresh round of retries. It
    /// keeps its id, so receivers that already processed it can tell. `None` when the project
    /// has no such delivery.
    pub async fn redeliver(
        &self,
        project_id: Uuid,
        delivery_id: Uuid,
    ) -> StoreResult<Option<Result<DeliveryView, RedeliverRefusal>>> {
        let now = Utc::now();
        let tx = self.begin_write().await?;
        let Some(delivery) = webhook_delivery::Entity::find_by_id(delivery_id)
            .one(&tx.tx)
            .await?
        else {
            return Ok(None);
        };
        let owned = webhook::Entity::find_by_id(delivery.webhook_id)
            .filter(webhook::Column::ProjectId.eq(project_id))
            .one(&tx.tx)
            .await?
            .is_some();
        if !owned {
            return Ok(None);
        }
        if delivery.locked_until.is_some_and(|until| until > now) {
            return Ok(Some(Err(RedeliverRefusal::InFlight)));
        }

        let mut active: webhook_delivery::ActiveModel = delivery.into();
        active.status = Set(DeliveryStatus::Pending.as_str().to_owned());
        active.round_attempts = Set(0);
        active.next_attempt_at = Set(now);
        active.locked_until = Set(None);
        active.lease_token = Set(None);
        active.completed_at = Set(None);
        let delivery = active.update(&tx.tx).await?;
        tx.tx.commit().await?;

        let mut views = self.with_attempts(vec![delivery]).await?;
        Ok(views.pop().map(Ok))
    }
}

impl Store {
    /// Leases up to `limit` due deliveries for `lease`, oldest due first.
    pub async fn claim_due_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u64,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let token = Uuid::now_v7();
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::MAX);
        let claimable = Condition::all()
            .add(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .add(webhook_delivery::Column::NextAttemptAt.lte(now))
            .add(
                Condition::any()
                    .add(webhook_delivery::Column::LockedUntil.is_null())
                    .add(webhook_delivery::Column::LockedUntil.lt(now)),
            );
        let mut candidates = Query::select();
        candidates
            .column(webhook_delivery::Column::Id)
            .from(webhook_delivery::Entity)
            .cond_where(claimable.clone())
            .order_by(webhook_delivery::Column::NextAttemptAt, sea_orm::Order::Asc)
            .limit(limit);
        if self.backend() == DbBackend::Postgres {
            candidates.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        }

        let tx = self.begin_write().await?;
        // The outer condition repeats the inner one: on PostgreSQL a row picked by the
        // subquery may have been claimed by another replica before this update locks it.
        webhook_delivery::Entity::update_many()
            .col_expr(webhook_delivery::Column::LeaseToken, Expr::value(token))
            .col_expr(webhook_delivery::Column::LockedUntil, Expr::value(until))
            .filter(webhook_delivery::Column::Id.in_subquery(candidates))
            .filter(claimable)
            .exec(&tx.tx)
            .await?;
        let deliveries = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::LeaseToken.eq(token))
            .order_by_asc(webhook_delivery::Column::NextAttemptAt)
            .all(&tx.tx)
            .await?;
        let webhooks = if deliveries.is_empty() {
            Vec::new()
        } else {
            webhook::Entity::find()
                .filter(webhook::Column::Id.is_in(deliveries.iter().map(|d| d.webhook_id)))
                .all(&tx.tx)
                .await?
        };
        tx.tx.commit().await?;

        Ok(deliveries
            .into_iter()
            .filter_map(|delivery| {
                let webhook = webhooks.iter().find(|w| w.id == delivery.webhook_id)?;
                Some(ClaimedDelivery {
                    webhook: webhook.clone(),
                    delivery,
                    lease_token: token,
                })
            })
            .collect())
    }

    /// Records an attempt and what follows from it, releasing the lease. Returns `false`
    /// (recording nothing) when the lease was lost: the delivery was deleted, or another
    /// worker claimed it after the lease expired.
    pub async fn record_attempt(
        &self,
        claim: &ClaimedDelivery,
        record: AttemptRecord,
        step: DeliveryStep,
    ) -> StoreResult<bool> {
        let now = Utc::now();
        let attempt = claim.delivery.attempts.saturating_add(1);
        let (status, next_attempt_at, completed_at) = match step {
            DeliveryStep::Succeeded => (DeliveryStatus::Succeeded, now, Some(now)),
            DeliveryStep::Failed => (DeliveryStatus::Failed, now, Some(now)),
            DeliveryStep::RetryAt(at) => (DeliveryStatus::Pending, at, None),
        };

        let tx = self.begin_write().await?;
        let updated = webhook_delivery::Entity::update_many()
            .col_expr(
                webhook_delivery::Column::Status,
                Expr::value(status.as_str()),
            )
            .col_expr(webhook_delivery::Column::Attempts, Expr::value(attempt))
            .col_expr(
                webhook_delivery::Column::RoundAttempts,
                Expr::value(claim.delivery.round_attempts.saturating_add(1)),
            )
            .col_expr(
                webhook_delivery::Column::NextAttemptAt,
                Expr::value(next_attempt_at),
            )
            .col_expr(
                webhook_delivery::Column::LockedUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                webhook_delivery::Column::LeaseToken,
                Expr::value(Option::<Uuid>::None),
            )
            .col_expr(
                webhook_delivery::Column::CompletedAt,
                Expr::value(completed_at),
            )
            .filter(webhook_delivery::Column::Id.eq(claim.delivery.id))
            .filter(webhook_delivery::Column::LeaseToken.eq(claim.lease_token))
            .exec(&tx.tx)
            .await?;
        if updated.rows_affected != 1 {
            return Ok(false);
        }
        webhook_attempt::ActiveModel {
            id: Set(Uuid::now_v7()),
            delivery_id: Set(claim.delivery.id),
            attempt: Set(attempt),
            outcome: Set(if record.succeeded {
                "succeeded"
            } else {
                "failed"
            }
            .to_owned()),
            response_status: Set(record.response_status.map(i32::from)),
            response_body: Set(record.response_body),
            error: Set(record.error),
            duration_ms: Set(i64::try_from(record.duration.as_millis()).unwrap_or(i64::MAX)),
            started_at: Set(record.started_at),
        }
        .insert(&tx.tx)
        .await?;
        tx.tx.commit().await?;

        Ok(true)
    }

    /// When the earliest pending, unleased delivery is due, if any.
    pub async fn next_delivery_due(
        &self,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<DateTime<Utc>>> {
        let next = webhook_delivery::Entity::find()
            .filter(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(
                Condition::any()
                    .add(webhook_delivery::Column::LockedUntil.is_null())
                    .add(webhook_delivery::Column::LockedUntil.lt(now)),
            )
            .order_by_asc(webhook_delivery::Column::NextAttemptAt)
            .one(self.db())
            .await?;

        Ok(next.map(|delivery| delivery.next_attempt_at))
    }
}
