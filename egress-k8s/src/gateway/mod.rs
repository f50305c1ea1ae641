//! The gateway daemon's view of the cluster.
//!
//! - [`translate`]: from the objects a gateway node depends on (SGCs, their
//!   `GatewayVMConfigurations`, key Secrets, PodEndpoints) to egress-core's
//!   node inputs, as upstream decides readiness and applicability.
//! - [`watch`]: reflectors over those objects, with a change signal.
//! - [`plan`]: from a snapshot to the node plan, as the daemon applies it.
//! - [`status`]: the node's GatewayStatus, bounded in size.

pub mod plan;
pub mod status;
pub mod translate;
pub mod verify;
pub mod watch;

pub use status::StatusWriter;
pub use translate::{NodeIdentity, Snapshot};
pub use watch::GatewayWatch;
