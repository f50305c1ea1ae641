//! Reading the node's state back from the kernel.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use defguard_wireguard_rs::host::Host;
use egress_core::model::SecretRef;
use egress_core::node::{Interface, NodeState, Plumbing};

use super::tables::{self, Listing};
use super::{
    InterfaceStats, LinuxDataplane, RULE_PRIORITY, VETH_GATEWAY, VETH_HOST, frontend_label,
    host_len, parse_alias, port_of, unspecified,
};
use crate::Error;
use crate::rtnl::{Addr, Link, MarkRule, Route};

use crate::wgctl::{self, Control};

const MAIN_TABLE: u32 = 254;

/// Everything read from one namespace.
struct NsView {
    links: Vec<Link>,
    addrs: Vec<Addr>,
    routes: Vec<Route>,
    rules: Vec<MarkRule>,
    table: Listing,
    table_present: bool,
}

impl NsView {
    fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    fn addrs_on(&self, index: u32) -> impl Iterator<Item = &Addr> {
        self.addrs.iter().filter(move |a| a.index == index)
    }
}

impl LinuxDataplane {
    async fn view(&self, gateway: bool) -> Result<NsView, Error> {
        let (rtnl, worker, table) = if gateway {
            (&self.gw_rtnl, &self.gw, tables::GATEWAY_TABLE)
        } else {
            (&self.host_rtnl, &self.host, tables::HOST_TABLE)
        };
        // A netlink socket serves one dump at a time (EBUSY otherwise), so the
        // dumps of one namespace run in turn, beside the nft listing.
        let dumps = async {
            Ok::<_, Error>((
                rtnl.links().await?,
                rtnl.addresses().await?,
                rtnl.routes().await?,
                if gateway {
                    rtnl.mark_rules().await?
                } else {
                    Vec::new()
                },
            ))
        };
        let (dumps, listing) = tokio::join!(
            dumps,
            worker.run(move || crate::nft::list_table_json(table))
        );
        let (links, addrs, routes, rules) = dumps?;
        let listing = listing??;
        Ok(NsView {
            links,
            addrs,
            routes,
            rules,
            table_present: listing.is_some(),
            table: listing.map(|j| tables::parse(&j)).unwrap_or_default(),
        })
    }

    /// Reads every device, each condensed as soon as it is read so the
    /// library's full peer records of all devices never coexist.
    async fn read_devices(&self, names: Vec<String>) -> Result<HashMap<String, DeviceView>, Error> {
        let control = self.cfg.backend.control();
        let mut out = HashMap::new();
        match control {
            Control::Kernel => {
                for name in names {
                    let n = name.clone();
                    let view = self
                        .gw
                        .run(move || wgctl::read(Control::Kernel, &n).map(|h| device_view(&h)))
                        .await??;
                    out.insert(name, view);
                }
            }
            Control::Uapi => {
                use futures_util::StreamExt;
                let reads = names.into_iter().map(|name| {
                    tokio::task::spawn_blocking(move || {
                        let view = wgctl::read(Control::Uapi, &name).map(|h| device_view(&h));
                        (name, view)
                    })
                });
                let mut reads =
                    futures_util::stream::iter(reads).buffer_unordered(super::DEVICE_CONCURRENCY);
                while let Some(r) = reads.next().await {
                    let (name, host) = r.map_err(|_| Error::WorkerGone)?;
                    out.insert(name, host?);
                }
            }
        }
        Ok(out)
    }

    /// Reads the node's state. Makes no writes.
    pub(super) async fn observe_state(&self) -> Result<NodeState, Error> {
        self.reap(None);
        let (host, gw) = tokio::join!(self.view(false), self.view(true));
        let (host, gw) = (host?, gw?);
        let forwarding = self.gw.run(|| read_sysctl("net/ipv4/ip_forward")).await??;

        let plumbing = plumbing(&host, &gw, forwarding.trim() == "1");
        let primary = plumbing
            .as_ref()
            .map_or(IpAddr::from([0, 0, 0, 0]), |p| p.primary_ip);
        let egress = EgressSeen::read(&host, &gw);
        let wg_links: Vec<&Link> = gw
            .links
            .iter()
            .filter(|l| port_of(&l.name).is_some())
            .collect();
        let mut devices = self
            .read_devices(wg_links.iter().map(|l| l.name.clone()).collect())
            .await?;

        let mut held = BTreeSet::new();
        let mut interfaces = BTreeMap::new();
        let mut traffic = HashMap::new();
        for link in wg_links {
            let (Some(port), Some(dev)) = (port_of(&link.name), devices.remove(&link.name)) else {
                continue;
            };
            let snat_ip = egress.snat_ip(&gw, link, port);
            if !snat_ip.is_unspecified() {
                held.insert(snat_ip);
            }
            traffic.insert(link.name.clone(), dev.stats.clone());
            let iface = interface(&gw, link, dev, snat_ip, primary);
            interfaces.insert(link.name.clone(), iface);
        }
        *self
            .stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = traffic;

        self.remember_listings(gw.table.clone(), host.table.clone());
        Ok(NodeState {
            plumbing,
            frontend_ips: frontends(&host, &self.cfg.node_interface),
            interfaces,
            stray_ips: egress.all().filter(|ip| !held.contains(ip)).collect(),
        })
    }
}

/// Our labelled /32s on the node interface that the host table redirects.
fn frontends(host: &NsView, node_interface: &str) -> BTreeSet<IpAddr> {
    let Some(node_if) = host.link(node_interface) else {
        return BTreeSet::new();
    };
    let label = frontend_label(node_interface);
    host.addrs_on(node_if.index)
        .filter(|a| a.label.as_deref() == Some(label.as_str()) && a.prefix == host_len(a.ip))
        .map(|a| a.ip)
        .filter(|ip| tables::is_frontend(&host.table, *ip))
        .collect()
}

/// The shared plumbing: `None` when none of it exists, incomplete when only
/// part of it does.
fn plumbing(host: &NsView, gw: &NsView, forwarding: bool) -> Option<Plumbing> {
    let veth_host = host.link(VETH_HOST);
    let veth_gw = gw.link(VETH_GATEWAY);
    let anything =
        veth_host.is_some() || veth_gw.is_some() || gw.table_present || host.table_present;
    if !anything {
        return None;
    }
    let complete = (|| {
        let (h, g) = (veth_host?, veth_gw?);
        let primary = gw
            .routes
            .iter()
            .find(|r| {
                r.table == MAIN_TABLE && r.prefix == 0 && r.oif == Some(g.index) && r.dst.is_ipv4()
            })
            .and_then(|r| r.gateway)?;
        let lo_up = gw.link("lo").is_some_and(|l| l.up);
        let onlink = gw.routes.iter().any(|r| {
            r.table == MAIN_TABLE
                && r.dst == primary
                && r.prefix == host_len(primary)
                && r.oif == Some(g.index)
                && r.link_scope
        });
        let in_place = h.up
            && g.up
            && lo_up
            && h.mtu == g.mtu
            && onlink
            && forwarding
            && tables::gateway_complete(&gw.table, VETH_GATEWAY)
            && tables::host_complete(&host.table);
        in_place.then_some(Plumbing {
            primary_ip: primary,
            mtu: g.mtu,
        })
    })();
    Some(complete.unwrap_or_else(Plumbing::incomplete))
}

/// Every place an egress IP can appear.
struct EgressSeen {
    gw_addrs: BTreeSet<IpAddr>,
    host_routes: BTreeSet<IpAddr>,
    exempt: BTreeSet<IpAddr>,
    snat_by_port: BTreeMap<u16, IpAddr>,
    mark_of_iif: BTreeMap<String, String>,
}

impl EgressSeen {
    fn read(host: &NsView, gw: &NsView) -> Self {
        let gw_addrs = gw
            .link(VETH_GATEWAY)
            .map(|g| {
                gw.addrs_on(g.index)
                    .filter(|a| a.prefix == host_len(a.ip))
                    .map(|a| a.ip)
                    .collect()
            })
            .unwrap_or_default();
        let host_routes = host
            .link(VETH_HOST)
            .map(|h| {
                host.routes
                    .iter()
                    .filter(|r| {
                        r.table == MAIN_TABLE
                            && r.oif == Some(h.index)
                            && r.prefix == host_len(r.dst)
                    })
                    .map(|r| r.dst)
                    .collect()
            })
            .unwrap_or_default();
        let exempt = ["exempt4", "exempt6"]
            .iter()
            .filter_map(|s| host.table.sets.get(*s))
            .flatten()
            .filter_map(|t| t.parse().ok())
            .collect();
        let mut snat_by_port = BTreeMap::new();
        for map in ["snat4", "snat6"] {
            for (k, v) in gw.table.maps.get(map).into_iter().flatten() {
                if let (Ok(port), Ok(ip)) = (k.parse::<u16>(), v.parse::<IpAddr>()) {
                    snat_by_port.insert(port, ip);
                }
            }
        }
        Self {
            gw_addrs,
            host_routes,
            exempt,
            snat_by_port,
            mark_of_iif: gw
                .table
                .maps
                .get("mark_of_iif")
                .cloned()
                .unwrap_or_default(),
        }
    }

    fn all(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.gw_addrs
            .iter()
            .chain(&self.host_routes)
            .chain(&self.exempt)
            .chain(self.snat_by_port.values())
            .copied()
    }

    /// The egress IP of `link` if everything that carries it is in place
    /// (marking, SNAT, policy rule and route, address, host route,
    /// exemption); unspecified otherwise.
    fn snat_ip(&self, gw: &NsView, link: &Link, port: u16) -> IpAddr {
        let Some(ip) = self.snat_by_port.get(&port).copied() else {
            return IpAddr::from([0, 0, 0, 0]);
        };
        let mark_ok = self
            .mark_of_iif
            .get(&link.name)
            .is_some_and(|m| m == &port.to_string());
        let rule_ok = gw.rules.iter().any(|r| {
            r.fwmark == u32::from(port)
                && r.table == u32::from(port)
                && r.priority == RULE_PRIORITY
                && r.v6 == ip.is_ipv6()
        });
        let route_ok = gw.routes.iter().any(|r| {
            r.table == u32::from(port)
                && r.prefix == 0
                && r.oif == Some(link.index)
                && r.dst.is_ipv4() == ip.is_ipv4()
        });
        let complete = mark_ok
            && rule_ok
            && route_ok
            && self.gw_addrs.contains(&ip)
            && self.host_routes.contains(&ip)
            && self.exempt.contains(&ip);
        if complete { ip } else { unspecified(ip) }
    }
}

/// What the plan needs of a device, and its traffic.
pub(super) struct DeviceView {
    listen_port: u16,
    public_key: String,
    peers: BTreeMap<String, IpAddr>,
    stats: InterfaceStats,
}

fn device_view(dev: &Host) -> DeviceView {
    let mut peers = BTreeMap::new();
    let mut stats = InterfaceStats::default();
    let now = SystemTime::now();
    for p in dev.peers.values() {
        // A gateway peer is allowed exactly its pod's address; anything else
        // is reported as unspecified so it gets rewritten.
        let ip = match p.allowed_ips.as_slice() {
            [one] if one.cidr == host_len(one.address) => one.address,
            _ => IpAddr::from([0, 0, 0, 0]),
        };
        peers.insert(p.public_key.to_string(), ip);
        stats.peers += 1;
        stats.rx_bytes += p.rx_bytes;
        stats.tx_bytes += p.tx_bytes;
        if let Some(t) = p.last_handshake.filter(|t| *t > SystemTime::UNIX_EPOCH) {
            let age = now.duration_since(t).unwrap_or(Duration::ZERO).as_secs();
            stats.latest_handshake_age_secs =
                Some(stats.latest_handshake_age_secs.map_or(age, |a| a.min(age)));
        }
    }
    DeviceView {
        listen_port: dev.listen_port,
        public_key: dev
            .private_key
            .as_ref()
            .map(|k| k.public_key().to_string())
            .unwrap_or_default(),
        peers,
        stats,
    }
}

/// One gateway link as the plan models it.
fn interface(
    gw: &NsView,
    link: &Link,
    dev: DeviceView,
    snat_ip: IpAddr,
    primary: IpAddr,
) -> Interface {
    let (sgc_uid, key_secret) = link
        .alias
        .as_deref()
        .and_then(parse_alias)
        .unwrap_or_else(|| {
            (
                String::new(),
                SecretRef {
                    namespace: String::new(),
                    name: String::new(),
                },
            )
        });
    let has_ll = gw
        .addrs_on(link.index)
        .any(|a| a.ip == IpAddr::from([0xfe80, 0, 0, 0, 0, 0, 0, 1]));
    Interface {
        port: dev.listen_port,
        // A link that is down or lost its address is re-configured.
        mtu: if link.up && has_ll { link.mtu } else { 0 },
        public_key: dev.public_key,
        key_secret,
        sgc_uid,
        snat_ip,
        primary_ip: primary,
        peers: dev.peers,
    }
}

/// Reads `/proc/sys/<key>` in the calling thread's namespace.
pub(super) fn read_sysctl(key: &str) -> Result<String, Error> {
    std::fs::read_to_string(format!("/proc/sys/{key}")).map_err(|source| Error::Sysctl {
        key: key.to_string(),
        source,
    })
}

/// Writes `/proc/sys/<key>` in the calling thread's namespace.
pub(super) fn write_sysctl(key: &str, value: &str) -> Result<(), Error> {
    std::fs::write(format!("/proc/sys/{key}"), value).map_err(|source| Error::Sysctl {
        key: key.to_string(),
        source,
    })
}
