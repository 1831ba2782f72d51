//! Who is calling: a project's API key, or a client token scoped to one session.

use axum::http::HeaderMap;
use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use crate::domain::identifiers::hash_secret;
use crate::store::Store;

/// The authenticated caller of a request or websocket.
#[derive(Debug, Clone)]
pub enum Principal {
    /// A project API key: full access to the project's sessions.
    ApiKey {
        project_id: Uuid,
        project_name: String,
        key_id: Uuid,
        key_name: String,
    },
    /// A client token: may read and subscribe to its own session only.
    ClientToken { project_id: Uuid, session_id: Uuid },
}

/// The credential state of a request, stored in the GraphQL context.
#[derive(Debug, Clone)]
pub enum Caller {
    Authenticated(Principal),
    /// No credential, or one that is not valid.
    Anonymous,
}

impl Caller {
    pub fn principal(&self) -> ApiResult<&Principal> {
        match self {
            Self::Authenticated(principal) => Ok(principal),
            Self::Anonymous => Err(ApiError::Unauthenticated),
        }
    }

    /// The project of an API key; client tokens are refused.
    pub fn project(&self) -> ApiResult<Uuid> {
        match self.principal()? {
            Principal::ApiKey { project_id, .. } => Ok(*project_id),
            Principal::ClientToken { .. } => Err(ApiError::Forbidden),
        }
    }

    /// Whether this caller may read session `session_id` of project `project_id`.
    pub fn may_read(&self, project_id: Uuid, session_id: Uuid) -> bool {
        match self {
            Self::Authenticated(Principal::ApiKey {
                project_id: own, ..
            }) => *own == project_id,
            Self::Authenticated(Principal::ClientToken {
                session_id: own, ..
            }) => *own == session_id,
            Self::Anonymous => false,
        }
    }
}

/// Client tokens start with this prefix; API keys with [`API_KEY_PREFIX`].
pub const CLIENT_TOKEN_PREFIX: &str = "kpct_";
pub const API_KEY_PREFIX: &str = "kp_";

/// The credential in `x-api-key` or `Authorization: Bearer`, if any.
pub fn credential_from_headers(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(value.trim().to_owned());
    }
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Resolves a credential (API key or client token) to a principal.
pub async fn authenticate(store: &Store, credential: &str) -> ApiResult<Option<Principal>> {
    if credential.is_empty() || credential.len() > 256 {
        return Ok(None);
    }
    if credential.starts_with(CLIENT_TOKEN_PREFIX) {
        let session = store
            .session_by_client_token(&hash_secret(credential))
            .await?;
        return Ok(session.map(|session| Principal::ClientToken {
            project_id: session.project_id,
            session_id: session.id,
        }));
    }

    let found = store.authenticate_api_key(credential).await?;
    Ok(found.map(|(key, project)| Principal::ApiKey {
        project_id: project.id,
        project_name: project.name,
        key_id: key.id,
        key_name: key.name,
    }))
}
