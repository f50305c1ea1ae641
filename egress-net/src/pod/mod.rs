//! A pod's side of the tunnel, as the node agent installs it.
//!
//! The WireGuard device is created in the node's namespace and then moved
//! into the pod's: its UDP socket stays where it was made, so encrypted
//! traffic leaves through the node and the pod cannot touch it. In the pod it
//! is renamed `wg0` (the node-side name, unique per pod, stays as its alias
//! and, for userspace devices, names the control socket).
//!
//! Routes come from `egress_core::pod::plan` and go into the pod's main
//! table: tunnel routes as `dev wg0` (WireGuard routes by allowed IPs, so no
//! next hop is needed), primary routes via the pod's gateway or on-link. The
//! reply path is a mark rule, a table with the primary default route and the
//! nftables table of [`ruleset`].

pub mod ruleset;
mod sandboxes;

pub use sandboxes::{PodDevices, node_name};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer;
use defguard_wireguard_rs::{InterfaceConfiguration, Kernel, WGApi, WireguardInterfaceApi};
use egress_core::liveness::Counters;
use egress_core::pod::{NextHop, POD_INTERFACE, PodRoute, PodTunnel, TunnelPeer};
use ipnet::IpNet;

use crate::Error;
use crate::netns::{NsRef, NsWorker};
use crate::rtnl::{MarkRule, Route, Rtnl};
use crate::wgctl::Control;
use crate::wireguard::{Backend, Device};

/// Priority of the reply-path rule, ahead of the main table (32766).
pub const RULE_PRIORITY: u32 = 100;
/// The main routing table.
const MAIN_TABLE: u32 = 254;
/// Metric of the pod's IPv6 routes. IPv6 routes of one destination coexist
/// by metric, so ours sit above the pod's own (1024 by default) and removing
/// ours brings the pod's back, even though no IPv6 gateway is known. IPv4
/// defaults are usually at metric 0, so IPv4 routes replace and the default
/// is restored from the known gateway.
pub const V6_METRIC: u32 = 1;

async fn put(r: &Rtnl, route: &Route) -> Result<(), Error> {
    if route.dst.is_ipv6() {
        r.replace_route_at(route, V6_METRIC).await
    } else {
        r.replace_route(route).await
    }
}

async fn unput(r: &Rtnl, route: &Route) -> Result<(), Error> {
    if route.dst.is_ipv6() {
        r.del_route_at(route, V6_METRIC).await
    } else {
        r.del_route(route).await
    }
}

/// A pod's tunnel device. Dropping it stops a userspace device's process
/// (which removes the device); a kernel device stays until deleted.
pub struct PodLink {
    device: Device,
    node_name: String,
}

impl std::fmt::Debug for PodLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodLink")
            .field("node_name", &self.node_name)
            .field("backend", self.device.backend())
            .finish()
    }
}

impl PodLink {
    /// The device's node-side name (its alias in the pod).
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    fn control(&self) -> Control {
        self.device.backend().control()
    }

    /// The wireguard-go process id, for userspace devices.
    pub fn pid(&self) -> Option<u32> {
        self.device.pid()
    }
}

fn rtnl(ns: &NsWorker) -> Rtnl {
    Rtnl::new(ns.rtnl().clone(), Arc::default())
}

fn key(which: &'static str, text: &str) -> Result<Key, Error> {
    Key::try_from(text).map_err(|e| Error::Key {
        which,
        source: Box::new(e),
    })
}

fn mask(net: &IpNet) -> IpAddrMask {
    IpAddrMask::new(net.addr(), net.prefix_len())
}

fn peer_of(p: &TunnelPeer) -> Result<Peer, Error> {
    let mut peer = Peer::new(key("gateway public", &p.public_key)?);
    peer.endpoint = Some(p.endpoint);
    peer.allowed_ips = p.allowed_ips.iter().map(mask).collect();
    peer.persistent_keepalive_interval = p.keepalive;
    Ok(peer)
}

/// Creates the pod's `wg0`: made as `node_name` in the node's namespace,
/// keyed and given its peer there, moved into the pod, renamed, sized and set
/// up. Any failure removes what was made, in both namespaces.
pub async fn create(
    node: &NsWorker,
    pod: &NsWorker,
    backend: Backend,
    node_name: &str,
    tunnel: &PodTunnel,
    private_key: &str,
) -> Result<PodLink, Error> {
    let name = node_name.to_string();
    let device = node.run(move || Device::create(&name, backend)).await??;
    let link = PodLink {
        device,
        node_name: node_name.to_string(),
    };
    match finish_create(node, pod, &link, tunnel, private_key).await {
        Ok(()) => Ok(link),
        Err(e) => {
            let node_rtnl = rtnl(node);
            if let Ok(Some(l)) = node_rtnl.link(node_name).await {
                let _ = node_rtnl.delete_link(l.index).await;
            }
            let pod_rtnl = rtnl(pod);
            for n in [node_name, POD_INTERFACE] {
                if let Ok(Some(l)) = pod_rtnl.link(n).await {
                    let _ = pod_rtnl.delete_link(l.index).await;
                }
            }
            drop(link);
            Err(e)
        }
    }
}

async fn finish_create(
    node: &NsWorker,
    pod: &NsWorker,
    link: &PodLink,
    tunnel: &PodTunnel,
    private_key: &str,
) -> Result<(), Error> {
    let pod_rtnl = rtnl(pod);
    // A device left by an earlier run would block the rename.
    if let Some(old) = pod_rtnl.link(POD_INTERFACE).await? {
        pod_rtnl.delete_link(old.index).await?;
    }
    if link.control() == Control::Uapi {
        // The control socket does not care which namespace the device is in.
        set_peer(link, pod, tunnel, private_key).await?;
    }
    let node_rtnl = rtnl(node);
    let index = node_rtnl.index(&link.node_name).await?;
    node_rtnl.move_to(index, pod.fd()).await?;
    let index = pod_rtnl.index(&link.node_name).await?;
    pod_rtnl.set_down(index).await?;
    pod_rtnl.set_name(index, POD_INTERFACE).await?;
    pod_rtnl.set_alias(index, &link.node_name).await?;
    pod_rtnl.set_mtu(index, tunnel.mtu).await?;
    if link.control() == Control::Kernel {
        set_peer(link, pod, tunnel, private_key).await?;
    }
    pod_rtnl.set_up(index).await
}

/// Sets the device's key and its one peer (the gateway), replacing any
/// other peer and keeping the listen port. Used on creation and whenever the
/// gateway's address, port or key changes.
pub async fn set_peer(
    link: &PodLink,
    pod: &NsWorker,
    tunnel: &PodTunnel,
    private_key: &str,
) -> Result<(), Error> {
    let private = key("private", private_key)?;
    let peer = peer_of(&tunnel.peer)?;
    match link.control() {
        Control::Uapi => {
            let name = link.node_name.clone();
            let current = crate::wgctl::read(Control::Uapi, &name)?;
            let mut host = Host::new(current.listen_port, private);
            host.peers = HashMap::from([(peer.public_key.clone(), peer)]);
            let api = defguard_wireguard_rs::WGApi::<defguard_wireguard_rs::Userspace>::new(&name)
                .map_err(|source| Error::WireGuard {
                    device: name.clone(),
                    action: "open",
                    source,
                })?;
            api.write_host(&host).map_err(|source| Error::Uapi {
                device: name,
                action: "set",
                source,
            })
        }
        Control::Kernel => {
            let mtu = tunnel.mtu;
            let private_key = private_key.to_string();
            pod.run(move || {
                let api =
                    WGApi::<Kernel>::new(POD_INTERFACE).map_err(|source| Error::WireGuard {
                        device: POD_INTERFACE.into(),
                        action: "open",
                        source,
                    })?;
                let port = api.read_interface_data().map_or(0, |h| h.listen_port);
                api.configure_interface(&InterfaceConfiguration {
                    name: POD_INTERFACE.into(),
                    prvkey: private_key,
                    addresses: Vec::new(),
                    port,
                    peers: vec![peer],
                    mtu: Some(mtu),
                    fwmark: None,
                })
                .map_err(|source| Error::WireGuard {
                    device: POD_INTERFACE.into(),
                    action: "configure",
                    source,
                })
            })
            .await?
        }
    }
}

/// The device's current peer endpoint and public key, as it reports them.
pub async fn peer_of_device(
    link: &PodLink,
    pod: &NsWorker,
) -> Result<Option<(String, Option<SocketAddr>)>, Error> {
    let host = match link.control() {
        Control::Uapi => crate::wgctl::read(Control::Uapi, &link.node_name)?,
        Control::Kernel => {
            pod.run(|| crate::wgctl::read(Control::Kernel, POD_INTERFACE))
                .await??
        }
    };
    Ok(host
        .peers
        .values()
        .next()
        .map(|p| (p.public_key.to_string(), p.endpoint)))
}

/// Where a tunnel's byte counters are read from: cheap to clone, and it
/// holds no device, so a caller can read counters without holding whatever
/// guards the [`PodLink`] itself.
#[derive(Debug, Clone)]
pub struct CounterReader {
    control: Control,
    node_name: String,
    netns: PathBuf,
}

impl PodLink {
    /// A reader of this tunnel's counters; `netns` is the pod's namespace.
    pub fn counter_reader(&self, netns: &Path) -> CounterReader {
        CounterReader {
            control: self.control(),
            node_name: self.node_name.clone(),
            netns: netns.to_path_buf(),
        }
    }
}

impl CounterReader {
    /// The tunnel's byte counters (its one peer's, zero before it has one),
    /// for `egress_core::liveness`. A userspace device is read over its
    /// control socket from anywhere; a kernel device only from inside the
    /// pod, whose namespace is entered only then.
    pub async fn read(&self) -> Result<Counters, Error> {
        let host = match self.control {
            Control::Uapi => crate::wgctl::read(Control::Uapi, &self.node_name)?,
            Control::Kernel => {
                NsWorker::start(NsRef::Path(self.netns.clone()))
                    .await?
                    .run(|| crate::wgctl::read(Control::Kernel, POD_INTERFACE))
                    .await??
            }
        };
        Ok(host
            .peers
            .values()
            .fold(Counters::default(), |c, p| Counters {
                tx_bytes: c.tx_bytes.saturating_add(p.tx_bytes),
                rx_bytes: c.rx_bytes.saturating_add(p.rx_bytes),
            }))
    }
}

fn route_of(r: &PodRoute, wg: u32, primary: u32) -> Route {
    let (oif, gateway, link_scope) = match r.via {
        NextHop::Tunnel => (wg, None, true),
        NextHop::Primary(gw) => (primary, Some(gw), false),
        NextHop::OnLink => (primary, None, true),
    };
    Route {
        table: MAIN_TABLE,
        dst: r.dst.network(),
        prefix: r.dst.prefix_len(),
        oif: Some(oif),
        gateway,
        link_scope,
    }
}

fn default_via(gw: IpAddr, primary: u32, table: u32) -> Route {
    Route {
        table,
        dst: if gw.is_ipv4() {
            IpAddr::from([0u8; 4])
        } else {
            IpAddr::from([0u16; 8])
        },
        prefix: 0,
        oif: Some(primary),
        gateway: Some(gw),
        link_scope: false,
    }
}

fn mark_rule(tunnel: &PodTunnel) -> MarkRule {
    MarkRule {
        priority: RULE_PRIORITY,
        fwmark: tunnel.reply_path.mark,
        table: tunnel.reply_path.table,
        v6: tunnel.reply_path.gateway.is_ipv6(),
    }
}

fn has_default(tunnel: &PodTunnel, v6: bool) -> bool {
    tunnel
        .routes
        .iter()
        .any(|r| r.dst.prefix_len() == 0 && r.dst.addr().is_ipv6() == v6)
}

/// Installs `new`'s routes and reply path in the pod, removing the routes of
/// `old` (what was installed before, if anything) that `new` no longer has.
/// Where `new` has no default route of the gateway's family, the pod's own
/// default via its gateway is put back.
pub async fn apply_routes(
    pod: &NsWorker,
    old: Option<&PodTunnel>,
    new: &PodTunnel,
) -> Result<(), Error> {
    let r = rtnl(pod);
    let wg = r.index(new.iface).await?;
    let primary = r.index(&new.reply_path.iface).await?;
    let wanted: Vec<Route> = new
        .routes
        .iter()
        .map(|x| route_of(x, wg, primary))
        .collect();
    if let Some(old) = old {
        for route in old.routes.iter().map(|x| route_of(x, wg, primary)) {
            let replaced = wanted
                .iter()
                .any(|w| w.dst == route.dst && w.prefix == route.prefix);
            if !wanted.contains(&route) && !replaced {
                unput(&r, &route).await?;
            }
        }
    }
    for route in &wanted {
        put(&r, route).await?;
    }
    let gw = new.reply_path.gateway;
    if !has_default(new, gw.is_ipv6()) {
        r.replace_route(&default_via(gw, primary, MAIN_TABLE))
            .await?;
    }
    // The reply path.
    r.replace_route(&default_via(gw, primary, new.reply_path.table))
        .await?;
    if let Some(old) = old
        && mark_rule(old) != mark_rule(new)
    {
        r.del_mark_rule(&mark_rule(old)).await?;
    }
    r.add_mark_rule(&mark_rule(new)).await?;
    let text = ruleset::reply_table(&new.reply_path);
    let primary_name = new.reply_path.iface.clone();
    pod.run(move || -> Result<(), Error> {
        crate::nft::apply(&text)?;
        // Replies to inbound connections come in on the primary interface
        // from sources the main table routes into the tunnel: strict reverse
        // path filtering would drop them.
        for iface in [primary_name.as_str(), POD_INTERFACE] {
            let key = format!("net/ipv4/conf/{iface}/rp_filter");
            std::fs::write(format!("/proc/sys/{key}"), "2")
                .map_err(|source| Error::Sysctl { key, source })?;
        }
        Ok(())
    })
    .await?
}

/// Removes the tunnel from the pod: `wg0` (and with it every tunnel route),
/// the primary routes of `installed`, the reply path, and puts the pod's own
/// default route back. What is already gone is not an error.
pub async fn remove(
    pod: &NsWorker,
    link: Option<PodLink>,
    installed: Option<&PodTunnel>,
) -> Result<(), Error> {
    let r = rtnl(pod);
    let primary = match installed {
        Some(t) => r.link(&t.reply_path.iface).await?.map(|l| l.index),
        None => None,
    };
    // The pod's own default first: replacing the tunnel's default leaves no
    // moment without one.
    if let (Some(tunnel), Some(primary)) = (installed, primary) {
        let gw = tunnel.reply_path.gateway;
        r.replace_route(&default_via(gw, primary, MAIN_TABLE))
            .await?;
    }
    drop(link);
    if let Some(l) = r.link(POD_INTERFACE).await? {
        r.delete_link(l.index).await?;
    }
    let (Some(tunnel), Some(primary)) = (installed, primary) else {
        return Ok(());
    };
    for route in &tunnel.routes {
        if route.via != NextHop::Tunnel && route.dst.prefix_len() != 0 {
            unput(&r, &route_of(route, 0, primary)).await?;
        }
    }
    let gw = tunnel.reply_path.gateway;
    r.del_route(&default_via(gw, primary, tunnel.reply_path.table))
        .await?;
    r.del_mark_rule(&mark_rule(tunnel)).await?;
    pod.run(|| crate::nft::delete_table(ruleset::TABLE)).await?
}

/// What the primary plugin left in the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Primary {
    /// The interface's first IPv4 address (else IPv6), global scope.
    pub ip: Option<IpAddr>,
    /// The gateway of the pod's default route on the interface.
    pub gateway: Option<IpAddr>,
    /// The interface's MTU.
    pub mtu: u32,
}

/// Reads the pod's primary interface `iface`.
pub async fn primary(pod: &NsWorker, iface: &str) -> Result<Primary, Error> {
    let r = rtnl(pod);
    let link = r
        .link(iface)
        .await?
        .ok_or_else(|| Error::MissingLink(iface.to_string()))?;
    let addrs = r.addresses().await?;
    let mine = || addrs.iter().filter(|a| a.index == link.index);
    let global = |ip: &IpAddr| match ip {
        IpAddr::V4(a) => !a.is_loopback() && !a.is_link_local(),
        IpAddr::V6(a) => !a.is_loopback() && (a.segments()[0] & 0xffc0) != 0xfe80,
    };
    let ip = mine()
        .map(|a| a.ip)
        .find(|ip| ip.is_ipv4() && global(ip))
        .or_else(|| mine().map(|a| a.ip).find(global));
    let routes = r.routes().await?;
    let gateway = routes
        .iter()
        // A pod already on the tunnel keeps its own default in the reply table.
        .filter(|x| {
            (x.table == MAIN_TABLE || x.table == egress_core::pod::REPLY_TABLE)
                && x.prefix == 0
                && x.oif == Some(link.index)
        })
        .filter_map(|x| x.gateway)
        .min_by_key(IpAddr::is_ipv6);
    Ok(Primary {
        ip,
        gateway,
        mtu: link.mtu,
    })
}
