//! One event of a verify session, written in the same transaction as the change it announces.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "session_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub session_id: Uuid,
    /// Position in the session's event sequence, starting at 1.
    pub seq: i64,
    /// `new_connection`, `verified`, `failed_attempt` or `status_changed`.
    pub kind: String,
    pub connection_id: Option<Uuid>,
    /// The configured key, for `verified`.
    pub key_id: Option<Uuid>,
    /// The connection's key, for `verified`.
    pub connection_key_id: Option<Uuid>,
    pub occurred_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
