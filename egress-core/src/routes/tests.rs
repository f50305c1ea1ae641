use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;

use super::*;
use crate::cidr::{Prefix, normalise};

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn inputs(mode: RouteMode, excl: &[&str], node: &[&str], gw: Option<&str>) -> RouteInputs {
    RouteInputs {
        mode,
        exclude_cidrs: nets(excl),
        node_exceptions: nets(node),
        primary_gateway: gw.map(ip),
    }
}

fn show(plan: &RoutePlan) -> Vec<String> {
    plan.routes()
        .iter()
        .map(|r| format!("{} {:?}", r.dst, r.via))
        .collect()
}

#[test]
fn gateway_mode_sends_exclusions_and_exceptions_to_primary() {
    let plan = RoutePlan::new(&inputs(
        RouteMode::Gateway,
        &["10.0.0.0/8", "10.244.0.0/16", "172.16.0.0/12"],
        &["169.254.169.254/32", "10.96.0.0/12"],
        Some("10.224.0.1"),
    ));
    // 10.244/16, 10.96/12 and the gateway /32 sit inside 10/8 and disappear.
    assert_eq!(
        show(&plan),
        [
            "10.0.0.0/8 Primary",
            "172.16.0.0/12 Primary",
            "169.254.169.254/32 Primary"
        ]
    );
    assert_eq!(plan.explain(ip("1.1.1.1")).path, Path::Tunnel);
    assert_eq!(plan.explain(ip("10.1.1.1")).path, Path::Primary);
    assert_eq!(
        plan.explain(ip("169.254.169.254")).reason,
        Reason::NodeException(nets(&["169.254.169.254/32"])[0])
    );
    assert_eq!(plan.explain(ip("2001:db8::1")).path, Path::Tunnel);
}

#[test]
fn primary_mode_tunnels_exclusions_but_never_node_exceptions() {
    let plan = RoutePlan::new(&inputs(
        RouteMode::Primary,
        &["0.0.0.0/1", "203.0.113.0/24", "10.96.5.0/24"],
        &["169.254.169.254/32", "10.96.0.0/12", "192.0.2.0/24"],
        None,
    ));
    // 10.96.5.0/24 lies inside the exception 10.96.0.0/12 and is dropped;
    // 169.254.169.254 is not under any tunnelled prefix, so it needs no route;
    // 10.96.0.0/12 is a hole in 0.0.0.0/1.
    assert_eq!(
        show(&plan),
        [
            "0.0.0.0/1 Tunnel",
            "203.0.113.0/24 Tunnel",
            "10.96.0.0/12 Primary"
        ]
    );
    assert_eq!(plan.explain(ip("8.8.8.8")).path, Path::Tunnel);
    assert_eq!(plan.explain(ip("10.96.5.1")).path, Path::Primary);
    assert_eq!(plan.explain(ip("169.254.169.254")).path, Path::Primary);
    assert_eq!(plan.explain(ip("203.0.113.9")).path, Path::Tunnel);
    assert_eq!(plan.explain(ip("198.51.100.1")).path, Path::Primary);
}

#[test]
fn host_bits_are_cleared_and_reported() {
    let plan = RoutePlan::new(&inputs(RouteMode::Gateway, &["10.1.2.3/8"], &[], None));
    assert_eq!(show(&plan), ["10.0.0.0/8 Primary"]);
    assert_eq!(
        plan.notes(),
        [Note::HostBitsCleared {
            given: nets(&["10.1.2.3/8"])[0],
            network: nets(&["10.0.0.0/8"])[0],
        }]
    );
}

#[test]
fn dual_stack_inputs_stay_in_their_family() {
    let plan = RoutePlan::new(&inputs(
        RouteMode::Primary,
        &["fd00::/8", "10.0.0.0/8"],
        &["fd00:1::/32"],
        Some("fe80::1"),
    ));
    assert_eq!(
        show(&plan),
        [
            "10.0.0.0/8 Tunnel",
            "fd00::/8 Tunnel",
            "fd00:1::/32 Primary"
        ]
    );
    assert_eq!(plan.explain(ip("fd00:1::5")).path, Path::Primary);
    assert_eq!(plan.explain(ip("fd00:2::5")).path, Path::Tunnel);
    assert_eq!(plan.explain(ip("::ffff:10.0.0.1")).path, Path::Primary);
}

#[test]
fn empty_inputs_give_the_default_route_alone() {
    for mode in [RouteMode::Gateway, RouteMode::Primary] {
        let plan = RoutePlan::new(&inputs(mode, &[], &[], None));
        assert!(plan.is_empty());
        assert_eq!(plan.explain(ip("192.0.2.1")).path, mode.default_path());
    }
}

// ---- property tests -------------------------------------------------------

/// Addresses clustered around a few bases so that prefixes overlap often.
fn v4net() -> impl Strategy<Value = IpNet> {
    let bases = prop::sample::select(vec![
        0x0A00_0000u32,
        0x0A60_0000,
        0xC000_0200,
        0xA9FE_A9FE,
        0x0000_0000,
        0xFFFF_FF00,
    ]);
    (bases, any::<u16>(), 0u8..=32).prop_map(|(base, noise, len)| {
        let addr = Ipv4Addr::from(base ^ u32::from(noise));
        IpNet::V4(Ipv4Net::new(addr, len).unwrap())
    })
}

fn v6net() -> impl Strategy<Value = IpNet> {
    let bases = prop::sample::select(vec![0xfd00_u128 << 112, 0x2001_0db8_u128 << 96, 0]);
    (bases, any::<u16>(), 0u8..=128).prop_map(|(base, noise, len)| {
        let addr = Ipv6Addr::from(base ^ (u128::from(noise) << 80) ^ u128::from(noise));
        IpNet::V6(Ipv6Net::new(addr, len).unwrap())
    })
}

fn any_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![3 => v4net(), 1 => v6net()]
}

fn mode() -> impl Strategy<Value = RouteMode> {
    prop_oneof![Just(RouteMode::Gateway), Just(RouteMode::Primary)]
}

fn route_inputs() -> impl Strategy<Value = RouteInputs> {
    (
        mode(),
        prop::collection::vec(any_net(), 0..12),
        prop::collection::vec(any_net(), 0..8),
        prop::option::of(v4net().prop_map(|n| n.addr())),
    )
        .prop_map(
            |(mode, exclude_cidrs, node_exceptions, primary_gateway)| RouteInputs {
                mode,
                exclude_cidrs,
                node_exceptions,
                primary_gateway,
            },
        )
}

/// The intended semantics, written as directly as possible.
fn reference(inputs: &RouteInputs, dst: IpAddr) -> Path {
    let inside = |list: &[IpNet]| list.iter().any(|n| n.trunc().contains(&dst));
    if inside(&inputs.node_exceptions) || inputs.primary_gateway == Some(dst) {
        Path::Primary
    } else if inside(&inputs.exclude_cidrs) {
        inputs.mode.default_path().opposite()
    } else {
        inputs.mode.default_path()
    }
}

/// Destinations at and around every prefix boundary, plus random ones.
fn probes(inputs: &RouteInputs, random: &[IpAddr]) -> Vec<IpAddr> {
    let mut out = random.to_vec();
    for n in inputs.exclude_cidrs.iter().chain(&inputs.node_exceptions) {
        let n = n.trunc();
        for a in [n.network(), n.broadcast()] {
            out.push(a);
            match a {
                IpAddr::V4(v) => {
                    let x = u32::from(v);
                    out.push(IpAddr::V4(x.wrapping_sub(1).into()));
                    out.push(IpAddr::V4(x.wrapping_add(1).into()));
                }
                IpAddr::V6(v) => {
                    let x = u128::from(v);
                    out.push(IpAddr::V6(x.wrapping_sub(1).into()));
                    out.push(IpAddr::V6(x.wrapping_add(1).into()));
                }
            }
        }
    }
    out.extend(inputs.primary_gateway);
    out
}

fn round_trip_inputs(plan: &RoutePlan) -> RouteInputs {
    let (excl, node): (Vec<Route>, Vec<Route>) = plan
        .routes()
        .into_iter()
        .partition(|r| r.origin == Origin::Exclusion);
    RouteInputs {
        mode: plan.mode(),
        exclude_cidrs: excl.iter().map(|r| r.dst).collect(),
        node_exceptions: node.iter().map(|r| r.dst).collect(),
        primary_gateway: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn explain_agrees_with_the_reference(
        inputs in route_inputs(),
        random in prop::collection::vec(prop_oneof![v4net().prop_map(|n| n.addr()), v6net().prop_map(|n| n.addr())], 0..16),
    ) {
        let plan = RoutePlan::new(&inputs);
        for dst in probes(&inputs, &random) {
            prop_assert_eq!(plan.explain(dst).path, reference(&inputs, dst), "dst {} plan {:?}", dst, plan.routes());
        }
    }

    #[test]
    fn planning_twice_gives_the_same_plan(inputs in route_inputs()) {
        let plan = RoutePlan::new(&inputs);
        let again = RoutePlan::new(&round_trip_inputs(&plan));
        prop_assert_eq!(plan.routes(), again.routes());
    }

    #[test]
    fn a_plan_never_grows_beyond_its_input(inputs in route_inputs()) {
        let plan = RoutePlan::new(&inputs);
        let budget = inputs.exclude_cidrs.len() + inputs.node_exceptions.len() + usize::from(inputs.primary_gateway.is_some());
        prop_assert!(plan.len() <= budget, "{} routes from {} inputs", plan.len(), budget);
    }

    #[test]
    fn families_never_mix(inputs in route_inputs(), v6 in v6net()) {
        let v4_only = RouteInputs {
            exclude_cidrs: inputs.exclude_cidrs.iter().copied().filter(|n| n.addr().is_ipv4()).collect(),
            node_exceptions: inputs.node_exceptions.iter().copied().filter(|n| n.addr().is_ipv4()).collect(),
            ..inputs.clone()
        };
        let plan = RoutePlan::new(&v4_only);
        prop_assert!(plan.routes().iter().all(|r| r.dst.addr().is_ipv4()));
        // IPv4 input never decides an IPv6 destination, and vice versa.
        prop_assert_eq!(plan.explain(v6.addr()).path, inputs.mode.default_path());
        let full = RoutePlan::new(&inputs);
        for r in full.routes() {
            let from_inputs = inputs.exclude_cidrs.iter().chain(&inputs.node_exceptions)
                .map(|n| n.addr().is_ipv4())
                .chain(inputs.primary_gateway.map(|g| g.is_ipv4()));
            prop_assert!(from_inputs.clone().any(|is_v4| is_v4 == r.dst.addr().is_ipv4()));
        }
    }

    #[test]
    fn normalising_is_idempotent_and_preserves_coverage(
        list in prop::collection::vec(v4net(), 0..24),
        probes in prop::collection::vec(any::<u32>(), 0..32),
    ) {
        let prefixes: Vec<Prefix> = list.iter().map(|n| Prefix::from_net(*n)).collect();
        let once = normalise(prefixes, 32);
        let twice = normalise(once.clone(), 32);
        prop_assert_eq!(&once, &twice);
        prop_assert!(once.len() <= list.len());
        prop_assert!(once.windows(2).all(|w| w[0].end(32) < w[1].start), "sorted and disjoint");
        for p in probes {
            let addr = IpAddr::V4(p.into());
            let in_input = list.iter().any(|n| n.trunc().contains(&addr));
            let in_output = once.iter().any(|q| q.contains_addr(u128::from(p), 32));
            prop_assert_eq!(in_input, in_output);
        }
    }
}
