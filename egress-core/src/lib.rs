//! The pure planning engine of the static egress gateway.
//!
//! egress-core decides; adapters execute and observe. Nothing in this crate
//! performs IO, reads the clock or draws random numbers: time and randomness
//! are passed in, and a CI check keeps async runtimes, Kubernetes, Azure,
//! netlink, nftables and WireGuard crates out of its dependency tree.
//!
//! - [`model`]: configurations, pools, status and endpoints, free of SDK types.
//! - [`validate`]: every spec rule, one typed [`Error`] per rule, naming the field.
//! - [`routes`]: which destinations of a pod go through the tunnel, for IPv4
//!   and IPv6, with `explain` for a single destination.
//! - [`sizing`]: public prefix and private subnet capacity.
//! - [`lb`]: the internal load balancer, with sticky per-pool ports.
//! - [`vmss`]: secondary ipConfigs on VMSS models, instances and VM-pool NICs.
//! - [`node`]: a gateway node's dataplane, diffed into ordered idempotent operations.
//! - [`drift`]: each way a gateway node differs from its plan, named for operators.
//! - [`pod`]: a pod's tunnel interface, routes and reply path.
//! - [`agent`]: the node agent's steps for one pod (device, PodEndpoint,
//!   routes, status) in a safe order, behind `PodDataplane` and `EndpointStore`.
//! - [`liveness`]: when a pod's silent tunnel should start a new handshake (fast failover).
//! - [`traits`]: `CloudProvider`, `ClusterApi` and `Dataplane`, the seams to the world.
//! - [`controller`]: the reconcile pass over every configuration, generic over the traits.
//! - [`backoff`]: requeue delays as values.
//! - `testing` (feature `test-util`): in-memory implementations of the traits.
//! - [`names`]: names and constants shared with the upstream project.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod agent;
pub mod arm;
pub mod backoff;
pub mod cidr;
pub mod controller;
pub mod drift;
mod error;
pub mod lb;
pub mod liveness;
pub mod model;
pub mod names;
pub mod node;
pub mod pod;
pub mod routes;
pub mod sizing;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod traits;
pub mod validate;
pub mod vmss;

pub use cidr::Family;
pub use error::{AdapterSource, Error, FailureKind, Layer};
