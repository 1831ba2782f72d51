//! A distinct key a client offered on a connection. `verified_at` is set only when the client
//! signed with it and the signature checked out.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "connection_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub connection_id: Uuid,
    pub session_id: Uuid,
    /// The configured key this offer matches, if any.
    pub matched_key_id: Option<Uuid>,
    pub public_key_algorithm: String,
    pub public_key_ssh: String,
    pub public_key_pem: String,
    pub public_key_md5: String,
    pub public_key_sha256: String,
    pub created_at: DateTimeUtc,
    pub verified_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
