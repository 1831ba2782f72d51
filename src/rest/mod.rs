//! The REST API under `/api/v1`, shaped like the hosted reference API (DESIGN §9) so that its
//! clients work against keyproof by changing only the base URL.
//!
//! - Every operation is one [`Operation`]; the router and the OpenAPI document
//!   (`/api/v1/openapi.json`) are both built from [`Operation::ALL`].
//! - Bodies are built from the store's `SessionView`, as the GraphQL types are, and carry a
//!   `$schema` link to a JSON Schema served under `/api/v1/schemas/`.
//! - Create input is decoded into the GraphQL input type and checked by its validation; error
//!   locations are translated (`input.expiredAt` → `body.expired_at`).
//! - Every error, including unknown paths, wrong methods and the framework's own rejections,
//!   is an RFC 7807 problem document.
//! - Authentication is the project API key in `x-api-key`; client tokens are for GraphQL.
//!
//! There is no rate limiter yet; a 429 from any layer in front of these routes still leaves as
//! a problem document (see [`problem::Problem::too_many_requests`]).

mod bodies;
mod context;
mod decode;
mod handlers;
mod names;
pub mod openapi;
pub mod problem;
mod request;
mod routes;
mod schemas;
mod webhooks;

use axum::routing::{any, get};
use axum::{Router, middleware};

pub use routes::Operation;

use crate::http::HttpState;

/// Where the REST API is nested in the HTTP router.
pub const PREFIX: &str = "/api/v1";

/// The REST routes, with their full paths below [`PREFIX`], to be merged into the HTTP
/// router. Every operation answers with and without its trailing slash; anything else below
/// the prefix is a 404 problem document.
pub fn router() -> Router<HttpState> {
    let mut router = Router::new();
    for operation in Operation::ALL {
        let path = format!("{PREFIX}{}", operation.path());
        router = router
            .route(&path, operation.method_router())
            .route(path.trim_end_matches('/'), operation.method_router());
    }

    router
        .route(&format!("{PREFIX}/openapi.json"), get(openapi::serve))
        .route(&format!("{PREFIX}/schemas/{{file}}"), get(schemas::serve))
        .route(PREFIX, any(problem::unknown_path))
        .route(&format!("{PREFIX}/"), any(problem::unknown_path))
        .route(&format!("{PREFIX}/{{*rest}}"), any(problem::unknown_path))
        .layer(middleware::from_fn(problem::finish))
}
