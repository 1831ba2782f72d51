//! A websocket GraphQL client speaking `graphql-transport-ws`.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Message;

use super::WAIT;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct WsClient {
    socket: Socket,
}

/// What the server sent for one subscription.
#[derive(Debug)]
pub enum WsEvent {
    Next(Value),
    Error(Value),
    Complete,
    Closed(Option<u16>),
}

impl WsClient {
    /// Connects and sends `connection_init` with `payload`. Does not wait for the ack.
    pub async fn connect(url: &str, payload: Value) -> Self {
        let mut request = url.into_client_request().expect("ws request");
        request.headers_mut().insert(
            "sec-websocket-protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("ws connect");
        let init = json!({ "type": "connection_init", "payload": payload });
        socket
            .send(Message::text(init.to_string()))
            .await
            .expect("send init");
        Self { socket }
    }

    /// Connects, initialises and waits for `connection_ack`.
    pub async fn connect_acked(url: &str, payload: Value) -> Self {
        let mut client = Self::connect(url, payload).await;
        match client.next_message().await {
            WsEvent::Next(value) if value["type"] == "connection_ack" => client,
            other => panic!("expected connection_ack, got {other:?}"),
        }
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        let message = json!({
            "id": id, "type": "subscribe",
            "payload": { "query": query, "variables": variables },
        });
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .expect("send subscribe");
    }

    /// The next protocol message, raw (`Next` holds the whole message here).
    pub async fn next_message(&mut self) -> WsEvent {
        loop {
            let message = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("no websocket message in time");
            match message {
                Some(Ok(Message::Text(text))) => {
                    let value: Value = serde_json::from_str(&text).expect("json message");
                    if value["type"] == "ping" {
                        let pong = json!({ "type": "pong" }).to_string();
                        let _ = self.socket.send(Message::text(pong)).await;
                        continue;
                    }
                    return WsEvent::Next(value);
                }
                Some(Ok(Message::Close(frame))) => {
                    return WsEvent::Closed(frame.map(|f| u16::from(f.code)));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return WsEvent::Closed(None),
            }
        }
    }

    /// The next event of subscription `id`: its payload, an error or completion.
    pub async fn next_event(&mut self, id: &str) -> WsEvent {
        loop {
            match self.next_message().await {
                WsEvent::Next(value) if value["id"] == id => {
                    return match value["type"].as_str() {
                        Some("next") => WsEvent::Next(value["payload"].clone()),
                        Some("error") => WsEvent::Error(value["payload"].clone()),
                        Some("complete") => WsEvent::Complete,
                        _ => continue,
                    };
                }
                WsEvent::Next(_) => continue,
                other => return other,
            }
        }
    }
}

pub const EVENTS_SUBSCRIPTION: &str = "subscription($id: ID!) { verifySessionEvents(id: $id) {
    kind occurredAt
    session { id status failureReason failedAttempts }
    connection { id ipAddress clientVersion }
    key { id publicKeySha256 verifiedAt }
} }";
