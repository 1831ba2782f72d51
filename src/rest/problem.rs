//! Errors as RFC 7807 problem documents (`application/problem+json`), the way the reference
//! API sends them: `$schema`, `type`, `title`, `status`, `detail`, `instance` and, for input
//! errors, `errors[{location, message, value}]`.
//!
//! Handlers and extractors return a [`Problem`]; [`finish`] writes it out with the request's
//! path as `instance`. [`finish`] also turns every other error response of the REST router —
//! unknown paths, wrong methods, anything a layer refused — into a problem document, so no
//! bare framework response leaves. Details are our own sentences: store, library and
//! framework error text is logged where it happens and never sent, and no value that could be
//! key material or a secret is echoed.

use axum::extract::{OriginalUri, Request};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use super::context::Links;
use super::names::{rest_location, rest_text};
use crate::graphql::error::{ApiError, FieldError};

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An error of the REST API, before it is written out.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub detail: String,
    pub errors: Vec<ProblemError>,
    /// Seconds the client should wait, for 429 and 503.
    pub retry_after: Option<u64>,
}

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[schemars(rename = "ErrorDetail")]
pub struct ProblemError {
    /// Where, e.g. `body.keys[0].public_key` or `query.limit`.
    pub location: String,
    /// Why, in plain words.
    pub message: String,
    /// The offending value when it is safe to echo (never key material or secrets), else null.
    pub value: Option<Value>,
}

impl ProblemError {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            message: message.into(),
            value: None,
        }
    }

    pub fn with_value(mut self, value: impl Into<Value>) -> Self {
        self.value = Some(value.into());
        self
    }
}

impl From<FieldError> for ProblemError {
    fn from(error: FieldError) -> Self {
        Self {
            location: rest_location(&error.location),
            message: rest_text(&error.message),
            value: error.value,
        }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[schemars(rename = "ErrorModel")]
pub struct ErrorModel {
    /// The JSON Schema of this body.
    #[serde(rename = "$schema")]
    pub schema: String,
    /// A URI naming the kind of problem; `about:blank` means the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// The HTTP status in words.
    pub title: String,
    pub status: u16,
    /// What went wrong, in plain words.
    pub detail: String,
    /// The path of the request that failed.
    pub instance: String,
    /// For input errors: every invalid field.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProblemError>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// 400 with every invalid field.
    pub fn bad_input(errors: Vec<ProblemError>) -> Self {
        let detail = match errors.as_slice() {
            [only] => format!("{}: {}", only.location, only.message),
            _ => format!("{} input fields are invalid", errors.len()),
        };
        Self {
            errors,
            ..Self::new(StatusCode::BAD_REQUEST, detail)
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the server log has the details",
        )
    }

    /// 429: the client sent too many requests and may retry after `retry_after` seconds.
    pub fn too_many_requests(retry_after: Option<u64>) -> Self {
        Self {
            retry_after,
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests; slow down and retry later",
            )
        }
    }

    /// A problem for an error response that something other than our handlers produced.
    fn for_bare_response(method: &Method, response: &Response) -> Self {
        let status = response.status();
        let detail = match status {
            StatusCode::NOT_FOUND => "no such resource".to_owned(),
            // The router adds the `Allow` header after this middleware has run.
            StatusCode::METHOD_NOT_ALLOWED => {
                format!("{method} is not allowed on this path; the Allow header lists what is")
            }
            StatusCode::PAYLOAD_TOO_LARGE => "the body is too large".to_owned(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "the body's content type is not accepted".into(),
            StatusCode::TOO_MANY_REQUESTS => return Self::too_many_requests(None),
            status if status.is_server_error() => return Self::internal_with(status),
            status => status
                .canonical_reason()
                .unwrap_or("the request failed")
                .to_owned(),
        };
        Self::new(status, detail)
    }

    fn internal_with(status: StatusCode) -> Self {
        Self {
            status,
            ..Self::internal()
        }
    }

    fn body(&self, links: &Links, instance: &str) -> ErrorModel {
        ErrorModel {
            schema: links.schema_url::<ErrorModel>(),
            kind: "about:blank".to_owned(),
            title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            instance: instance.to_owned(),
            errors: self.errors.clone(),
        }
    }

    fn render(&self, links: &Links, instance: &str) -> Response {
        let body = serde_json::to_vec(&self.body(links, instance)).unwrap_or_default();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl IntoResponse for Problem {
    /// A complete document with a relative `$schema`; [`finish`] rewrites it with the request's
    /// path and origin.
    fn into_response(self) -> Response {
        let mut response = self.render(&Links::relative(), "");
        response.extensions_mut().insert(self);
        response
    }
}

impl From<ApiError> for Problem {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::BadInput(errors) => {
                Self::bad_input(errors.into_iter().map(ProblemError::from).collect())
            }
            ApiError::Unauthenticated => Self::unauthorized("a valid API key is required"),
            ApiError::Forbidden => {
                Self::new(StatusCode::FORBIDDEN, "this credential cannot do that")
            }
            ApiError::NotFound => Self::not_found("not found"),
            ApiError::Conflict(message) => Self::conflict(rest_text(message)),
            ApiError::RateLimited(_) => Self::too_many_requests(None),
            ApiError::Internal => Self::internal(),
        }
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(error: crate::store::StoreError) -> Self {
        ApiError::from(error).into()
    }
}

/// Middleware of the REST router: writes every error response as a problem document.
pub async fn finish(request: Request, next: Next) -> Response {
    let instance = request
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| request.uri().path(), |original| original.0.path())
        .to_owned();
    let links = Links::from_headers(request.headers());
    let method = request.method().clone();

    let response = next.run(request).await;

    let problem = match response.extensions().get::<Problem>() {
        Some(problem) => problem.clone(),
        None if response.status().is_client_error() || response.status().is_server_error() => {
            Problem::for_bare_response(&method, &response)
        }
        None => return response,
    };
    problem.render(&links, &instance)
}

/// The REST router's fallback: an unknown path below the API prefix.
pub async fn unknown_path() -> Problem {
    Problem::not_found("no such resource; /api/v1/openapi.json lists every endpoint")
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::get;

    use super::*;

    /// Serves `router` behind [`finish`] on 127.0.0.1 and answers `GET path`.
    async fn get_through_finish(router: Router, path: &str) -> reqwest::Response {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = router.layer(axum::middleware::from_fn(finish));
        tokio::spawn(async move { axum::serve(listener, app).await });

        reqwest::get(format!("http://{address}{path}"))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_bare_too_many_requests_becomes_a_problem_document() {
        let router =
            Router::new().route("/limited", get(|| async { StatusCode::TOO_MANY_REQUESTS }));

        let response = get_through_finish(router, "/limited").await;

        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], 429);
        assert_eq!(body["title"], "Too Many Requests");
        assert_eq!(body["instance"], "/limited");
    }

    #[tokio::test]
    async fn a_rate_limit_problem_says_when_to_retry() {
        let router = Router::new().route(
            "/limited",
            get(|| async { Problem::too_many_requests(Some(7)) }),
        );

        let response = get_through_finish(router, "/limited").await;

        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "7");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "about:blank");
        assert!(
            body["$schema"]
                .as_str()
                .unwrap()
                .ends_with("/ErrorModel.json")
        );
    }

    #[tokio::test]
    async fn internal_errors_say_nothing_about_their_cause() {
        let router = Router::new().route(
            "/broken",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "db password is hunter2") }),
        );

        let response = get_through_finish(router, "/broken").await;

        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = response.text().await.unwrap();
        assert!(!text.contains("hunter2"), "{text}");
    }
}
