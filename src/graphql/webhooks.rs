//! Webhooks in the GraphQL API: their settings, their deliveries and the mutations that manage
//! them. Only project API keys configure webhooks; a client token (which may sit in a browser)
//! sees a session's webhooks without their secret, headers, deliveries or URL query.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::{webhook, webhook_attempt};
use uuid::Uuid;

use super::auth::{Caller, Principal};
use super::error::{ApiError, ApiResult, FieldError};
use super::{GraphqlState, parse_id};
use crate::domain::session::EventKind;
use crate::store::{AddWebhookRefusal, DeliveryStatus, DeliveryView, NewWebhook, RedeliverRefusal};
use crate::webhooks::sender::loggable_url;
use crate::webhooks::settings::{
    HeaderSetting, HttpMethod, MAX_WEBHOOKS_PER_SESSION, SecretText, WebhookDraft, check_target,
    decode_events, decode_headers,
};
use crate::webhooks::signing::WebhookSecret;

/// Deliveries listed by `Webhook.deliveries` unless `first` says otherwise, and at most.
pub const DEFAULT_DELIVERIES: i32 = 20;
pub const MAX_DELIVERIES: i32 = 100;

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WebhookMethod {
    Post,
    Put,
    Patch,
}

impl From<WebhookMethod> for HttpMethod {
    fn from(method: WebhookMethod) -> Self {
        match method {
            WebhookMethod::Post => Self::Post,
            WebhookMethod::Put => Self::Put,
            WebhookMethod::Patch => Self::Patch,
        }
    }
}

impl From<HttpMethod> for WebhookMethod {
    fn from(method: HttpMethod) -> Self {
        match method {
            HttpMethod::Post => Self::Post,
            HttpMethod::Put => Self::Put,
            HttpMethod::Patch => Self::Patch,
        }
    }
}

/// An event a webhook can receive.
#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WebhookEventKind {
    NewConnection,
    Verified,
    FailedAttempt,
    StatusChanged,
}

impl From<WebhookEventKind> for EventKind {
    fn from(kind: WebhookEventKind) -> Self {
        match kind {
            WebhookEventKind::NewConnection => Self::NewConnection,
            WebhookEventKind::Verified => Self::Verified,
            WebhookEventKind::FailedAttempt => Self::FailedAttempt,
            WebhookEventKind::StatusChanged => Self::StatusChanged,
        }
    }
}

impl From<EventKind> for WebhookEventKind {
    fn from(kind: EventKind) -> Self {
        match kind {
            EventKind::NewConnection => Self::NewConnection,
            EventKind::Verified => Self::Verified,
            EventKind::FailedAttempt => Self::FailedAttempt,
            EventKind::StatusChanged => Self::StatusChanged,
        }
    }
}

/// A custom header: a name and the values sent under it.
#[derive(InputObject, Clone)]
pub struct WebhookHeaderInput {
    pub name: String,
    pub values: Vec<String>,
}

/// A webhook endpoint.
#[derive(InputObject, Clone)]
pub struct WebhookInput {
    /// `http` or `https` URL to send events to.
    pub url: String,
    #[graphql(default_with = "WebhookMethod::Post")]
    pub method: WebhookMethod,
    /// Custom headers. They cannot replace the headers keyproof sets (`content-type`,
    /// `user-agent`, `webhook-id`, `webhook-timestamp`, `webhook-signature`, …).
    pub headers: Option<Vec<WebhookHeaderInput>>,
    /// The events to send; empty or absent for all of them.
    pub events: Option<Vec<WebhookEventKind>>,
    /// Retries after a failed first attempt (at most 20).
    #[graphql(default = 0)]
    pub retries: i32,
    /// Seconds before the first retry (1 to 86400).
    #[graphql(default = 10)]
    pub initial_backoff: i32,
    /// Each further retry waits this many times longer (1 to 10).
    #[graphql(default = 2.0)]
    pub backoff_multiplier: f64,
    /// Signing secret, `whsec_` and the base64 of 24 to 64 bytes; generated when absent.
    pub secret: Option<String>,
}

/// Changes to a webhook; absent fields stay as they are.
#[derive(InputObject, Clone)]
pub struct WebhookUpdateInput {
    pub url: Option<String>,
    pub method: Option<WebhookMethod>,
    /// Replaces every custom header; an empty list removes them.
    pub headers: Option<Vec<WebhookHeaderInput>>,
    /// Replaces the event filter; an empty list sends every event.
    pub events: Option<Vec<WebhookEventKind>>,
    pub retries: Option<i32>,
    pub initial_backoff: Option<i32>,
    pub backoff_multiplier: Option<f64>,
    /// A new signing secret.
    pub secret: Option<String>,
    /// Generates a new signing secret (ignored when `secret` is given).
    #[graphql(default = false)]
    pub rotate_secret: bool,
}

// Header values and secrets may be credentials: their `Debug` leaves them out.
impl std::fmt::Debug for WebhookInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookInput")
            .field("url", &loggable_url(&self.url))
            .field("method", &self.method)
            .field("events", &self.events)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for WebhookUpdateInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookUpdateInput")
            .field("method", &self.method)
            .field("events", &self.events)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

fn header_settings(headers: Option<Vec<WebhookHeaderInput>>) -> Option<Vec<HeaderSetting>> {
    headers.map(|headers| {
        headers
            .into_iter()
            .map(|header| HeaderSetting {
                name: header.name,
                values: header.values,
            })
            .collect()
    })
}

impl From<WebhookInput> for WebhookDraft {
    fn from(input: WebhookInput) -> Self {
        Self {
            url: Some(input.url),
            method: Some(input.method.into()),
            headers: header_settings(input.headers),
            events: input
                .events
                .map(|events| events.into_iter().map(Into::into).collect()),
            retries: Some(input.retries),
            initial_backoff: Some(input.initial_backoff),
            backoff_multiplier: Some(input.backoff_multiplier),
            secret: input.secret.map(SecretText),
        }
    }
}

impl From<WebhookUpdateInput> for WebhookDraft {
    fn from(input: WebhookUpdateInput) -> Self {
        Self {
            url: input.url,
            method: input.method.map(Into::into),
            headers: header_settings(input.headers),
            events: input
                .events
                .map(|events| events.into_iter().map(Into::into).collect()),
            retries: input.retries,
            initial_backoff: input.initial_backoff,
            backoff_multiplier: input.backoff_multiplier,
            secret: input.secret.map(SecretText),
        }
    }
}

/// Validates the webhooks of `createVerifySession` (everything but the target check, which
/// needs name resolution: see [`check_new_targets`]).
pub fn validate_session_webhooks(
    inputs: Vec<WebhookInput>,
    errors: &mut Vec<FieldError>,
) -> Vec<NewWebhook> {
    if inputs.len() > MAX_WEBHOOKS_PER_SESSION {
        errors.push(FieldError::new(
            "input.webhooks",
            format!("list at most {MAX_WEBHOOKS_PER_SESSION} webhooks"),
        ));
        return Vec::new();
    }

    let mut webhooks = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.into_iter().enumerate() {
        match WebhookDraft::from(input).validate_new(&format!("input.webhooks[{index}]")) {
            Ok(new) => webhooks.push(new),
            Err(mut problems) => errors.append(&mut problems),
        }
    }
    webhooks
}

/// The target check of `createVerifySession`'s webhooks.
pub async fn check_new_targets(ctx: &Context<'_>, webhooks: &[NewWebhook]) -> ApiResult<()> {
    let policy = ctx.data_unchecked::<GraphqlState>().webhook_targets;
    let location_of = |index| format!("input.webhooks[{index}].url");
    let errors = crate::webhooks::settings::check_new_targets(policy, webhooks, location_of).await;

    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::BadInput(errors))
    }
}

/// The webhooks of a session the caller may read, as the caller may see them.
pub async fn session_webhooks(ctx: &Context<'_>, session_id: Uuid) -> ApiResult<Vec<Webhook>> {
    let privileged = is_api_key(ctx);
    let state = ctx.data_unchecked::<GraphqlState>();
    let webhooks = state.store.session_webhooks(session_id).await?;

    Ok(webhooks
        .into_iter()
        .map(|model| Webhook { model, privileged })
        .collect())
}

fn is_api_key(ctx: &Context<'_>) -> bool {
    matches!(
        ctx.data_opt::<Caller>(),
        Some(Caller::Authenticated(Principal::ApiKey { .. }))
    )
}

/// A webhook endpoint of a session.
pub struct Webhook {
    model: webhook::Model,
    /// Whether the caller may see secrets, headers, deliveries and the whole URL.
    privileged: bool,
}

#[derive(SimpleObject, Clone)]
pub struct WebhookHeader {
    pub name: String,
    pub values: Vec<String>,
}

#[Object]
impl Webhook {
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }

    /// The target. Client tokens see only its origin (scheme, host and port).
    async fn url(&self) -> String {
        if self.privileged {
            self.model.url.clone()
        } else {
            loggable_url(&self.model.url)
        }
    }

    async fn method(&self) -> WebhookMethod {
        HttpMethod::parse(&self.model.method)
            .unwrap_or_default()
            .into()
    }

    /// Custom headers; null for client tokens.
    async fn headers(&self) -> Option<Vec<WebhookHeader>> {
        self.privileged.then(|| {
            decode_headers(&self.model.headers)
                .into_iter()
                .map(|header| WebhookHeader {
                    name: header.name,
                    values: header.values,
                })
                .collect()
        })
    }

    /// The events sent; empty means every event.
    async fn events(&self) -> Vec<WebhookEventKind> {
        decode_events(&self.model.events)
            .into_iter()
            .map(Into::into)
            .collect()
    }

    async fn retries(&self) -> i32 {
        self.model.retries
    }

    /// Seconds before the first retry.
    async fn initial_backoff(&self) -> i32 {
        self.model.initial_backoff
    }

    async fn backoff_multiplier(&self) -> f64 {
        self.model.backoff_multiplier
    }

    /// The signing secret (`whsec_…`); null for client tokens.
    async fn secret(&self) -> Option<&str> {
        self.privileged.then_some(self.model.secret.as_str())
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.model.updated_at
    }

    /// The newest deliveries first, each with every attempt (`first` at most 100). Empty for
    /// client tokens.
    #[graphql(complexity = "super::query::page_size(Some(first)) * child_complexity")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: i32,
    ) -> async_graphql::Result<Vec<WebhookDelivery>> {
        if !self.privileged {
            return Ok(Vec::new());
        }
        if !(0..=MAX_DELIVERIES).contains(&first) {
            return Err(ApiError::BadInput(vec![
                FieldError::new("first", format!("must be between 0 and {MAX_DELIVERIES}"))
                    .with_value(first),
            ])
            .into());
        }

        let state = ctx.data_unchecked::<GraphqlState>();
        let limit = u64::try_from(first).unwrap_or(0);
        let views = state
            .store
            .webhook_deliveries(self.model.id, limit)
            .await
            .map_err(ApiError::from)?;
        Ok(views.into_iter().map(WebhookDelivery).collect())
    }
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WebhookDeliveryStatus {
    /// Waiting for its first attempt or a retry (or being sent).
    Pending,
    Succeeded,
    /// Every allowed attempt failed, or the receiver answered 410.
    Failed,
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum WebhookAttemptStatus {
    Succeeded,
    Failed,
}

/// One event sent to one webhook, with every attempt made.
pub struct WebhookDelivery(DeliveryView);

impl WebhookDelivery {
    fn last(&self) -> Option<&webhook_attempt::Model> {
        self.0.attempts.last()
    }
}

#[Object]
impl WebhookDelivery {
    /// Also the `webhook-id` header and `webhook_invocation_id`; the same on every attempt.
    async fn id(&self) -> ID {
        ID(self.0.delivery.id.to_string())
    }

    async fn webhook_id(&self) -> ID {
        ID(self.0.delivery.webhook_id.to_string())
    }

    async fn event(&self) -> Option<WebhookEventKind> {
        EventKind::parse(&self.0.delivery.event).map(Into::into)
    }

    async fn status(&self) -> WebhookDeliveryStatus {
        match DeliveryStatus::parse(&self.0.delivery.status) {
            Some(DeliveryStatus::Pending) => WebhookDeliveryStatus::Pending,
            Some(DeliveryStatus::Succeeded) => WebhookDeliveryStatus::Succeeded,
            _ => WebhookDeliveryStatus::Failed,
        }
    }

    /// When the event was committed.
    async fn trigger_time(&self) -> DateTime<Utc> {
        self.0.delivery.trigger_time
    }

    /// Attempts made so far.
    async fn attempt_count(&self) -> i32 {
        self.0.delivery.attempts
    }

    /// When the next attempt is due, while pending.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.0.delivery.status == DeliveryStatus::Pending.as_str())
            .then_some(self.0.delivery.next_attempt_at)
    }

    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivery.completed_at
    }

    /// The HTTP status of the latest attempt, if an answer arrived.
    async fn response_status(&self) -> Option<i32> {
        self.last()?.response_status
    }

    /// The first KiB of the latest answer's body.
    async fn response_body(&self) -> Option<&str> {
        self.last()?.response_body.as_deref()
    }

    /// Why the latest attempt failed.
    async fn error(&self) -> Option<&str> {
        self.last()?.error.as_deref()
    }

    /// How long the latest attempt took, in milliseconds.
    async fn duration_ms(&self) -> Option<i32> {
        self.last()
            .map(|attempt| saturating_i32(attempt.duration_ms))
    }

    /// Every attempt, the first first.
    async fn attempts(&self) -> Vec<WebhookAttempt> {
        self.0.attempts.iter().map(WebhookAttempt::from).collect()
    }
}

/// One HTTP request made for a delivery.
#[derive(SimpleObject, Clone)]
pub struct WebhookAttempt {
    /// 1 for the first attempt.
    pub attempt: i32,
    pub status: WebhookAttemptStatus,
    pub response_status: Option<i32>,
    /// The first KiB of the response body.
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub duration_ms: i32,
    pub started_at: DateTime<Utc>,
}

impl From<&webhook_attempt::Model> for WebhookAttempt {
    fn from(attempt: &webhook_attempt::Model) -> Self {
        Self {
            attempt: attempt.attempt,
            status: if attempt.outcome == "succeeded" {
                WebhookAttemptStatus::Succeeded
            } else {
                WebhookAttemptStatus::Failed
            },
            response_status: attempt.response_status,
            response_body: attempt.response_body.clone(),
            error: attempt.error.clone(),
            duration_ms: saturating_i32(attempt.duration_ms),
            started_at: attempt.started_at,
        }
    }
}

fn saturating_i32(value: i64) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

#[derive(Default)]
pub struct WebhookMutation;

#[Object]
impl WebhookMutation {
    /// Adds a webhook to a session.
    async fn add_webhook(
        &self,
        ctx: &Context<'_>,
        session_id: ID,
        input: WebhookInput,
    ) -> async_graphql::Result<Webhook> {
        Ok(add_webhook(ctx, &session_id, input).await?)
    }

    /// Changes a webhook. Deliveries not yet made use the new settings.
    async fn update_webhook(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: WebhookUpdateInput,
    ) -> async_graphql::Result<Webhook> {
        Ok(update_webhook(ctx, &id, input).await?)
    }

    /// Deletes a webhook with its deliveries; returns its id.
    async fn delete_webhook(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        Ok(delete_webhook(ctx, id).await?)
    }

    /// Sends a delivery again, with its original id and a fresh round of retries. `CONFLICT`
    /// while an attempt is in flight.
    async fn redeliver_webhook_delivery(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<WebhookDelivery> {
        Ok(redeliver(ctx, &id).await?)
    }
}

async fn add_webhook(
    ctx: &Context<'_>,
    session_id: &ID,
    input: WebhookInput,
) -> ApiResult<Webhook> {
    let project_id = ctx.data_unchecked::<Caller>().project()?;
    let session_id = parse_id(session_id).ok_or(ApiError::NotFound)?;
    let state = ctx.data_unchecked::<GraphqlState>();

    let new = WebhookDraft::from(input)
        .validate_new("input")
        .map_err(ApiError::BadInput)?;
    check_target(state.webhook_targets, &new.url, "input.url")
        .await
        .map_err(|error| ApiError::BadInput(vec![error]))?;

    match state.store.add_webhook(project_id, session_id, new).await? {
        Ok(model) => {
            tracing::info!(%session_id, webhook_id = %model.id, "webhook added");
            Ok(Webhook {
                model,
                privileged: true,
            })
        }
        Err(AddWebhookRefusal::NoSession) => Err(ApiError::NotFound),
        Err(AddWebhookRefusal::Full) => Err(ApiError::BadInput(vec![FieldError::new(
            "sessionId",
            format!("the session already has {MAX_WEBHOOKS_PER_SESSION} webhooks"),
        )])),
    }
}

async fn update_webhook(
    ctx: &Context<'_>,
    id: &ID,
    input: WebhookUpdateInput,
) -> ApiResult<Webhook> {
    let project_id = ctx.data_unchecked::<Caller>().project()?;
    let webhook_id = parse_id(id).ok_or(ApiError::NotFound)?;
    let state = ctx.data_unchecked::<GraphqlState>();

    let rotate = input.rotate_secret && input.secret.is_none();
    let mut changes = WebhookDraft::from(input)
        .validate_changes("input")
        .map_err(ApiError::BadInput)?;
    if rotate {
        changes.secret = Some(WebhookSecret::generate());
    }
    if let Some(url) = &changes.url {
        check_target(state.webhook_targets, url, "input.url")
            .await
            .map_err(|error| ApiError::BadInput(vec![error]))?;
    }

    let model = state
        .store
        .update_webhook(project_id, webhook_id, changes)
        .await?
        .ok_or(ApiError::NotFound)?;
    tracing::info!(%webhook_id, "webhook updated");
    Ok(Webhook {
        model,
        privileged: true,
    })
}

async fn delete_webhook(ctx: &Context<'_>, id: ID) -> ApiResult<ID> {
    let project_id = ctx.data_unchecked::<Caller>().project()?;
    let webhook_id = parse_id(&id).ok_or(ApiError::NotFound)?;
    let state = ctx.data_unchecked::<GraphqlState>();

    if state.store.delete_webhook(project_id, webhook_id).await? {
        tracing::info!(%webhook_id, "webhook deleted");
        Ok(id)
    } else {
        Err(ApiError::NotFound)
    }
}

async fn redeliver(ctx: &Context<'_>, id: &ID) -> ApiResult<WebhookDelivery> {
    let project_id = ctx.data_unchecked::<Caller>().project()?;
    let delivery_id = parse_id(id).ok_or(ApiError::NotFound)?;
    let state = ctx.data_unchecked::<GraphqlState>();

    match state.store.redeliver(project_id, delivery_id).await? {
        None => Err(ApiError::NotFound),
        Some(Ok(view)) => {
            tracing::info!(%delivery_id, "webhook delivery queued again");
            Ok(WebhookDelivery(view))
        }
        Some(Err(RedeliverRefusal::InFlight)) => Err(ApiError::Conflict(
            "an attempt of this delivery is in flight; try again when it has finished",
        )),
    }
}
