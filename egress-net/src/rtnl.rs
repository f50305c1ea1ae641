//! Links, addresses, routes and rules through rtnetlink, each write counted.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope,
};
use rtnetlink::packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, LinkUnspec, LinkVeth, LinkWireguard, RouteMessageBuilder};

use crate::Error;

/// One link as the kernel reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Link kind (`veth`, `wireguard`, `tun`), if any.
    pub kind: Option<String>,
    /// Administratively up.
    pub up: bool,
    /// MTU.
    pub mtu: u32,
    /// Alias (`ifalias`).
    pub alias: Option<String>,
}

/// One address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addr {
    /// Interface index.
    pub index: u32,
    /// The address.
    pub ip: IpAddr,
    /// Prefix length.
    pub prefix: u8,
    /// IPv4 label, such as `eth0:egress`.
    pub label: Option<String>,
}

/// A route as this adapter writes and reads them: a destination (or
/// default), an output interface, maybe a gateway, in a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Routing table.
    pub table: u32,
    /// Destination address (unspecified for a default route).
    pub dst: IpAddr,
    /// Destination prefix length.
    pub prefix: u8,
    /// Output interface.
    pub oif: Option<u32>,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Link scope (directly reachable) rather than universe.
    pub link_scope: bool,
}

/// A policy routing rule selecting a table by firewall mark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkRule {
    /// Rule priority.
    pub priority: u32,
    /// Firewall mark matched exactly.
    pub fwmark: u32,
    /// Table looked up.
    pub table: u32,
    /// Address family of the rule.
    pub v6: bool,
}

/// An rtnetlink handle bound to one namespace, counting writes.
#[derive(Clone, Debug)]
pub struct Rtnl {
    handle: Handle,
    writes: Arc<AtomicU64>,
}

fn nl(action: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let action = action.into();
    move |source| Error::Netlink { action, source }
}

/// Whether an error is the kernel saying the object is already gone.
fn is_absent(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m)
        if m.code.is_some_and(|c| matches!(-c.get(), libc::ENOENT | libc::ESRCH | libc::ENODEV | libc::EADDRNOTAVAIL)))
}

/// Whether an error is the kernel saying the object already exists.
fn is_exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.code.is_some_and(|c| -c.get() == libc::EEXIST))
}

impl Rtnl {
    /// Wraps a handle; `writes` is shared with the caller's counter.
    pub fn new(handle: Handle, writes: Arc<AtomicU64>) -> Self {
        Self { handle, writes }
    }

    fn count(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Every link.
    pub async fn links(&self) -> Result<Vec<Link>, Error> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl("list links"))?;
        Ok(msgs.iter().map(link_of).collect())
    }

    /// The link called `name`, if present (one lookup, not a dump).
    pub async fn link(&self, name: &str) -> Result<Option<Link>, Error> {
        let mut stream = self.handle.link().get().match_name(name).execute();
        match stream.try_next().await {
            Ok(m) => Ok(m.map(|m| link_of(&m))),
            Err(e) if is_absent(&e) => Ok(None),
            Err(e) => Err(nl(format!("look up link {name}"))(e)),
        }
    }

    /// The index of link `name`, or an error naming it.
    pub async fn index(&self, name: &str) -> Result<u32, Error> {
        self.link(name)
            .await?
            .map(|l| l.index)
            .ok_or_else(|| Error::MissingLink(name.to_string()))
    }

    /// Creates a veth pair.
    pub async fn add_veth(&self, name: &str, peer: &str) -> Result<(), Error> {
        self.count();
        self.handle
            .link()
            .add(LinkVeth::new(name, peer).build())
            .execute()
            .await
            .map_err(nl(format!("create veth {name}/{peer}")))
    }

    /// Creates a kernel WireGuard link.
    pub async fn add_wireguard(&self, name: &str) -> Result<(), Error> {
        self.count();
        self.handle
            .link()
            .add(LinkWireguard::new(name).build())
            .execute()
            .await
            .map_err(nl(format!("create wireguard link {name}")))
    }

    async fn set(&self, what: String, msg: LinkMessage) -> Result<(), Error> {
        self.count();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(nl(what))
    }

    /// Sets a link up.
    pub async fn set_up(&self, index: u32) -> Result<(), Error> {
        self.set(
            format!("set link {index} up"),
            LinkUnspec::new_with_index(index).up().build(),
        )
        .await
    }

    /// Sets a link's MTU.
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<(), Error> {
        self.set(
            format!("set MTU of link {index} to {mtu}"),
            LinkUnspec::new_with_index(index).mtu(mtu).build(),
        )
        .await
    }

    /// Sets a link's alias.
    pub async fn set_alias(&self, index: u32, alias: &str) -> Result<(), Error> {
        self.set(
            format!("set alias of link {index}"),
            LinkUnspec::new_with_index(index).alias(alias).build(),
        )
        .await
    }

    /// Renames a link (it must be down).
    pub async fn set_name(&self, index: u32, name: &str) -> Result<(), Error> {
        crate::wireguard::check_name(name)?;
        self.set(
            format!("rename link {index} to {name}"),
            LinkUnspec::new_with_index(index)
                .name(name.to_string())
                .build(),
        )
        .await
    }

    /// Sets a link down.
    pub async fn set_down(&self, index: u32) -> Result<(), Error> {
        self.set(
            format!("set link {index} down"),
            LinkUnspec::new_with_index(index).down().build(),
        )
        .await
    }

    /// Moves a link into the namespace open as `fd`.
    pub async fn move_to(&self, index: u32, fd: std::os::fd::RawFd) -> Result<(), Error> {
        self.set(
            format!("move link {index} to another namespace"),
            LinkUnspec::new_with_index(index).setns_by_fd(fd).build(),
        )
        .await
    }

    /// Deletes a link; absent is success.
    pub async fn delete_link(&self, index: u32) -> Result<(), Error> {
        self.count();
        match self.handle.link().del(index).execute().await {
            Err(e) if is_absent(&e) => Ok(()),
            other => other.map_err(nl(format!("delete link {index}"))),
        }
    }

    /// Every address.
    pub async fn addresses(&self) -> Result<Vec<Addr>, Error> {
        let msgs: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl("list addresses"))?;
        Ok(msgs.iter().filter_map(addr_of).collect())
    }

    /// Adds an address (with an IPv4 label if given); present is success.
    pub async fn add_address(
        &self,
        index: u32,
        ip: IpAddr,
        prefix: u8,
        label: Option<&str>,
    ) -> Result<(), Error> {
        self.count();
        let mut req = self.handle.address().add(index, ip, prefix).replace();
        if let Some(label) = label.filter(|_| ip.is_ipv4()) {
            req.message_mut()
                .attributes
                .push(AddressAttribute::Label(label.to_string()));
        }
        req.execute()
            .await
            .map_err(nl(format!("add address {ip}/{prefix} to link {index}")))
    }

    /// Removes an address; absent is success.
    pub async fn del_address(&self, index: u32, ip: IpAddr, prefix: u8) -> Result<(), Error> {
        self.count();
        let mut msg = AddressMessage::default();
        msg.header.index = index;
        msg.header.prefix_len = prefix;
        msg.header.family = if ip.is_ipv4() {
            rtnetlink::packet_route::AddressFamily::Inet
        } else {
            rtnetlink::packet_route::AddressFamily::Inet6
        };
        msg.attributes.push(AddressAttribute::Address(ip));
        if ip.is_ipv4() {
            msg.attributes.push(AddressAttribute::Local(ip));
        }
        match self.handle.address().del(msg).execute().await {
            Err(e) if is_absent(&e) => Ok(()),
            other => other.map_err(nl(format!("delete address {ip}/{prefix}"))),
        }
    }

    /// Every IPv4 and IPv6 unicast route, in every table.
    pub async fn routes(&self) -> Result<Vec<Route>, Error> {
        let mut out = Vec::new();
        for msg in [
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
        ] {
            let msgs: Vec<RouteMessage> = self
                .handle
                .route()
                .get(msg)
                .execute()
                .try_collect()
                .await
                .map_err(nl("list routes"))?;
            out.extend(msgs.iter().filter_map(route_of));
        }
        Ok(out)
    }

    fn route_message(r: &Route) -> Result<RouteMessage, Error> {
        Self::route_message_at(r, None)
    }

    fn route_message_at(r: &Route, priority: Option<u32>) -> Result<RouteMessage, Error> {
        let bad = |e: &dyn std::fmt::Display| Error::BadRoute(e.to_string());
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(r.dst, r.prefix)
            .map_err(|e| bad(&e))?
            .table_id(r.table)
            .protocol(RouteProtocol::Static)
            .scope(if r.link_scope {
                RouteScope::Link
            } else {
                RouteScope::Universe
            });
        if let Some(oif) = r.oif {
            b = b.output_interface(oif);
        }
        if let Some(gw) = r.gateway {
            b = b.gateway(gw).map_err(|e| bad(&e))?;
        }
        if let Some(p) = priority {
            b = b.priority(p);
        }
        Ok(b.build())
    }

    /// Adds or replaces a route.
    pub async fn replace_route(&self, r: &Route) -> Result<(), Error> {
        self.count();
        self.handle
            .route()
            .add(Self::route_message(r)?)
            .replace()
            .execute()
            .await
            .map_err(nl(format!("replace route {}/{}", r.dst, r.prefix)))
    }

    /// Adds or replaces a route with metric `priority`; routes of the same
    /// destination with other metrics stay.
    pub async fn replace_route_at(&self, r: &Route, priority: u32) -> Result<(), Error> {
        self.count();
        self.handle
            .route()
            .add(Self::route_message_at(r, Some(priority))?)
            .replace()
            .execute()
            .await
            .map_err(nl(format!(
                "replace route {}/{} metric {priority}",
                r.dst, r.prefix
            )))
    }

    /// Deletes the route with metric `priority`; absent is success.
    pub async fn del_route_at(&self, r: &Route, priority: u32) -> Result<(), Error> {
        self.count();
        match self
            .handle
            .route()
            .del(Self::route_message_at(r, Some(priority))?)
            .execute()
            .await
        {
            Err(e) if is_absent(&e) => Ok(()),
            other => other.map_err(nl(format!(
                "delete route {}/{} metric {priority}",
                r.dst, r.prefix
            ))),
        }
    }

    /// Deletes a route; absent is success.
    pub async fn del_route(&self, r: &Route) -> Result<(), Error> {
        self.count();
        match self
            .handle
            .route()
            .del(Self::route_message(r)?)
            .execute()
            .await
        {
            Err(e) if is_absent(&e) => Ok(()),
            other => other.map_err(nl(format!("delete route {}/{}", r.dst, r.prefix))),
        }
    }

    /// Every rule that selects a table by firewall mark.
    pub async fn mark_rules(&self) -> Result<Vec<MarkRule>, Error> {
        let mut out = Vec::new();
        for (v, v6) in [
            (rtnetlink::IpVersion::V4, false),
            (rtnetlink::IpVersion::V6, true),
        ] {
            let msgs: Vec<RuleMessage> = self
                .handle
                .rule()
                .get(v)
                .execute()
                .try_collect()
                .await
                .map_err(nl("list rules"))?;
            out.extend(msgs.iter().filter_map(|m| rule_of(m, v6)));
        }
        Ok(out)
    }

    /// Adds a rule `fwmark <mark> lookup <table>` at `priority`.
    pub async fn add_mark_rule(&self, r: &MarkRule) -> Result<(), Error> {
        self.count();
        let what = format!("add rule fwmark {} lookup {}", r.fwmark, r.table);
        let base = self
            .handle
            .rule()
            .add()
            .fw_mark(r.fwmark)
            .table_id(r.table)
            .priority(r.priority)
            .action(RuleAction::ToTable);
        let add = |msg: &mut RuleMessage| msg.attributes.push(RuleAttribute::FwMask(u32::MAX));
        let result = if r.v6 {
            let mut req = base.v6();
            add(req.message_mut());
            req.execute().await
        } else {
            let mut req = base.v4();
            add(req.message_mut());
            req.execute().await
        };
        match result {
            // Rules have no replace; one already there is what we want.
            Err(e) if is_exists(&e) => Ok(()),
            other => other.map_err(nl(what)),
        }
    }

    /// Deletes a mark rule; absent is success.
    pub async fn del_mark_rule(&self, r: &MarkRule) -> Result<(), Error> {
        self.count();
        let mut msg = RuleMessage::default();
        msg.header.family = if r.v6 {
            rtnetlink::packet_route::AddressFamily::Inet6
        } else {
            rtnetlink::packet_route::AddressFamily::Inet
        };
        msg.header.action = RuleAction::ToTable;
        msg.attributes.push(RuleAttribute::Priority(r.priority));
        msg.attributes.push(RuleAttribute::FwMark(r.fwmark));
        msg.attributes.push(RuleAttribute::FwMask(u32::MAX));
        msg.attributes.push(RuleAttribute::Table(r.table));
        match self.handle.rule().del(msg).execute().await {
            Err(e) if is_absent(&e) => Ok(()),
            other => other.map_err(nl(format!("delete rule fwmark {}", r.fwmark))),
        }
    }
}

fn link_of(m: &LinkMessage) -> Link {
    let mut link = Link {
        index: m.header.index,
        name: String::new(),
        kind: None,
        up: m.header.flags.contains(LinkFlags::Up),
        mtu: 0,
        alias: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name.clone_from(n),
            LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
            LinkAttribute::IfAlias(s) => link.alias = Some(s.clone()),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        link.kind = Some(match k {
                            InfoKind::Veth => "veth".to_string(),
                            InfoKind::Wireguard => "wireguard".to_string(),
                            InfoKind::Tun => "tun".to_string(),
                            other => format!("{other:?}").to_lowercase(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    link
}

fn addr_of(m: &AddressMessage) -> Option<Addr> {
    let mut ip = None;
    let mut label = None;
    for a in &m.attributes {
        match a {
            // For IPv4, Local is the address itself; Address the peer's on
            // point-to-point links. IPv6 only has Address.
            AddressAttribute::Local(l) => ip = Some(*l),
            AddressAttribute::Address(a) if ip.is_none() => ip = Some(*a),
            AddressAttribute::Label(l) => label = Some(l.clone()),
            _ => {}
        }
    }
    Some(Addr {
        index: m.header.index,
        ip: ip?,
        prefix: m.header.prefix_len,
        label,
    })
}

fn ip_of(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some((*v4).into()),
        RouteAddress::Inet6(v6) => Some((*v6).into()),
        _ => None,
    }
}

fn route_of(m: &RouteMessage) -> Option<Route> {
    if m.header.kind != rtnetlink::packet_route::route::RouteType::Unicast {
        return None;
    }
    let v4 = m.header.address_family == rtnetlink::packet_route::AddressFamily::Inet;
    let mut r = Route {
        table: u32::from(m.header.table),
        dst: if v4 {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        },
        prefix: m.header.destination_prefix_length,
        oif: None,
        gateway: None,
        link_scope: m.header.scope == RouteScope::Link,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => r.dst = ip_of(d)?,
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            RouteAttribute::Gateway(g) => r.gateway = ip_of(g),
            RouteAttribute::Table(t) => r.table = *t,
            _ => {}
        }
    }
    Some(r)
}

fn rule_of(m: &RuleMessage, v6: bool) -> Option<MarkRule> {
    let mut fwmark = None;
    let mut table = u32::from(m.header.table);
    let mut priority = 0;
    for a in &m.attributes {
        match a {
            RuleAttribute::FwMark(f) => fwmark = Some(*f),
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Priority(p) => priority = *p,
            _ => {}
        }
    }
    Some(MarkRule {
        priority,
        fwmark: fwmark?,
        table,
        v6,
    })
}
