#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::executor::block_on;

use super::*;
use crate::backoff::Backoff;
use crate::model::{EgressAddresses, GatewaySpec, VmssProfileSpec};
use crate::routes::RouteMode;
use crate::testing::{InMemoryCloud, InMemoryCluster};

mod azure_rules;
mod faults;

const SUB: &str = "00000000-0000-0000-0000-00000000aaaa";

fn settings() -> ControllerSettings {
    ControllerSettings {
        subscription_id: SUB.into(),
        frontend_subnet_id: format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/vnet/subnets/ilb"
        ),
        probe: ProbeSettings::default(),
    }
}

fn world(instances: usize) -> (InMemoryCloud, InMemoryCluster) {
    let cloud = InMemoryCloud::new(SUB, "rg");
    cloud.add_vmss_pool("rg", "gwvmss", Some("gwpool"), Some(30), instances);
    (cloud, InMemoryCluster::default())
}

fn pool_spec(public: bool, prefix: Option<String>) -> GatewaySpec {
    GatewaySpec {
        gateway_nodepool_name: Some("gwpool".into()),
        provision_public_ips: public,
        public_ip_prefix_id: prefix,
        default_route: RouteMode::Gateway,
        exclude_cidrs: vec!["10.0.0.0/8".into()],
        ..GatewaySpec::default()
    }
}

/// Public mode on the test VMSS with a /31 prefix (2 addresses).
fn vmss_slash31_spec() -> GatewaySpec {
    GatewaySpec {
        gateway_nodepool_name: None,
        vmss_profile: Some(VmssProfileSpec {
            resource_group: Some("rg".into()),
            name: Some("gwvmss".into()),
            prefix_len: Some(31),
        }),
        ..pool_spec(true, None)
    }
}

/// One pass. The controller never makes a call that Azure refuses: every
/// pass checks it.
fn pass(cloud: &InMemoryCloud, cluster: &InMemoryCluster) -> PassReport {
    let report = block_on(reconcile(cloud, cluster, &settings())).expect("list_configs works");
    let refused = std::mem::take(&mut cloud.state().refusals);
    assert!(
        refused.is_empty(),
        "Azure refused: {refused:#?}\n{report:#?}"
    );
    report
}

/// Everything left of the configurations in the cloud and the cluster:
/// cloud objects, children and key Secrets, and configurations.
fn leftovers(cloud: &InMemoryCloud, cluster: &InMemoryCluster) -> Vec<String> {
    let mut out = cloud.leftovers();
    for (key, c) in &cluster.state().configs {
        out.push(format!("configuration {key}"));
        if c.children.is_some() {
            out.push(format!("children of {key}"));
        }
        if c.key.is_some() {
            out.push(format!("key Secret of {key}"));
        }
    }
    out
}

fn count(report: &PassReport, want: &Outcome) -> usize {
    report.outcomes.values().filter(|o| *o == want).count()
}

#[test]
fn a_hundred_configurations_on_one_pool_converge_in_few_writes() {
    for (label, public) in [("private mode", false), ("bring-your-own prefixes", true)] {
        let (cloud, cluster) = world(4);
        for i in 0..100 {
            let prefix = public.then(|| cloud.add_byo_prefix(&format!("byo{i}"), 30));
            cluster.apply("ns", &format!("gw{i}"), pool_spec(public, prefix));
        }
        let report = pass(&cloud, &cluster);
        let writes = cloud.total_writes();
        println!(
            "100 configurations, {label}, one 4-instance pool: {writes} cloud writes {:?} (target <= 10; upstream ~600)",
            cloud.state().writes
        );
        assert_eq!(count(&report, &Outcome::Ready), 100, "{report:?}");
        assert!(writes <= 10, "{writes} writes");

        let stored = cluster.get("ns", "gw42").unwrap();
        let server = stored.obj.status.server.unwrap();
        assert!((6000..7000).contains(&server.port));
        assert_eq!(stored.obj.nodes.len(), 4);
        match stored.obj.status.egress.unwrap() {
            EgressAddresses::Private(ips) => assert_eq!(ips.len(), 4),
            EgressAddresses::Prefix(p) => assert_eq!(p.prefix_len(), 30),
        }

        // Steady state: no cloud writes and no status writes.
        let cluster_writes = cluster.total_writes();
        let again = pass(&cloud, &cluster);
        assert_eq!(count(&again, &Outcome::Ready), 100);
        assert_eq!(
            cloud.total_writes(),
            writes,
            "second pass wrote to the cloud"
        );
        assert_eq!(
            cluster.total_writes(),
            cluster_writes,
            "second pass wrote status"
        );
        println!("second pass, {label}: 0 cloud writes, 0 cluster writes");
    }
}

#[test]
fn managed_prefixes_add_exactly_one_create_each() {
    let (cloud, cluster) = world(4);
    for i in 0..100 {
        cluster.apply("ns", &format!("gw{i}"), pool_spec(true, None));
    }
    let report = pass(&cloud, &cluster);
    assert_eq!(count(&report, &Outcome::Ready), 100);
    let writes = cloud.state().writes.clone();
    println!(
        "100 configurations, managed prefixes: {} cloud writes {writes:?}",
        cloud.total_writes()
    );
    assert_eq!(writes["create_public_ip_prefix"], 100);
    assert!(cloud.total_writes() - 100 <= 10);
    let before = cloud.total_writes();
    pass(&cloud, &cluster);
    assert_eq!(cloud.total_writes(), before);
}

#[test]
fn deleting_everything_leaves_nothing_behind() {
    let (cloud, cluster) = world(2);
    for i in 0..5 {
        cluster.apply("ns", &format!("gw{i}"), pool_spec(true, None));
    }
    pass(&cloud, &cluster);
    assert!(!cloud.leftovers().is_empty());
    for i in 0..5 {
        cluster.delete("ns", &format!("gw{i}"));
    }
    let report = pass(&cloud, &cluster);
    assert_eq!(count(&report, &Outcome::Deleted), 5, "{report:?}");
    assert_eq!(cloud.leftovers(), Vec::<String>::new());
    assert!(cluster.state().configs.is_empty());
}

#[test]
fn a_failed_read_never_tears_anything_down() {
    for kind in [FailureKind::Transient, FailureKind::Permanent] {
        let (cloud, cluster) = world(2);
        let byo = cloud.add_byo_prefix("byo", 30);
        cluster.apply("ns", "a", pool_spec(true, Some(byo)));
        cluster.apply("ns", "b", pool_spec(false, None));
        pass(&cloud, &cluster);
        let writes = cloud.total_writes();
        let before = cloud.leftovers();
        cloud.fail_next("get_pool", &[kind]);
        let report = pass(&cloud, &cluster);
        assert!(
            report
                .outcomes
                .values()
                .all(|o| matches!(o, Outcome::Failed(_))),
            "{kind}: {report:?}"
        );
        assert_eq!(
            cloud.total_writes(),
            writes,
            "{kind}: a failed read must not lead to writes"
        );
        assert_eq!(cloud.leftovers(), before);
        assert!(cluster.get("ns", "a").unwrap().obj.status.is_ready());
        assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 2);
    }
}

#[test]
fn invalid_specs_are_reported_and_touch_nothing() {
    let (cloud, cluster) = world(4);
    // /31 holds 2 addresses, the pool has 4 nodes.
    let spec = vmss_slash31_spec();
    cluster.apply("ns", "small", spec);
    cluster.apply("ns", "nopool", GatewaySpec::default());
    let report = pass(&cloud, &cluster);
    assert!(
        report
            .outcomes
            .values()
            .all(|o| matches!(o, Outcome::Invalid(_))),
        "{report:?}"
    );
    assert_eq!(cloud.state().writes.get("create_public_ip_prefix"), None);
    assert!(
        cluster
            .state()
            .events
            .iter()
            .any(|(_, m)| m.contains("exactly one of"))
    );
    let text = format!("{report:?}");
    assert!(text.contains("PrefixCapacity"), "{text}");
}

#[test]
fn requeue_backs_off_on_failure_and_resyncs_when_healthy() {
    let (cloud, cluster) = world(2);
    cluster.apply("ns", "a", pool_spec(false, None));
    let backoff = Backoff {
        jitter: 0.0,
        ..Backoff::default()
    };
    let mut attempts = BTreeMap::new();
    cloud.fail_always(
        "put_load_balancer",
        Some(FailureKind::Throttled {
            retry_after_secs: Some(30),
        }),
    );
    let r1 = pass(&cloud, &cluster);
    assert_eq!(
        r1.requeue(&backoff, &mut attempts, 0.0),
        Duration::from_secs(30),
        "Retry-After wins over 1 s"
    );
    cloud.fail_always("put_load_balancer", Some(FailureKind::Transient));
    for expected in [2, 4, 8] {
        let r = pass(&cloud, &cluster);
        assert_eq!(
            r.requeue(&backoff, &mut attempts, 0.0),
            Duration::from_secs(expected)
        );
    }
    cloud.fail_always("put_load_balancer", None);
    let ok = pass(&cloud, &cluster);
    assert_eq!(ok.requeue(&backoff, &mut attempts, 0.0), backoff.resync);
    assert!(attempts.is_empty());
}

#[test]
fn a_serving_gateway_survives_its_pool_outgrowing_the_prefix() {
    let (cloud, cluster) = world(2);
    let spec = vmss_slash31_spec();
    cluster.apply("ns", "gw", spec);
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 1);
    let lb_rules = cloud.state().lb.as_ref().unwrap().rules.len();

    cloud.scale_vmss("rg", "gwvmss", 4);
    let report = pass(&cloud, &cluster);
    let outcome = report.outcomes.values().next().unwrap();
    assert!(
        matches!(outcome, Outcome::Held(e) if matches!(e[0], Error::PrefixCapacity { nodes: 4, .. })),
        "{outcome:?}"
    );
    // Still served: its rule, its prefix and its last status stay.
    assert_eq!(cloud.state().lb.as_ref().unwrap().rules.len(), lb_rules);
    assert!(cloud.leftovers().iter().any(|l| l.starts_with("prefix")));
    assert!(cluster.get("ns", "gw").unwrap().obj.status.is_ready());
}

#[test]
fn vm_pools_get_one_public_ip_per_nic_and_leave_nothing_on_delete() {
    let cloud = InMemoryCloud::new(SUB, "rg");
    cloud.add_vm_pool("vmpool", Some(30), 3);
    let cluster = InMemoryCluster::default();
    let byo = cloud.add_byo_prefix("byo", 30);
    let vm_spec = |public: bool, prefix: Option<String>| GatewaySpec {
        gateway_nodepool_name: Some("vmpool".into()),
        ..pool_spec(public, prefix)
    };
    cluster.apply("ns", "private", vm_spec(false, None));
    cluster.apply("ns", "managed", vm_spec(true, None));
    cluster.apply("ns", "byo", vm_spec(true, Some(byo)));
    let report = pass(&cloud, &cluster);
    assert_eq!(count(&report, &Outcome::Ready), 3, "{report:?}");
    let writes = cloud.state().writes.clone();
    println!("3 configurations on a 3-NIC VM pool: {writes:?}");
    assert_eq!(
        writes["put_nic"], 3,
        "one write per NIC for all configurations"
    );
    assert_eq!(
        writes["ensure_public_ip"], 6,
        "one public IP per NIC per public configuration"
    );
    assert_eq!(cluster.get("ns", "private").unwrap().obj.nodes.len(), 3);
    let before = cloud.total_writes();
    pass(&cloud, &cluster);
    assert_eq!(cloud.total_writes(), before, "steady state");

    for n in ["private", "managed", "byo"] {
        cluster.delete("ns", n);
    }
    let report = pass(&cloud, &cluster);
    assert_eq!(count(&report, &Outcome::Deleted), 3, "{report:?}");
    assert_eq!(cloud.leftovers(), Vec::<String>::new());
}
