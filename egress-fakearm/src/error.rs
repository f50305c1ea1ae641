//! The library's own error type, for callers of the Rust API (not the HTTP errors the fake
//! answers with; those are [`crate::arm_error::ArmError`]).

use std::net::SocketAddr;

/// What can go wrong when starting or driving the fake ARM server from Rust.
#[derive(Debug, thiserror::Error)]
pub enum FakeArmError {
    /// The listening socket could not be bound.
    #[error("fake ARM server: cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why the bind failed.
        #[source]
        source: std::io::Error,
    },
    /// The bound socket's own address could not be read.
    #[error("fake ARM server: cannot read the bound address")]
    LocalAddr(#[source] std::io::Error),
    /// A seed (typed or JSON) was refused; the message names the offending item.
    #[error("fake ARM seed refused: {0}")]
    Seed(String),
    /// A seed file or admin payload was not valid JSON for its type.
    #[error("fake ARM: invalid {what} JSON")]
    Json {
        /// What was being parsed.
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}
