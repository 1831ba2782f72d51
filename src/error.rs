//! Error policy.
//!
//! - Start-up and background work use `anyhow` with context: the operator reads those.
//! - Domain failures are small `thiserror` enums (`KeyInputError`, `StoreError`, …) whose text
//!   never contains secrets or key material.
//! - At the API edge, [`crate::graphql::error::ApiError`] maps each failure to one
//!   `extensions.code`. Database, network and library error text is logged once there and
//!   never reaches a client; in the SSH server it becomes a plain sentence for the person.
