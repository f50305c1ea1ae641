use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;

fn demand(pool: &str, uids: &[&str]) -> PoolDemand {
    PoolDemand {
        pool_uid: pool.into(),
        subnet_id: "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/gw".into(),
        rules: uids
            .iter()
            .map(|u| RuleDemand {
                lb_uid: (*u).to_string(),
                sgc_uid: format!("sgc-{u}"),
            })
            .collect(),
    }
}

/// What Azure does with a PUT: frontends without an address get one.
fn azure_apply(change: &LbChange, before: Option<LoadBalancer>) -> Option<LoadBalancer> {
    match change {
        LbChange::None => before,
        LbChange::Delete => None,
        LbChange::Put(lb) => {
            let mut lb = lb.clone();
            for (i, f) in lb.frontends.iter_mut().enumerate() {
                if f.private_ip.is_none() {
                    f.private_ip =
                        Some(Ipv4Addr::new(10, 0, 0, 4 + u8::try_from(i).unwrap()).into());
                }
            }
            Some(lb)
        }
    }
}

fn converge(
    observed: Option<LoadBalancer>,
    pools: &[PoolDemand],
) -> (Option<LoadBalancer>, LbPlan) {
    let p = plan(observed.as_ref(), pools, ProbeSettings::default());
    (azure_apply(&p.change, observed), p)
}

#[test]
fn creates_frontend_backend_rules_and_probes_per_pool() {
    let pools = [demand("pool-a", &["a1", "a2"]), demand("pool-b", &["b1"])];
    let (lb, p) = converge(None, &pools);
    let lb = lb.unwrap();
    assert!(matches!(p.change, LbChange::Put(_)));
    assert_eq!(
        p.ports,
        BTreeMap::from([
            ("a1".into(), 6000),
            ("a2".into(), 6001),
            ("b1".into(), 6000)
        ])
    );
    assert_eq!(lb.frontends.len(), 2);
    assert_eq!(lb.backends, ["pool-a", "pool-b"]);
    let r = &lb.rules[0];
    assert_eq!(
        (r.protocol, r.floating_ip, r.frontend_port, r.backend_port),
        (Protocol::Udp, true, 6000, 6000)
    );
    assert_eq!(lb.probes[0].path, "/gw/sgc-a1");
    assert_eq!(
        (
            lb.probes[0].port,
            lb.probes[0].interval_secs,
            lb.probes[0].threshold
        ),
        (8082, 5, 1)
    );

    // Steady state: nothing to write.
    let (_, again) = converge(Some(lb), &pools);
    assert_eq!(again.change, LbChange::None);
    assert_eq!(again.ports, p.ports);
}

#[test]
fn ports_are_sticky_and_freed_ports_are_reused_lowest_first() {
    let (lb, _) = converge(None, &[demand("pool", &["x", "y", "z"])]);
    // x (6000) goes away; y and z keep 6001 and 6002; a new config takes 6000.
    let (lb, p) = converge(lb, &[demand("pool", &["y", "z", "new"])]);
    assert_eq!(
        p.ports,
        BTreeMap::from([("new".into(), 6000), ("y".into(), 6001), ("z".into(), 6002)])
    );
    let lb = lb.unwrap();
    assert!(lb.rules.iter().all(|r| r.name != "x") && lb.probes.iter().all(|p| p.name != "x"));
}

#[test]
fn an_invalid_rule_is_replaced_and_names_match_case_insensitively() {
    let (lb, _) = converge(None, &[demand("pool", &["a", "b"])]);
    let mut lb = lb.unwrap();
    lb.rules[0].protocol = Protocol::Tcp; // a: broken by hand
    lb.rules[1].name = "B".into(); // b: Azure reports another case
    let p = plan(
        Some(&lb),
        &[demand("pool", &["a", "b"])],
        ProbeSettings::default(),
    );
    let LbChange::Put(fixed) = &p.change else {
        panic!("expected a write, got {:?}", p.change)
    };
    assert_eq!(
        fixed.rules.iter().find(|r| r.name == "a").unwrap().protocol,
        Protocol::Udp
    );
    assert_eq!(p.ports["b"], 6001, "valid rule keeps its port despite case");
}

#[test]
fn exhausting_the_port_range_names_the_configuration_left_out() {
    let uids: Vec<String> = (0..1001).map(|i| format!("c{i:04}")).collect();
    let refs: Vec<&str> = uids.iter().map(String::as_str).collect();
    let p = plan(None, &[demand("pool", &refs)], ProbeSettings::default());
    assert_eq!(p.ports.len(), 1000);
    assert_eq!(
        p.errors,
        [LbError::PortsExhausted {
            pool_uid: "pool".into(),
            lb_uid: "c1000".into()
        }]
    );
    assert!(p.errors[0].to_string().contains("c1000"));
}

#[test]
fn deletes_the_load_balancer_when_nothing_needs_it() {
    let (lb, _) = converge(None, &[demand("pool", &["a"])]);
    assert_eq!(
        plan(lb.as_ref(), &[], ProbeSettings::default()).change,
        LbChange::Delete
    );
    assert_eq!(
        plan(None, &[], ProbeSettings::default()).change,
        LbChange::None
    );
    // A pool with no configurations keeps nothing either.
    assert_eq!(
        plan(
            lb.as_ref(),
            &[demand("pool", &[])],
            ProbeSettings::default()
        )
        .change,
        LbChange::Delete
    );
}

#[test]
fn a_foreign_frontend_of_our_name_is_an_error_not_an_overwrite() {
    let lb = LoadBalancer {
        frontends: vec![Frontend {
            name: "pool".into(),
            private_ip: Some("fd00::4".parse().unwrap()),
            subnet_id: None,
        }],
        ..LoadBalancer::default()
    };
    let p = plan(
        Some(&lb),
        &[demand("pool", &["a"])],
        ProbeSettings::default(),
    );
    assert_eq!(
        p.errors,
        [LbError::UnexpectedFrontend {
            name: "pool".into(),
            pool_uid: "pool".into(),
        }]
    );
    assert!(p.ports.is_empty());
    // The foreign frontend is left exactly as it is: no write at all.
    assert_eq!(p.change, LbChange::None);
}

#[test]
fn backends_in_use_survive_until_nothing_references_them() {
    let lb = plan(None, &[demand("pool", &["a"])], ProbeSettings::default());
    let LbChange::Put(mut stored) = lb.change else {
        panic!("expected a put");
    };
    stored.backends_in_use.insert("pool".into());
    // Nobody wants the pool any more, but its backend is still referenced:
    // the rule and probe go, the backend and frontend stay.
    let p = plan(Some(&stored), &[], ProbeSettings::default());
    let LbChange::Put(next) = p.change else {
        panic!("expected a put, got {:?}", p.change);
    };
    assert!(next.rules.is_empty() && next.probes.is_empty());
    assert_eq!(next.backends, ["pool"]);
    assert_eq!(next.frontends.len(), 1);
    // Once unreferenced, the load balancer goes.
    let mut free = next.clone();
    free.backends_in_use.clear();
    assert_eq!(
        plan(Some(&free), &[], ProbeSettings::default()).change,
        LbChange::Delete
    );
}

#[test]
fn additions_keep_everything_observed_and_its_ports() {
    let LbChange::Put(stored) = plan(
        None,
        &[demand("pool", &["a", "b"])],
        ProbeSettings::default(),
    )
    .change
    else {
        panic!("expected a put");
    };
    // "a" leaves, "c" arrives: the additive plan keeps "a" and its port, and
    // "c" takes a port nobody holds.
    let p = plan_additions(
        Some(&stored),
        &[demand("pool", &["b", "c"])],
        ProbeSettings::default(),
    );
    let LbChange::Put(next) = p.change else {
        panic!("expected a put");
    };
    let names: Vec<&str> = next.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    let ports: BTreeSet<u16> = next.rules.iter().map(|r| r.frontend_port).collect();
    assert_eq!(ports.len(), 3, "ports stay unique: {next:?}");
    // Nothing to add: no write.
    assert_eq!(
        plan_additions(
            Some(&next),
            &[demand("pool", &["c"])],
            ProbeSettings::default()
        )
        .change,
        LbChange::None
    );
}

fn pools_strategy() -> impl Strategy<Value = Vec<(u8, Vec<u16>)>> {
    prop::collection::vec(
        (
            0u8..3,
            prop::collection::btree_set(0u16..200, 0..30).prop_map(|s| s.into_iter().collect()),
        ),
        1..4,
    )
}

fn to_demands(spec: &[(u8, Vec<u16>)]) -> Vec<PoolDemand> {
    let mut by_pool: BTreeMap<u8, Vec<String>> = BTreeMap::new();
    for (pool, uids) in spec {
        by_pool
            .entry(*pool)
            .or_default()
            .extend(uids.iter().map(|u| format!("p{pool}-c{u}")));
    }
    by_pool
        .into_iter()
        .map(|(pool, uids)| {
            let refs: Vec<&str> = uids.iter().map(String::as_str).collect();
            demand(&format!("pool-{pool}"), &refs)
        })
        .collect()
}

proptest! {
    #[test]
    fn ports_are_unique_per_pool_and_in_range(spec in pools_strategy()) {
        let (lb, p) = converge(None, &to_demands(&spec));
        let lb = lb.unwrap_or_default();
        let mut seen = BTreeSet::new();
        for r in &lb.rules {
            prop_assert!((PORT_MIN..PORT_END).contains(&r.frontend_port));
            prop_assert!(seen.insert((r.backend.clone(), r.frontend_port)), "duplicate port {} on {}", r.frontend_port, r.backend);
        }
        prop_assert_eq!(p.ports.len(), lb.rules.len());
    }

    #[test]
    fn ports_stay_stable_under_unrelated_changes(before in pools_strategy(), after in pools_strategy()) {
        let (lb, p1) = converge(None, &to_demands(&before));
        let (lb2, p2) = converge(lb, &to_demands(&after));
        for (uid, port) in &p2.ports {
            if let Some(old) = p1.ports.get(uid) {
                prop_assert_eq!(old, port, "{} moved", uid);
            }
        }
        // And a second pass writes nothing.
        let (_, p3) = converge(lb2, &to_demands(&after));
        prop_assert_eq!(p3.change, LbChange::None);
    }
}
