//! A key configured on a verify session.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "verify_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub session_id: Uuid,
    /// Order of the key in the creating request.
    pub position: i32,
    pub name: Option<String>,
    pub external_id: Option<String>,
    pub public_key_algorithm: String,
    /// Canonical `algorithm base64` form; keys are compared by it.
    pub public_key_ssh: String,
    pub public_key_pem: String,
    pub public_key_md5: String,
    pub public_key_sha256: String,
    pub verified_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
