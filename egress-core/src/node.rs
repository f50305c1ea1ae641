//! The gateway-node plan: what one gateway node's dataplane must hold, and
//! the ordered operations that take the observed state there.
//!
//! Shared by every configuration, while any applies to the node: the
//! [`Plumbing`] of the gateway network namespace (a veth pair to the host,
//! the default route via the node's primary IP, and filters that let only
//! replies in from the host side).
//!
//! Per configuration that applies to the node: a WireGuard interface
//! `wg-<port>` with its key, listen port and an explicit MTU; the node's
//! secondary IP for that configuration on the gateway side of the veth with an
//! SNAT rule to it (and the host exempting it from masquerading); and one peer
//! per pod endpoint, allowed only the pod's address. The load-balancer frontend
//! IPs are held on the node's primary interface as /32s because the rules use
//! floating IP.
//!
//! An observer that finds an item only partly in place (an address without
//! its route, a SNAT rule without its address) reports it so that it differs
//! from every plan: unspecified addresses in [`Plumbing`] and
//! [`Interface::snat_ip`], and egress addresses no interface fully holds in
//! [`NodeState::stray_ips`]. [`diff`] then re-applies or removes it.
//!
//! [`diff`] returns idempotent operations in a safe order: the plumbing and
//! other additions and updates first (so traffic is never without a path),
//! removals last, and a frontend address and the plumbing only after no
//! interface needs them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::model::{GatewayNode, PodEndpoint, SecretRef, ServerProfile};
use crate::names::gateway_interface;

/// WireGuard over IPv6 adds 80 bytes (40 IPv6 + 8 UDP + 32 WireGuard).
pub const WIREGUARD_OVERHEAD: u32 = 80;

/// The tunnel MTU for an underlay MTU, leaving room for the worst-case header.
pub const fn tunnel_mtu(underlay_mtu: u32) -> u32 {
    underlay_mtu.saturating_sub(WIREGUARD_OVERHEAD)
}

/// The gateway namespace's shared plumbing, as planned or observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plumbing {
    /// The node's primary IP: the gateway namespace's default route goes via
    /// it, across the veth pair.
    pub primary_ip: IpAddr,
    /// MTU of the veth pair: the underlay's, since it carries plain packets.
    pub mtu: u32,
}

impl Plumbing {
    /// What an observer reports for plumbing that is only partly in place.
    pub fn incomplete() -> Self {
        Self {
            primary_ip: IpAddr::from([0, 0, 0, 0]),
            mtu: 0,
        }
    }
}

/// One gateway interface as planned or observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Listen port (also the connmark that selects its SNAT rule).
    pub port: u16,
    /// MTU.
    pub mtu: u32,
    /// The gateway's public key; the private key stays in its Secret.
    pub public_key: String,
    /// Where the private key is kept.
    pub key_secret: SecretRef,
    /// The SGC UID, reported by the health probe.
    pub sgc_uid: String,
    /// SNAT target: this node's secondary IP for the configuration, held on
    /// the gateway side of the veth, routed to by the host and exempt from
    /// the host's masquerading. Observed as unspecified unless all of that,
    /// the SNAT rule and the reply path are in place.
    pub snat_ip: IpAddr,
    /// Next hop out of the gateway namespace: the node's primary IP.
    pub primary_ip: IpAddr,
    /// Peers: pod public key to pod address.
    pub peers: BTreeMap<String, IpAddr>,
}

/// What a gateway node's dataplane holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeState {
    /// The gateway namespace's shared plumbing, while any interface needs it.
    pub plumbing: Option<Plumbing>,
    /// Load-balancer frontend IPs on the primary interface.
    pub frontend_ips: BTreeSet<IpAddr>,
    /// Interfaces by name (`wg-<port>`).
    pub interfaces: BTreeMap<String, Interface>,
    /// Observed only: egress IPs (or parts of their setup) on the node that
    /// no interface fully holds, left by a removed or half-applied
    /// configuration. Never planned.
    pub stray_ips: BTreeSet<IpAddr>,
}

/// A configuration active on this node, with its status and this node's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveConfig {
    /// Namespace of the SGC (its pods' namespace).
    pub namespace: String,
    /// Name of the SGC.
    pub name: String,
    /// UID of the SGC.
    pub uid: String,
    /// The gateway endpoint.
    pub server: ServerProfile,
    /// This node's addresses for the configuration.
    pub node: GatewayNode,
}

/// Computes the desired state of a node from its active configurations and the
/// pod endpoints of the cluster. Endpoints of other configurations are ignored.
/// `mtu` is the tunnel MTU; the veth pair gets the underlay's
/// (`mtu + WIREGUARD_OVERHEAD`). All configurations of a node share its
/// primary IP; the first one's is used.
pub fn desired(configs: &[ActiveConfig], endpoints: &[PodEndpoint], mtu: u32) -> NodeState {
    let mut state = NodeState {
        plumbing: configs.first().map(|c| Plumbing {
            primary_ip: c.node.primary_ip,
            mtu: mtu.saturating_add(WIREGUARD_OVERHEAD),
        }),
        ..NodeState::default()
    };
    let mut by_config: BTreeMap<(&str, &str), String> = BTreeMap::new();
    for c in configs {
        let name = gateway_interface(c.server.port);
        state.frontend_ips.insert(c.server.ip);
        state.interfaces.insert(
            name.clone(),
            Interface {
                port: c.server.port,
                mtu,
                public_key: c.server.public_key.clone(),
                key_secret: c.server.key_secret.clone(),
                sgc_uid: c.uid.clone(),
                snat_ip: c.node.secondary_ip,
                primary_ip: c.node.primary_ip,
                peers: BTreeMap::new(),
            },
        );
        by_config.insert((c.namespace.as_str(), c.name.as_str()), name);
    }
    for e in endpoints {
        let iface = by_config
            .get(&(e.namespace.as_str(), e.config.as_str()))
            .and_then(|name| state.interfaces.get_mut(name));
        if let Some(iface) = iface {
            iface.peers.insert(e.public_key.clone(), e.pod_ip);
        }
    }
    state
}

/// One idempotent dataplane operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeOp {
    /// Create or repair the gateway namespace's plumbing.
    EnsurePlumbing(Plumbing),
    /// Hold a frontend IP as /32 on the primary interface.
    AddFrontendIp(IpAddr),
    /// Create interface `name` in the gateway namespace (address `fe80::1/64`, up).
    CreateInterface {
        /// Interface name.
        name: String,
    },
    /// Set key, port, MTU and probe identity of an interface, and its egress
    /// IP with everything that carries it (address, host route, exemption from
    /// masquerading, SNAT and reply path).
    ConfigureInterface {
        /// Interface name.
        name: String,
        /// Everything but the peers.
        config: Interface,
    },
    /// Add or update a peer.
    UpsertPeer {
        /// Interface name.
        iface: String,
        /// Pod public key.
        public_key: String,
        /// The pod's address, the only allowed IP.
        pod_ip: IpAddr,
    },
    /// Remove a peer and its route.
    RemovePeer {
        /// Interface name.
        iface: String,
        /// Pod public key.
        public_key: String,
    },
    /// Delete an interface with its SNAT rule and secondary address.
    DeleteInterface {
        /// Interface name.
        name: String,
    },
    /// Remove whatever is left of an egress IP no interface holds.
    RemoveStrayIp(IpAddr),
    /// Release a frontend IP from the primary interface.
    RemoveFrontendIp(IpAddr),
    /// Remove the gateway namespace's plumbing.
    RemovePlumbing,
}

fn settings_differ(a: &Interface, b: &Interface) -> bool {
    a.port != b.port
        || a.mtu != b.mtu
        || a.public_key != b.public_key
        || a.key_secret != b.key_secret
        || a.sgc_uid != b.sgc_uid
        || a.snat_ip != b.snat_ip
        || a.primary_ip != b.primary_ip
}

/// Operations that take `observed` to `desired`, in a safe order. Empty when
/// they already match, so a no-op pass makes no kernel writes.
pub fn diff(desired: &NodeState, observed: &NodeState) -> Vec<NodeOp> {
    let mut ops = Vec::new();
    if let Some(want) = &desired.plumbing
        && observed.plumbing.as_ref() != Some(want)
    {
        ops.push(NodeOp::EnsurePlumbing(want.clone()));
    }
    for ip in desired.frontend_ips.difference(&observed.frontend_ips) {
        ops.push(NodeOp::AddFrontendIp(*ip));
    }
    for (name, want) in &desired.interfaces {
        let have = observed.interfaces.get(name);
        if have.is_none() {
            ops.push(NodeOp::CreateInterface { name: name.clone() });
        }
        if have.is_none_or(|h| settings_differ(want, h)) {
            let mut config = want.clone();
            config.peers.clear();
            ops.push(NodeOp::ConfigureInterface {
                name: name.clone(),
                config,
            });
        }
        let empty = BTreeMap::new();
        let have_peers = have.map_or(&empty, |h| &h.peers);
        for (key, ip) in &want.peers {
            if have_peers.get(key) != Some(ip) {
                ops.push(NodeOp::UpsertPeer {
                    iface: name.clone(),
                    public_key: key.clone(),
                    pod_ip: *ip,
                });
            }
        }
        for key in have_peers.keys().filter(|k| !want.peers.contains_key(*k)) {
            ops.push(NodeOp::RemovePeer {
                iface: name.clone(),
                public_key: key.clone(),
            });
        }
    }
    for name in observed.interfaces.keys() {
        if !desired.interfaces.contains_key(name) {
            ops.push(NodeOp::DeleteInterface { name: name.clone() });
        }
    }
    // A stray IP that some interface is about to hold was re-claimed by its
    // ConfigureInterface above.
    let claimed: BTreeSet<IpAddr> = desired.interfaces.values().map(|i| i.snat_ip).collect();
    for ip in observed.stray_ips.difference(&claimed) {
        ops.push(NodeOp::RemoveStrayIp(*ip));
    }
    for ip in observed.frontend_ips.difference(&desired.frontend_ips) {
        ops.push(NodeOp::RemoveFrontendIp(*ip));
    }
    if desired.plumbing.is_none() && observed.plumbing.is_some() {
        ops.push(NodeOp::RemovePlumbing);
    }
    ops
}

/// The SGC UIDs whose interface is fully in place as observed: the plumbing,
/// the interface's settings, egress IP and every planned peer match the plan.
/// This is what the load balancer's health probe reports.
pub fn ready(desired: &NodeState, observed: &NodeState) -> BTreeSet<String> {
    if desired.plumbing.is_none() || desired.plumbing != observed.plumbing {
        return BTreeSet::new();
    }
    desired
        .interfaces
        .iter()
        .filter(|(name, want)| {
            observed
                .interfaces
                .get(*name)
                .is_some_and(|have| !settings_differ(want, have) && want.peers == have.peers)
                && observed.frontend_ips.is_superset(&desired.frontend_ips)
        })
        .map(|(_, want)| want.sgc_uid.clone())
        .collect()
}

/// Applies one operation to a model of the node. Used by tests and by the
/// in-memory dataplane; the Linux adapter does the same to the kernel.
pub fn apply(state: &mut NodeState, op: &NodeOp) {
    match op {
        NodeOp::EnsurePlumbing(p) => state.plumbing = Some(p.clone()),
        NodeOp::RemovePlumbing => state.plumbing = None,
        NodeOp::RemoveStrayIp(ip) => {
            state.stray_ips.remove(ip);
        }
        NodeOp::AddFrontendIp(ip) => {
            state.frontend_ips.insert(*ip);
        }
        NodeOp::RemoveFrontendIp(ip) => {
            state.frontend_ips.remove(ip);
        }
        NodeOp::CreateInterface { name } => {
            // A fresh interface has no settings yet; ConfigureInterface follows.
            state
                .interfaces
                .entry(name.clone())
                .or_insert_with(|| Interface {
                    port: 0,
                    mtu: 0,
                    public_key: String::new(),
                    key_secret: SecretRef {
                        namespace: String::new(),
                        name: String::new(),
                    },
                    sgc_uid: String::new(),
                    snat_ip: IpAddr::from([0, 0, 0, 0]),
                    primary_ip: IpAddr::from([0, 0, 0, 0]),
                    peers: BTreeMap::new(),
                });
        }
        NodeOp::ConfigureInterface { name, config } => {
            if let Some(iface) = state.interfaces.get_mut(name) {
                state.stray_ips.remove(&config.snat_ip);
                let peers = std::mem::take(&mut iface.peers);
                *iface = Interface {
                    peers,
                    ..config.clone()
                };
            }
        }
        NodeOp::UpsertPeer {
            iface,
            public_key,
            pod_ip,
        } => {
            if let Some(i) = state.interfaces.get_mut(iface) {
                i.peers.insert(public_key.clone(), *pod_ip);
            }
        }
        NodeOp::RemovePeer { iface, public_key } => {
            if let Some(i) = state.interfaces.get_mut(iface) {
                i.peers.remove(public_key);
            }
        }
        NodeOp::DeleteInterface { name } => {
            state.interfaces.remove(name);
        }
    }
}

#[cfg(test)]
mod tests;
