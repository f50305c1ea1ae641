//! The pure planning engine of the static egress gateway.
//!
//! egress-core decides; adapters execute and observe. Nothing in this crate
//! performs IO, reads the clock or draws random numbers: time and randomness
//! are passed in, and a CI check keeps async runtimes, Kubernetes, Azure,
//! netlink, nftables and WireGuard crates out of its dependency tree.
//!
//! - [`routes`]: which destinations of a pod go through the tunnel, for IPv4
//!   and IPv6, with `explain` for a single destination.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cidr;
mod error;
pub mod routes;

pub use cidr::Family;
pub use error::Error;
