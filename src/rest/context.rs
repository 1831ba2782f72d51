//! What a REST handler extracts from a request: the shared services, the caller's project,
//! the base for `$schema` links and the JSON body. Every refusal is a [`Problem`].

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use schemars::JsonSchema;
use serde_json::Value;
use uuid::Uuid;

use super::problem::{Problem, ProblemError};
use crate::graphql::GraphqlState;
use crate::graphql::auth::{Principal, authenticate};
use crate::http::HttpState;
use crate::public::PublicSsh;
use crate::store::Store;
use crate::webhooks::targets::TargetPolicy;

/// The header that carries the project API key.
pub const API_KEY_HEADER: &str = "x-api-key";

/// Where JSON Schemas are served, below the API prefix.
pub const SCHEMAS_PATH: &str = "/schemas";

/// The services a handler uses, shared with the GraphQL API.
pub struct Services {
    pub store: Store,
    pub public: PublicSsh,
    pub default_session_timeout: Duration,
    pub webhook_targets: TargetPolicy,
}

impl FromRequestParts<HttpState> for Services {
    type Rejection = Problem;

    async fn from_request_parts(_: &mut Parts, state: &HttpState) -> Result<Self, Problem> {
        let graphql = state.schema.data::<GraphqlState>();
        let public = state.schema.data::<PublicSsh>();
        match (graphql, public) {
            (Some(graphql), Some(public)) => Ok(Self {
                store: state.store.clone(),
                public: public.clone(),
                default_session_timeout: graphql.default_session_timeout,
                webhook_targets: graphql.webhook_targets,
            }),
            _ => {
                tracing::error!("the GraphQL schema lacks the state the REST API shares");
                Err(Problem::internal())
            }
        }
    }
}

/// The caller: a project API key from the `x-api-key` header. Client tokens are refused.
#[derive(Debug, Clone)]
pub struct ProjectKey {
    pub project_id: Uuid,
    pub project_name: String,
    pub key_id: Uuid,
    pub key_name: String,
}

impl FromRequestParts<HttpState> for ProjectKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &HttpState) -> Result<Self, Problem> {
        let credential = parts
            .headers
            .get(API_KEY_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .unwrap_or_default();
        if credential.is_empty() {
            return Err(Problem::unauthorized(
                "send a project API key in the x-api-key header",
            ));
        }

        match authenticate(&state.store, credential).await? {
            Some(Principal::ApiKey {
                project_id,
                project_name,
                key_id,
                key_name,
            }) => Ok(Self {
                project_id,
                project_name,
                key_id,
                key_name,
            }),
            Some(Principal::ClientToken { .. }) => Err(Problem::unauthorized(
                "client tokens are for the GraphQL API; send a project API key in x-api-key",
            )),
            None => Err(Problem::unauthorized(
                "the API key in x-api-key is not valid",
            )),
        }
    }
}

/// How this request reached us, to build absolute `$schema` links like the reference does.
#[derive(Debug, Clone)]
pub struct Links {
    /// `scheme://host` when the request named a plausible host, else empty (relative links).
    origin: String,
}

impl Links {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let host = headers
            .get(HOST)
            .and_then(|value| value.to_str().ok())
            .filter(|host| is_plausible_host(host));
        let scheme = match headers
            .get("x-forwarded-proto")
            .and_then(|value| value.to_str().ok())
        {
            Some("https") => "https",
            _ => "http",
        };
        Self {
            origin: host.map_or_else(String::new, |host| format!("{scheme}://{host}")),
        }
    }

    /// Root-relative links, for when the request is not at hand.
    pub fn relative() -> Self {
        Self {
            origin: String::new(),
        }
    }

    /// The URL of the JSON Schema named `name`.
    pub fn schema_url_named(&self, name: &str) -> String {
        format!("{}{}{SCHEMAS_PATH}/{name}.json", self.origin, super::PREFIX)
    }

    /// The URL of the JSON Schema of `T`.
    pub fn schema_url<T: JsonSchema>(&self) -> String {
        self.schema_url_named(&T::schema_name())
    }
}

/// Host names, IPv4 and bracketed IPv6 addresses with an optional port; nothing else is echoed.
fn is_plausible_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
}

impl<S: Send + Sync> FromRequestParts<S> for Links {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_headers(&parts.headers))
    }
}

/// A JSON request body: `application/json` (or `application/*+json`), within the body limit,
/// and well-formed. Its shape is checked by the operation.
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Problem> {
        if !is_json(request.headers()) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body as JSON with content-type: application/json",
            ));
        }
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "the body is larger than {} bytes",
                            crate::http::MAX_BODY_BYTES
                        ),
                    ),
                    _ => Problem::new(StatusCode::BAD_REQUEST, "the body could not be read"),
                })?;

        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|error| {
                let message = format!(
                    "is not valid JSON (line {}, column {})",
                    error.line(),
                    error.column()
                );
                Problem::bad_input(vec![ProblemError::new("body", message)])
            })
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A session id from the path. Anything that is not one of our ids is simply not found.
pub fn parse_session_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| Problem::not_found("no such verify session"))
}

/// The path parameters of a route, as strings; a rejection becomes a problem document.
pub struct PathParams<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParams<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(params)| Self(params))
            .map_err(|_| Problem::new(StatusCode::BAD_REQUEST, "the request path is not valid"))
    }
}

/// The query string as name/value pairs, in order; a rejection becomes a problem document.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(pairs)| Self(pairs))
            .map_err(|_| Problem::new(StatusCode::BAD_REQUEST, "the query string is not valid"))
    }
}
