//! In-memory implementations of the three traits, for tests (feature
//! `test-util`). They behave like the real systems where the engine can tell
//! (Azure assigns addresses on write, deletions of absent objects succeed),
//! count every write per resource kind, and fail calls on request.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{Error, FailureKind, Layer};

mod cloud;
mod cluster;
mod dataplane;

pub use cloud::{CloudState, InMemoryCloud};
pub use cluster::{ClusterState, InMemoryCluster, StoredConfig};
pub use dataplane::InMemoryDataplane;

/// A gateway node's active configurations (ports from 6000) and `peers` pod
/// endpoints spread evenly over them, for tests and benches.
pub fn gateway_node_inputs(
    configs: u16,
    peers: u32,
) -> (
    Vec<crate::node::ActiveConfig>,
    Vec<crate::model::PodEndpoint>,
) {
    use std::net::Ipv4Addr;

    use crate::model::{GatewayNode, PodEndpoint, SecretRef, ServerProfile};
    let active = (0..configs)
        .map(|c| crate::node::ActiveConfig {
            namespace: "ns".into(),
            name: format!("gw{c}"),
            uid: format!("u{c}"),
            server: ServerProfile {
                ip: Ipv4Addr::new(10, 0, 0, 4).into(),
                port: 6000 + c,
                public_key: format!("gateway-key-{c}"),
                key_secret: SecretRef {
                    namespace: "kube-egress-gateway-system".into(),
                    name: format!("sgw-u{c}"),
                },
            },
            node: GatewayNode {
                node_name: "gw-0".into(),
                primary_ip: Ipv4Addr::new(10, 0, 1, 4).into(),
                secondary_ip: Ipv4Addr::from(0x0A00_0200 + u32::from(c)).into(),
            },
        })
        .collect();
    let endpoints = (0..peers)
        .map(|p| PodEndpoint {
            namespace: "ns".into(),
            name: format!("pod{p}"),
            config: format!("gw{}", p % u32::from(configs.max(1))),
            pod_ip: Ipv4Addr::from(0x0AF4_0000 + p).into(),
            public_key: format!("pod-key-{p:06}"),
        })
        .collect();
    (active, endpoints)
}

/// The error an injected failure carries.
#[derive(Debug, thiserror::Error)]
#[error("injected failure of {0}")]
pub struct Injected(pub &'static str);

/// One injected failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// How the call fails.
    pub kind: FailureKind,
    /// The write takes effect and then the call fails anyway, as when Azure
    /// applies a change and the answer is lost.
    pub after_effect: bool,
}

/// Failures to inject, per operation name (the trait method's name).
#[derive(Debug, Default)]
pub struct Faults {
    pub(crate) queued: BTreeMap<&'static str, VecDeque<Fault>>,
    pub(crate) always: BTreeMap<&'static str, FailureKind>,
}

impl Faults {
    /// Queues failures: the next calls of `op` fail with these kinds.
    pub fn queue(&mut self, op: &'static str, kinds: &[FailureKind]) {
        self.queued
            .entry(op)
            .or_default()
            .extend(kinds.iter().map(|&kind| Fault {
                kind,
                after_effect: false,
            }));
    }

    /// Queues failures that strike after the write took effect.
    pub fn queue_after_effect(&mut self, op: &'static str, kinds: &[FailureKind]) {
        self.queued
            .entry(op)
            .or_default()
            .extend(kinds.iter().map(|&kind| Fault {
                kind,
                after_effect: true,
            }));
    }

    /// The failure the next call of `op` meets, if any.
    pub(crate) fn take(&mut self, op: &'static str) -> Option<Fault> {
        self.queued
            .get_mut(op)
            .and_then(VecDeque::pop_front)
            .or_else(|| {
                self.always.get(op).map(|&kind| Fault {
                    kind,
                    after_effect: false,
                })
            })
    }

    /// Fails the call now unless its failure (if any) strikes after the effect.
    pub(crate) fn check(&mut self, layer: Layer, op: &'static str) -> Result<(), Error> {
        match self.take(op) {
            Some(f) => Err(injected(layer, op, f.kind)),
            None => Ok(()),
        }
    }
}

pub(crate) fn injected(layer: Layer, op: &'static str, kind: FailureKind) -> Error {
    Error::adapter(layer, op, kind, Injected(op))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn not_found(layer: Layer, op: &'static str) -> Error {
    Error::adapter(layer, op, FailureKind::NotFound, Injected(op))
}
