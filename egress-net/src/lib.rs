//! Linux dataplane adapter for the egress gateway.
//!
//! - [`wireguard`]: WireGuard devices through `defguard_wireguard_rs`, using the
//!   kernel module where it is loaded and embedded userspace WireGuard
//!   (boringtun) where it is not. The choice is made at run time.
//! - [`nft`]: nftables rulesets applied atomically with `nft -f -`.
//!
//! Every operation acts on the network namespace of the calling thread, so a
//! caller that has entered a namespace configures that namespace.

mod error;
pub mod nft;
pub mod wireguard;

pub use error::Error;
