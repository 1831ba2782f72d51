//! SeaORM entities: one module per table. Only the store layer of the `keyproof` crate uses
//! them; nothing else builds queries.

pub mod api_key;
pub mod connection_key;
pub mod project;
pub mod session_event;
pub mod verify_connection;
pub mod verify_key;
pub mod verify_session;
pub mod webhook;
pub mod webhook_attempt;
pub mod webhook_delivery;
