//! The operations of the REST API. The router and the OpenAPI document are both built from
//! [`Operation::ALL`], so every routed endpoint is documented and every documented one routed.

use axum::http::{Method, StatusCode};
use axum::routing::{MethodRouter, get, post, put};
use serde_json::{Value, json};

use super::bodies::{AuthInfo, VerifySession, VerifySessionCreated, VerifySessionList};
use super::request::CreateVerifySessionRequest;
use super::schemas::{BodyType, Direction};
use super::webhooks::{Webhook, WebhookRequest};
use super::{handlers, webhooks};
use crate::http::HttpState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    GetAuthInfo,
    ListSessions,
    CreateSession,
    GetSession,
    CompleteSession,
    ReplaceWebhook,
}

/// A parameter in the path or the query string.
pub struct Parameter {
    pub name: &'static str,
    pub location: &'static str,
    pub description: &'static str,
    pub required: bool,
    pub schema: Value,
}

impl Operation {
    pub const ALL: [Self; 6] = [
        Self::GetAuthInfo,
        Self::ListSessions,
        Self::CreateSession,
        Self::GetSession,
        Self::CompleteSession,
        Self::ReplaceWebhook,
    ];

    pub fn method(self) -> Method {
        match self {
            Self::GetAuthInfo | Self::ListSessions | Self::GetSession => Method::GET,
            Self::CreateSession | Self::CompleteSession => Method::POST,
            Self::ReplaceWebhook => Method::PUT,
        }
    }

    /// The path below the API prefix, in its canonical form with the trailing slash.
    pub fn path(self) -> &'static str {
        match self {
            Self::GetAuthInfo => "/auth/info/",
            Self::ListSessions | Self::CreateSession => "/ssh/verify/sessions/",
            Self::GetSession => "/ssh/verify/sessions/{session}/",
            Self::CompleteSession => "/ssh/verify/sessions/{session}/complete/",
            Self::ReplaceWebhook => "/ssh/verify/sessions/{session}/webhooks/{webhook}/",
        }
    }

    pub fn operation_id(self) -> &'static str {
        match self {
            Self::GetAuthInfo => "get-auth-info",
            Self::ListSessions => "list-verify-sessions",
            Self::CreateSession => "create-verify-session",
            Self::GetSession => "get-verify-session",
            Self::CompleteSession => "complete-verify-session",
            Self::ReplaceWebhook => "replace-verify-session-webhook",
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            Self::GetAuthInfo => "The project and API key of the caller",
            Self::ListSessions => "List verify sessions, newest first",
            Self::CreateSession => "Create a verify session",
            Self::GetSession => "Get a verify session",
            Self::CompleteSession => "Complete a verified multi-connection session",
            Self::ReplaceWebhook => "Replace the settings of a session's webhook",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::GetAuthInfo => "Answers which project the API key in x-api-key belongs to.",
            Self::ListSessions => {
                "Sessions of the caller's project, newest first. `limit` defaults to 100; larger \
                 values are capped at 100. `has_more` tells whether sessions follow the page."
            }
            Self::CreateSession => {
                "Creates a session for the listed public keys. The person proves a key by running \
                 `ssh_command`. `timeout` and `expired_at` are mutually exclusive."
            }
            Self::GetSession => {
                "The session with its keys, connections and webhooks. Another project's session \
                 is not found."
            }
            Self::CompleteSession => {
                "Closes a verified multi-connection session to new connections. Any other \
                 session is a conflict."
            }
            Self::ReplaceWebhook => {
                "Sets every setting of the webhook: what the body leaves out returns to its \
                 default, except the signing secret, which stays unless given. Deliveries not \
                 yet made use the new settings. Webhooks are created with their session."
            }
        }
    }

    pub fn request_body(self) -> Option<BodyType> {
        match self {
            Self::CreateSession => Some(BodyType::of::<CreateVerifySessionRequest>(
                Direction::Request,
            )),
            Self::ReplaceWebhook => Some(BodyType::of::<WebhookRequest>(Direction::Request)),
            _ => None,
        }
    }

    /// The status and body of a success.
    pub fn success(self) -> (StatusCode, BodyType) {
        let response = Direction::Response;
        match self {
            Self::GetAuthInfo => (StatusCode::OK, BodyType::of::<AuthInfo>(response)),
            Self::ListSessions => (StatusCode::OK, BodyType::of::<VerifySessionList>(response)),
            Self::CreateSession => (
                StatusCode::CREATED,
                BodyType::of::<VerifySessionCreated>(response),
            ),
            Self::GetSession | Self::CompleteSession => {
                (StatusCode::OK, BodyType::of::<VerifySession>(response))
            }
            Self::ReplaceWebhook => (StatusCode::OK, BodyType::of::<Webhook>(response)),
        }
    }

    /// The error statuses this operation answers with, besides the ones every request may get.
    pub fn problems(self) -> &'static [StatusCode] {
        match self {
            Self::GetAuthInfo => &[],
            Self::ListSessions => &[StatusCode::BAD_REQUEST],
            Self::CreateSession => &[
                StatusCode::BAD_REQUEST,
                StatusCode::PAYLOAD_TOO_LARGE,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ],
            Self::GetSession => &[StatusCode::NOT_FOUND],
            Self::CompleteSession => &[StatusCode::NOT_FOUND, StatusCode::CONFLICT],
            Self::ReplaceWebhook => &[
                StatusCode::BAD_REQUEST,
                StatusCode::NOT_FOUND,
                StatusCode::PAYLOAD_TOO_LARGE,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ],
        }
    }

    pub fn parameters(self) -> Vec<Parameter> {
        match self {
            Self::GetAuthInfo | Self::CreateSession => Vec::new(),
            Self::GetSession | Self::CompleteSession => vec![session_parameter()],
            Self::ListSessions => list_parameters(),
            Self::ReplaceWebhook => vec![session_parameter(), webhook_parameter()],
        }
    }

    pub(super) fn method_router(self) -> MethodRouter<HttpState> {
        match self {
            Self::GetAuthInfo => get(handlers::get_auth_info),
            Self::ListSessions => get(handlers::list_sessions),
            Self::CreateSession => post(handlers::create_session),
            Self::GetSession => get(handlers::get_session),
            Self::CompleteSession => post(handlers::complete_session),
            Self::ReplaceWebhook => put(webhooks::replace_webhook),
        }
    }
}

fn session_parameter() -> Parameter {
    Parameter {
        name: "session",
        location: "path",
        description: "The session's id.",
        required: true,
        schema: json!({ "type": "string", "format": "uuid" }),
    }
}

fn webhook_parameter() -> Parameter {
    Parameter {
        name: "webhook",
        location: "path",
        description: "The webhook's id.",
        required: true,
        schema: json!({ "type": "string", "format": "uuid" }),
    }
}

fn list_parameters() -> Vec<Parameter> {
    vec![
        Parameter {
            name: "offset",
            location: "query",
            description: "How many sessions to skip.",
            required: false,
            schema: json!({ "type": "integer", "minimum": 0, "default": 0 }),
        },
        Parameter {
            name: "limit",
            location: "query",
            description: "Most sessions to return; values above 100 are capped at 100.",
            required: false,
            schema: json!({ "type": "integer", "minimum": 0, "default": super::handlers::MAX_LIMIT }),
        },
        Parameter {
            name: "status",
            location: "query",
            description: "Only sessions with this status.",
            required: false,
            schema: json!({ "type": "string", "enum": ["pending", "verified", "failed"] }),
        },
        Parameter {
            name: "external_id",
            location: "query",
            description: "Only sessions with this external id.",
            required: false,
            schema: json!({ "type": "string" }),
        },
    ]
}
