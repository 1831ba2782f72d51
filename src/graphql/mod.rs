//! The GraphQL API: schema, resolvers and the caller's credentials.

pub mod auth;
pub mod error;
pub mod input;
pub mod mutation;
pub mod query;
pub mod subscription;
pub mod types;
pub mod webhooks;

use std::time::Duration;

use async_graphql::{ID, MergedObject, Schema};
use uuid::Uuid;

use crate::public::PublicSsh;
use crate::store::Store;
use crate::webhooks::targets::TargetPolicy;
use mutation::SessionMutation;
use query::QueryRoot;
use subscription::SubscriptionRoot;
use types::SshHostKey;
use webhooks::WebhookMutation;

/// Every mutation; each concern contributes its own object.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(SessionMutation, WebhookMutation);

pub type KeyproofSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Deepest query accepted.
pub const MAX_DEPTH: usize = 12;
/// Most complex query accepted: fields selected, each list field counted once per item of the
/// page it asks for.
pub const MAX_COMPLEXITY: usize = 10_000;

/// What resolvers share.
#[derive(Clone)]
pub struct GraphqlState {
    pub store: Store,
    pub host_keys: Vec<SshHostKey>,
    pub default_session_timeout: Duration,
    /// Which webhook targets may be configured.
    pub webhook_targets: TargetPolicy,
}

/// Builds the schema with its limits and shared state.
pub fn build_schema(state: GraphqlState, public: PublicSsh) -> KeyproofSchema {
    Schema::build(QueryRoot, MutationRoot::default(), SubscriptionRoot)
        .data(state)
        .data(public)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(QueryRoot, MutationRoot::default(), SubscriptionRoot)
        .finish()
        .sdl()
}

/// Parses an ID argument; anything that is not one of our ids is simply not found.
pub fn parse_id(id: &ID) -> Option<Uuid> {
    Uuid::parse_str(id.as_str()).ok()
}
