//! Test support for the egress gateway workspace.
//!
//! - [`apiserver::ApiServer`] starts a real `kube-apiserver` backed by a real `etcd`
//!   on loopback, writes a kubeconfig and tears both down on drop.
//! - [`netns`] builds network-namespace topologies (namespaces, veth pairs,
//!   addresses, routes) that are removed on drop, even when a test panics.
//!
//! Both talk to real counterparts; nothing here is a mock.

pub mod apiserver;
mod error;
pub mod netns;
mod process;

pub use error::Error;
