//! Mutations.

use std::sync::Arc;

use async_graphql::{Context, Object, SimpleObject};
use chrono::Utc;

use super::GraphqlState;
use super::auth::{CLIENT_TOKEN_PREFIX, Caller};
use super::error::ApiResult;
use super::input::CreateVerifySessionInput;
use super::types::VerifySession;
use crate::domain::identifiers::{hash_secret, new_secret};

pub struct MutationRoot;

/// A new session and the token a browser may use to follow it.
#[derive(SimpleObject)]
pub struct CreateVerifySessionPayload {
    pub session: VerifySession,
    /// Reads and subscribes to this one session only; safe to hand to a browser.
    pub client_token: String,
}

#[Object]
impl MutationRoot {
    /// Creates a verify session.
    async fn create_verify_session(
        &self,
        ctx: &Context<'_>,
        input: CreateVerifySessionInput,
    ) -> async_graphql::Result<CreateVerifySessionPayload> {
        Ok(create_session(ctx, input).await?)
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
    let view = state.store.create_session(project_id, new).await?;
    tracing::info!(session_id = %view.session.id, keys = view.keys.len(), "verify session created");

    Ok(CreateVerifySessionPayload {
        session: VerifySession(Arc::new(view)),
        client_token,
    })
}
