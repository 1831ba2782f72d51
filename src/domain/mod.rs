//! The verification rules as plain code: no I/O, no database, no sockets.

pub mod identifiers;
pub mod keys;
pub mod session;
pub mod text;
