//! The gateway node's dataplane on Linux: [`LinuxDataplane`] implements
//! egress-core's `Dataplane` over rtnetlink, WireGuard and nftables.
//!
//! The layout follows upstream's so an upgraded node looks familiar: one
//! gateway namespace, a WireGuard link `wg-<port>` per configuration created
//! in the host namespace (so its UDP socket stays there) and then moved in,
//! the veth pair `host-gateway`/`host0` with the egress IPs as /32s on
//! `host0`, a host route to each egress IP, and the frontend IPs as /32s on
//! the node's interface with label `<if>:egress`. It differs where upstream
//! is weak:
//!
//! - nftables tables of our own instead of iptables chains (see [`tables`]);
//!   per-configuration state is map and set elements, each change one
//!   transaction.
//! - Replies find their tunnel by policy routing (`fwmark <port> lookup
//!   <port>`, a default route into `wg-<port>` in table `<port>`) instead of
//!   one route per pod: 10,000 peers are 10,000 WireGuard peers and no routes.
//! - Unsolicited packets from the host side are dropped in the gateway
//!   namespace. Its reverse-path filter is off: tunnels have no IPv4
//!   address, which fails even the loose check, and WireGuard already admits
//!   from each peer only its own pod address.
//! - Every device gets an explicit MTU; the veth the underlay's.
//!
//! `observe` reads all of it back; an item only partly in place is reported
//! so that it differs from any plan (see egress-core's `node` module).
//!
//! A pass's operations are applied in batches (`Dataplane::apply_all`): the
//! table elements of every configured interface in one nftables transaction
//! per namespace, the peer changes of each device in one userspace-API set
//! (devices side by side), and interfaces configured a few at a time. Every
//! kernel write is counted ([`LinuxDataplane::kernel_writes`]).

mod apply;
mod observe;
pub mod tables;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::process::Child;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use egress_core::model::SecretRef;

use crate::Error;
use crate::netns::{NsRef, NsWorker};
use crate::rtnl::Rtnl;
use crate::wireguard::Backend;

/// Host side of the veth pair.
pub const VETH_HOST: &str = "host-gateway";
/// Gateway side of the veth pair.
pub const VETH_GATEWAY: &str = "host0";
/// The gateway namespace's name, as upstream names it.
pub const GATEWAY_NETNS: &str = "/var/run/netns/ns-static-egress-gateway";
/// Priority of the per-configuration policy routing rules.
pub const RULE_PRIORITY: u32 = 1000;
/// Userspace devices read or written at once (each call blocks a thread).
const DEVICE_CONCURRENCY: usize = 8;
/// Prefix of the alias that records a gateway link's configuration.
const ALIAS_PREFIX: &str = "egress-gateway";

/// Where private keys come from; the daemon fills it from the key Secrets.
pub trait KeySource: Send + Sync + fmt::Debug {
    /// The base64 private key held by `secret`, if loaded.
    fn private_key(&self, secret: &SecretRef) -> Option<String>;
}

/// A fixed set of keys, for tests and tools.
#[derive(Default)]
pub struct StaticKeys(pub Mutex<HashMap<(String, String), String>>);

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeys").finish_non_exhaustive()
    }
}

impl StaticKeys {
    /// Stores a key.
    pub fn insert(&self, secret: &SecretRef, private_key: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                (secret.namespace.clone(), secret.name.clone()),
                private_key.to_string(),
            );
    }
}

impl KeySource for StaticKeys {
    fn private_key(&self, secret: &SecretRef) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(secret.namespace.clone(), secret.name.clone()))
            .cloned()
    }
}

/// What the adapter needs to know about the node.
#[derive(Clone, Debug)]
pub struct Config {
    /// The host namespace (where the node's interface and the WireGuard UDP
    /// sockets are).
    pub host_ns: NsRef,
    /// The gateway namespace.
    pub gateway_ns: NsRef,
    /// The node's interface that holds the frontend IPs, e.g. `eth0`.
    pub node_interface: String,
    /// The WireGuard backend.
    pub backend: Backend,
}

/// Per-peer traffic of one interface, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceStats {
    /// Peers configured.
    pub peers: usize,
    /// Bytes received from all peers.
    pub rx_bytes: u64,
    /// Bytes sent to all peers.
    pub tx_bytes: u64,
    /// Seconds since the most recent handshake of any peer, if any.
    pub latest_handshake_age_secs: Option<u64>,
}

/// The Linux gateway-node dataplane.
pub struct LinuxDataplane {
    cfg: Config,
    host: NsWorker,
    gw: NsWorker,
    host_rtnl: Rtnl,
    gw_rtnl: Rtnl,
    keys: Arc<dyn KeySource>,
    writes: Arc<AtomicU64>,
    /// wireguard-go processes started by this adapter, by device.
    children: Mutex<HashMap<String, Child>>,
    stats: Mutex<HashMap<String, InterfaceStats>>,
    /// One observe or apply at a time: a netlink socket serves one dump at
    /// a time, and an apply reads what it is about to change.
    turn: tokio::sync::Mutex<()>,
    /// The tables as the last observe read them: (gateway, host). Each
    /// operation touches only its own elements, so a batch that follows an
    /// observe can plan its element changes from it; a stale entry only makes
    /// a transaction fail, and the next pass reads afresh.
    listings: Mutex<Option<(tables::Listing, tables::Listing)>>,
}

impl fmt::Debug for LinuxDataplane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinuxDataplane")
            .field("cfg", &self.cfg)
            .field("writes", &self.writes.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl LinuxDataplane {
    /// Opens both namespaces. Must be called inside a Tokio runtime.
    pub async fn new(cfg: Config, keys: Arc<dyn KeySource>) -> Result<Self, Error> {
        let writes = Arc::new(AtomicU64::new(0));
        let host = NsWorker::start(cfg.host_ns.clone()).await?;
        let gw = NsWorker::start(cfg.gateway_ns.clone()).await?;
        Ok(Self {
            host_rtnl: Rtnl::new(host.rtnl().clone(), writes.clone()),
            gw_rtnl: Rtnl::new(gw.rtnl().clone(), writes.clone()),
            host,
            gw,
            cfg,
            keys,
            writes,
            children: Mutex::default(),
            stats: Mutex::default(),
            turn: tokio::sync::Mutex::new(()),
            listings: Mutex::default(),
        })
    }

    /// Kernel writes so far: netlink changes, WireGuard sets, nft transactions,
    /// sysctl writes and device start-ups.
    pub fn kernel_writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    fn count(&self, n: u64) {
        self.writes.fetch_add(n, Ordering::Relaxed);
    }

    /// Traffic per interface, as of the last `observe`.
    pub fn interface_stats(&self) -> HashMap<String, InterfaceStats> {
        self.stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Process IDs of the wireguard-go processes this adapter started.
    pub fn userspace_pids(&self) -> Vec<u32> {
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(Child::id)
            .collect()
    }

    /// The adapter's configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Removes everything this adapter ever makes on a node, whatever the
    /// plan: every `wg-*` link of the gateway namespace, the veth pair, both
    /// nftables tables, the mark rules and the labelled frontend addresses.
    pub async fn uninstall(&self) -> Result<(), Error> {
        for link in self.gw_rtnl.links().await? {
            if link.name.starts_with("wg-") {
                self.gw_rtnl.delete_link(link.index).await?;
            }
        }
        for rule in self.gw_rtnl.mark_rules().await? {
            if rule.priority == RULE_PRIORITY {
                self.gw_rtnl.del_mark_rule(&rule).await?;
            }
        }
        if let Some(link) = self.host_rtnl.link(VETH_HOST).await? {
            self.host_rtnl.delete_link(link.index).await?;
        }
        self.nft_gw(tables::delete(tables::GATEWAY_TABLE)).await?;
        self.nft_host(tables::delete(tables::HOST_TABLE)).await?;
        let label = frontend_label(&self.cfg.node_interface);
        for a in self.host_rtnl.addresses().await? {
            if a.label.as_deref() == Some(label.as_str()) {
                self.host_rtnl.del_address(a.index, a.ip, a.prefix).await?;
            }
        }
        self.reap(None);
        Ok(())
    }

    /// Applies a transaction in the gateway namespace; an empty one is skipped.
    async fn nft_gw(&self, ruleset: String) -> Result<(), Error> {
        if ruleset.is_empty() {
            return Ok(());
        }
        self.count(1);
        self.gw.run(move || crate::nft::apply(&ruleset)).await?
    }

    /// Applies a transaction in the host namespace; an empty one is skipped.
    async fn nft_host(&self, ruleset: String) -> Result<(), Error> {
        if ruleset.is_empty() {
            return Ok(());
        }
        self.count(1);
        self.host.run(move || crate::nft::apply(&ruleset)).await?
    }

    fn cached(&self, gateway: bool) -> Option<tables::Listing> {
        let cache = self.listings.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .as_ref()
            .map(|(g, h)| if gateway { g.clone() } else { h.clone() })
    }

    fn remember_listings(&self, gateway: tables::Listing, host: tables::Listing) {
        *self.listings.lock().unwrap_or_else(PoisonError::into_inner) = Some((gateway, host));
    }

    fn forget_listings(&self) {
        *self.listings.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Waits for exited wireguard-go processes (all of `only`'s, or any
    /// that exited) so none is left a zombie.
    fn reap(&self, only: Option<&str>) {
        let mut children = self.children.lock().unwrap_or_else(PoisonError::into_inner);
        children.retain(|name, child| {
            if only == Some(name.as_str()) {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            !matches!(child.try_wait(), Ok(Some(_)))
        });
    }
}

/// The label of frontend addresses on the node interface (at most 15 bytes).
pub fn frontend_label(iface: &str) -> String {
    let mut label = format!("{iface}:egress");
    label.truncate(15);
    label
}

/// The alias that records which configuration and key a link serves.
fn alias(uid: &str, secret: &SecretRef) -> String {
    format!(
        "{ALIAS_PREFIX} uid={uid} secret={}/{}",
        secret.namespace, secret.name
    )
}

/// Parses [`alias`] back: (uid, secret).
fn parse_alias(text: &str) -> Option<(String, SecretRef)> {
    let rest = text.strip_prefix(ALIAS_PREFIX)?.trim();
    let mut uid = None;
    let mut secret = None;
    for part in rest.split_whitespace() {
        if let Some(u) = part.strip_prefix("uid=") {
            uid = Some(u.to_string());
        } else if let Some(s) = part.strip_prefix("secret=") {
            let (namespace, name) = s.split_once('/')?;
            secret = Some(SecretRef {
                namespace: namespace.to_string(),
                name: name.to_string(),
            });
        }
    }
    Some((uid?, secret?))
}

/// The port of a `wg-<port>` link.
fn port_of(name: &str) -> Option<u16> {
    name.strip_prefix("wg-")?.parse().ok()
}

fn host_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn unspecified(like: IpAddr) -> IpAddr {
    if like.is_ipv4() {
        IpAddr::from([0, 0, 0, 0])
    } else {
        IpAddr::from([0u16; 8])
    }
}

fn adapter_error(op: &'static str, e: Error) -> egress_core::Error {
    use egress_core::{FailureKind, Layer};
    let kind = match &e {
        Error::MissingKey(_) | Error::Key { .. } | Error::InterfaceName(_) => {
            FailureKind::Permanent
        }
        _ => FailureKind::Transient,
    };
    egress_core::Error::adapter(Layer::Dataplane, op, kind, e)
}

#[async_trait::async_trait]
impl egress_core::traits::Dataplane for LinuxDataplane {
    async fn observe(&self) -> Result<egress_core::node::NodeState, egress_core::Error> {
        let _turn = self.turn.lock().await;
        self.observe_state()
            .await
            .map_err(|e| adapter_error("observe", e))
    }

    async fn apply(&self, op: &egress_core::node::NodeOp) -> Result<(), egress_core::Error> {
        let _turn = self.turn.lock().await;
        let result = self.apply_op(op).await;
        self.forget_listings();
        result.map_err(|e| adapter_error("apply", e))
    }

    async fn apply_all(&self, ops: &[egress_core::node::NodeOp]) -> Result<(), egress_core::Error> {
        let _turn = self.turn.lock().await;
        let result = self.apply_batch(ops).await;
        self.forget_listings();
        result.map_err(|e| adapter_error("apply", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_round_trips_and_labels_fit() {
        let s = SecretRef {
            namespace: "kube-egress-gateway-system".into(),
            name: "sgw-1".into(),
        };
        assert_eq!(parse_alias(&alias("u-1", &s)), Some(("u-1".into(), s)));
        assert_eq!(parse_alias("something else"), None);
        assert_eq!(frontend_label("eth0"), "eth0:egress");
        assert_eq!(frontend_label("enp0s31f6x"), "enp0s31f6x:egre");
        assert_eq!(port_of("wg-6001"), Some(6001));
        assert_eq!(port_of("wg0"), None);
    }
}
