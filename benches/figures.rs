//! Harness figures against the targets of DESIGN.md section 7:
//! `cargo bench -p egress-benches --bench figures`.
//!
//! Time figures are the median of many runs, printed with the target and the
//! ratio (below 1.0 meets the target). Count figures are exact.

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use egress_benches::{lb_demands, node_inputs, route_inputs};
use egress_core::controller::{ControllerSettings, reconcile};
use egress_core::lb::{LbChange, ProbeSettings, plan};
use egress_core::model::GatewaySpec;
use egress_core::node::{NodeState, desired, diff};
use egress_core::routes::{RouteMode, RoutePlan};
use egress_core::testing::{InMemoryCloud, InMemoryCluster};

fn median<F: FnMut()>(runs: usize, mut f: F) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

fn report(name: &str, took: Duration, target: Option<Duration>) {
    let us = took.as_secs_f64() * 1e6;
    match target {
        Some(t) => println!(
            "{name:<58} {us:>11.1} us   target < {:>9.1} us   ratio {:.3}",
            t.as_secs_f64() * 1e6,
            took.as_secs_f64() / t.as_secs_f64()
        ),
        None => println!("{name:<58} {us:>11.1} us"),
    }
}

fn main() {
    // `cargo test --benches` runs this in test mode; keep that quick.
    let bench = std::env::args().any(|a| a == "--bench");
    let runs = if bench { 101 } else { 3 };

    for (n, target) in [
        (20, Duration::from_micros(20)),
        (10_000, Duration::from_millis(5)),
    ] {
        for mode in [RouteMode::Gateway, RouteMode::Primary] {
            let inputs = route_inputs(n, mode);
            let took = median(runs, || {
                std::hint::black_box(RoutePlan::new(std::hint::black_box(&inputs)));
            });
            report(
                &format!("route plan, {n} exclude CIDRs, {mode:?}"),
                took,
                Some(target),
            );
        }
    }

    let demands = lb_demands(1_000, 4);
    report(
        "ILB plan, 1,000 configurations on 4 pools, from empty",
        median(runs, || {
            std::hint::black_box(plan(None, &demands, ProbeSettings::default()));
        }),
        None,
    );
    if let LbChange::Put(lb) = plan(None, &demands, ProbeSettings::default()).change {
        report(
            "ILB plan, 1,000 configurations, steady state",
            median(runs, || {
                std::hint::black_box(plan(Some(&lb), &demands, ProbeSettings::default()));
            }),
            None,
        );
    }

    // The daemon's planning share of "10,000 peers over 100 configs in < 1 s".
    let (configs, endpoints) = node_inputs(100, 10_000);
    let want = desired(&configs, &endpoints, 1420);
    report(
        "gateway node: desired + diff, 10,000 peers, 100 configs",
        median(runs, || {
            let want = desired(&configs, &endpoints, 1420);
            std::hint::black_box(diff(&want, &NodeState::default()));
        }),
        Some(Duration::from_secs(1)),
    );
    let ops = diff(&want, &NodeState::default()).len();
    let no_op = diff(&want, &want).len();
    println!("gateway node: operations from empty {ops}, on a no-op pass {no_op} (target 0)");

    // A whole controller pass over in-memory traits: 100 configurations.
    let took = median(if bench { 21 } else { 1 }, || {
        let cloud = InMemoryCloud::new("sub", "rg");
        cloud.add_vmss_pool("rg", "gw", Some("gwpool"), Some(30), 4);
        let cluster = InMemoryCluster::default();
        for i in 0..100 {
            cluster.apply(
                "ns",
                &format!("gw{i}"),
                GatewaySpec {
                    gateway_nodepool_name: Some("gwpool".into()),
                    ..GatewaySpec::default()
                },
            );
        }
        let settings = ControllerSettings {
            subscription_id: "sub".into(),
            ..ControllerSettings::default()
        };
        let _ = futures::executor::block_on(reconcile(&cloud, &cluster, &settings));
        std::hint::black_box(cloud.total_writes());
    });
    report(
        "controller pass, 100 private configurations, in memory",
        took,
        None,
    );
}
