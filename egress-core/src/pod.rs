//! The pod tunnel plan: the pod-side WireGuard interface and routes, derived
//! from the gateway's server profile and the route plan.
//!
//! Differences from upstream, on purpose:
//! - the primary interface's own routes (the pod subnet) are kept, so
//!   same-subnet traffic does not detour through the gateway;
//! - the MTU is set from the underlay instead of left at the default;
//! - a keepalive keeps the tunnel's flow state alive on the load balancer;
//! - IPv6 is only tunnelled when the gateway has IPv6 egress, instead of
//!   blackholing it.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::model::ServerProfile;
use crate::node::tunnel_mtu;
use crate::routes::{Path, RoutePlan};

/// The pod-side interface name.
pub const POD_INTERFACE: &str = "wg0";
/// The gateway's tunnel address, the next hop of tunnelled routes.
pub const GATEWAY_TUNNEL_ADDR: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);
/// Firewall mark for connections that arrive on the primary interface.
pub const REPLY_MARK: u32 = 0x2222;
/// Routing table holding the primary default route for those replies.
pub const REPLY_TABLE: u32 = 8738;
/// Default keepalive, seconds.
pub const DEFAULT_KEEPALIVE: u16 = 25;

/// Inputs of a pod tunnel plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodInputs {
    /// The gateway endpoint from the configuration's status.
    pub server: ServerProfile,
    /// The pod's routes.
    pub routes: RoutePlan,
    /// The pod's primary interface.
    pub primary_iface: String,
    /// The primary interface's default gateway.
    pub primary_gateway: IpAddr,
    /// The underlay MTU of the primary interface.
    pub underlay_mtu: u32,
    /// Whether the gateway egresses IPv6 (so IPv6 may be tunnelled).
    pub ipv6_egress: bool,
    /// Keepalive seconds, `None` to disable.
    pub keepalive: Option<u16>,
}

/// Where a pod route sends packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextHop {
    /// `via fe80::1 dev wg0`.
    Tunnel,
    /// `via <gateway> dev <primary>`.
    Primary(IpAddr),
    /// `dev <primary> scope link`.
    OnLink,
}

/// One route in the pod's main table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodRoute {
    /// Destination.
    pub dst: IpNet,
    /// Next hop.
    pub via: NextHop,
}

/// The pod-side WireGuard peer: the gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelPeer {
    /// Gateway public key.
    pub public_key: String,
    /// Load-balancer frontend and port.
    pub endpoint: SocketAddr,
    /// Everything may come back through the tunnel.
    pub allowed_ips: Vec<IpNet>,
    /// Keepalive seconds.
    pub keepalive: Option<u16>,
}

/// Replies to connections that arrived on the primary interface leave by it:
/// mark them on the way in, restore the mark on the way out, and route marked
/// packets by a table whose default is the primary gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyPath {
    /// Interface whose inbound connections are marked.
    pub iface: String,
    /// The mark.
    pub mark: u32,
    /// The table.
    pub table: u32,
    /// Default route of the table.
    pub gateway: IpAddr,
}

/// Everything the node agent sets up in a pod's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodTunnel {
    /// Interface name.
    pub iface: &'static str,
    /// Interface MTU.
    pub mtu: u32,
    /// The gateway peer.
    pub peer: TunnelPeer,
    /// Routes, default routes included.
    pub routes: Vec<PodRoute>,
    /// The reply-path rule.
    pub reply_path: ReplyPath,
}

fn default_net(v6: bool) -> IpNet {
    if v6 {
        IpNet::V6(Ipv6Net::default())
    } else {
        IpNet::V4(Ipv4Net::default())
    }
}

/// Derives the pod's tunnel setup.
pub fn plan(inputs: &PodInputs) -> PodTunnel {
    let gw = inputs.primary_gateway;
    let hop = |path: Path, dst: &IpNet| match path {
        Path::Tunnel if dst.addr().is_ipv6() && !inputs.ipv6_egress => None,
        Path::Tunnel => Some(NextHop::Tunnel),
        // A primary route needs a gateway of its own family; without one the
        // kernel's existing routes already decide.
        Path::Primary if dst.addr().is_ipv6() != gw.is_ipv6() => None,
        Path::Primary => Some(NextHop::Primary(gw)),
    };
    let mut routes = vec![PodRoute {
        dst: IpNet::from(gw),
        via: NextHop::OnLink,
    }];
    let default = inputs.routes.mode().default_path();
    for v6 in [false, true] {
        let dst = default_net(v6);
        if default == Path::Tunnel
            && let Some(via) = hop(default, &dst)
        {
            routes.push(PodRoute { dst, via });
        }
    }
    for r in inputs.routes.routes() {
        if r.dst.addr() == gw && r.dst.prefix_len() == r.dst.max_prefix_len() {
            continue;
        }
        if let Some(via) = hop(r.via, &r.dst) {
            routes.push(PodRoute { dst: r.dst, via });
        }
    }
    let mut allowed_ips = vec![IpNet::V4(Ipv4Net::default())];
    if inputs.ipv6_egress {
        allowed_ips.push(IpNet::V6(Ipv6Net::default()));
    }
    PodTunnel {
        iface: POD_INTERFACE,
        mtu: tunnel_mtu(inputs.underlay_mtu),
        peer: TunnelPeer {
            public_key: inputs.server.public_key.clone(),
            endpoint: SocketAddr::new(inputs.server.ip, inputs.server.port),
            allowed_ips,
            keepalive: inputs.keepalive,
        },
        routes,
        reply_path: ReplyPath {
            iface: inputs.primary_iface.clone(),
            mark: REPLY_MARK,
            table: REPLY_TABLE,
            gateway: gw,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SecretRef;
    use crate::routes::{RouteInputs, RouteMode};

    fn inputs(mode: RouteMode, excl: &[&str], v6: bool) -> PodInputs {
        PodInputs {
            server: ServerProfile {
                ip: "10.0.0.4".parse().unwrap(),
                port: 6001,
                public_key: "gw-pk".into(),
                key_secret: SecretRef {
                    namespace: "sys".into(),
                    name: "sgw-u".into(),
                },
            },
            routes: RoutePlan::new(&RouteInputs {
                mode,
                exclude_cidrs: excl.iter().map(|s| s.parse().unwrap()).collect(),
                node_exceptions: vec!["169.254.169.254/32".parse().unwrap()],
                primary_gateway: Some("10.244.1.1".parse().unwrap()),
            }),
            primary_iface: "eth0".into(),
            primary_gateway: "10.244.1.1".parse().unwrap(),
            underlay_mtu: 1500,
            ipv6_egress: v6,
            keepalive: Some(DEFAULT_KEEPALIVE),
        }
    }

    fn show(t: &PodTunnel) -> Vec<String> {
        t.routes
            .iter()
            .map(|r| format!("{} {:?}", r.dst, r.via))
            .collect()
    }

    #[test]
    fn gateway_mode_defaults_through_the_tunnel() {
        let t = plan(&inputs(
            RouteMode::Gateway,
            &["10.0.0.0/8", "fd00::/8"],
            false,
        ));
        assert_eq!(
            show(&t),
            [
                "10.244.1.1/32 OnLink",
                "0.0.0.0/0 Tunnel",
                "10.0.0.0/8 Primary(10.244.1.1)",
                "169.254.169.254/32 Primary(10.244.1.1)",
            ]
        );
        assert_eq!(t.mtu, 1420);
        assert_eq!(t.peer.endpoint, "10.0.0.4:6001".parse().unwrap());
        assert_eq!(t.peer.allowed_ips, ["0.0.0.0/0".parse::<IpNet>().unwrap()]);
        assert_eq!(
            t.reply_path,
            ReplyPath {
                iface: "eth0".into(),
                mark: 0x2222,
                table: 8738,
                gateway: "10.244.1.1".parse().unwrap()
            }
        );
    }

    #[test]
    fn primary_mode_tunnels_only_exclusions_and_ipv6_only_with_ipv6_egress() {
        let t = plan(&inputs(
            RouteMode::Primary,
            &["203.0.113.0/24", "2001:db8::/32"],
            false,
        ));
        assert_eq!(show(&t), ["10.244.1.1/32 OnLink", "203.0.113.0/24 Tunnel"]);
        let t6 = plan(&inputs(
            RouteMode::Primary,
            &["203.0.113.0/24", "2001:db8::/32"],
            true,
        ));
        assert_eq!(
            show(&t6),
            [
                "10.244.1.1/32 OnLink",
                "203.0.113.0/24 Tunnel",
                "2001:db8::/32 Tunnel"
            ]
        );
        assert_eq!(t6.peer.allowed_ips.len(), 2);
    }
}
