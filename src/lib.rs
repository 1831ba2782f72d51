//! keyproof: proves that a person holds the private half of an SSH key.
//!
//! The tree shows the architecture: `domain` holds the rules without I/O, `store` is the only
//! code that talks to the database, `events` carries committed changes to readers, `ssh` is
//! the SSH server, `graphql` and `http` the API, `app` wires them together.

pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod files;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod public;
pub mod rest;
pub mod shutdown;
pub mod ssh;
pub mod store;
pub mod telemetry;
pub mod webhooks;
