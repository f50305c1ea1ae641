use proptest::prelude::*;

use super::*;

const SUBNET: &str =
    "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/gw";
const BACKEND: &str = "pool-uid";

fn nics(extra: &[IpConfig]) -> Vec<Nic> {
    let mut cfgs = vec![IpConfig {
        name: "ipconfig1".into(),
        primary: true,
        subnet_id: Some(SUBNET.into()),
        private_ip: Some("10.0.1.4".parse().unwrap()),
        ..IpConfig::default()
    }];
    cfgs.extend_from_slice(extra);
    vec![Nic {
        name: "nic0".into(),
        primary: true,
        ip_configs: cfgs,
        etag: None,
    }]
}

fn demand(uid: &str, prefix: Option<&str>) -> IpConfigDemand {
    IpConfigDemand::want(format!("egressgateway-{uid}"), prefix.map(Into::into))
}

fn instances(n: usize) -> Vec<Instance> {
    (0..n)
        .map(|i| Instance {
            id: i.to_string(),
            computer_name: format!("gw00000{i}"),
            failed: false,
            etag: None,
            nics: nics(&[]),
        })
        .collect()
}

/// What Azure does: apply the planned NIC lists and assign missing addresses.
fn azure_apply(model: &mut Vec<Nic>, insts: &mut [Instance], plan: &VmssPlan) {
    if let Some(m) = &plan.model {
        model.clone_from(m);
    }
    for (id, nics) in &plan.instances {
        let inst = insts.iter_mut().find(|i| &i.id == id).unwrap();
        inst.nics.clone_from(nics);
        inst.failed = false;
        let base = 0x0A00_0000 + (id.parse::<u32>().unwrap() + 1) * 0x1_0000;
        for (k, c) in inst.nics[0].ip_configs.iter_mut().enumerate() {
            if c.private_ip.is_none() {
                c.private_ip =
                    Some(std::net::Ipv4Addr::from(base + u32::try_from(k).unwrap()).into());
            }
        }
    }
}

#[test]
fn many_configurations_cost_one_write_per_resource() {
    let mut model = nics(&[]);
    let mut insts = instances(4);
    let demands: Vec<_> = (0..100).map(|i| demand(&format!("u{i}"), None)).collect();
    let plan = plan_vmss("gw", &model, &insts, &demands, BACKEND).unwrap();
    assert_eq!(plan.writes(), 5, "model + 4 instances");
    let new = &plan.model.as_ref().unwrap()[0];
    assert_eq!(new.ip_configs.len(), 101);
    assert_eq!(new.ip_configs[1].subnet_id.as_deref(), Some(SUBNET));
    assert_eq!(new.ip_configs[0].backend_pools, [BACKEND]);
    azure_apply(&mut model, &mut insts, &plan);
    // Steady state: nothing to write.
    assert_eq!(
        plan_vmss("gw", &model, &insts, &demands, BACKEND)
            .unwrap()
            .writes(),
        0
    );
    let nodes = gateway_nodes(
        insts
            .iter()
            .map(|i| (i.computer_name.as_str(), i.nics.as_slice())),
        "egressgateway-u7",
    );
    assert_eq!(nodes.len(), 4);
    assert!(nodes.iter().all(|n| n.primary_ip != n.secondary_ip));
}

#[test]
fn removal_and_mismatch_are_repaired_and_backend_membership_follows() {
    let stale = IpConfig {
        name: "egressgateway-gone".into(),
        subnet_id: Some(SUBNET.into()),
        ..IpConfig::default()
    };
    let wrong_prefix = IpConfig {
        name: "egressgateway-keep".into(),
        subnet_id: Some(SUBNET.into()),
        public_ip_prefix: Some("old".into()),
        ..IpConfig::default()
    };
    let foreign = IpConfig {
        name: "user-config".into(),
        ..IpConfig::default()
    };
    let model = nics(&[stale, wrong_prefix, foreign]);
    let out = plan_nics(
        "m",
        &model,
        &[demand("keep", Some("new"))],
        BACKEND,
        PublicKind::Prefix,
    )
    .unwrap()
    .unwrap();
    let names: Vec<&str> = out[0].ip_configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["ipconfig1", "user-config", "egressgateway-keep"]);
    assert_eq!(
        out[0].ip_configs[2].public_ip_prefix.as_deref(),
        Some("new")
    );

    // Nothing wanted any more: managed configs go and the backend pool is left.
    let out2 = plan_nics("m", &out, &[], BACKEND, PublicKind::Prefix)
        .unwrap()
        .unwrap();
    assert_eq!(out2[0].ip_configs.len(), 2);
    assert!(out2[0].ip_configs[0].backend_pools.is_empty());
}

#[test]
fn a_held_ipconfig_is_kept_as_it_is_and_added_nowhere() {
    let serving = IpConfig {
        name: "egressgateway-held".into(),
        subnet_id: Some(SUBNET.into()),
        public_ip_prefix: Some("old-prefix".into()),
        ..IpConfig::default()
    };
    let with = nics(std::slice::from_ref(&serving));
    let without = nics(&[]);
    let hold = [IpConfigDemand::hold("egressgateway-held".into())];
    // Where it exists it stays, even though a want would rewrite its prefix.
    let out = plan_nics("m", &with, &hold, BACKEND, PublicKind::Prefix)
        .unwrap()
        .unwrap_or_else(|| with.clone());
    assert_eq!(out[0].ip_configs[1], serving);
    assert_eq!(out[0].ip_configs.len(), 2);
    // Where it does not exist, nothing is added.
    assert_eq!(
        plan_nics("m", &without, &hold, BACKEND, PublicKind::Prefix).unwrap(),
        None
    );
}

#[test]
fn failed_instances_are_forced_and_broken_ones_reported() {
    let mut insts = instances(2);
    let demands = [demand("a", None)];
    let model = plan_nics("m", &nics(&[]), &demands, BACKEND, PublicKind::Prefix)
        .unwrap()
        .unwrap();
    for i in &mut insts {
        i.nics.clone_from(&model);
    }
    insts[0].failed = true;
    insts[1].nics[0].primary = false;
    insts[1].nics.push(Nic {
        name: "second".into(),
        primary: false,
        ip_configs: vec![],
        etag: None,
    });
    let plan = plan_vmss("gw", &model, &insts, &demands, BACKEND).unwrap();
    assert_eq!(plan.instances.len(), 1, "failed instance re-sent");
    assert_eq!(
        plan.errors,
        [NicError::NoPrimaryNic {
            owner: "gw instance 1".into()
        }]
    );
}

#[test]
fn vm_pool_nics_take_a_public_ip_not_a_prefix() {
    let out = plan_nics(
        "nic",
        &nics(&[]),
        &[demand("a", Some("/pip/x"))],
        BACKEND,
        PublicKind::PublicIp,
    )
    .unwrap()
    .unwrap();
    let c = &out[0].ip_configs[1];
    assert_eq!(
        (c.public_ip.as_deref(), c.public_ip_prefix.as_deref()),
        (Some("/pip/x"), None)
    );
}

proptest! {
    /// Any sequence of demand sets converges in one pass, and the next pass is empty.
    #[test]
    fn plans_converge_in_one_pass(steps in prop::collection::vec(prop::collection::btree_set(0u8..12, 0..8), 1..5), public in any::<bool>()) {
        let mut model = nics(&[]);
        let mut insts = instances(3);
        for set in steps {
            let demands: Vec<_> = set.iter().map(|i| demand(&i.to_string(), public.then_some("prefix"))).collect();
            let plan = plan_vmss("gw", &model, &insts, &demands, BACKEND).unwrap();
            prop_assert!(plan.writes() <= 1 + insts.len());
            azure_apply(&mut model, &mut insts, &plan);
            let again = plan_vmss("gw", &model, &insts, &demands, BACKEND).unwrap();
            prop_assert_eq!(again.writes(), 0);
            let managed = model[0].ip_configs.iter().filter(|c| is_managed_name(&c.name)).count();
            prop_assert_eq!(managed, set.len());
            prop_assert_eq!(model[0].ip_configs[0].backend_pools.is_empty(), set.is_empty());
        }
    }
}
