//! JSON Schemas of the REST bodies, generated from the Rust types that are serialized, served
//! at `/api/v1/schemas/<Name>.json` (the targets of every `$schema` link) and merged into the
//! OpenAPI document's components.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value};

use super::bodies::{AuthInfo, VerifySession, VerifySessionCreated, VerifySessionList};
use super::context::{Links, PathParams};
use super::problem::{ErrorModel, Problem};
use super::request::CreateVerifySessionRequest;
use super::webhooks::{Webhook, WebhookRequest};

/// Whether a body is sent by keyproof or by the client; the schema describes that direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Response,
    Request,
}

/// A body type, with what is needed to describe it.
#[derive(Clone, Copy)]
pub struct BodyType {
    pub name: fn() -> Cow<'static, str>,
    subschema: fn(&mut SchemaGenerator) -> Schema,
    root: fn(SchemaGenerator) -> Schema,
    pub direction: Direction,
}

impl BodyType {
    pub fn of<T: JsonSchema>(direction: Direction) -> Self {
        Self {
            name: T::schema_name,
            subschema: SchemaGenerator::subschema_for::<T>,
            root: SchemaGenerator::into_root_schema_for::<T>,
            direction,
        }
    }

    /// A reference to this type, adding it (and what it uses) to the generator's definitions.
    pub fn reference(&self, generator: &mut SchemaGenerator) -> Value {
        (self.subschema)(generator).to_value()
    }

    /// The standalone schema, with nested types under `$defs`.
    pub fn standalone(&self) -> Value {
        (self.root)(settings(self.direction, "/$defs").into_generator()).to_value()
    }
}

/// Every body type with a served schema.
pub fn body_types() -> [BodyType; 8] {
    use Direction::{Request, Response};
    [
        BodyType::of::<AuthInfo>(Response),
        BodyType::of::<VerifySession>(Response),
        BodyType::of::<VerifySessionCreated>(Response),
        BodyType::of::<VerifySessionList>(Response),
        BodyType::of::<Webhook>(Response),
        BodyType::of::<ErrorModel>(Response),
        BodyType::of::<CreateVerifySessionRequest>(Request),
        BodyType::of::<WebhookRequest>(Request),
    ]
}

/// JSON Schema 2020-12 (the dialect of OpenAPI 3.1), for one direction.
pub fn settings(direction: Direction, definitions_path: &'static str) -> SchemaSettings {
    let settings =
        SchemaSettings::draft2020_12().with(|s| s.definitions_path = definitions_path.into());
    match direction {
        Direction::Response => settings.for_serialize(),
        Direction::Request => settings.for_deserialize(),
    }
}

/// Generators for the OpenAPI components, one per direction, writing to the same place.
pub struct ComponentGenerators {
    pub responses: SchemaGenerator,
    pub requests: SchemaGenerator,
}

impl ComponentGenerators {
    pub fn new() -> Self {
        Self {
            responses: settings(Direction::Response, "/components/schemas").into_generator(),
            requests: settings(Direction::Request, "/components/schemas").into_generator(),
        }
    }

    pub fn reference(&mut self, body: &BodyType) -> Value {
        match body.direction {
            Direction::Response => body.reference(&mut self.responses),
            Direction::Request => body.reference(&mut self.requests),
        }
    }

    /// Every schema referenced so far, by name.
    pub fn into_components(mut self) -> Map<String, Value> {
        let mut components = self.responses.take_definitions(true);
        components.extend(self.requests.take_definitions(true));
        components
    }
}

/// `GET /api/v1/schemas/{file}`: the schema `<Name>.json`.
pub async fn serve(
    links: Links,
    PathParams(file): PathParams<String>,
) -> Result<Response, Problem> {
    let body = file
        .strip_suffix(".json")
        .and_then(|name| body_types().into_iter().find(|body| (body.name)() == name))
        .ok_or_else(|| Problem::not_found("no such schema"))?;

    let mut schema = body.standalone();
    if let Some(object) = schema.as_object_mut() {
        object.insert("$id".into(), links.schema_url_named(&(body.name)()).into());
    }
    let bytes = serde_json::to_vec(&schema).map_err(|_| Problem::internal())?;

    Ok((
        StatusCode::OK,
        [(CONTENT_TYPE, "application/schema+json")],
        bytes,
    )
        .into_response())
}
