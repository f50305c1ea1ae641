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
//!
//! # Agreement with the route plan
//!
//! [`PodTunnel::lookup`] (a longest-prefix match over the planned routes, the
//! pod's own routes deciding the rest) gives the same path as
//! [`PodInputs::explain`] for every destination. A primary route whose family
//! has no primary gateway (IPv6 exclusions behind an IPv4 gateway) is
//! installed on-link on the primary interface rather than dropped: dropping it
//! would let the tunnel's `::/0` catch what the plan sends to the primary
//! interface.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::model::ServerProfile;
use crate::node::tunnel_mtu;
use crate::routes::{Decision, Path, Reason, RoutePlan};

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

impl PodInputs {
    /// Where traffic to `dst` leaves the pod: the route plan's decision,
    /// except that IPv6 stays on the primary interface (the pod's own routes)
    /// when the gateway has no IPv6 egress.
    pub fn explain(&self, dst: IpAddr) -> Decision {
        if dst.is_ipv6() && !self.ipv6_egress {
            return Decision {
                path: Path::Primary,
                reason: Reason::Default,
            };
        }
        self.routes.explain(dst)
    }
}

impl PodTunnel {
    /// The path the installed routes give `dst`: a longest-prefix match over
    /// [`PodTunnel::routes`]; a destination none of them matches is left to
    /// the pod's own routes, which use the primary interface.
    pub fn lookup(&self, dst: IpAddr) -> Path {
        self.routes
            .iter()
            .filter(|r| r.dst.contains(&dst))
            .max_by_key(|r| r.dst.prefix_len())
            .map_or(Path::Primary, |r| match r.via {
                NextHop::Tunnel => Path::Tunnel,
                NextHop::Primary(_) | NextHop::OnLink => Path::Primary,
            })
    }
}

/// Derives the pod's tunnel setup.
pub fn plan(inputs: &PodInputs) -> PodTunnel {
    let gw = inputs.primary_gateway;
    let hop = |path: Path, dst: &IpNet| match path {
        // Without IPv6 egress nothing IPv6 is tunnelled, so the pod's own
        // routes already decide every IPv6 destination.
        _ if dst.addr().is_ipv6() && !inputs.ipv6_egress => None,
        Path::Tunnel => Some(NextHop::Tunnel),
        // Without a gateway of the route's own family the route still has to
        // exist (a tunnelled default of that family would otherwise catch the
        // destination): it goes on-link on the primary interface.
        Path::Primary if dst.addr().is_ipv6() != gw.is_ipv6() => Some(NextHop::OnLink),
        Path::Primary => Some(NextHop::Primary(gw)),
    };
    let mut routes = vec![PodRoute {
        dst: IpNet::from(gw),
        via: NextHop::OnLink,
    }];
    let default = inputs.routes.mode().default_path();
    for v6 in [false, true] {
        let dst = default_net(v6);
        // An exclusion of the whole family replaces the default.
        let excluded_whole = inputs.routes.routes().iter().any(|r| r.dst == dst);
        if default == Path::Tunnel
            && !excluded_whole
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
    use proptest::prelude::*;

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

    #[test]
    fn ipv6_exclusions_behind_an_ipv4_gateway_stay_primary() {
        let i = inputs(RouteMode::Gateway, &["2001:db8::/32"], true);
        let t = plan(&i);
        assert!(show(&t).contains(&"2001:db8::/32 OnLink".to_string()));
        let dst: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(i.explain(dst).path, Path::Primary);
        assert_eq!(t.lookup(dst), Path::Primary);
        assert_eq!(t.lookup("2001:db9::1".parse().unwrap()), Path::Tunnel);
    }

    fn arb_net() -> impl Strategy<Value = IpNet> {
        prop_oneof![
            (any::<u32>(), 0u8..=32)
                .prop_map(|(a, l)| IpNet::V4(Ipv4Net::new(a.into(), l).unwrap().trunc())),
            (any::<u128>(), 0u8..=128)
                .prop_map(|(a, l)| IpNet::V6(Ipv6Net::new(a.into(), l).unwrap().trunc())),
        ]
    }

    fn low32(bits: u128) -> u32 {
        u32::try_from(bits & u128::from(u32::MAX)).unwrap()
    }

    /// An address inside `net` with random host bits, so lookups land on
    /// route boundaries as well as in the open.
    fn inside(net: IpNet, bits: u128) -> IpAddr {
        match net {
            IpNet::V4(n) => {
                let host = u32::MAX.checked_shr(u32::from(n.prefix_len())).unwrap_or(0);
                IpAddr::V4((u32::from(n.network()) | (low32(bits) & host)).into())
            }
            IpNet::V6(n) => {
                let host = u128::MAX
                    .checked_shr(u32::from(n.prefix_len()))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(n.network()) | (bits & host)).into())
            }
        }
    }

    proptest! {
            /// The installed routes and the plan's explanation agree for every
            /// destination, whatever the families of gateway and exclusions.
            #[test]
            fn installed_routes_agree_with_explain(
                gateway_mode in any::<bool>(),
                excl in proptest::collection::vec(arb_net(), 0..6),
                node in proptest::collection::vec(arb_net(), 0..4),
                gw_v6 in any::<bool>(),
                gw_bits in any::<u128>(),
                v6 in any::<bool>(),
                probes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u128>(), any::<bool>()), 1..24),
            ) {
                let gw: IpAddr = if gw_v6 {
                    IpAddr::V6(gw_bits.into())
                } else {
                    IpAddr::V4(low32(gw_bits).into())
                };
                let mode = if gateway_mode { RouteMode::Gateway } else { RouteMode::Primary };
                let mut i = inputs(mode, &[], v6);
                i.primary_gateway = gw;
                i.routes = RoutePlan::new(&RouteInputs {
                    mode,
                    exclude_cidrs: excl.clone(),
                    node_exceptions: node.clone(),
                    primary_gateway: Some(gw),
                });
                let t = plan(&i);
                let mut nets: Vec<IpNet> = excl.iter().chain(&node).copied().collect();
                nets.push(IpNet::from(gw));
                for (pick, bits, v6_default) in probes {
                    let net = if v6_default {
                        if bits & 1 == 0 { IpNet::V6(Ipv6Net::default()) } else { IpNet::V4(Ipv4Net::default()) }
                    } else {
                        *pick.get(&nets)
                    };
                    let dst = inside(net, bits);
                    prop_assert_eq!(t.lookup(dst), i.explain(dst).path, "dst {} routes {:?}", dst, show(&t));
                }
                // One route per destination: the kernel keeps only the last.
                let mut dsts: Vec<IpNet> = t.routes.iter().map(|r| r.dst).collect();
                dsts.sort_unstable();
                let n = dsts.len();
                dsts.dedup();
                prop_assert_eq!(dsts.len(), n, "duplicate destinations {:?}", show(&t));
        }
    }
}
