//! A pod's tunnel installed in a real namespace: for random plans, applied
//! one after another as live updates, the kernel's own route lookup
//! (`ip route get`) agrees with `egress_core`'s `explain` for random
//! destinations; replies to inbound connections leave by the primary
//! interface; removal puts the pod's own default route back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::RefCell;
use std::net::IpAddr;
use std::path::PathBuf;

use egress_core::model::{SecretRef, ServerProfile};
use egress_core::pod::{self, DEFAULT_KEEPALIVE, PodInputs, PodTunnel};
use egress_core::routes::{Path, RouteInputs, RouteMode, RoutePlan};
use egress_net::netns::{NsRef, NsWorker};
use egress_net::pod as podnet;
use egress_net::wireguard::{Backend, KeyPair};
use egress_testkit::netns::{Netns, veth};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const GW: &str = "10.244.1.1";

/// A pod namespace whose `eth0` is a veth to a stand-in for the node, with
/// an IPv4 and an IPv6 address and default routes of both families, as a
/// primary CNI leaves it.
fn pod_namespace() -> (Netns, Netns) {
    let ns = Netns::create("pod").unwrap();
    let peer = Netns::create("podnode").unwrap();
    veth(
        &ns,
        "eth0",
        "10.244.1.5/24",
        &peer,
        "veth0",
        "10.244.1.1/24",
    )
    .unwrap();
    ns.ip(&["addr", "add", "2001:db8:1::5/64", "dev", "eth0", "nodad"])
        .unwrap();
    peer.ip(&["addr", "add", "2001:db8:1::1/64", "dev", "veth0", "nodad"])
        .unwrap();
    ns.ip(&["route", "replace", "default", "via", GW, "dev", "eth0"])
        .unwrap();
    ns.ip(&[
        "route",
        "replace",
        "default",
        "via",
        "2001:db8:1::1",
        "dev",
        "eth0",
    ])
    .unwrap();
    (ns, peer)
}

fn inputs(mode: RouteMode, excl: Vec<IpNet>, node: Vec<IpNet>, v6: bool) -> PodInputs {
    let gw: IpAddr = GW.parse().unwrap();
    PodInputs {
        server: ServerProfile {
            ip: "192.0.2.100".parse().unwrap(),
            port: 6000,
            public_key: KeyPair::generate().public,
            key_secret: SecretRef {
                namespace: "sys".into(),
                name: "k".into(),
            },
        },
        routes: RoutePlan::new(&RouteInputs {
            mode,
            exclude_cidrs: excl,
            node_exceptions: node,
            primary_gateway: Some(gw),
        }),
        primary_iface: "eth0".into(),
        primary_gateway: gw,
        underlay_mtu: 1500,
        ipv6_egress: v6,
        keepalive: Some(DEFAULT_KEEPALIVE),
    }
}

/// Which way the kernel sends `dst` from the pod.
fn kernel_path(ns: &Netns, dst: IpAddr, mark: Option<u32>) -> Path {
    let dst = dst.to_string();
    let mut args = vec!["route", "get", dst.as_str()];
    let mark = mark.map(|m| m.to_string());
    if let Some(m) = &mark {
        args.extend(["mark", m.as_str()]);
    }
    let out = ns.ip(&args).unwrap();
    let dev = out
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .unwrap_or_else(|| panic!("no device in {out:?}"));
    match dev {
        "wg0" => Path::Tunnel,
        "eth0" => Path::Primary,
        other => panic!("unexpected device {other} in {out:?}"),
    }
}

/// Destinations whose lookup the kernel answers from elsewhere than the
/// main table's unicast routes, or that the pod's connected subnets keep on
/// purpose (see `egress_core::pod`).
fn probe_ok(dst: IpAddr) -> bool {
    let connected: [IpNet; 3] = [
        "10.244.1.0/24".parse().unwrap(),
        "2001:db8:1::/64".parse().unwrap(),
        "fe80::/10".parse().unwrap(),
    ];
    if connected.iter().any(|n| n.contains(&dst)) {
        return false;
    }
    match dst {
        IpAddr::V4(a) => {
            let o = a.octets()[0];
            o != 0 && o != 127 && o < 224
        }
        IpAddr::V6(a) => {
            !(a.is_loopback() || a.is_multicast() || a.is_unspecified())
                && a.to_ipv4_mapped().is_none()
                && a.segments()[0] != 0
        }
    }
}

fn arb_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, l)| IpNet::V4(Ipv4Net::new(a.into(), l).unwrap().trunc())),
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, l)| IpNet::V6(Ipv6Net::new(a.into(), l).unwrap().trunc())),
        // Near the pod and its gateway.
        (0u32..65536, 8u8..=32).prop_map(|(a, l)| IpNet::V4(
            Ipv4Net::new((0x0af4_0000 | a).into(), l).unwrap().trunc()
        )),
    ]
    .prop_filter("not the pod's own subnet", |n| {
        *n != "10.244.1.0/24".parse::<IpNet>().unwrap()
    })
}

fn inside(net: IpNet, bits: u128) -> IpAddr {
    match net {
        IpNet::V4(n) => {
            let host = u32::MAX.checked_shr(u32::from(n.prefix_len())).unwrap_or(0);
            let low = u32::try_from(bits & u128::from(u32::MAX)).unwrap();
            IpAddr::V4((u32::from(n.network()) | (low & host)).into())
        }
        IpNet::V6(n) => {
            let host = u128::MAX
                .checked_shr(u32::from(n.prefix_len()))
                .unwrap_or(0);
            IpAddr::V6((u128::from(n.network()) | (bits & host)).into())
        }
    }
}

#[derive(Debug, Clone)]
struct Case {
    gateway_mode: bool,
    excl: Vec<IpNet>,
    node: Vec<IpNet>,
    v6: bool,
    probes: Vec<(prop::sample::Index, u128, u8)>,
}

fn arb_case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        proptest::collection::vec(arb_net(), 0..6),
        proptest::collection::vec(arb_net(), 0..3),
        any::<bool>(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u128>(), 0u8..4), 24),
    )
        .prop_map(|(gateway_mode, excl, node, v6, probes)| Case {
            gateway_mode,
            excl,
            node,
            v6,
            probes,
        })
}

#[test]
fn installed_pod_routes_agree_with_explain() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ns, peer) = pod_namespace();
    let path = PathBuf::from(format!("/var/run/netns/{}", ns.name()));
    // The tunnel's socket lives in the stand-in node, which has no route
    // to the endpoint: handshakes go nowhere, never out of the host.
    let node = rt
        .block_on(NsWorker::start(NsRef::Path(PathBuf::from(format!(
            "/var/run/netns/{}",
            peer.name()
        )))))
        .unwrap();
    let pod_w = rt
        .block_on(NsWorker::start(NsRef::Path(path.clone())))
        .unwrap();
    let key = KeyPair::generate();
    let first = pod::plan(&inputs(RouteMode::Gateway, Vec::new(), Vec::new(), false));
    let node_name = format!("wgt{}", std::process::id());
    let link = rt
        .block_on(podnet::create(
            &node,
            &pod_w,
            Backend::detect(),
            &node_name,
            &first,
            &key.private,
        ))
        .unwrap();
    // The device sits in the pod under its pod name, not in the node.
    assert!(ns.ip(&["link", "show", "wg0"]).is_ok());
    assert!(peer.ip(&["link", "show", &node_name]).is_err());
    // Its counters are read where the device is controlled from (the
    // node-side socket or, for a kernel device, inside the pod); the
    // stand-in node has no route to the endpoint, so nothing came back.
    let counters = rt.block_on(link.counter_reader(&path).read()).unwrap();
    assert_eq!(counters.rx_bytes, 0);
    let installed: RefCell<Option<PodTunnel>> = RefCell::new(None);
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let result = runner.run(&arb_case(), |case| {
        let mode = if case.gateway_mode {
            RouteMode::Gateway
        } else {
            RouteMode::Primary
        };
        let i = inputs(mode, case.excl.clone(), case.node.clone(), case.v6);
        let tunnel = pod::plan(&i);
        let old = installed.borrow().clone();
        rt.block_on(podnet::set_peer(&link, &pod_w, &tunnel, &key.private))
            .unwrap();
        rt.block_on(podnet::apply_routes(&pod_w, old.as_ref(), &tunnel))
            .unwrap();
        *installed.borrow_mut() = Some(tunnel.clone());
        let mut nets: Vec<IpNet> = case.excl.iter().chain(&case.node).copied().collect();
        nets.push("0.0.0.0/0".parse().unwrap());
        nets.push("::/0".parse().unwrap());
        for (pick, bits, kind) in &case.probes {
            let net = match kind {
                0 => "0.0.0.0/0".parse().unwrap(),
                1 => "::/0".parse().unwrap(),
                _ => *pick.get(&nets),
            };
            let dst = inside(net, *bits);
            if !probe_ok(dst) {
                continue;
            }
            let kernel = kernel_path(&ns, dst, None);
            prop_assert_eq!(
                kernel,
                i.explain(dst).path,
                "dst {} plan {:?}",
                dst,
                tunnel.routes
            );
            if dst.is_ipv4() {
                // A reply to a connection that came in on eth0.
                prop_assert_eq!(kernel_path(&ns, dst, Some(0x2222)), Path::Primary);
            }
        }
        Ok(())
    });
    let last = installed.borrow().clone();
    rt.block_on(podnet::remove(&pod_w, Some(link), last.as_ref()))
        .unwrap();
    result.unwrap();
    // Removal: no wg0, the pod's default route back, no reply path left.
    assert!(ns.ip(&["link", "show", "wg0"]).is_err());
    let routes = ns.ip(&["route", "show", "default"]).unwrap();
    assert!(
        routes.contains("default via 10.244.1.1 dev eth0"),
        "{routes}"
    );
    let rules = ns.ip(&["rule", "show"]).unwrap();
    assert!(!rules.contains("0x2222"), "{rules}");
    assert!(
        ns.exec("nft", &["list", "table", "inet", "egress_pod"])
            .is_err()
    );
}
