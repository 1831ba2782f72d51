//! The HTTP server: GraphQL (POST), GraphiQL (GET), the GraphQL websocket, health checks.

use std::time::Duration;

use async_graphql::Data;
use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, GraphiQLSource};
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Router, middleware};
use futures_util::{SinkExt, StreamExt};
use tracing::Instrument;

use crate::graphql::KeyproofSchema;
use crate::graphql::auth::{Caller, authenticate, credential_from_headers};
use crate::metrics::METRICS;
use crate::store::Store;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The close code for a websocket whose credential is missing or invalid.
pub const WS_CLOSE_UNAUTHENTICATED: u16 = 4403;
const WS_UNAUTHENTICATED_MARKER: &str = "keyproof: unauthenticated";

#[derive(Clone)]
pub struct HttpState {
    pub schema: KeyproofSchema,
    pub store: Store,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::rest::router())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(request_span))
        .with_state(state)
}

async fn request_span(request: axum::extract::Request, next: middleware::Next) -> Response {
    let span = tracing::info_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
    );
    async move {
        let started = std::time::Instant::now();
        let response = next.run(request).await;
        METRICS.http_request_seconds.observe(started.elapsed());
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "request served"
        );
        response
    }
    .instrument(span)
    .await
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .finish(),
    )
}

async fn caller_from_headers(store: &Store, headers: &HeaderMap) -> Caller {
    let Some(credential) = credential_from_headers(headers) else {
        return Caller::Anonymous;
    };
    match authenticate(store, &credential).await {
        Ok(Some(principal)) => Caller::Authenticated(principal),
        _ => Caller::Anonymous,
    }
}

/// POST `/graphql`. The body is read through axum's size limit (async-graphql's own extractor
/// reads the body unbounded and accepts multipart uploads, which this API has no use for).
async fn graphql(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            let message = match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large",
                _ => "the request body could not be read",
            };
            return graphql_error(rejection.status(), message, "BAD_USER_INPUT");
        }
    };
    let Ok(request) = serde_json::from_slice::<async_graphql::Request>(&body) else {
        let message = "the body is not a GraphQL request: send JSON with a `query` string";
        return graphql_error(StatusCode::BAD_REQUEST, message, "BAD_USER_INPUT");
    };

    let caller = caller_from_headers(&state.store, &headers).await;
    GraphQLResponse::from(state.schema.execute(request.data(caller)).await).into_response()
}

/// A GraphQL error document for a request that never reached the schema.
fn graphql_error(status: StatusCode, message: &str, code: &str) -> Response {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }],
    });
    (status, axum::Json(body)).into_response()
}

async fn graphql_ws(
    State(state): State<HttpState>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    let from_headers = caller_from_headers(&state.store, &headers).await;

    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(MAX_BODY_BYTES)
        .on_upgrade(move |socket| async move {
            let (sink, stream) = socket.split();
            // async-graphql closes a refused `connection_init` with 1002; the protocol asks for
            // 4403, so rewrite that one close frame on its way out.
            let sink = sink.with(|message: axum::extract::ws::Message| async move {
                Ok::<_, axum::Error>(rewrite_unauthenticated_close(message))
            });
            let store = state.store.clone();
            GraphQLWebSocket::new_with_pair(sink, stream, state.schema.clone(), protocol)
                .on_connection_init(move |payload| async move {
                    let caller = match from_headers {
                        Caller::Authenticated(_) => from_headers,
                        Caller::Anonymous => caller_from_init(&store, &payload).await,
                    };
                    match caller {
                        Caller::Authenticated(_) => {
                            let mut data = Data::default();
                            data.insert(caller);
                            Ok(data)
                        }
                        Caller::Anonymous => Err(WS_UNAUTHENTICATED_MARKER.into()),
                    }
                })
                .keepalive_timeout(Duration::from_secs(60))
                .serve()
                .await;
        })
}

async fn caller_from_init(store: &Store, payload: &serde_json::Value) -> Caller {
    let credential = ["apiKey", "clientToken"]
        .iter()
        .find_map(|field| payload.get(field).and_then(|value| value.as_str()));
    let Some(credential) = credential else {
        return Caller::Anonymous;
    };
    match authenticate(store, credential).await {
        Ok(Some(principal)) => Caller::Authenticated(principal),
        _ => Caller::Anonymous,
    }
}

fn rewrite_unauthenticated_close(
    message: axum::extract::ws::Message,
) -> axum::extract::ws::Message {
    use axum::extract::ws::{CloseFrame, Message};

    match message {
        Message::Close(Some(frame)) if frame.reason.as_str() == WS_UNAUTHENTICATED_MARKER => {
            Message::Close(Some(CloseFrame {
                code: WS_CLOSE_UNAUTHENTICATED,
                reason: "Forbidden".into(),
            }))
        }
        other => other,
    }
}

async fn metrics() -> impl IntoResponse {
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    (
        [(axum::http::header::CONTENT_TYPE, content_type)],
        METRICS.render(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.store.ping().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unreachable")
    }
}
