//! From a watch snapshot to the node plan, as a gateway node applies it.
//!
//! The daemon adds one thing over this: it keeps a configuration placed on
//! the node while its VM configuration briefly lacks the node. A one-shot
//! reader (`egressctl doctor`) has no such memory and reports those
//! configurations in [`NodePlan::notes`] instead.

use egress_core::model::PodEndpoint;
use egress_core::node::{NodeState, desired, tunnel_mtu};

use super::Snapshot;

/// The plan of one gateway node, with what was left out of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodePlan {
    /// What the node's dataplane must hold.
    pub state: NodeState,
    /// The PodEndpoints the plan uses.
    pub endpoints: Vec<PodEndpoint>,
    /// Objects skipped and why, for a person to read.
    pub notes: Vec<String>,
}

/// Plans the node from `snap` with the underlay MTU: every placed
/// configuration and every PodEndpoint whose key `valid_key` accepts (a
/// peer whose key cannot be a WireGuard key would fail every pass).
pub fn node_plan(snap: Snapshot, underlay_mtu: u32, valid_key: impl Fn(&str) -> bool) -> NodePlan {
    let mut notes = snap.rejected;
    for uid in &snap.unplaced {
        notes.push(format!(
            "configuration {uid} selects this node but its GatewayVMConfiguration does not list it (the daemon keeps live state for it meanwhile)"
        ));
    }
    let mut endpoints = Vec::with_capacity(snap.endpoints.len());
    for e in snap.endpoints {
        if valid_key(&e.public_key) {
            endpoints.push(e);
        } else {
            notes.push(format!(
                "PodEndpoint {}/{}: spec.podPublicKey is not a WireGuard key; ignored",
                e.namespace, e.name
            ));
        }
    }
    NodePlan {
        state: desired(&snap.configs, &endpoints, tunnel_mtu(underlay_mtu)),
        endpoints,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use egress_core::model::{GatewayNode, SecretRef, ServerProfile};
    use egress_core::node::ActiveConfig;

    use super::*;

    #[test]
    fn endpoints_with_bad_keys_and_unplaced_configurations_are_noted() {
        let config = ActiveConfig {
            namespace: "apps".into(),
            name: "gw".into(),
            uid: "u1".into(),
            server: ServerProfile {
                ip: [192, 0, 2, 100].into(),
                port: 6000,
                public_key: "pk".into(),
                key_secret: SecretRef {
                    namespace: "sys".into(),
                    name: "sgw-u1".into(),
                },
            },
            node: GatewayNode {
                node_name: "gw-0".into(),
                primary_ip: [192, 0, 2, 1].into(),
                secondary_ip: [203, 0, 113, 10].into(),
            },
        };
        let ep = |name: &str, key: &str| PodEndpoint {
            namespace: "apps".into(),
            name: name.into(),
            config: "gw".into(),
            pod_ip: [10, 244, 0, 1].into(),
            public_key: key.into(),
        };
        let snap = Snapshot {
            configs: vec![config],
            unplaced: vec!["u2".into()],
            endpoints: vec![ep("good", "good-key"), ep("bad", "bad")],
            ..Snapshot::default()
        };
        let plan = node_plan(snap, 1500, |k| k.ends_with("-key"));
        assert_eq!(plan.endpoints.len(), 1);
        assert_eq!(plan.state.interfaces["wg-6000"].mtu, 1420);
        assert_eq!(plan.state.interfaces["wg-6000"].peers.len(), 1);
        assert_eq!(plan.notes.len(), 2, "{:?}", plan.notes);
        assert!(plan.notes[0].contains("u2"));
        assert!(plan.notes[1].contains("apps/bad"));
    }
}
