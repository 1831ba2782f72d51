//! Offset pagination over verify sessions, for the REST API (`offset`/`limit`, `total`).

use std::collections::HashMap;

use entity::{verify_session, webhook};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::views::load_views;
use super::{SessionFilter, SessionView, Store, StoreResult};

/// A slice of a project's sessions, newest first, with the number of all that match.
#[derive(Debug, Clone)]
pub struct SessionSlice {
    pub sessions: Vec<SessionView>,
    /// How many sessions match the filter, on every page.
    pub total: u64,
}

impl Store {
    /// Up to `limit` sessions of the project matching `filter`, newest first, skipping the
    /// first `offset`. `filter.before_id` narrows the set like the other filters.
    pub async fn list_sessions_by_offset(
        &self,
        project_id: Uuid,
        filter: &SessionFilter,
        offset: u64,
        limit: u64,
    ) -> StoreResult<SessionSlice> {
        let condition = filter.condition(project_id);

        let total = verify_session::Entity::find()
            .filter(condition.clone())
            .count(self.db())
            .await?;
        // UUIDv7 ids grow with creation time, so id order is creation order.
        let rows = if limit == 0 || offset >= total {
            Vec::new()
        } else {
            verify_session::Entity::find()
                .filter(condition)
                .order_by_desc(verify_session::Column::Id)
                .offset(offset)
                .limit(limit)
                .all(self.db())
                .await?
        };
        let sessions = load_views(self.db(), rows).await?;

        Ok(SessionSlice { sessions, total })
    }

    /// The webhooks of each of `session_ids`, in the order they were added, with one query.
    pub async fn webhooks_of_sessions(
        &self,
        session_ids: &[Uuid],
    ) -> StoreResult<HashMap<Uuid, Vec<webhook::Model>>> {
        if session_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows = webhook::Entity::find()
            .filter(webhook::Column::SessionId.is_in(session_ids.iter().copied()))
            .order_by_asc(webhook::Column::Position)
            .all(self.db())
            .await?;

        let mut by_session: HashMap<Uuid, Vec<webhook::Model>> = HashMap::new();
        for row in rows {
            by_session.entry(row.session_id).or_default().push(row);
        }
        Ok(by_session)
    }
}
