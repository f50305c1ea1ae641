//! The controller under Azure's rules: one test per way the pass used to
//! break when the cloud refuses what Azure refuses.

use super::*;
use crate::lb::Frontend;
use crate::traits::PoolKind;

fn vmss_profile_spec(rg: &str, vmss: &str, len: i64) -> GatewaySpec {
    GatewaySpec {
        gateway_nodepool_name: None,
        vmss_profile: Some(VmssProfileSpec {
            resource_group: Some(rg.into()),
            name: Some(vmss.into()),
            prefix_len: Some(len),
        }),
        ..pool_spec(false, None)
    }
}

/// Names of managed ipConfigs on every model, instance and NIC of a pool.
fn ip_configs_on(cloud: &InMemoryCloud, key: &str) -> Vec<String> {
    let st = cloud.state();
    let Some((_, info)) = st.pools.get(key) else {
        return Vec::new();
    };
    let lists: Vec<&[crate::vmss::Nic]> = match &info.kind {
        PoolKind::Vmss {
            model, instances, ..
        } => std::iter::once(model.as_slice())
            .chain(instances.iter().map(|i| i.nics.as_slice()))
            .collect(),
        PoolKind::Vm { nics } => nics.iter().map(std::slice::from_ref).collect(),
    };
    lists
        .into_iter()
        .flat_map(|nics| nics.iter().flat_map(|n| &n.ip_configs))
        .filter(|c| crate::names::is_managed_name(&c.name) || !c.backend_pools.is_empty())
        .map(|c| {
            if c.backend_pools.is_empty() {
                c.name.clone()
            } else {
                format!("{} in {:?}", c.name, c.backend_pools)
            }
        })
        .collect()
}

#[test]
fn from_empty_one_pass_provisions_without_a_refused_call() {
    // The load balancer's backend pool exists before any ipConfig names it:
    // one pass, and `pass` checks that Azure refused nothing.
    let (cloud, cluster) = world(2);
    cluster.apply("ns", "gw", pool_spec(true, None));
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 1);
}

#[test]
fn moving_a_configuration_to_another_pool_cleans_the_old_one() {
    let (cloud, cluster) = world(2);
    cloud.add_vmss_pool("rg", "other", Some("otherpool"), Some(30), 3);
    cluster.apply("ns", "stay", pool_spec(false, None));
    cluster.apply("ns", "mover", pool_spec(true, None));
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 2);

    cluster.apply(
        "ns",
        "mover",
        GatewaySpec {
            gateway_nodepool_name: Some("otherpool".into()),
            ..pool_spec(true, None)
        },
    );
    let first = pass(&cloud, &cluster);
    let mover = first.outcomes.iter().find(|(id, _)| id.name == "mover");
    assert_eq!(mover.map(|(_, o)| o), Some(&Outcome::Moving), "{first:?}");
    assert_eq!(
        first.requeue(&Backoff::default(), &mut BTreeMap::new(), 0.0),
        Duration::ZERO,
        "a move asks for the next pass at once"
    );
    let second = pass(&cloud, &cluster);
    assert_eq!(count(&second, &Outcome::Ready), 2, "{second:?}");

    let uid = cluster.get("ns", "mover").unwrap().children.unwrap().vm_uid;
    assert!(
        ip_configs_on(&cloud, "vmss/rg/gwvmss")
            .iter()
            .all(|c| !c.contains(&uid)),
        "the old pool still holds the mover's ipConfigs"
    );
    assert_eq!(
        ip_configs_on(&cloud, "vmss/rg/other")
            .iter()
            .filter(|c| c.starts_with(&format!("egressgateway-{uid}")))
            .count(),
        4,
        "model and 3 instances on the new pool"
    );
    let status = cluster.get("ns", "mover").unwrap().obj;
    assert_eq!(status.nodes.len(), 3);
    let lb = cloud.state().lb.clone().unwrap();
    assert_eq!(lb.frontends.len(), 2, "each pool keeps its frontend");
    // Both pools' configurations keep a rule; the old pool keeps its own.
    assert_eq!(lb.rules.len(), 2);
    let before = cloud.total_writes();
    pass(&cloud, &cluster);
    assert_eq!(cloud.total_writes(), before, "settled");

    // The old pool's last configuration leaves: its backend pool goes only
    // after its primary ipConfigs left it, in the same pass.
    cluster.delete("ns", "stay");
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Deleted), 1);
    assert_eq!(
        ip_configs_on(&cloud, "vmss/rg/gwvmss"),
        Vec::<String>::new()
    );
    assert_eq!(cloud.state().lb.clone().unwrap().frontends.len(), 1);
}

#[test]
fn one_vmss_reached_by_pool_name_and_by_profile_is_one_pool() {
    let (cloud, cluster) = world(3);
    cluster.apply("ns", "by-name", pool_spec(false, None));
    cluster.apply("ns", "by-profile", vmss_profile_spec("rg", "gwvmss", 30));
    let report = pass(&cloud, &cluster);
    assert_eq!(count(&report, &Outcome::Ready), 2, "{report:?}");
    let lb = cloud.state().lb.clone().unwrap();
    assert_eq!(lb.frontends.len(), 1, "one frontend per pool: {lb:?}");
    let ports: Vec<u16> = lb.rules.iter().map(|r| r.frontend_port).collect();
    assert_eq!(ports, [6000, 6001]);
    let before = cloud.total_writes();
    for _ in 0..3 {
        pass(&cloud, &cluster);
    }
    assert_eq!(
        cloud.total_writes(),
        before,
        "no write war between selectors"
    );
    assert_eq!(ip_configs_on(&cloud, "vmss/rg/gwvmss").len(), 4 * 3);
}

#[test]
fn a_serving_configuration_edited_to_a_rejected_spec_keeps_serving_and_deletes_cleanly() {
    let (cloud, cluster) = world(2);
    let byo = cloud.add_byo_prefix("byo", 30);
    cluster.apply("ns", "gw", pool_spec(true, Some(byo.clone())));
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 1);
    let before = cloud.leftovers();
    let writes = cloud.total_writes();

    // A prefix in another subscription: only the controller can tell.
    let foreign = byo.replace(SUB, "11111111-2222-3333-4444-555555555555");
    cluster.apply("ns", "gw", pool_spec(true, Some(foreign)));
    let report = pass(&cloud, &cluster);
    let outcome = report.outcomes.values().next().unwrap();
    assert!(
        matches!(outcome, Outcome::Held(e) if matches!(e[0], Error::Subscription { .. })),
        "{outcome:?}"
    );
    assert_eq!(cloud.leftovers(), before, "still serving as before");
    assert_eq!(cloud.total_writes(), writes);
    assert!(cluster.get("ns", "gw").unwrap().obj.status.is_ready());
    assert!(
        report
            .requeue(&Backoff::default(), &mut BTreeMap::new(), 0.0)
            .eq(&Backoff::default().resync),
        "a rejected spec waits for an edit, not a retry loop"
    );

    cluster.delete("ns", "gw");
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Deleted), 1);
    assert_eq!(leftovers(&cloud, &cluster), Vec::<String>::new());
}

#[test]
fn a_permanent_error_reading_a_new_prefix_holds_a_serving_configuration() {
    let (cloud, cluster) = world(2);
    let first = cloud.add_byo_prefix("first", 30);
    let second = cloud.add_byo_prefix("second", 30);
    cluster.apply("ns", "gw", pool_spec(true, Some(first.clone())));
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 1);
    let before = cloud.leftovers();
    let status = cluster.get("ns", "gw").unwrap().obj.status;

    // Switched to a prefix the controller may not read (403).
    cluster.apply("ns", "gw", pool_spec(true, Some(second)));
    cloud.fail_next("get_public_ip_prefix", &[FailureKind::Permanent]);
    let report = pass(&cloud, &cluster);
    assert!(
        matches!(report.outcomes.values().next(), Some(Outcome::Held(_))),
        "{report:?}"
    );
    assert_eq!(cloud.leftovers(), before, "nothing torn down");
    assert_eq!(cluster.get("ns", "gw").unwrap().obj.status, status);
    // Readable again: the switch goes through.
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 1);
    assert!(
        cloud
            .state()
            .pools
            .values()
            .flat_map(|(_, p)| match &p.kind {
                PoolKind::Vmss { model, .. } => model.clone(),
                PoolKind::Vm { nics } => nics.clone(),
            })
            .flat_map(|n| n.ip_configs)
            .filter_map(|c| c.public_ip_prefix)
            .all(|p| p.ends_with("/second")),
    );
    let _ = first;
}

#[test]
fn two_configurations_sharing_a_byo_prefix_on_a_vm_pool_get_their_own_public_ips() {
    let cloud = InMemoryCloud::new(SUB, "rg");
    cloud.add_vm_pool("vmpool", Some(29), 2);
    let cluster = InMemoryCluster::default();
    let byo = cloud.add_byo_prefix("shared", 29);
    let spec = GatewaySpec {
        gateway_nodepool_name: Some("vmpool".into()),
        ..pool_spec(true, Some(byo))
    };
    cluster.apply("ns", "one", spec.clone());
    cluster.apply("ns", "two", spec);
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 2);
    assert_eq!(
        cloud.state().public_ips.len(),
        4,
        "2 configurations x 2 NICs"
    );

    cluster.delete("ns", "one");
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Deleted), 1);
    let two = cluster.get("ns", "two").unwrap().children.unwrap().vm_uid;
    let ips: Vec<String> = cloud
        .state()
        .public_ips
        .values()
        .map(|i| i.name.clone())
        .collect();
    assert_eq!(ips.len(), 2, "{ips:?}");
    assert!(ips.iter().all(|n| n.contains(&two)), "{ips:?}");
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 1);
}

#[test]
fn a_vm_pool_switched_from_byo_to_private_then_deleted_leaks_no_public_ip() {
    let cloud = InMemoryCloud::new(SUB, "rg");
    cloud.add_vm_pool("vmpool", Some(30), 3);
    let cluster = InMemoryCluster::default();
    let byo = cloud.add_byo_prefix("byo", 30);
    let vm = |public: bool, prefix: Option<String>| GatewaySpec {
        gateway_nodepool_name: Some("vmpool".into()),
        ..pool_spec(public, prefix)
    };
    cluster.apply("ns", "gw", vm(true, Some(byo)));
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 1);
    assert_eq!(cloud.state().public_ips.len(), 3);
    cluster.apply("ns", "gw", vm(false, None));
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 1);
    assert_eq!(cloud.state().public_ips.len(), 0, "detached IPs go at once");
    cluster.delete("ns", "gw");
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Deleted), 1);
    assert_eq!(leftovers(&cloud, &cluster), Vec::<String>::new());
}

#[test]
fn a_failed_prefix_create_writes_no_prefixless_ipconfig() {
    let (cloud, cluster) = world(2);
    cluster.apply("ns", "gw", pool_spec(true, None));
    cloud.fail_next("create_public_ip_prefix", &[FailureKind::Transient]);
    let report = pass(&cloud, &cluster);
    assert!(
        matches!(report.outcomes.values().next(), Some(Outcome::Failed(_))),
        "{report:?}"
    );
    assert_eq!(
        ip_configs_on(&cloud, "vmss/rg/gwvmss"),
        Vec::<String>::new()
    );
    assert_eq!(cloud.state().writes.get("put_vmss_model"), None);
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 1);
    let writes = cloud.state().writes.clone();
    assert_eq!(writes["put_vmss_model"], 1, "written once, with its prefix");
    assert_eq!(writes["update_vmss_instance"], 2);
}

#[test]
fn a_managed_prefix_outlives_the_ipconfigs_that_use_it() {
    let (cloud, cluster) = world(2);
    cluster.apply("ns", "gw", pool_spec(true, None));
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 1);
    // Switched to private mode, but one instance write fails: that instance
    // still draws from the managed prefix, which must stay.
    cluster.apply("ns", "gw", pool_spec(false, None));
    cloud.fail_next("update_vmss_instance", &[FailureKind::Transient]);
    pass(&cloud, &cluster);
    assert!(
        cloud.leftovers().iter().any(|l| l.starts_with("prefix")),
        "the prefix went while an instance used it"
    );
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 1);
    assert!(!cloud.leftovers().iter().any(|l| l.starts_with("prefix")));
}

#[test]
fn a_foreign_frontend_with_our_name_is_left_alone_and_blocks_only_its_pool() {
    let (cloud, cluster) = world(2);
    cloud.add_vmss_pool("rg", "other", Some("otherpool"), Some(30), 2);
    cluster.apply(
        "ns",
        "elsewhere",
        GatewaySpec {
            gateway_nodepool_name: Some("otherpool".into()),
            ..pool_spec(false, None)
        },
    );
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 1);
    // Someone put a frontend named like our pool's UID, not private IPv4.
    let foreign = Frontend {
        name: "uid-gwvmss".into(),
        private_ip: Some("fd00::7".parse().unwrap()),
        subnet_id: None,
    };
    cloud.external_lb_write({
        let foreign = foreign.clone();
        move |lb| lb.frontends.push(foreign)
    });
    cluster.apply("ns", "blocked", pool_spec(false, None));
    let report = pass(&cloud, &cluster);
    let blocked = report
        .outcomes
        .iter()
        .find(|(id, _)| id.name == "blocked")
        .unwrap()
        .1;
    assert!(
        matches!(blocked, Outcome::Failed(e) if matches!(e[0], Error::LoadBalancer(_))),
        "{blocked:?}"
    );
    let elsewhere = report
        .outcomes
        .iter()
        .find(|(id, _)| id.name == "elsewhere")
        .unwrap()
        .1;
    assert_eq!(elsewhere, &Outcome::Ready);
    let lb = cloud.state().lb.clone().unwrap();
    assert!(
        lb.frontends.contains(&foreign),
        "the foreign frontend was overwritten: {lb:?}"
    );
    assert_eq!(
        ip_configs_on(&cloud, "vmss/rg/gwvmss"),
        Vec::<String>::new()
    );
}

#[test]
fn an_etag_conflict_loses_no_other_writers_change() {
    let (cloud, cluster) = world(2);
    cluster.apply("ns", "gw", pool_spec(false, None));
    // AKS adds an ipConfig of its own to the model between our read and write.
    cloud.race_model_write("put_vmss_model", "rg", "gwvmss", |model| {
        model[0].ip_configs.push(crate::vmss::IpConfig {
            name: "aks-extra".into(),
            ..crate::vmss::IpConfig::default()
        });
    });
    let report = pass(&cloud, &cluster);
    assert!(
        matches!(report.outcomes.values().next(), Some(Outcome::Failed(e)) if e[0].failure_kind() == Some(FailureKind::Conflict)),
        "{report:?}"
    );
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 1);
    let st = cloud.state();
    let PoolKind::Vmss { model, .. } = &st.pools["vmss/rg/gwvmss"].1.kind else {
        panic!("not a VMSS");
    };
    let names: Vec<&str> = model[0]
        .ip_configs
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert!(names.contains(&"aks-extra"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("egressgateway-")));
    drop(st);
    // A racing load-balancer write makes ours fail with a conflict; the next
    // pass plans again from what the other writer left. (The load balancer is
    // dedicated to the gateway, as upstream's is: what it holds is planned.)
    cluster.apply("ns", "second", pool_spec(false, None));
    cloud.race_lb_write("put_load_balancer", |lb| {
        for p in &mut lb.probes {
            p.interval_secs = 15;
        }
    });
    let raced = pass(&cloud, &cluster);
    assert!(
        raced.outcomes.values().any(|o| matches!(o, Outcome::Failed(e) if e[0].failure_kind() == Some(FailureKind::Conflict))),
        "{raced:?}"
    );
    assert_eq!(count(&pass(&cloud, &cluster), &Outcome::Ready), 2);
    assert!(
        cloud
            .state()
            .lb
            .clone()
            .unwrap()
            .probes
            .iter()
            .all(|p| p.interval_secs == 5)
    );
}
