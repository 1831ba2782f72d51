//! The OpenAPI 3.1 document of the REST API, built from [`Operation::ALL`] and the JSON
//! Schemas of the body types, so it lists exactly what the router serves.

use std::sync::OnceLock;

use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::PREFIX;
use super::context::API_KEY_HEADER;
use super::problem::{ErrorModel, PROBLEM_CONTENT_TYPE};
use super::routes::Operation;
use super::schemas::{BodyType, ComponentGenerators, Direction};

/// Errors any authenticated operation may answer with.
const COMMON_PROBLEMS: [StatusCode; 3] = [
    StatusCode::UNAUTHORIZED,
    StatusCode::TOO_MANY_REQUESTS,
    StatusCode::INTERNAL_SERVER_ERROR,
];

const SECURITY_SCHEME: &str = "apiKey";

/// The document, built once.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(build)
}

/// `GET /api/v1/openapi.json`
pub async fn serve() -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, "application/vnd.oai.openapi+json")],
        axum::Json(document()),
    )
        .into_response()
}

fn build() -> Value {
    let mut generators = ComponentGenerators::new();
    let error_model = BodyType::of::<ErrorModel>(Direction::Response);
    let problem_schema = generators.reference(&error_model);

    let mut paths = Map::new();
    for operation in Operation::ALL {
        let item = paths
            .entry(format!("{PREFIX}{}", operation.path()))
            .or_insert_with(|| json!({}));
        let described = describe(operation, &mut generators, &problem_schema);
        item[operation.method().as_str().to_ascii_lowercase()] = described;
    }

    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "keyproof REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Verify sessions prove that a person holds the private half of an SSH \
                key. Every path also answers without its trailing slash. Errors are RFC 7807 \
                problem documents. The GraphQL API at /graphql offers the same sessions.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "paths": paths,
        "components": {
            "schemas": generators.into_components(),
            "securitySchemes": {
                SECURITY_SCHEME: { "type": "apiKey", "in": "header", "name": API_KEY_HEADER },
            },
        },
    })
}

fn describe(
    operation: Operation,
    generators: &mut ComponentGenerators,
    problem_schema: &Value,
) -> Value {
    let (status, body) = operation.success();
    let mut responses = Map::new();
    responses.insert(
        status.as_u16().to_string(),
        json!({
            "description": status.canonical_reason().unwrap_or("Success"),
            "content": { "application/json": { "schema": generators.reference(&body) } },
        }),
    );
    for problem in operation.problems().iter().chain(&COMMON_PROBLEMS) {
        responses.insert(
            problem.as_u16().to_string(),
            json!({
                "description": problem.canonical_reason().unwrap_or("Error"),
                "content": { PROBLEM_CONTENT_TYPE: { "schema": problem_schema } },
            }),
        );
    }
    let parameters: Vec<Value> = operation
        .parameters()
        .into_iter()
        .map(|parameter| {
            json!({
                "name": parameter.name,
                "in": parameter.location,
                "description": parameter.description,
                "required": parameter.required,
                "schema": parameter.schema,
            })
        })
        .collect();

    let mut described = json!({
        "operationId": operation.operation_id(),
        "summary": operation.summary(),
        "description": operation.description(),
        "tags": [tag_of(operation)],
        "security": [{ SECURITY_SCHEME: [] }],
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(request) = operation.request_body() {
        described["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": generators.reference(&request) } },
        });
    }
    described
}

fn tag_of(operation: Operation) -> &'static str {
    match operation {
        Operation::GetAuthInfo => "auth",
        Operation::ReplaceWebhook => "webhooks",
        _ => "verify sessions",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_documented_once() {
        let document = document();

        let paths = document["paths"].as_object().expect("paths");
        for operation in Operation::ALL {
            let path = format!("{PREFIX}{}", operation.path());
            let method = operation.method().as_str().to_ascii_lowercase();
            assert!(paths[&path][&method].is_object(), "{method} {path}");
        }
        assert_eq!(document["openapi"], "3.1.0");
    }

    #[test]
    fn every_reference_resolves() {
        let document = document();
        let mut references = Vec::new();
        collect_references(document, &mut references);

        assert!(!references.is_empty());
        for reference in references {
            let name = reference
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected reference {reference}"));
            assert!(
                document["components"]["schemas"][name].is_object(),
                "{reference} does not resolve"
            );
        }
    }

    fn collect_references(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                if let Some(Value::String(reference)) = object.get("$ref") {
                    into.push(reference.clone());
                }
                object.values().for_each(|v| collect_references(v, into));
            }
            Value::Array(items) => items.iter().for_each(|v| collect_references(v, into)),
            _ => {}
        }
    }
}
