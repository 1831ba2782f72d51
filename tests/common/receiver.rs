//! A real HTTP receiver for webhooks: an axum server on `127.0.0.1:0` that records every
//! request and answers from a script (then `200 OK`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::WAIT;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// When it arrived, for measuring gaps.
    pub at: Instant,
    /// When it arrived, for comparing with times in the body.
    pub received_at: DateTime<Utc>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: format!("answer {status}"),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn body(mut self, body: &str) -> Self {
        self.body = body.to_owned();
        self
    }
}

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    log: Mutex<Vec<Received>>,
    arrivals: mpsc::UnboundedSender<Received>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    arrivals: tokio::sync::Mutex<mpsc::UnboundedReceiver<Received>>,
    server: JoinHandle<()>,
}

impl Receiver {
    /// A receiver that answers `200 OK` to everything.
    pub async fn start() -> Self {
        Self::scripted(Vec::new()).await
    }

    /// A receiver that answers with `replies` in order, then `200 OK`.
    pub async fn scripted(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("receiver address");
        let (sender, arrivals) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            script: Mutex::new(replies.into()),
            log: Mutex::new(Vec::new()),
            arrivals: sender,
        });
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        Self {
            addr,
            shared,
            arrivals: tokio::sync::Mutex::new(arrivals),
            server,
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The next request not yet taken; fails the test after [`WAIT`].
    pub async fn next(&self) -> Received {
        let mut arrivals = self.arrivals.lock().await;
        tokio::time::timeout(WAIT, arrivals.recv())
            .await
            .expect("a webhook request arrived in time")
            .expect("receiver running")
    }

    /// The next `n` requests, in arrival order.
    pub async fn take(&self, n: usize) -> Vec<Received> {
        let mut taken = Vec::with_capacity(n);
        for _ in 0..n {
            taken.push(self.next().await);
        }
        taken
    }

    /// How many requests arrived so far.
    pub fn count(&self) -> usize {
        self.shared.log.lock().expect("receiver log").len()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Received> {
        self.shared.log.lock().expect("receiver log").clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
        at: Instant::now(),
        received_at: Utc::now(),
    };
    shared
        .log
        .lock()
        .expect("receiver log")
        .push(received.clone());
    let _ = shared.arrivals.send(received);

    let reply = shared
        .script
        .lock()
        .expect("receiver script")
        .pop_front()
        .unwrap_or_else(|| Reply::status(200).body("ok"));
    let status = StatusCode::from_u16(reply.status).expect("scripted status");
    let mut response = (status, reply.body).into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(
            HeaderName::try_from(name).expect("scripted header name"),
            HeaderValue::try_from(value).expect("scripted header value"),
        );
    }
    response
}
