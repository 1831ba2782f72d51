//! Mutations.

use std::sync::Arc;

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::Utc;

use super::auth::{CLIENT_TOKEN_PREFIX, Caller};
use super::error::{ApiError, ApiResult};
use super::input::CreateVerifySessionInput;
use super::types::VerifySession;
use super::{GraphqlState, parse_id};
use crate::domain::identifiers::{hash_secret, new_secret};
use crate::store::CompleteRefusal;

#[derive(Default)]
pub struct SessionMutation;

/// A new session and the token a browser may use to follow it.
#[derive(SimpleObject)]
pub struct CreateVerifySessionPayload {
    pub session: VerifySession,
    /// Reads and subscribes to this one session only; safe to hand to a browser.
    pub client_token: String,
}

#[Object]
impl SessionMutation {
    /// Creates a verify session.
    async fn create_verify_session(
        &self,
        ctx: &Context<'_>,
        input: CreateVerifySessionInput,
    ) -> async_graphql::Result<CreateVerifySessionPayload> {
        Ok(create_session(ctx, input).await?)
    }

    /// Closes a verified multi-connection session to new connections. `CONFLICT` for any
    /// other session.
    async fn complete_verify_session(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<VerifySession> {
        Ok(complete_session(ctx, &id).await?)
    }

    /// Deletes a session with its keys, connections and events; returns its id.
    async fn delete_verify_session(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        Ok(delete_session(ctx, id).await?)
    }
}

async fn create_session(
    ctx: &Context<'_>,
    input: CreateVerifySessionInput,
) -> ApiResult<CreateVerifySessionPayload> {
    let project_id = ctx.data_unchecked::<Caller>().project()?;
    let state = ctx.data_unchecked::<GraphqlState>();

    let client_token = new_secret(CLIENT_TOKEN_PREFIX);
    let new = input.validate(
        Utc::now(),
        state.default_session_timeout,
        hash_secret(&client_token),
    )?;
    super::webhooks::check_new_targets(ctx, &new.webhooks).await?;
    let view = state.store.create_session(project_id, new).await?;
    tracing::info!(session_id = %view.session.id, keys = view.keys.len(), "verify session created");

    Ok(CreateVerifySessionPayload {
        session: VerifySession(Arc::new(view)),
        client_token,
    })
}

async fn complete_session(ctx: &Context<'_>, id: &ID) -> ApiResult<VerifySession> {
    let project_id = ctx.data_unchecked::<Caller>().project()?;
    let session_id = parse_id(id).ok_or(ApiError::NotFound)?;
    let state = ctx.data_unchecked::<GraphqlState>();

    match state.store.complete_session(project_id, session_id).await? {
        None => Err(ApiError::NotFound),
        Some(Ok(view)) => Ok(VerifySession(Arc::new(view))),
        Some(Err(CompleteRefusal::NotMultiConnection)) => Err(ApiError::Conflict(
            "only multiConnection sessions are completed; others close by themselves",
        )),
        Some(Err(CompleteRefusal::NotVerified)) => Err(ApiError::Conflict(
            "the session is not verified; delete it to abandon it",
        )),
    }
}

async fn delete_session(ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
    let project_id = ctx.data_unchecked::<Caller>().project()?;
    let session_id = parse_id(&id).ok_or(ApiError::NotFound)?;
    let state = ctx.data_unchecked::<GraphqlState>();

    if state.store.delete_session(project_id, session_id).await? {
        tracing::info!(%session_id, "verify session deleted");
        Ok(id)
    } else {
        Err(ApiError::NotFound)
    }
}
