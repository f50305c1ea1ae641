//! Linux dataplane adapter for the egress gateway.
//!
//! - [`dataplane`]: [`LinuxDataplane`], egress-core's `Dataplane` for a
//!   gateway node, over rtnetlink, WireGuard and nftables.
//! - [`wireguard`]: WireGuard devices through `defguard_wireguard_rs`, on the
//!   kernel module where it is loaded, otherwise on wireguard-go (one process
//!   per device, driven over its control socket), with embedded boringtun as
//!   a last resort. The choice is made at run time.
//! - [`pod`]: a pod's side of the tunnel (`wg0`, routes, reply path), as the
//!   node agent installs it.
//! - [`nft`]: nftables rulesets applied atomically with `nft -f -`.
//! - [`netns`]: working inside network namespaces; [`rtnl`]: rtnetlink.
//!
//! Blocking operations act on the network namespace of the calling thread;
//! [`netns::NsWorker`] gives a thread parked in a chosen namespace.

pub mod dataplane;
mod error;
pub mod netns;
pub mod nft;
pub mod pod;
pub mod rtnl;
pub mod wgctl;
pub mod wireguard;

pub use dataplane::LinuxDataplane;
pub use error::Error;
