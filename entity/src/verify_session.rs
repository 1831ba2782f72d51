//! A verify session: the keys to prove, its options and its current status.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "verify_sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub project_id: Uuid,
    #[sea_orm(unique)]
    pub connection_identifier: String,
    /// `pending`, `verified` or `failed`.
    pub status: String,
    /// `max_attempts` or `expired` when failed.
    pub failure_reason: Option<String>,
    pub external_id: Option<String>,
    pub match_all_keys: bool,
    pub max_attempts: i32,
    pub failed_attempts: i32,
    pub multi_connection: bool,
    pub multi_key: bool,
    pub must_confirm: bool,
    pub ssh_banner: Option<String>,
    pub ssh_message: Option<String>,
    /// Lowercase hex SHA-256 of the session's client token.
    #[sea_orm(unique)]
    pub client_token_hash: String,
    /// Sequence number of the last event of this session; events are ordered by it.
    pub event_seq: i64,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub expired_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
