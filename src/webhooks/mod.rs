//! Webhooks: every committed session event, delivered to the session's webhooks.
//!
//! - `settings`: what a webhook is configured with, defaults, bounds and validation.
//! - `targets`: the guard that keeps deliveries away from keyproof's own network.
//! - `payload`, `signing`: what a request carries and how it is signed (Standard Webhooks).
//! - `schedule`: when to retry.
//! - `sender`: one HTTP request; `worker`: claims due deliveries from the outbox and sends them.
//!
//! Delivery rows are written in the transaction of the event (see `store::webhooks`); the
//! worker is woken by the event bus after each commit and also polls, so retries, redeliveries
//! and rows written by other replicas are picked up too.

pub mod payload;
pub mod schedule;
pub mod sender;
pub mod settings;
pub mod signing;
pub mod targets;
mod worker;

pub use worker::{WebhookConfig, run};
