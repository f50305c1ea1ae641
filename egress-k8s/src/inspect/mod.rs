//! What the operator's tools show, gathered from the API and rendered.
//!
//! - [`status`]: every configuration with pool, mode, egress addresses,
//!   readiness and the pods that use it.
//! - [`explain`]: a pod's live route plan for one destination, built with
//!   the node agent's functions.

pub mod explain;
pub mod status;
