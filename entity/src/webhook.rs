//! A webhook endpoint of a verify session: where and how its events are delivered.

use std::fmt;

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhooks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub session_id: Uuid,
    /// The session's project, so access checks need no join.
    pub project_id: Uuid,
    /// Order of the webhook within its session.
    pub position: i32,
    /// `http` or `https` URL.
    pub url: String,
    /// `POST`, `PUT` or `PATCH`.
    pub method: String,
    /// Custom headers as a JSON array of `[name, [values…]]` pairs, in the order given.
    pub headers: String,
    /// Event kinds delivered, comma-separated snake_case; empty means every kind.
    pub events: String,
    pub retries: i32,
    /// Seconds before the first retry.
    pub initial_backoff: i32,
    pub backoff_multiplier: f64,
    /// The signing secret, `whsec_` and base64. Kept in clear: it is needed to sign.
    pub secret: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

/// Leaves out the secret and the header values, which may hold credentials.
impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("webhook::Model")
            .field("id", &self.id)
            .field("session_id", &self.session_id)
            .field("method", &self.method)
            .field("events", &self.events)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
