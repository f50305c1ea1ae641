//! The whole system on one machine, for the end-to-end tests, the demo and
//! the figures: a local cluster of real kubelets (`egress_testkit::cluster`)
//! with the Helm chart installed from this repository and the project's
//! binaries in an image, the fake Azure Resource Manager in the cluster's
//! network, Azure's edge simulated from the fake's state, and echo hosts
//! that report the source address they see.

pub mod chart;
pub mod cloud;
pub mod edge;
mod error;
pub mod failover;
pub mod images;
pub mod stack;
pub mod stream;
pub mod tenants;
pub mod traffic;
pub mod wait;

pub use error::E2eError;
