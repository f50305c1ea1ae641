//! Executing one planned operation against the kernel.

use std::net::IpAddr;

use futures_util::StreamExt;

use egress_core::node::{Interface, NodeOp, Plumbing};

use super::observe::write_sysctl;
use super::tables;
use super::{
    LinuxDataplane, RULE_PRIORITY, VETH_GATEWAY, VETH_HOST, alias, frontend_label, host_len,
    port_of,
};
use crate::Error;
use crate::rtnl::{MarkRule, Route};
use crate::wgctl;
use crate::wireguard::Backend;

const MAIN_TABLE: u32 = 254;

/// Table element changes, per namespace.
#[derive(Debug, Default)]
pub(super) struct NftChange {
    pub(super) gateway: String,
    pub(super) host: String,
}

/// Peer changes of one device.
#[derive(Debug, Default)]
struct PeerBatch {
    upserts: Vec<(String, IpAddr)>,
    removals: Vec<String>,
}
const TUNNEL_ADDRESS: IpAddr = IpAddr::V6(std::net::Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1));

impl LinuxDataplane {
    pub(super) async fn apply_op(&self, op: &NodeOp) -> Result<(), Error> {
        match op {
            NodeOp::EnsurePlumbing(p) => self.ensure_plumbing(p).await,
            NodeOp::RemovePlumbing => self.remove_plumbing().await,
            NodeOp::AddFrontendIp(ip) => {
                let index = self.host_rtnl.index(&self.cfg.node_interface).await?;
                let label = frontend_label(&self.cfg.node_interface);
                self.host_rtnl
                    .add_address(index, *ip, host_len(*ip), Some(&label))
                    .await?;
                self.nft_host(tables::host_frontend(*ip)).await
            }
            NodeOp::RemoveFrontendIp(ip) => {
                let host = self.listing(false).await?;
                self.nft_host(tables::host_frontend_removed(&host, *ip))
                    .await?;
                let index = self.host_rtnl.index(&self.cfg.node_interface).await?;
                self.host_rtnl.del_address(index, *ip, host_len(*ip)).await
            }
            NodeOp::CreateInterface { name } => self.create_interface(name).await,
            NodeOp::ConfigureInterface { name, config } => {
                let change = self.configure_interface(name, config).await?;
                self.nft_host(change.host).await?;
                self.nft_gw(change.gateway).await
            }
            NodeOp::UpsertPeer {
                iface,
                public_key,
                pod_ip,
            } => {
                self.count(1);
                let (control, iface, key, ip) = (
                    self.cfg.backend.control(),
                    iface.clone(),
                    public_key.clone(),
                    *pod_ip,
                );
                self.wg_call(move || wgctl::upsert_peer(control, &iface, &key, ip))
                    .await
            }
            NodeOp::RemovePeer { iface, public_key } => {
                self.count(1);
                let (control, iface, key) = (
                    self.cfg.backend.control(),
                    iface.clone(),
                    public_key.clone(),
                );
                self.wg_call(move || wgctl::remove_peer(control, &iface, &key))
                    .await
            }
            NodeOp::DeleteInterface { name } => self.delete_interface(name).await,
            NodeOp::RemoveStrayIp(ip) => self.remove_egress_ip(*ip).await,
        }
    }

    /// Runs a WireGuard call where it must run: kernel calls inside the
    /// gateway namespace, userspace ones anywhere off the async threads.
    async fn wg_call<F>(&self, f: F) -> Result<(), Error>
    where
        F: FnOnce() -> Result<(), Error> + Send + 'static,
    {
        match self.cfg.backend {
            Backend::Kernel => self.gw.run(f).await?,
            _ => tokio::task::spawn_blocking(f)
                .await
                .map_err(|_| Error::WorkerGone)?,
        }
    }

    async fn ensure_plumbing(&self, p: &Plumbing) -> Result<(), Error> {
        // The veth pair: made in the host namespace, one end moved in. A
        // half left by an interrupted pass is removed first.
        let host_end = self.host_rtnl.link(VETH_HOST).await?;
        let gw_end = self.gw_rtnl.link(VETH_GATEWAY).await?;
        let (host_index, gw_index) = match (host_end, gw_end) {
            (Some(h), Some(g)) => (h.index, g.index),
            (h, g) => {
                if let Some(h) = h {
                    self.host_rtnl.delete_link(h.index).await?;
                }
                if let Some(g) = g {
                    self.gw_rtnl.delete_link(g.index).await?;
                }
                self.host_rtnl.add_veth(VETH_HOST, VETH_GATEWAY).await?;
                let peer = self.host_rtnl.index(VETH_GATEWAY).await?;
                self.host_rtnl.move_to(peer, self.gw.fd()).await?;
                (
                    self.host_rtnl.index(VETH_HOST).await?,
                    self.gw_rtnl.index(VETH_GATEWAY).await?,
                )
            }
        };
        self.host_rtnl.set_mtu(host_index, p.mtu).await?;
        self.gw_rtnl.set_mtu(gw_index, p.mtu).await?;
        self.host_rtnl.set_up(host_index).await?;
        self.gw_rtnl.set_up(gw_index).await?;
        let lo = self.gw_rtnl.index("lo").await?;
        self.gw_rtnl.set_up(lo).await?;
        // The primary IP is on the host side's other interface; it is reached
        // on-link across the veth, whose host end answers ARP for it.
        self.gw_rtnl
            .replace_route(&Route {
                table: MAIN_TABLE,
                dst: p.primary_ip,
                prefix: host_len(p.primary_ip),
                oif: Some(gw_index),
                gateway: None,
                link_scope: true,
            })
            .await?;
        let any = if p.primary_ip.is_ipv4() {
            IpAddr::from([0, 0, 0, 0])
        } else {
            IpAddr::from([0u16; 8])
        };
        self.gw_rtnl
            .replace_route(&Route {
                table: MAIN_TABLE,
                dst: any,
                prefix: 0,
                oif: Some(gw_index),
                gateway: Some(p.primary_ip),
                link_scope: false,
            })
            .await?;
        // Forwarding between tunnels and the veth. No reverse-path filter: a
        // tunnel has no IPv4 address, which fails even the loose check, and
        // WireGuard already admits only each peer's own address.
        self.count(4);
        self.gw
            .run(|| -> Result<(), Error> {
                write_sysctl("net/ipv4/ip_forward", "1")?;
                write_sysctl("net/ipv6/conf/all/forwarding", "1")?;
                write_sysctl("net/ipv4/conf/all/rp_filter", "0")?;
                write_sysctl("net/ipv4/conf/default/rp_filter", "0")
            })
            .await??;
        self.nft_gw(tables::gateway_base(VETH_GATEWAY)).await?;
        self.nft_host(tables::host_base()).await
    }

    async fn remove_plumbing(&self) -> Result<(), Error> {
        if let Some(h) = self.host_rtnl.link(VETH_HOST).await? {
            self.host_rtnl.delete_link(h.index).await?;
        }
        if let Some(g) = self.gw_rtnl.link(VETH_GATEWAY).await? {
            self.gw_rtnl.delete_link(g.index).await?;
        }
        self.nft_gw(tables::delete(tables::GATEWAY_TABLE)).await?;
        self.nft_host(tables::delete(tables::HOST_TABLE)).await
    }

    async fn create_interface(&self, name: &str) -> Result<(), Error> {
        crate::wireguard::check_name(name)?;
        // A link of that name left in the host namespace by an interrupted
        // pass is in the way; one already in the gateway namespace is reused.
        if let Some(old) = self.host_rtnl.link(name).await? {
            self.host_rtnl.delete_link(old.index).await?;
        }
        if self.gw_rtnl.link(name).await?.is_none() {
            // Made in the host namespace so the UDP socket lives there.
            match &self.cfg.backend {
                Backend::Kernel => self.host_rtnl.add_wireguard(name).await?,
                Backend::WireguardGo(program) => {
                    self.count(1);
                    let (program, n) = (program.clone(), name.to_string());
                    let child = self
                        .host
                        .run(move || crate::wireguard::start_wireguard_go(&program, &n))
                        .await??;
                    self.children
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(name.to_string(), child);
                }
                Backend::Boringtun => return Err(Error::BoringtunUnsupported),
            }
            let index = self.host_rtnl.index(name).await?;
            self.host_rtnl.move_to(index, self.gw.fd()).await?;
        }
        let index = self.gw_rtnl.index(name).await?;
        self.gw_rtnl
            .add_address(index, TUNNEL_ADDRESS, 64, None)
            .await?;
        // Userspace devices notice the link going up within a second, even
        // across namespaces, and only then bind their UDP socket.
        self.gw_rtnl.set_up(index).await
    }

    /// Everything of a configuration but its table elements, which are
    /// returned for the caller to apply (alone, or with others in one
    /// transaction).
    async fn configure_interface(&self, name: &str, want: &Interface) -> Result<NftChange, Error> {
        let index = self.gw_rtnl.index(name).await?;
        let port = port_of(name).unwrap_or(want.port);
        let key = self.keys.private_key(&want.key_secret).ok_or_else(|| {
            Error::MissingKey(format!(
                "{}/{}",
                want.key_secret.namespace, want.key_secret.name
            ))
        })?;
        self.gw_rtnl.set_mtu(index, want.mtu).await?;
        self.gw_rtnl
            .set_alias(index, &alias(&want.sgc_uid, &want.key_secret))
            .await?;
        self.gw_rtnl
            .add_address(index, TUNNEL_ADDRESS, 64, None)
            .await?;
        self.gw_rtnl.set_up(index).await?;
        self.count(2);
        let (control, n, mtu, listen) = (
            self.cfg.backend.control(),
            name.to_string(),
            want.mtu,
            want.port,
        );
        let rp = format!("net/ipv4/conf/{name}/rp_filter");
        self.gw.run(move || write_sysctl(&rp, "0")).await??;
        self.wg_call(move || wgctl::set_key_and_port(control, &n, &key, listen, mtu))
            .await?;

        // Replies find the tunnel by the connection's mark.
        let ip = want.snat_ip;
        self.gw_rtnl
            .add_mark_rule(&MarkRule {
                priority: RULE_PRIORITY,
                fwmark: u32::from(port),
                table: u32::from(port),
                v6: ip.is_ipv6(),
            })
            .await?;
        self.gw_rtnl
            .replace_route(&Route {
                table: u32::from(port),
                dst: if ip.is_ipv4() {
                    IpAddr::from([0, 0, 0, 0])
                } else {
                    IpAddr::from([0u16; 8])
                },
                prefix: 0,
                oif: Some(index),
                gateway: None,
                link_scope: true,
            })
            .await?;

        // The egress IP: on the veth, routed to by the host, exempt there.
        let veth = self.gw_rtnl.index(VETH_GATEWAY).await?;
        self.gw_rtnl
            .add_address(veth, ip, host_len(ip), None)
            .await?;
        let host_veth = self.host_rtnl.index(VETH_HOST).await?;
        self.host_rtnl
            .replace_route(&Route {
                table: MAIN_TABLE,
                dst: ip,
                prefix: host_len(ip),
                oif: Some(host_veth),
                gateway: None,
                link_scope: true,
            })
            .await?;
        let now = self.cached_listing(true).await?;
        Ok(NftChange {
            gateway: tables::gateway_tunnel(&now, name, port, ip),
            host: tables::host_exempt(ip),
        })
    }

    /// Applies `ops` with the effect of applying them in order, in fewer
    /// kernel transactions: the table elements of every configured interface
    /// go in one transaction per namespace, and the peer changes of each
    /// device in one set, both at the end of the batch (or before an
    /// operation that reads or removes what they touch).
    pub(super) async fn apply_batch(&self, ops: &[NodeOp]) -> Result<(), Error> {
        let mut nft = NftChange::default();
        let mut peers: std::collections::BTreeMap<String, PeerBatch> =
            std::collections::BTreeMap::new();
        // Interfaces are configured a few at a time: each waits mostly on its
        // own device, and none depends on another.
        let mut configures: Vec<(&String, &Interface)> = Vec::new();
        // A configuration that cannot be set up does not hold back the rest
        // of the batch; its error is returned at the end.
        let mut failed = None;
        for op in ops {
            match op {
                NodeOp::UpsertPeer {
                    iface,
                    public_key,
                    pod_ip,
                } => peers
                    .entry(iface.clone())
                    .or_default()
                    .upserts
                    .push((public_key.clone(), *pod_ip)),
                NodeOp::RemovePeer { iface, public_key } => peers
                    .entry(iface.clone())
                    .or_default()
                    .removals
                    .push(public_key.clone()),
                NodeOp::ConfigureInterface { name, config } => configures.push((name, config)),
                NodeOp::CreateInterface { .. }
                | NodeOp::AddFrontendIp(_)
                | NodeOp::RemoveFrontendIp(_) => {
                    self.apply_op(op).await?;
                }
                NodeOp::DeleteInterface { name } => {
                    // Its pending peers go with it; pending work first.
                    peers.remove(name);
                    if let Err(e) = self.flush_configures(&mut configures, &mut nft).await {
                        failed.get_or_insert(e);
                    }
                    self.flush_nft(&mut nft).await?;
                    self.apply_op(op).await?;
                }
                NodeOp::EnsurePlumbing(_) | NodeOp::RemovePlumbing | NodeOp::RemoveStrayIp(_) => {
                    if let Err(e) = self.flush_configures(&mut configures, &mut nft).await {
                        failed.get_or_insert(e);
                    }
                    self.flush_nft(&mut nft).await?;
                    self.apply_op(op).await?;
                }
            }
        }
        if let Err(e) = self.flush_configures(&mut configures, &mut nft).await {
            failed.get_or_insert(e);
        }
        self.flush_nft(&mut nft).await?;
        self.flush_peers(peers).await?;
        failed.map_or(Ok(()), Err)
    }

    /// One set per device. Userspace devices are separate processes, so
    /// their sets run side by side; kernel ones go in turn from inside the
    /// namespace.
    async fn flush_peers(
        &self,
        peers: std::collections::BTreeMap<String, PeerBatch>,
    ) -> Result<(), Error> {
        let control = self.cfg.backend.control();
        self.count(peers.len() as u64);
        if control == wgctl::Control::Kernel {
            for (iface, batch) in peers {
                self.gw
                    .run(move || {
                        wgctl::change_peers(control, &iface, &batch.upserts, &batch.removals)
                    })
                    .await??;
            }
            return Ok(());
        }
        let sets = peers.into_iter().map(|(iface, batch)| {
            tokio::task::spawn_blocking(move || {
                wgctl::change_peers(control, &iface, &batch.upserts, &batch.removals)
            })
        });
        // A few at a time: enough to use every core, few enough threads.
        let mut done = futures_util::stream::iter(sets).buffer_unordered(super::DEVICE_CONCURRENCY);
        while let Some(r) = done.next().await {
            r.map_err(|_| Error::WorkerGone)??;
        }
        Ok(())
    }

    async fn flush_configures(
        &self,
        pending: &mut Vec<(&String, &Interface)>,
        nft: &mut NftChange,
    ) -> Result<(), Error> {
        // Futures made up front (they start only when polled): a stream
        // closure over borrowed arguments would not be Send for every lifetime.
        let futures: Vec<_> = std::mem::take(pending)
            .into_iter()
            .map(|(name, config)| Box::pin(self.configure_interface(name, config)))
            .collect();
        let mut done =
            futures_util::stream::iter(futures).buffer_unordered(super::DEVICE_CONCURRENCY);
        // One interface that cannot be set up (its key not loaded yet) must
        // not hold back the others: all are tried, the first error returned.
        let mut first_error = None;
        while let Some(change) = done.next().await {
            match change {
                Ok(change) => {
                    nft.gateway.push_str(&change.gateway);
                    nft.host.push_str(&change.host);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "configuring an interface failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    async fn flush_nft(&self, nft: &mut NftChange) -> Result<(), Error> {
        let change = std::mem::take(nft);
        if change.host.is_empty() && change.gateway.is_empty() {
            return Ok(());
        }
        self.nft_host(change.host).await?;
        self.nft_gw(change.gateway).await?;
        // Later operations of the batch must see what was just written.
        self.forget_listings();
        Ok(())
    }

    /// The table as of the last observe, or read now.
    async fn cached_listing(&self, gateway: bool) -> Result<tables::Listing, Error> {
        if let Some(l) = self.cached(gateway) {
            return Ok(l);
        }
        self.listing(gateway).await
    }

    /// Our table in the gateway (or host) namespace as it is now.
    async fn listing(&self, gateway: bool) -> Result<tables::Listing, Error> {
        let (worker, table) = if gateway {
            (&self.gw, tables::GATEWAY_TABLE)
        } else {
            (&self.host, tables::HOST_TABLE)
        };
        let json = worker
            .run(move || crate::nft::list_table_json(table))
            .await??;
        Ok(json.map(|j| tables::parse(&j)).unwrap_or_default())
    }

    async fn delete_interface(&self, name: &str) -> Result<(), Error> {
        let Some(port) = port_of(name) else {
            return Err(Error::InterfaceName(name.to_string()));
        };
        for rule in self.gw_rtnl.mark_rules().await? {
            if rule.fwmark == u32::from(port) && rule.priority == RULE_PRIORITY {
                self.gw_rtnl.del_mark_rule(&rule).await?;
            }
        }
        let now = self.listing(true).await?;
        self.nft_gw(tables::gateway_tunnel_removed(&now, name, port))
            .await?;
        if let Some(link) = self.gw_rtnl.link(name).await? {
            // Its routes go with it; a userspace process exits with its TUN.
            self.gw_rtnl.delete_link(link.index).await?;
        }
        self.reap(Some(name));
        let _ = std::fs::remove_file(crate::wireguard::socket_path(name));
        Ok(())
    }

    async fn remove_egress_ip(&self, ip: IpAddr) -> Result<(), Error> {
        if let Some(veth) = self.gw_rtnl.link(VETH_GATEWAY).await? {
            self.gw_rtnl
                .del_address(veth.index, ip, host_len(ip))
                .await?;
        }
        if let Some(veth) = self.host_rtnl.link(VETH_HOST).await? {
            self.host_rtnl
                .del_route(&Route {
                    table: MAIN_TABLE,
                    dst: ip,
                    prefix: host_len(ip),
                    oif: Some(veth.index),
                    gateway: None,
                    link_scope: true,
                })
                .await?;
        }
        let host = self.listing(false).await?;
        self.nft_host(tables::host_exempt_removed(&host, ip))
            .await?;
        // SNAT elements of ports whose link is gone still name it.
        let gw = self.listing(true).await?;
        self.nft_gw(tables::gateway_snat_removed(&gw, ip)).await?;
        Ok(())
    }
}
