//! Queries.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Object};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::auth::{Caller, Principal};
use super::error::{ApiError, ApiResult};
use super::types::{ApiKeyInfo, AuthInfo, Project, SshHostKey, VerifySession, VerifySessionStatus};
use super::{GraphqlState, parse_id};
use crate::store::SessionFilter;

/// Page size of `verifySessions` when `first` is not given.
pub const DEFAULT_PAGE: i32 = 20;
/// The page size a `first` argument asks for, for query complexity: each item costs what its
/// selection costs.
pub fn page_size(first: Option<i32>) -> usize {
    usize::try_from(first.unwrap_or(DEFAULT_PAGE))
        .unwrap_or(0)
        .max(1)
}

/// Largest page of `verifySessions`.
pub const MAX_PAGE: i32 = 100;

pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// A session, or null when it does not exist or the caller may not see it.
    async fn verify_session(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<VerifySession>> {
        Ok(visible_session(ctx, &id).await?)
    }

    /// The project's sessions, newest first (Relay cursor pagination, `first` at most 100).
    #[graphql(complexity = "page_size(first) * child_complexity")]
    async fn verify_sessions(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        status: Option<VerifySessionStatus>,
        external_id: Option<String>,
    ) -> async_graphql::Result<Connection<String, VerifySession>> {
        let first = first.unwrap_or(DEFAULT_PAGE);
        Ok(list_sessions(ctx, first, after, status, external_id).await?)
    }

    /// The host keys of this SSH server, to pin in `known_hosts`.
    async fn ssh_host_keys(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<SshHostKey>> {
        ctx.data_unchecked::<Caller>().principal()?;
        Ok(ctx.data_unchecked::<GraphqlState>().host_keys.clone())
    }

    /// The caller's project and API key.
    async fn auth_info(&self, ctx: &Context<'_>) -> async_graphql::Result<AuthInfo> {
        match ctx.data_unchecked::<Caller>().principal()? {
            Principal::ApiKey {
                project_id,
                project_name,
                key_id,
                key_name,
            } => Ok(AuthInfo {
                project: Project {
                    id: ID(project_id.to_string()),
                    name: project_name.clone(),
                },
                api_key: ApiKeyInfo {
                    id: ID(key_id.to_string()),
                    name: key_name.clone(),
                },
            }),
            Principal::ClientToken { .. } => Err(ApiError::Forbidden.into()),
        }
    }
}

/// The session `id` if the caller may read it.
pub async fn visible_session(ctx: &Context<'_>, id: &ID) -> ApiResult<Option<VerifySession>> {
    let caller = ctx.data_unchecked::<Caller>();
    let principal = caller.principal()?;
    let Some(session_id) = parse_id(id) else {
        return Ok(None);
    };
    let project_id = match principal {
        Principal::ApiKey { project_id, .. } => *project_id,
        Principal::ClientToken {
            project_id,
            session_id: own,
        } if *own == session_id => *project_id,
        Principal::ClientToken { .. } => return Ok(None),
    };

    let state = ctx.data_unchecked::<GraphqlState>();
    let view = state.store.session_view(project_id, session_id).await?;
    Ok(view.map(|view| VerifySession(Arc::new(view))))
}

async fn list_sessions(
    ctx: &Context<'_>,
    first: i32,
    after: Option<String>,
    status: Option<VerifySessionStatus>,
    external_id: Option<String>,
) -> ApiResult<Connection<String, VerifySession>> {
    let project_id = ctx.data_unchecked::<Caller>().project()?;
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(ApiError::BadInput(vec![
            super::error::FieldError::new("first", format!("must be between 0 and {MAX_PAGE}"))
                .with_value(first),
        ]));
    }
    let before_id = match after.as_deref() {
        Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| {
            ApiError::BadInput(vec![super::error::FieldError::new(
                "after",
                "is not a cursor returned by this API",
            )])
        })?),
        None => None,
    };

    let filter = SessionFilter {
        status: status.map(Into::into),
        external_id,
        before_id,
    };
    let state = ctx.data_unchecked::<GraphqlState>();
    let page = state
        .store
        .list_sessions(project_id, &filter, first as u64)
        .await?;

    let mut connection = Connection::new(after.is_some(), page.has_next_page);
    connection
        .edges
        .extend(page.sessions.into_iter().map(|view| {
            Edge::new(
                encode_cursor(view.session.id),
                VerifySession(Arc::new(view)),
            )
        }));
    Ok(connection)
}

fn encode_cursor(id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(id.as_bytes())
}

fn decode_cursor(cursor: &str) -> Option<Uuid> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    Uuid::from_slice(&bytes).ok()
}
