//! The gateway daemon's view of the cluster.
//!
//! - [`translate`]: from the objects a gateway node depends on (SGCs, their
//!   `GatewayVMConfigurations`, key Secrets, PodEndpoints) to egress-core's
//!   node inputs, as upstream decides readiness and applicability.
//! - [`watch`]: reflectors over those objects, with a change signal.
//! - [`status`]: the node's GatewayStatus, bounded in size.

pub mod status;
pub mod translate;
pub mod verify;
pub mod watch;

pub use status::StatusWriter;
pub use translate::{NodeIdentity, Snapshot};
pub use watch::GatewayWatch;
