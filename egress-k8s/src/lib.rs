//! Kubernetes adapter for the egress gateway.
//!
//! - [`crd`]: the five custom resource kinds of API group
//!   `egressgateway.kubernetes.azure.com/v1alpha1`, wire-compatible with the
//!   upstream project, with admission-time CEL validation.
//! - [`generate`]: renders the CRD manifests that `deploy/crds/` holds.
//! - [`controller`]: core's `ClusterApi` over kube-rs, and the controller
//!   process around the reconcile pass (watches, leader election, metrics).
//! - [`agent`]: the node agent's view of the cluster (pods, namespaces, PodEndpoints).
//! - [`gateway`]: the gateway daemon's view of the cluster (watches of the
//!   objects that shape a gateway node) and its GatewayStatus report.
//! - [`inspect`]: what the operator's tools show: every configuration with
//!   its pods, and a pod's live route plan for a destination.

pub mod agent;
pub mod controller;
pub mod crd;
mod error;
pub mod gateway;
pub mod generate;
pub mod inspect;

pub use error::Error;
