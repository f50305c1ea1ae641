use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;

fn secret(uid: &str) -> SecretRef {
    SecretRef {
        namespace: "kube-egress-gateway-system".into(),
        name: format!("sgw-{uid}"),
    }
}

fn config(name: &str, port: u16, frontend: u8) -> ActiveConfig {
    ActiveConfig {
        namespace: "ns".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        server: ServerProfile {
            ip: Ipv4Addr::new(10, 0, 0, frontend).into(),
            port,
            public_key: format!("pk-{name}"),
            key_secret: secret(name),
        },
        node: GatewayNode {
            node_name: "gw-0".into(),
            primary_ip: Ipv4Addr::new(10, 0, 1, 4).into(),
            secondary_ip: Ipv4Addr::new(10, 0, 1, 10 + frontend).into(),
        },
    }
}

fn endpoint(pod: u16, config: &str) -> PodEndpoint {
    PodEndpoint {
        namespace: "ns".into(),
        name: format!("pod-{pod}"),
        config: config.into(),
        pod_ip: Ipv4Addr::from(0x0AF4_0000 + u32::from(pod)).into(),
        public_key: format!("pod-key-{pod}"),
    }
}

fn run(observed: &NodeState, ops: &[NodeOp]) -> NodeState {
    let mut s = observed.clone();
    for op in ops {
        apply(&mut s, op);
    }
    s
}

#[test]
fn builds_one_interface_per_configuration_with_its_peers() {
    let configs = [config("a", 6000, 4), config("b", 6001, 4)];
    let endpoints = [
        endpoint(1, "a"),
        endpoint(2, "b"),
        endpoint(3, "b"),
        endpoint(4, "unknown"),
    ];
    let want = desired(&configs, &endpoints, tunnel_mtu(1500));
    assert_eq!(
        want.frontend_ips.len(),
        1,
        "both configurations share one frontend"
    );
    assert_eq!(want.interfaces["wg-6000"].peers.len(), 1);
    assert_eq!(want.interfaces["wg-6001"].peers.len(), 2);
    assert!(want.interfaces.values().all(|i| i.mtu == 1420));

    assert_eq!(
        want.plumbing,
        Some(Plumbing {
            primary_ip: "10.0.1.4".parse().unwrap(),
            mtu: 1500
        }),
        "the veth carries the underlay MTU"
    );

    let ops = diff(&want, &NodeState::default());
    assert!(matches!(ops[0], NodeOp::EnsurePlumbing(_)));
    assert_eq!(ops[1], NodeOp::AddFrontendIp("10.0.0.4".parse().unwrap()));
    assert_eq!(
        ops[2],
        NodeOp::CreateInterface {
            name: "wg-6000".into()
        }
    );
    assert!(matches!(ops[3], NodeOp::ConfigureInterface { .. }));
    let got = run(&NodeState::default(), &ops);
    assert_eq!(got, want);
    assert!(diff(&want, &got).is_empty(), "second pass is a no-op");
}

#[test]
fn a_removed_configuration_keeps_the_shared_frontend_until_unused() {
    let both = desired(
        &[config("a", 6000, 4), config("b", 6001, 4)],
        &[endpoint(1, "a")],
        1420,
    );
    let only_b = desired(&[config("b", 6001, 4)], &[], 1420);
    let ops = diff(&only_b, &both);
    assert_eq!(
        ops,
        [NodeOp::DeleteInterface {
            name: "wg-6000".into()
        }]
    );
    let none = diff(&NodeState::default(), &only_b);
    assert_eq!(
        none,
        [
            NodeOp::DeleteInterface {
                name: "wg-6001".into()
            },
            NodeOp::RemoveFrontendIp("10.0.0.4".parse().unwrap()),
            NodeOp::RemovePlumbing,
        ]
    );
}

#[test]
fn partly_present_items_are_repaired_or_removed() {
    let want = desired(&[config("a", 6000, 4)], &[endpoint(1, "a")], 1420);
    let mut seen = want.clone();
    // The plumbing lost its default route, wg-6000 its SNAT rule (so its
    // address shows up as stray), and an old configuration left 10.0.1.99.
    seen.plumbing = Some(Plumbing::incomplete());
    seen.interfaces.get_mut("wg-6000").unwrap().snat_ip = Ipv4Addr::UNSPECIFIED.into();
    seen.stray_ips = ["10.0.1.14".parse().unwrap(), "10.0.1.99".parse().unwrap()].into();
    assert!(
        ready(&want, &seen).is_empty(),
        "nothing is ready while the plumbing is broken"
    );
    let ops = diff(&want, &seen);
    assert!(matches!(ops[0], NodeOp::EnsurePlumbing(_)));
    assert!(matches!(ops[1], NodeOp::ConfigureInterface { .. }));
    assert_eq!(ops[2], NodeOp::RemoveStrayIp("10.0.1.99".parse().unwrap()));
    assert_eq!(ops.len(), 3, "{ops:?}");
    let fixed = run(&seen, &ops);
    assert_eq!(fixed, want);
    assert_eq!(ready(&want, &fixed), ["uid-a".to_string()].into());
}

#[test]
fn readiness_is_per_interface_and_needs_every_peer() {
    let want = desired(
        &[config("a", 6000, 4), config("b", 6001, 4)],
        &[endpoint(1, "a"), endpoint(2, "b")],
        1420,
    );
    let mut seen = want.clone();
    seen.interfaces.get_mut("wg-6001").unwrap().peers.clear();
    assert_eq!(ready(&want, &seen), ["uid-a".to_string()].into());
    seen.frontend_ips.clear();
    assert!(ready(&want, &seen).is_empty(), "no frontend, no traffic");
}

#[test]
fn a_key_rotation_reconfigures_without_touching_peers() {
    let before = desired(&[config("a", 6000, 4)], &[endpoint(1, "a")], 1420);
    let mut rotated = config("a", 6000, 4);
    rotated.server.public_key = "pk-new".into();
    let after = desired(&[rotated], &[endpoint(1, "a")], 1420);
    let ops = diff(&after, &before);
    assert_eq!(ops.len(), 1);
    assert!(
        matches!(&ops[0], NodeOp::ConfigureInterface { config, .. } if config.public_key == "pk-new")
    );
}

fn state_strategy() -> impl Strategy<Value = NodeState> {
    let iface = (
        0u16..4,
        0u8..3,
        prop::collection::btree_map(0u16..20, 0u32..4, 0..6),
        1400u32..1421,
    );
    let extras = (
        prop::option::of((0u8..3, 1400u32..1501)),
        prop::collection::btree_set(0u8..6, 0..3),
    );
    (prop::collection::vec(iface, 0..4), extras).prop_map(|(ifaces, (plumbing, strays))| {
        let mut s = NodeState {
            plumbing: plumbing.map(|(ip, mtu)| Plumbing {
                primary_ip: Ipv4Addr::new(10, 0, 1, ip).into(),
                mtu,
            }),
            stray_ips: strays
                .into_iter()
                .map(|ip| Ipv4Addr::new(10, 0, 1, ip).into())
                .collect(),
            ..NodeState::default()
        };
        // An observer never calls an address stray that an interface holds.
        let held: BTreeSet<IpAddr> = ifaces
            .iter()
            .map(|(_, fe, _, _)| Ipv4Addr::new(10, 0, 1, *fe).into())
            .collect();
        s.stray_ips.retain(|ip| !held.contains(ip));
        for (slot, fe, peers, mtu) in ifaces {
            let port = 6000 + slot;
            s.frontend_ips.insert(Ipv4Addr::new(10, 0, 0, fe).into());
            s.interfaces.insert(
                gateway_interface(port),
                Interface {
                    port,
                    mtu,
                    public_key: format!("pk{fe}"),
                    key_secret: secret("x"),
                    sgc_uid: format!("u{slot}"),
                    snat_ip: Ipv4Addr::new(10, 0, 1, fe).into(),
                    primary_ip: Ipv4Addr::new(10, 0, 1, 4).into(),
                    peers: peers
                        .into_iter()
                        .map(|(k, ip)| {
                            (
                                format!("key{k}"),
                                Ipv4Addr::new(10, 244, 0, u8::try_from(ip).unwrap()).into(),
                            )
                        })
                        .collect(),
                },
            );
        }
        s
    })
}

fn is_removal(op: &NodeOp) -> bool {
    matches!(
        op,
        NodeOp::RemovePeer { .. }
            | NodeOp::DeleteInterface { .. }
            | NodeOp::RemoveStrayIp(_)
            | NodeOp::RemoveFrontendIp(_)
            | NodeOp::RemovePlumbing
    )
}

proptest! {
    #[test]
    fn applying_the_diff_reaches_the_desired_state(want in state_strategy(), have in state_strategy()) {
        // A plan never holds strays.
        let want = NodeState { stray_ips: BTreeSet::new(), ..want };
        let ops = diff(&want, &have);
        prop_assert_eq!(&run(&have, &ops), &want);
        prop_assert!(diff(&want, &run(&have, &ops)).is_empty());
        // Interface and frontend removals come after every addition.
        let first_removal = ops.iter().position(|op| matches!(op, NodeOp::DeleteInterface { .. } | NodeOp::RemoveFrontendIp(_)));
        if let Some(i) = first_removal {
            prop_assert!(ops[i..].iter().all(is_removal), "{:?}", ops);
        }
        // The plumbing comes first when it changes and goes last.
        if let Some(i) = ops.iter().position(|op| matches!(op, NodeOp::EnsurePlumbing(_))) {
            prop_assert_eq!(i, 0);
        }
        if let Some(i) = ops.iter().position(|op| matches!(op, NodeOp::RemovePlumbing)) {
            prop_assert_eq!(i, ops.len() - 1);
        }
        // A state that matches its own plan is ready everywhere.
        let reached = run(&have, &ops);
        if want.plumbing.is_some() {
            let all: BTreeSet<String> = want.interfaces.values().map(|i| i.sgc_uid.clone()).collect();
            prop_assert_eq!(ready(&want, &reached), all);
        }
    }
}
