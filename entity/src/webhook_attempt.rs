//! One HTTP request made for a webhook delivery, kept for the record.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub delivery_id: Uuid,
    /// 1 for the first attempt of the delivery.
    pub attempt: i32,
    /// `succeeded` or `failed`.
    pub outcome: String,
    pub response_status: Option<i32>,
    /// The first KiB of the response body, decoded lossily as UTF-8.
    pub response_body: Option<String>,
    /// Why the attempt failed, in keyproof's own words.
    pub error: Option<String>,
    pub duration_ms: i64,
    pub started_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
