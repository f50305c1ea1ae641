//! An edge simulator: the control plane's network namespace made to do what
//! Azure's network would, from the fake ARM's state.
//!
//! - [`Edge`] runs in the namespace that is every node's default router:
//!   - each internal load-balancing rule (UDP or TCP, floating IP) sends a
//!     flow to one healthy backend node, picked by a hash of its 5-tuple and
//!     kept for the flow's life while that node stays healthy; the
//!     destination stays the frontend address, which the node holds itself;
//!   - backends are probed as the rule's probe says, from that namespace;
//!   - every NIC ipConfig's private address is routed to its node, and one
//!     with a public IP is translated 1:1 to and from it.
//! - [`Imds`] is a node's instance metadata service at `169.254.169.254`.
//!
//! Nodes are known by computer name (a scale-set instance's
//! `osProfile.computerName`, or a VM's), mapped by the caller to the node's
//! address on the link it shares with the router.

mod command;
mod error;
mod imds;
mod imds_document;
pub mod plan;
mod probe;
mod ruleset;
mod simulator;

use serde_json::Value;

pub use error::EdgeError;
pub use imds::{IMDS_ADDR, Imds, respond as imds_respond};
pub use imds_document::{instance as imds_instance, loadbalancer as imds_loadbalancer};
pub use plan::Plan;
pub use probe::{PROBE_TIMEOUT, Target};
pub use ruleset::TABLE;
pub use simulator::{Edge, MARK_BASE, RESYNC, ROUTES_TABLE};

/// Where the simulator reads Azure's state: every resource as its GET would
/// answer, in the shape of `FakeArm::state()`.
pub trait ArmState: Send + Sync + 'static {
    /// The current state.
    fn arm_state(&self) -> Value;
}

impl ArmState for egress_fakearm::FakeArm {
    fn arm_state(&self) -> Value {
        self.state()
    }
}

/// A state source from a closure, e.g. over a fake ARM owned by something
/// else (`StateFn(move || cloud.arm.state())`).
pub struct StateFn<F>(pub F);

impl<F: Fn() -> Value + Send + Sync + 'static> ArmState for StateFn<F> {
    fn arm_state(&self) -> Value {
        (self.0)()
    }
}

impl<F> std::fmt::Debug for StateFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateFn")
    }
}
