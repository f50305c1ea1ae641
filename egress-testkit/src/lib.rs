//! Test support for the egress gateway workspace.
//!
//! - [`apiserver::ApiServer`] starts a real `kube-apiserver` backed by a real `etcd`
//!   on loopback, writes a kubeconfig and tears both down on drop.
//! - [`netns`] builds network-namespace topologies (namespaces, veth pairs,
//!   addresses, routes) that are removed on drop, even when a test panics.
//!
//! - [`cluster::Cluster`] runs a local Kubernetes cluster from real parts:
//!   a control plane and kubelets with containerd and runc, each node in its
//!   own network, PID and mount namespaces, with a real CNI chain.
//! - [`image`] builds OCI image tarballs of local binaries for that cluster.
//! - [`tools`] finds the binaries and images `scripts/setup.sh` builds.
//!
//! All talk to real counterparts; nothing here is a mock.

pub mod apiserver;
pub mod cluster;
mod error;
pub mod image;
pub mod netns;
mod process;
pub mod tools;

pub use error::Error;
