//! The REST handlers: extract, call the store, answer with a body from `bodies`.

use axum::http::header::{CONTENT_TYPE, LINK, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Serialize;
use uuid::Uuid;

use super::bodies::{AuthInfo, Named, VerifySession, VerifySessionCreated, VerifySessionList};
use super::context::{
    JsonBody, Links, PathParams, ProjectKey, QueryPairs, Services, parse_session_id,
};
use super::problem::{Problem, ProblemError};
use super::request::validate_create;
use super::webhooks::Webhook;
use crate::domain::identifiers::{hash_secret, new_secret};
use crate::domain::session::SessionStatus;
use crate::graphql::auth::CLIENT_TOKEN_PREFIX;
use crate::store::{CompleteRefusal, NewWebhook, SessionFilter, SessionView};
use crate::webhooks::settings::check_new_targets;

/// Page size when `limit` is not given, and the largest page: larger limits are capped.
pub const MAX_LIMIT: u64 = 100;

pub(super) type Answer = Result<Response, Problem>;

/// `GET /auth/info/`
pub async fn get_auth_info(key: ProjectKey, links: Links) -> Answer {
    let body = AuthInfo {
        schema: links.schema_url::<AuthInfo>(),
        api_key: Named {
            id: key.key_id,
            name: key.key_name,
        },
        project: Named {
            id: key.project_id,
            name: key.project_name,
        },
    };

    json(StatusCode::OK, &body.schema, &body)
}

/// `GET /ssh/verify/sessions/`
pub async fn list_sessions(
    key: ProjectKey,
    services: Services,
    links: Links,
    QueryPairs(query): QueryPairs,
) -> Answer {
    let page = PageRequest::parse(&query)?;

    let slice = services
        .store
        .list_sessions_by_offset(key.project_id, &page.filter, page.offset, page.limit)
        .await?;
    let ids: Vec<Uuid> = slice.sessions.iter().map(|view| view.session.id).collect();
    let mut webhooks = services.store.webhooks_of_sessions(&ids).await?;
    let items: Vec<VerifySession> = slice
        .sessions
        .iter()
        .map(|view| {
            let models = webhooks.remove(&view.session.id).unwrap_or_default();
            let bodies = models.iter().map(|m| Webhook::new(m, &links)).collect();
            VerifySession::new(view, bodies, &services.public, &links)
        })
        .collect();
    let has_more = page.offset.saturating_add(items.len() as u64) < slice.total;
    let body = VerifySessionList {
        schema: links.schema_url::<VerifySessionList>(),
        items,
        total: slice.total,
        offset: page.offset,
        limit: page.limit,
        has_more,
    };

    json(StatusCode::OK, &body.schema, &body)
}

/// `POST /ssh/verify/sessions/`
pub async fn create_session(
    key: ProjectKey,
    services: Services,
    links: Links,
    JsonBody(body): JsonBody,
) -> Answer {
    let client_token = new_secret(CLIENT_TOKEN_PREFIX);
    let new = validate_create(
        &body,
        Utc::now(),
        services.default_session_timeout,
        hash_secret(&client_token),
    )?;
    check_targets(&services, &new.webhooks).await?;

    let view = services.store.create_session(key.project_id, new).await?;
    tracing::info!(session_id = %view.session.id, keys = view.keys.len(), "verify session created");
    let mut session = session_body(&services, &view, &links).await?;
    session.schema = links.schema_url::<VerifySessionCreated>();
    let body = VerifySessionCreated {
        session,
        client_token,
    };

    let mut response = json(StatusCode::CREATED, &body.session.schema, &body)?;
    let location = format!("{}/ssh/verify/sessions/{}/", super::PREFIX, view.session.id);
    if let Ok(location) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, location);
    }
    Ok(response)
}

/// `GET /ssh/verify/sessions/{session}/`
pub async fn get_session(
    key: ProjectKey,
    services: Services,
    links: Links,
    PathParams(session): PathParams<String>,
) -> Answer {
    let session_id = parse_session_id(&session)?;

    let view = services
        .store
        .session_view(key.project_id, session_id)
        .await?
        .ok_or_else(not_found)?;
    let body = session_body(&services, &view, &links).await?;

    json(StatusCode::OK, &body.schema, &body)
}

/// `POST /ssh/verify/sessions/{session}/complete/`
pub async fn complete_session(
    key: ProjectKey,
    services: Services,
    links: Links,
    PathParams(session): PathParams<String>,
) -> Answer {
    let session_id = parse_session_id(&session)?;

    let view = match services
        .store
        .complete_session(key.project_id, session_id)
        .await?
    {
        None => return Err(not_found()),
        Some(Ok(view)) => view,
        Some(Err(CompleteRefusal::NotMultiConnection)) => {
            return Err(Problem::conflict(
                "only multi_connection sessions are completed; the others close by themselves",
            ));
        }
        Some(Err(CompleteRefusal::NotVerified)) => {
            return Err(Problem::conflict(
                "the session is not verified yet; a multi_connection session is completed after \
                 it verified",
            ));
        }
    };
    tracing::info!(%session_id, "verify session completed");
    let body = session_body(&services, &view, &links).await?;

    json(StatusCode::OK, &body.schema, &body)
}

/// The target check of the webhooks of a new session (it resolves host names, so it runs
/// after the other checks passed).
async fn check_targets(services: &Services, webhooks: &[NewWebhook]) -> Result<(), Problem> {
    let location_of = |index| format!("body.webhooks[{index}].url");
    let errors = check_new_targets(services.webhook_targets, webhooks, location_of).await;

    if errors.is_empty() {
        Ok(())
    } else {
        Err(Problem::bad_input(
            errors.into_iter().map(ProblemError::from).collect(),
        ))
    }
}

pub(super) fn not_found() -> Problem {
    Problem::not_found("no such verify session")
}

/// The body of a session, with its webhooks.
async fn session_body(
    services: &Services,
    view: &SessionView,
    links: &Links,
) -> Result<VerifySession, Problem> {
    let webhooks = webhooks_of(services, view.session.id, links).await?;
    Ok(VerifySession::new(view, webhooks, &services.public, links))
}

/// The session's webhook endpoints.
async fn webhooks_of(
    services: &Services,
    session_id: Uuid,
    links: &Links,
) -> Result<Vec<Webhook>, Problem> {
    let webhooks = services.store.session_webhooks(session_id).await?;
    Ok(webhooks
        .iter()
        .map(|model| Webhook::new(model, links))
        .collect())
}

/// A JSON answer with a `Link` to its schema, as the reference sends.
pub(super) fn json<T: Serialize>(status: StatusCode, schema_url: &str, body: &T) -> Answer {
    let bytes = serde_json::to_vec(body).map_err(|error| {
        tracing::error!(%error, "cannot serialize a REST body");
        Problem::internal()
    })?;
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(link) = HeaderValue::from_str(&format!("<{schema_url}>; rel=\"describedBy\"")) {
        headers.insert(LINK, link);
    }
    Ok(response)
}

/// `offset`, `limit` and the filters of a list request.
struct PageRequest {
    offset: u64,
    limit: u64,
    filter: SessionFilter,
}

impl PageRequest {
    fn parse(query: &[(String, String)]) -> Result<Self, Problem> {
        let mut page = Self {
            offset: 0,
            limit: MAX_LIMIT,
            filter: SessionFilter::default(),
        };
        let mut errors = Vec::new();
        for (name, value) in query {
            match name.as_str() {
                "offset" => match value.trim().parse::<u64>() {
                    Ok(offset) => page.offset = offset,
                    Err(_) => errors.push(whole_number_error("query.offset", value)),
                },
                "limit" => match value.trim().parse::<u64>() {
                    Ok(limit) => page.limit = limit.min(MAX_LIMIT),
                    Err(_) => errors.push(whole_number_error("query.limit", value)),
                },
                "status" => match SessionStatus::parse(value) {
                    Some(status) => page.filter.status = Some(status),
                    None => errors.push(ProblemError::new(
                        "query.status",
                        "must be pending, verified or failed",
                    )),
                },
                "external_id" => page.filter.external_id = Some(value.clone()),
                _ => {}
            }
        }

        if errors.is_empty() {
            Ok(page)
        } else {
            Err(Problem::bad_input(errors))
        }
    }
}

fn whole_number_error(location: &str, value: &str) -> ProblemError {
    let error = ProblemError::new(location, "must be a whole number, 0 or more");
    match value.trim().parse::<i64>() {
        Ok(number) => error.with_value(number),
        Err(_) => error,
    }
}
