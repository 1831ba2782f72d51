//! The REST API under /api/v1 over a plain HTTP client: bodies as the reference shapes them,
//! values equal to the GraphQL view, problem documents for every error, offset pagination,
//! project isolation and the OpenAPI document.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use common::TestApp;
use common::keys::TestKey;
use common::receiver::Receiver;
use common::ssh::ssh_with;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

const SESSIONS: &str = "/api/v1/ssh/verify/sessions/";

/// Every field of the reference's session object (DESIGN §9).
const SESSION_FIELDS: [&str; 20] = [
    "$schema",
    "connection_identifier",
    "connections",
    "created_at",
    "expired_at",
    "external_id",
    "id",
    "keys",
    "match_all_keys",
    "max_attempts",
    "multi_connection",
    "multi_key",
    "must_confirm",
    "ssh_banner",
    "ssh_message",
    "status",
    "updated_at",
    "webhooks",
    // keyproof's own additions that clients rely on
    "ssh_command",
    "failure_reason",
];
const KEY_FIELDS: [&str; 9] = [
    "external_id",
    "id",
    "name",
    "public_key_algorithm",
    "public_key_md5",
    "public_key_pem",
    "public_key_sha256",
    "public_key_ssh",
    "verified_at",
];
const CONNECTION_FIELDS: [&str; 5] = ["client_version", "created_at", "id", "ip_address", "keys"];
const PROBLEM_FIELDS: [&str; 6] = ["$schema", "title", "status", "detail", "type", "instance"];
const WEBHOOK_FIELDS: [&str; 9] = [
    "$schema",
    "backoff_multiplier",
    "events",
    "headers",
    "id",
    "initial_backoff",
    "method",
    "retries",
    "url",
];
const SECRET: &str = "whsec_BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const OTHER_SECRET: &str = "whsec_CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";

/// The whole session through GraphQL, every field the REST body has.
const GRAPHQL_SESSION: &str = "query($id: ID!) { verifySession(id: $id) {
    id connectionIdentifier sshCommand status failureReason externalId
    matchAllKeys maxAttempts failedAttempts multiConnection multiKey mustConfirm
    sshBanner sshMessage createdAt updatedAt expiredAt completedAt
    keys { id name externalId publicKeyAlgorithm publicKeySsh publicKeyPem publicKeyMd5
           publicKeySha256 verifiedAt }
    connections { id ipAddress clientVersion createdAt
      keys { id matchedKeyId name externalId publicKeyAlgorithm publicKeySsh publicKeyPem
             publicKeyMd5 publicKeySha256 verifiedAt } }
    webhooks { id url method headers { name values } events retries initialBackoff
               backoffMultiplier createdAt updatedAt }
} }";

impl TestApp {
    async fn rest(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.rest_as(Some(&self.api_key), method, path, body).await
    }

    async fn rest_as(
        &self,
        api_key: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Response {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        if let Some(api_key) = api_key {
            request = request.header("x-api-key", api_key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("REST request")
    }

    async fn create_rest_session(&self, body: Value) -> Value {
        let response = self.rest(Method::POST, SESSIONS, Some(body)).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json().await.expect("json")
    }
}

/// Checks a problem document and returns it.
async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    assert_eq!(content_type, "application/problem+json", "{text}");
    let body: Value = serde_json::from_str(&text).expect("problem json");
    for field in PROBLEM_FIELDS {
        assert!(body.get(field).is_some(), "problem lacks {field}: {body}");
    }
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["$schema"]
            .as_str()
            .unwrap()
            .ends_with("/api/v1/schemas/ErrorModel.json")
    );
    body
}

fn locations(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| error["location"].as_str().unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// The GraphQL view in REST terms: snake_case names and lowercase enum values.
fn rest_form(graphql: &Value) -> Value {
    match graphql {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(name, value)| {
                    let value = match (name.as_str(), value) {
                        ("status" | "failureReason", Value::String(text)) => {
                            Value::String(text.to_lowercase())
                        }
                        ("events", Value::Array(kinds)) => kinds
                            .iter()
                            .map(|kind| Value::String(kind.as_str().unwrap().to_lowercase()))
                            .collect(),
                        ("headers", Value::Array(headers)) => headers
                            .iter()
                            .map(|header| {
                                let name = header["name"].as_str().unwrap().to_owned();
                                (name, header["values"].clone())
                            })
                            .collect::<serde_json::Map<_, _>>()
                            .into(),
                        _ => rest_form(value),
                    };
                    (snake_case(name), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(rest_form).collect()),
        other => other.clone(),
    }
}

fn snake_case(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            if c.is_ascii_uppercase() {
                vec!['_', c.to_ascii_lowercase()]
            } else {
                vec![c]
            }
        })
        .collect()
}

fn without_schema_links(value: &Value) -> Value {
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .filter(|(name, _)| name.as_str() != "$schema")
                .map(|(name, value)| (name.clone(), without_schema_links(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_schema_links).collect()),
        other => other.clone(),
    }
}

fn assert_fields(object: &Value, fields: &[&str]) {
    for field in fields {
        assert!(object.get(*field).is_some(), "missing {field} in {object}");
    }
}

#[tokio::test]
async fn ssh_verified_session_reads_back_with_every_field_equal_to_graphql() {
    let app = TestApp::spawn_with(|settings| settings.webhook_allow_private_targets = true).await;
    let receiver = Receiver::start().await;
    let key = TestKey::ed25519(app.dir.path(), "laptop");
    let body = json!({
        "keys": [{ "public_key": key.public_line(), "name": "laptop", "external_id": "k-1" }],
        "external_id": "user-42",
        "ssh_banner": "Welcome",
        "ssh_message": "Example asks",
        "max_attempts": 2,
        "webhooks": [{
            "url": receiver.url("/hook"),
            "headers": { "X-Token": ["abc"] },
            "events": ["verified", "status_changed"],
            "retries": 2,
            "secret": SECRET,
        }],
    });

    let response = app.rest(Method::POST, SESSIONS, Some(body)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("{SESSIONS}{id}/"));
    assert!(
        created["client_token"]
            .as_str()
            .unwrap()
            .starts_with("kpct_")
    );
    assert_eq!(created["status"], "pending");
    let identifier = created["connection_identifier"]
        .as_str()
        .unwrap()
        .to_owned();
    let run = ssh_with(app.ssh_port, &identifier, &[&key.private]).await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);

    let response = app.rest(Method::GET, &location, None).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let session: Value = response.json().await.unwrap();
    assert_fields(&session, &SESSION_FIELDS);
    assert_fields(&session["keys"][0], &KEY_FIELDS);
    assert_fields(&session["connections"][0], &CONNECTION_FIELDS);
    assert_fields(&session["connections"][0]["keys"][0], &KEY_FIELDS);
    assert_fields(&session["webhooks"][0], &WEBHOOK_FIELDS);
    assert_eq!(session["status"], "verified");
    assert_eq!(
        session["webhooks"][0]["headers"],
        json!({ "X-Token": ["abc"] })
    );
    assert!(!session.to_string().contains(SECRET));
    assert_eq!(session["connections"][0]["keys"][0]["name"], "laptop");
    assert_eq!(
        session["$schema"],
        format!("{}/api/v1/schemas/VerifySession.json", app.base_url)
    );
    let graphql = app.graphql(GRAPHQL_SESSION, json!({ "id": id })).await;
    let expected = rest_form(&graphql["data"]["verifySession"]);
    assert_eq!(without_schema_links(&session), expected);
    app.shutdown().await;
}

#[tokio::test]
async fn schema_links_point_at_served_json_schemas_that_the_bodies_satisfy() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app
        .create_rest_session(json!({ "keys": [{ "public_key": key.public_line() }] }))
        .await;
    let id = created["id"].as_str().unwrap();
    let get = |path: String| {
        let client = &app;
        async move {
            let response = client.rest(Method::GET, &path, None).await;
            response.json::<Value>().await.unwrap()
        }
    };
    let session = get(format!("{SESSIONS}{id}")).await;
    let list = get(SESSIONS.to_owned()).await;
    let info = get("/api/v1/auth/info".to_owned()).await;
    let not_found = get(format!("{SESSIONS}{}", uuid::Uuid::now_v7())).await;

    for body in [&created, &session, &list, &info, &not_found] {
        let link = body["$schema"].as_str().unwrap();
        let schema: Value = app
            .http
            .get(link)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();

        assert_eq!(schema["$id"], link);
        assert_eq!(schema["type"], "object");
        validate_json_with_python(&app, &schema, body);
        if [&created, &session].contains(&body) {
            let properties = schema["properties"].as_object().unwrap();
            for field in SESSION_FIELDS {
                assert!(properties.contains_key(field), "{link} lacks {field}");
            }
        }
    }
    assert!(
        created["$schema"]
            .as_str()
            .unwrap()
            .ends_with("/VerifySessionCreated.json")
    );
    let missing = app
        .rest(Method::GET, "/api/v1/schemas/Nope.json", None)
        .await;
    problem(missing, StatusCode::NOT_FOUND).await;
    app.shutdown().await;
}

#[tokio::test]
async fn timeout_with_expired_at_is_refused_at_body_expired_at() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let body = json!({
        "keys": [{ "public_key": key.public_line() }],
        "timeout": 60,
        "expired_at": "2099-01-01T00:00:00Z",
    });

    let response = app.rest(Method::POST, SESSIONS, Some(body)).await;

    let problem = problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(locations(&problem), ["body.expired_at"]);
    let message = problem["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("expired_at"), "{message}");
    assert!(!message.contains("expiredAt"), "{message}");
    assert_eq!(problem["instance"], SESSIONS);
    let list: Value = app
        .rest(Method::GET, SESSIONS, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 0);
    app.shutdown().await;
}

#[tokio::test]
async fn input_errors_name_rest_locations_and_never_echo_keys() {
    let app = TestApp::spawn().await;
    let good = TestKey::ed25519(app.dir.path(), "good");
    let secret = TestKey::ed25519(app.dir.path(), "secret");
    let private = std::fs::read_to_string(&secret.private).unwrap();
    let body = json!({
        "keys": [
            { "public_key": good.public_line() },
            { "public_key": private },
            { "public_key": good.public_line() },
            { "publicKey": "ssh-ed25519 AAAA" },
        ],
        "max_attempts": 0,
        "multi_key": "yes",
        "ssh_banner": private,
        "timeout": 99_999_999_999_i64,
    });

    let response = app.rest(Method::POST, SESSIONS, Some(body)).await;

    let problem = problem(response, StatusCode::BAD_REQUEST).await;
    let text = problem.to_string();
    assert!(!text.contains(private.lines().nth(1).unwrap()), "{text}");
    let found: BTreeSet<&str> = locations(&problem).into_iter().collect();
    let expected: BTreeSet<&str> = [
        "body.keys[1].public_key",
        "body.keys[2].public_key",
        "body.keys[3].publicKey",
        "body.keys[3].public_key",
        "body.max_attempts",
        "body.multi_key",
        "body.timeout",
    ]
    .into();
    assert_eq!(found, expected, "{problem}");
    let duplicate = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|error| error["location"] == "body.keys[2].public_key")
        .unwrap();
    assert!(
        duplicate["message"]
            .as_str()
            .unwrap()
            .contains("body.keys[0].public_key"),
        "{duplicate}"
    );
    let timeout = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|error| error["location"] == "body.timeout")
        .unwrap();
    assert_eq!(timeout["value"], 99_999_999_999_i64);
    app.shutdown().await;
}

#[tokio::test]
async fn complete_on_a_single_connection_session_conflicts() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app
        .create_rest_session(json!({ "keys": [{ "public_key": key.public_line() }] }))
        .await;
    let id = created["id"].as_str().unwrap();

    let response = app
        .rest(Method::POST, &format!("{SESSIONS}{id}/complete/"), None)
        .await;

    let conflict = problem(response, StatusCode::CONFLICT).await;
    assert!(
        conflict["detail"]
            .as_str()
            .unwrap()
            .contains("multi_connection")
    );
    assert!(conflict.get("errors").is_none());
    let unknown = app
        .rest(
            Method::POST,
            &format!("{SESSIONS}{}/complete", uuid::Uuid::now_v7()),
            None,
        )
        .await;
    problem(unknown, StatusCode::NOT_FOUND).await;
    app.shutdown().await;
}

#[tokio::test]
async fn verified_multi_connection_session_completes() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app
        .create_rest_session(json!({
            "keys": [{ "public_key": key.public_line() }],
            "multi_connection": true,
        }))
        .await;
    let id = created["id"].as_str().unwrap();
    let complete = format!("{SESSIONS}{id}/complete/");
    let early = app.rest(Method::POST, &complete, None).await;
    problem(early, StatusCode::CONFLICT).await;
    let identifier = created["connection_identifier"].as_str().unwrap();
    let run = ssh_with(app.ssh_port, identifier, &[&key.private]).await;
    assert_eq!(run.status, 0, "{}{}", run.stdout, run.stderr);

    let response = app.rest(Method::POST, &complete, None).await;

    assert_eq!(response.status(), StatusCode::OK);
    let session: Value = response.json().await.unwrap();
    assert_eq!(session["status"], "verified");
    assert!(session["completed_at"].is_string());
    app.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_are_problem_documents() {
    let app = TestApp::spawn().await;

    let unknown = app
        .rest(Method::GET, "/api/v1/ssh/verify/nothing", None)
        .await;
    let prefix_only = app.rest(Method::GET, "/api/v1", None).await;
    let prefix_slash = app.rest(Method::GET, "/api/v1/", None).await;
    let wrong_method = app.rest(Method::DELETE, SESSIONS, None).await;
    let allow = wrong_method.headers()["allow"].to_str().unwrap().to_owned();
    let put_info = app.rest(Method::PUT, "/api/v1/auth/info", None).await;
    let bad_id = app
        .rest(Method::GET, &format!("{SESSIONS}not-an-id/"), None)
        .await;

    let unknown = problem(unknown, StatusCode::NOT_FOUND).await;
    assert_eq!(unknown["instance"], "/api/v1/ssh/verify/nothing");
    problem(prefix_only, StatusCode::NOT_FOUND).await;
    problem(prefix_slash, StatusCode::NOT_FOUND).await;
    let wrong_method = problem(wrong_method, StatusCode::METHOD_NOT_ALLOWED).await;
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    assert!(wrong_method["detail"].as_str().unwrap().contains("DELETE"));
    problem(put_info, StatusCode::METHOD_NOT_ALLOWED).await;
    problem(bad_id, StatusCode::NOT_FOUND).await;
    app.shutdown().await;
}

#[tokio::test]
async fn malformed_json_wrong_content_type_and_oversized_bodies_are_problems() {
    let app = TestApp::spawn().await;
    let url = format!("{}{SESSIONS}", app.base_url);
    let send = |content_type: &'static str, body: Vec<u8>| {
        app.http
            .post(&url)
            .header("x-api-key", &app.api_key)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let malformed = send("application/json", b"{\"keys\": [".to_vec())
        .await
        .unwrap();
    let not_object = send("application/json", b"[1, 2]".to_vec()).await.unwrap();
    let plain = send("text/plain", b"{}".to_vec()).await.unwrap();
    let mut huge = b"{\"external_id\": \"".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 300 * 1024));
    huge.extend(b"\"}");
    let oversized = send("application/json", huge).await.unwrap();

    let malformed = problem(malformed, StatusCode::BAD_REQUEST).await;
    assert_eq!(locations(&malformed), ["body"]);
    let not_object = problem(not_object, StatusCode::BAD_REQUEST).await;
    assert_eq!(locations(&not_object), ["body"]);
    problem(plain, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    problem(oversized, StatusCode::PAYLOAD_TOO_LARGE).await;
    app.shutdown().await;
}

#[tokio::test]
async fn credentials_are_checked_and_projects_are_isolated() {
    let app = TestApp::spawn().await;
    let store = &app.app.as_ref().unwrap().store;
    let other = store.ensure_project("other").await.unwrap();
    let other_key = "kp_other_project_key_0123456789";
    store
        .ensure_api_key(other.id, "other", other_key)
        .await
        .unwrap();
    let key = TestKey::ed25519(app.dir.path(), "k");
    let created = app
        .create_rest_session(json!({ "keys": [{ "public_key": key.public_line() }] }))
        .await;
    let path = format!("{SESSIONS}{}/", created["id"].as_str().unwrap());
    let client_token = created["client_token"].as_str().unwrap();

    let read = app.rest_as(Some(other_key), Method::GET, &path, None).await;
    let complete = app
        .rest_as(
            Some(other_key),
            Method::POST,
            &format!("{path}complete/"),
            None,
        )
        .await;
    let list: Value = app
        .rest_as(Some(other_key), Method::GET, SESSIONS, None)
        .await
        .json()
        .await
        .unwrap();
    let info: Value = app
        .rest_as(Some(other_key), Method::GET, "/api/v1/auth/info/", None)
        .await
        .json()
        .await
        .unwrap();

    problem(read, StatusCode::NOT_FOUND).await;
    problem(complete, StatusCode::NOT_FOUND).await;
    assert_eq!(list["total"], 0);
    assert_eq!(list["items"], json!([]));
    assert_eq!(info["project"]["name"], "other");
    assert_eq!(info["api_key"]["name"], "other");
    for credential in [None, Some("kp_not_a_real_key"), Some(client_token)] {
        let response = app.rest_as(credential, Method::GET, &path, None).await;
        problem(response, StatusCode::UNAUTHORIZED).await;
    }
    app.shutdown().await;
}

#[tokio::test]
async fn lists_page_newest_first_with_offset_limit_and_has_more() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let mut ids = Vec::new();
    for n in 0..5 {
        let created = app
            .create_rest_session(json!({
                "keys": [{ "public_key": key.public_line() }],
                "external_id": format!("e{}", n % 2),
            }))
            .await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    ids.reverse();
    let client = &app;
    let page = |query: &'static str| async move {
        let response = client
            .rest(
                Method::GET,
                &format!("/api/v1/ssh/verify/sessions{query}"),
                None,
            )
            .await;
        (response.status(), response.json::<Value>().await.unwrap())
    };
    let item_ids = |list: &Value| -> Vec<String> {
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let (_, all) = page("").await;
    let (_, first) = page("?limit=2").await;
    let (_, second) = page("?offset=2&limit=2").await;
    let (_, last) = page("/?offset=4&limit=2").await;
    let (_, capped) = page("?limit=1000").await;
    let (_, filtered) = page("?external_id=e0").await;
    let (status, bad) = page("?offset=-1&limit=x").await;

    assert_eq!(all["limit"], 100);
    assert_eq!(all["offset"], 0);
    assert_eq!(all["total"], 5);
    assert_eq!(all["has_more"], false);
    assert_eq!(item_ids(&all), ids);
    assert!(
        all["$schema"]
            .as_str()
            .unwrap()
            .ends_with("/VerifySessionList.json")
    );
    assert_eq!(item_ids(&first), ids[..2]);
    assert_eq!(first["has_more"], true);
    assert_eq!(item_ids(&second), ids[2..4]);
    assert_eq!(second["has_more"], true);
    assert_eq!(item_ids(&last), ids[4..]);
    assert_eq!(last["has_more"], false);
    assert_eq!(capped["limit"], 100);
    assert_eq!(filtered["total"], 3);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(locations(&bad), ["query.offset", "query.limit"]);
    assert_eq!(bad["errors"][0]["value"], -1);
    app.shutdown().await;
}

#[tokio::test]
async fn paths_answer_with_and_without_the_trailing_slash() {
    let app = TestApp::spawn().await;

    let with = app.rest(Method::GET, "/api/v1/auth/info/", None).await;
    let without = app.rest(Method::GET, "/api/v1/auth/info", None).await;

    assert_eq!(with.status(), StatusCode::OK);
    assert_eq!(without.status(), StatusCode::OK);
    let with: Value = with.json().await.unwrap();
    assert_eq!(with, without.json::<Value>().await.unwrap());
    assert_eq!(with["project"]["name"], "default");
    assert!(
        with["$schema"]
            .as_str()
            .unwrap()
            .ends_with("/AuthInfo.json")
    );
    app.shutdown().await;
}

/// Every endpoint the API must offer, as `METHOD path`.
const ENDPOINTS: [&str; 6] = [
    "GET /api/v1/auth/info/",
    "GET /api/v1/ssh/verify/sessions/",
    "POST /api/v1/ssh/verify/sessions/",
    "GET /api/v1/ssh/verify/sessions/{session}/",
    "POST /api/v1/ssh/verify/sessions/{session}/complete/",
    "PUT /api/v1/ssh/verify/sessions/{session}/webhooks/{webhook}/",
];

#[tokio::test]
async fn openapi_document_validates_and_lists_every_endpoint() {
    let app = TestApp::spawn().await;

    let response = app
        .rest_as(None, Method::GET, "/api/v1/openapi.json", None)
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["info"]["title"].is_string() && document["info"]["version"].is_string());
    let mut listed = BTreeSet::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            listed.insert(format!("{} {path}", method.to_uppercase()));
            assert!(operation_ids.insert(operation["operationId"].as_str().unwrap().to_owned()));
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty())
            );
            for name in path_parameters(path) {
                let declared = operation["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true);
                assert!(declared, "{method} {path} does not declare {name}");
            }
        }
    }
    let expected: BTreeSet<String> = ENDPOINTS.iter().map(|e| (*e).to_owned()).collect();
    assert_eq!(listed, expected);
    let mut references = Vec::new();
    collect_references(&document, &mut references);
    for reference in references {
        let name = reference.strip_prefix("#/components/schemas/").unwrap();
        assert!(
            document["components"]["schemas"][name].is_object(),
            "{reference}"
        );
    }
    validate_with_python(&app, &document);
    for endpoint in ENDPOINTS {
        let (method, path) = endpoint.split_once(' ').unwrap();
        let path = path
            .replace("{session}", &uuid::Uuid::now_v7().to_string())
            .replace("{webhook}", &uuid::Uuid::now_v7().to_string());
        let response = app
            .rest_as(None, method.parse().unwrap(), &path, None)
            .await;
        problem(response, StatusCode::UNAUTHORIZED).await;
    }
    app.shutdown().await;
}

fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
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

/// Validates the document with `openapi-spec-validator` when it is installed
/// (`pip install openapi-spec-validator`); the structural checks above run regardless.
fn validate_with_python(app: &TestApp, document: &Value) {
    if !python_module_available("openapi_spec_validator") {
        eprintln!("openapi-spec-validator is not installed; skipped the external validation");
        return;
    }
    let path = app.path("openapi.json");
    std::fs::write(&path, document.to_string()).unwrap();

    let output = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&path)
        .output()
        .expect("run openapi-spec-validator");

    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn webhook_put_replaces_the_settings_and_keeps_the_secret() {
    let app = TestApp::spawn_with(|settings| settings.webhook_allow_private_targets = true).await;
    let receiver = Receiver::start().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let hook = json!({ "url": receiver.url("/a"), "retries": 3, "secret": SECRET });
    let created = app
        .create_rest_session(json!({
            "keys": [{ "public_key": key.public_line() }],
            "webhooks": [hook],
        }))
        .await;
    let sibling = app
        .create_rest_session(json!({ "keys": [{ "public_key": key.public_line() }] }))
        .await;
    let session_id = created["id"].as_str().unwrap();
    let webhook_id = created["webhooks"][0]["id"].as_str().unwrap();
    let path = format!("{SESSIONS}{session_id}/webhooks/{webhook_id}/");
    let replacement = json!({
        "url": receiver.url("/b"),
        "method": "PUT",
        "events": ["verified"],
        "headers": { "X-Token": ["abc", "def"] },
    });

    let response = app
        .rest(Method::PUT, &path, Some(replacement.clone()))
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let webhook: Value = response.json().await.unwrap();
    assert_fields(&webhook, &WEBHOOK_FIELDS);
    assert_eq!(webhook["id"], webhook_id);
    assert_eq!(webhook["url"], receiver.url("/b"));
    assert_eq!(webhook["method"], "PUT");
    assert_eq!(webhook["events"], json!(["verified"]));
    assert_eq!(
        webhook["retries"], 0,
        "left-out settings return to their defaults"
    );
    assert!(
        webhook["$schema"]
            .as_str()
            .unwrap()
            .ends_with("/Webhook.json")
    );
    let graphql = app
        .graphql(
            "query($id: ID!) { verifySession(id: $id) { webhooks { secret url } } }",
            json!({ "id": session_id }),
        )
        .await;
    let stored = &graphql["data"]["verifySession"]["webhooks"][0];
    assert_eq!(stored["secret"], SECRET);
    assert_eq!(stored["url"], receiver.url("/b"));
    let session: Value = app
        .rest(Method::GET, &format!("{SESSIONS}{session_id}"), None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        without_schema_links(&session["webhooks"][0]),
        without_schema_links(&webhook)
    );
    let list: Value = app
        .rest(Method::GET, SESSIONS, None)
        .await
        .json()
        .await
        .unwrap();
    let listed = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["id"] == session_id)
        .unwrap();
    assert_eq!(listed["webhooks"], session["webhooks"]);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|item| item["webhooks"] == json!([]))
    );

    let mut new_secret = replacement.clone();
    new_secret["secret"] = json!(OTHER_SECRET);
    let response = app.rest(Method::PUT, &path, Some(new_secret)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let graphql = app
        .graphql(
            "query($id: ID!) { verifySession(id: $id) { webhooks { secret } } }",
            json!({ "id": session_id }),
        )
        .await;
    assert_eq!(
        graphql["data"]["verifySession"]["webhooks"][0]["secret"],
        OTHER_SECRET
    );

    let elsewhere = format!(
        "{SESSIONS}{}/webhooks/{webhook_id}/",
        sibling["id"].as_str().unwrap()
    );
    let wrong_session = app
        .rest(Method::PUT, &elsewhere, Some(replacement.clone()))
        .await;
    problem(wrong_session, StatusCode::NOT_FOUND).await;
    let unknown = format!("{SESSIONS}{session_id}/webhooks/{}", uuid::Uuid::now_v7());
    let unknown = app.rest(Method::PUT, &unknown, Some(replacement)).await;
    problem(unknown, StatusCode::NOT_FOUND).await;
    app.shutdown().await;
}

#[tokio::test]
async fn webhook_errors_name_body_locations_and_never_echo_secrets() {
    let app = TestApp::spawn().await;
    let key = TestKey::ed25519(app.dir.path(), "k");
    let body = json!({
        "keys": [{ "public_key": key.public_line() }],
        "webhooks": [
            {
                "url": "ftp://example.com/hook",
                "headers": { "Content-Type": ["text/plain"], "X-Ok": ["fine"] },
                "initial_backoff": 0,
                "secret": "whsec_not base64 at all, and secret",
            },
            { "url": "http://127.0.0.1:9/hook" },
        ],
    });

    let response = app.rest(Method::POST, SESSIONS, Some(body.clone())).await;

    let refused = problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        locations(&refused),
        [
            "body.webhooks[0].url",
            "body.webhooks[0].headers.Content-Type",
            "body.webhooks[0].initial_backoff",
            "body.webhooks[0].secret",
        ],
        "{refused}"
    );
    assert!(!refused.to_string().contains("and secret"), "{refused}");
    let mut only_private = body;
    only_private["webhooks"] = json!([{ "url": "http://127.0.0.1:9/hook" }]);
    let response = app.rest(Method::POST, SESSIONS, Some(only_private)).await;
    let private = problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(locations(&private), ["body.webhooks[0].url"], "{private}");
    let list: Value = app
        .rest(Method::GET, SESSIONS, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 0);
    app.shutdown().await;
}

/// Validates `body` against the JSON Schema `schema` with Python's `jsonschema` (installed
/// with `openapi-spec-validator`) when it is there; otherwise only the Rust checks run.
fn validate_json_with_python(app: &TestApp, schema: &Value, body: &Value) {
    if !python_module_available("jsonschema") {
        eprintln!("jsonschema is not installed; skipped validating a body against its schema");
        return;
    }
    let schema_path = app.path("schema.json");
    let body_path = app.path("body.json");
    std::fs::write(&schema_path, schema.to_string()).unwrap();
    std::fs::write(&body_path, body.to_string()).unwrap();
    let script = [
        "import json, sys, jsonschema",
        "schema = json.load(open(sys.argv[1]))",
        "jsonschema.Draft202012Validator.check_schema(schema)",
        "checker = jsonschema.FormatChecker()",
        "validator = jsonschema.Draft202012Validator(schema, format_checker=checker)",
        "validator.validate(json.load(open(sys.argv[2])))",
    ]
    .join("\n");

    let output = std::process::Command::new("python3")
        .args(["-c", &script])
        .arg(&schema_path)
        .arg(&body_path)
        .output()
        .expect("run python3");

    assert!(
        output.status.success(),
        "{body}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn python_module_available(module: &str) -> bool {
    std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|output| output.status.success())
}
