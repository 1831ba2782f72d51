//! Projects and their API keys.

use chrono::Utc;
use entity::{api_key, project};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, sea_query::Expr,
};
use uuid::Uuid;

use super::{Store, StoreResult};
use crate::domain::identifiers::hash_secret;

/// How many characters of a key are kept in clear to recognise it in a list: the `kp_`
/// prefix and four more, too few to help guess even a short bootstrap key.
const KEY_PREFIX_LEN: usize = 7;

impl Store {
    /// Returns the project called `name`, creating it if needed.
    pub async fn ensure_project(&self, name: &str) -> StoreResult<project::Model> {
        let tx = self.begin_write().await?;
        let existing = project::Entity::find()
            .filter(project::Column::Name.eq(name))
            .one(&tx.tx)
            .await?;
        let project = match existing {
            Some(project) => project,
            None => {
                project::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    name: Set(name.to_owned()),
                    created_at: Set(Utc::now()),
                }
                .insert(&tx.tx)
                .await?
            }
        };
        tx.tx.commit().await?;

        Ok(project)
    }

    pub async fn find_project(&self, name: &str) -> StoreResult<Option<project::Model>> {
        Ok(project::Entity::find()
            .filter(project::Column::Name.eq(name))
            .one(self.db())
            .await?)
    }

    /// Stores `secret` (hashed) as an API key of the project. When the same secret is
    /// already stored, returns the existing key instead, so bootstrapping is idempotent.
    pub async fn ensure_api_key(
        &self,
        project_id: Uuid,
        name: &str,
        secret: &str,
    ) -> StoreResult<api_key::Model> {
        let hash = hash_secret(secret);
        let tx = self.begin_write().await?;
        let existing = api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(&hash))
            .one(&tx.tx)
            .await?;
        let key = match existing {
            Some(key) => key,
            None => {
                api_key::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    project_id: Set(project_id),
                    name: Set(name.to_owned()),
                    key_prefix: Set(secret.chars().take(KEY_PREFIX_LEN).collect()),
                    key_hash: Set(hash),
                    created_at: Set(Utc::now()),
                    revoked_at: Set(None),
                }
                .insert(&tx.tx)
                .await?
            }
        };
        tx.tx.commit().await?;

        Ok(key)
    }

    /// The project's keys, revoked ones included, oldest first.
    pub async fn list_api_keys(&self, project_id: Uuid) -> StoreResult<Vec<api_key::Model>> {
        Ok(api_key::Entity::find()
            .filter(api_key::Column::ProjectId.eq(project_id))
            .order_by_asc(api_key::Column::CreatedAt)
            .all(self.db())
            .await?)
    }

    /// Revokes a key of the project; returns whether a live key was revoked.
    pub async fn revoke_api_key(&self, project_id: Uuid, key_id: Uuid) -> StoreResult<bool> {
        let tx = self.begin_write().await?;
        let result = api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(Utc::now()))
            .filter(api_key::Column::Id.eq(key_id))
            .filter(api_key::Column::ProjectId.eq(project_id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&tx.tx)
            .await?;
        tx.tx.commit().await?;

        Ok(result.rows_affected == 1)
    }

    /// The live key whose secret is `secret`, with its project.
    pub async fn authenticate_api_key(
        &self,
        secret: &str,
    ) -> StoreResult<Option<(api_key::Model, project::Model)>> {
        let key = api_key::Entity::find()
            .filter(api_key::Column::KeyHash.eq(hash_secret(secret)))
            .filter(api_key::Column::RevokedAt.is_null())
            .one(self.db())
            .await?;
        let Some(key) = key else {
            return Ok(None);
        };
        let project = project::Entity::find_by_id(key.project_id)
            .one(self.db())
            .await?;

        Ok(project.map(|project| (key, project)))
    }
}
