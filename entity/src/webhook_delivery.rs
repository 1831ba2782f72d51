//! One event to deliver to one webhook (the outbox row). Written in the same transaction as
//! the event; its id is the `webhook-id` a receiver deduplicates on.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub session_id: Uuid,
    /// The session event this delivery announces.
    pub event_id: Uuid,
    /// `new_connection`, `verified`, `failed_attempt` or `status_changed`.
    pub event: String,
    /// When the event was committed.
    pub trigger_time: DateTimeUtc,
    /// The event's `payload` object as JSON, fixed when the event was committed.
    pub payload: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Attempts made so far, over every round.
    pub attempts: i32,
    /// Attempts made since the delivery was last queued (first send or redelivery).
    pub round_attempts: i32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: DateTimeUtc,
    /// A worker holds the delivery until then; after that another may claim it.
    pub locked_until: Option<DateTimeUtc>,
    /// Identifies the claim that holds the lease.
    pub lease_token: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
