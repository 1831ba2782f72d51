//! Errors as GraphQL clients see them.
//!
//! Every error carries `extensions.code`. Store and library failures are logged once here and
//! reach the client only as a generic `INTERNAL_SERVER_ERROR`, never with their text.
//! `ApiError` deliberately does not implement `Display`: async-graphql converts any `Display`
//! type into an error with its text, and this type must only be converted through the mapping
//! below.

use async_graphql::ErrorExtensions;
use serde::Serialize;

use crate::store::StoreError;

/// One invalid input field.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FieldError {
    /// Where, e.g. `input.keys[1].publicKey`.
    pub location: String,
    /// Why, in plain words.
    pub message: String,
    /// The offending value when it is safe to echo (never for key material).
    pub value: Option<serde_json::Value>,
}

impl FieldError {
    pub fn new(location: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            message: message.into(),
            value: None,
        }
    }

    pub fn with_value(mut self, value: impl Into<serde_json::Value>) -> Self {
        self.value = Some(value.into());
        self
    }
}

/// An error of the API, mapped to one `extensions.code`.
#[derive(Debug)]
pub enum ApiError {
    BadInput(Vec<FieldError>),
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict(&'static str),
    /// A limit of the service is reached; try again later.
    RateLimited(&'static str),
    Internal,
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        tracing::error!(%error, "store failure while serving a request");
        Self::Internal
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(error: ApiError) -> Self {
        let (message, code) = match &error {
            ApiError::BadInput(errors) => (
                match errors.as_slice() {
                    [only] => format!("{}: {}", only.location, only.message),
                    _ => format!("{} input fields are invalid", errors.len()),
                },
                "BAD_USER_INPUT",
            ),
            ApiError::Unauthenticated => (
                "a valid API key or client token is required".to_owned(),
                "UNAUTHENTICATED",
            ),
            ApiError::Forbidden => ("this credential cannot do that".to_owned(), "FORBIDDEN"),
            ApiError::NotFound => ("not found".to_owned(), "NOT_FOUND"),
            ApiError::Conflict(message) => ((*message).to_owned(), "CONFLICT"),
            ApiError::RateLimited(message) => ((*message).to_owned(), "RATE_LIMITED"),
            ApiError::Internal => ("internal error".to_owned(), "INTERNAL_SERVER_ERROR"),
        };

        async_graphql::Error::new(message).extend_with(|_, extensions| {
            extensions.set("code", code);
            if let ApiError::BadInput(errors) = &error {
                let value = async_graphql::to_value(errors).unwrap_or_default();
                extensions.set("errors", value);
            }
        })
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
