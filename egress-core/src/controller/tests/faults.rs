//! Create and delete cycles with a failure injected at every cloud and
//! cluster call, before or after the call took effect: every cycle converges,
//! a surviving configuration keeps serving, and after every pass nothing of
//! a finished configuration is left anywhere.

use super::*;

const CLOUD_WRITES: &[&str] = &[
    "put_vmss_model",
    "update_vmss_instance",
    "put_nic",
    "put_load_balancer",
    "delete_load_balancer",
    "create_public_ip_prefix",
    "delete_public_ip_prefix",
    "ensure_public_ip",
    "delete_public_ip",
];
const CLOUD_READS: &[&str] = &[
    "get_pool",
    "get_load_balancer",
    "get_public_ip_prefix",
    "list_public_ip_prefixes",
    "list_public_ips",
    "get_public_ip",
];
const CLUSTER_OPS: &[&str] = &[
    "list_configs",
    "add_finalizer",
    "ensure_key_secret",
    "ensure_children",
    "write_status",
    "delete_children",
    "delete_key_secret",
    "remove_finalizer",
];
const KINDS: [FailureKind; 4] = [
    FailureKind::Transient,
    FailureKind::Throttled {
        retry_after_secs: Some(7),
    },
    FailureKind::Conflict,
    FailureKind::Permanent,
];
const CYCLED: [&str; 5] = [
    "vmss-managed",
    "vmss-byo",
    "vm-managed",
    "vm-byo",
    "vm-private",
];

struct World {
    cloud: InMemoryCloud,
    cluster: InMemoryCluster,
    specs: Vec<(&'static str, GatewaySpec)>,
}

fn mixed_world() -> World {
    let (cloud, cluster) = world(3);
    cloud.add_vm_pool("vmpool", Some(30), 2);
    let vmss_byo = cloud.add_byo_prefix("vmss-byo", 30);
    let vm_byo = cloud.add_byo_prefix("vm-byo", 30);
    let vm = |public: bool, prefix: Option<String>| GatewaySpec {
        gateway_nodepool_name: Some("vmpool".into()),
        ..pool_spec(public, prefix)
    };
    let specs = vec![
        ("vmss-managed", pool_spec(true, None)),
        ("vmss-byo", pool_spec(true, Some(vmss_byo))),
        ("vm-managed", vm(true, None)),
        ("vm-byo", vm(true, Some(vm_byo))),
        ("vm-private", vm(false, None)),
    ];
    cluster.apply("ns", "keep", pool_spec(false, None));
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 1);
    World {
        cloud,
        cluster,
        specs,
    }
}

fn inject(w: &World, op: &'static str, kind: FailureKind, after: bool) {
    if CLUSTER_OPS.contains(&op) {
        w.cluster.fail_next(op, &[kind, kind]);
    } else if after {
        w.cloud.fail_next_after_effect(op, &[kind, kind]);
    } else {
        w.cloud.fail_next(op, &[kind, kind]);
    }
}

/// A pass, tolerating a failed listing (it is one of the injected faults).
fn try_pass(w: &World, label: &str) -> Option<PassReport> {
    let report = block_on(reconcile(&w.cloud, &w.cluster, &settings())).ok();
    let refused = std::mem::take(&mut w.cloud.state().refusals);
    assert!(
        refused.is_empty(),
        "{label}: Azure refused: {refused:#?}\n{report:#?}"
    );
    report
}

/// The surviving configuration serves on every node after every pass.
fn keep_serves(w: &World, label: &str) {
    let keep = w.cluster.get("ns", "keep").unwrap();
    assert!(keep.obj.status.is_ready(), "{label}: keep lost its status");
    assert_eq!(keep.obj.nodes.len(), 3, "{label}");
    let left = w.cloud.leftovers();
    let uid = keep.children.unwrap().vm_uid;
    assert_eq!(
        left.iter()
            .filter(|l| l.ends_with(&format!("ipConfig egressgateway-{uid}")))
            .count(),
        4,
        "{label}: keep's ipConfigs on the model and 3 instances: {left:#?}"
    );
}

fn cycle(op: &'static str, kind: FailureKind, after: bool) {
    let label = format!("{op} {kind}{}", if after { " after effect" } else { "" });
    let w = mixed_world();
    for (name, spec) in &w.specs {
        w.cluster.apply("ns", name, spec.clone());
    }
    inject(&w, op, kind, after);
    let mut passes = 0;
    loop {
        passes += 1;
        assert!(passes <= 8, "{label}: creation does not converge");
        let report = try_pass(&w, &label);
        keep_serves(&w, &label);
        if report.is_some_and(|r| count(&r, &Outcome::Ready) == 6) {
            break;
        }
    }

    let uids: Vec<(&str, ChildUids)> = CYCLED
        .iter()
        .map(|n| (*n, w.cluster.get("ns", n).unwrap().children.unwrap()))
        .collect();
    for name in CYCLED {
        w.cluster.delete("ns", name);
    }
    inject(&w, op, kind, after);
    passes = 0;
    while w.cluster.state().configs.len() > 1 {
        passes += 1;
        assert!(passes <= 8, "{label}: deletion does not converge");
        try_pass(&w, &label);
        keep_serves(&w, &label);
        // An object is only gone once everything it made is gone.
        for (name, c) in &uids {
            if w.cluster.get("ns", name).is_none() {
                let left: Vec<String> = w
                    .cloud
                    .leftovers()
                    .into_iter()
                    .filter(|l| l.contains(&c.vm_uid) || l.contains(&c.lb_uid))
                    .collect();
                assert!(
                    left.is_empty(),
                    "{label}: {name} finalized while {left:?} remain"
                );
            }
        }
    }
    // Exactly the survivor is left: its ipConfigs and backend memberships on
    // the model and 3 instances, the load balancer with its rule and probe,
    // and its Kubernetes objects.
    let left = leftovers(&w.cloud, &w.cluster);
    assert!(
        !left
            .iter()
            .any(|l| l.contains("prefix") || l.contains("public IP") || l.contains("nic ")),
        "{label}: {left:#?}"
    );
    assert_eq!(left.len(), 4 + 4 + 3 + 3, "{label}: {left:#?}");
}

#[test]
fn every_call_failing_before_it_takes_effect() {
    for op in CLOUD_WRITES.iter().chain(CLOUD_READS).chain(CLUSTER_OPS) {
        for kind in KINDS {
            cycle(op, kind, false);
        }
    }
}

#[test]
fn every_write_failing_after_it_took_effect() {
    for op in CLOUD_WRITES {
        for kind in KINDS {
            cycle(op, kind, true);
        }
    }
}

#[test]
fn writes_racing_another_writer_meet_a_conflict_and_converge() {
    // A real ETag mismatch rather than an injected one: another writer
    // changes the VMSS model right before each of our model writes.
    let w = mixed_world();
    for (name, spec) in &w.specs {
        w.cluster.apply("ns", name, spec.clone());
    }
    w.cloud
        .race_model_write("put_vmss_model", "rg", "gwvmss", |m| {
            m[0].ip_configs.push(crate::vmss::IpConfig {
                name: "someone-else".into(),
                ..crate::vmss::IpConfig::default()
            });
        });
    let first = try_pass(&w, "race").unwrap();
    assert!(count(&first, &Outcome::Ready) < 6);
    let second = try_pass(&w, "race").unwrap();
    assert_eq!(count(&second, &Outcome::Ready), 6, "{second:?}");
    keep_serves(&w, "race");
}
