//! The `CloudProvider` over HTTP against the fake ARM server: a VMSS pool and
//! a VM pool provisioned, read back and torn down with the trait's calls,
//! and Azure's failure modes (412, 429, 5xx, applied-then-500, failed
//! operations) as the controller sees them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines
)]

use std::collections::BTreeMap;
use std::time::Duration;

use egress_azure::client::op;
use egress_azure::pool_id::vm_pool_uid;
use egress_azure::{ArmClient, ArmCloud, ArmCredential, ClientSettings, Placement};
use egress_core::FailureKind;
use egress_core::lb::{Frontend, LoadBalancer, Probe, Protocol, Rule};
use egress_core::model::PoolSelector;
use egress_core::names::vm_pool_public_ip_name;
use egress_core::traits::{CloudProvider, InstanceUpdate, PoolInfo, PoolKind, PrefixRef};
use egress_core::vmss::{IpConfigDemand, PublicKind, gateway_nodes, plan_nics, plan_vmss};
use egress_fakearm::{FakeArm, FakeArmOptions, Fault, FaultRule, VmPoolSeed, VmssPoolSeed};

const RG: &str = "mc-rg";

async fn fake() -> (FakeArm, ArmCloud, String) {
    let arm = FakeArm::start(FakeArmOptions {
        latency: Duration::from_millis(30),
        ..FakeArmOptions::default()
    })
    .await
    .unwrap();
    let subnets = arm
        .seed_vnet(RG, "vnet", "10.0.0.0/16", &[("gateway", "10.0.1.0/24")])
        .unwrap();
    let mut s = ClientSettings::new(arm.base_url(), arm.subscription());
    s.poll_interval = Duration::from_millis(10);
    s.max_poll_interval = Duration::from_millis(20);
    s.backoff_base = Duration::from_millis(10);
    s.backoff_max = Duration::from_millis(100);
    let client = ArmClient::new(s, ArmCredential::static_token("fake-token")).unwrap();
    let cloud = ArmCloud::new(
        client,
        Placement {
            location: "westus".into(),
            resource_group: RG.into(),
            lb_resource_group: RG.into(),
            lb_name: "kubeegressgateway-ilb".into(),
        },
    );
    (arm, cloud, subnets[0].clone())
}

fn tags(pool: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("aks-managed-poolName".into(), pool.into()),
        ("aks-managed-gatewayIPPrefixSize".into(), "31".into()),
    ])
}

fn ilb(uid: &str, subnet: &str, etag: Option<String>) -> LoadBalancer {
    LoadBalancer {
        etag,
        frontends: vec![Frontend {
            name: uid.into(),
            private_ip: None,
            subnet_id: Some(subnet.into()),
        }],
        backends: vec![uid.into()],
        rules: vec![Rule {
            name: "lb-uid-1".into(),
            frontend: uid.into(),
            backend: uid.into(),
            probe: "lb-uid-1".into(),
            protocol: Protocol::Udp,
            frontend_port: 6000,
            backend_port: 6000,
            floating_ip: true,
        }],
        probes: vec![Probe {
            name: "lb-uid-1".into(),
            port: 8082,
            path: "/gw/sgc-uid-1".into(),
            interval_secs: 5,
            threshold: 1,
        }],
        ..LoadBalancer::default()
    }
}

/// Plans the pool for `demands` with core's planner and writes it.
async fn write_vmss(cloud: &ArmCloud, pool: &PoolInfo, demands: &[IpConfigDemand]) {
    let PoolKind::Vmss {
        resource_group,
        name,
        model,
        etag,
        instances,
    } = &pool.kind
    else {
        panic!("VMSS pool");
    };
    let plan = plan_vmss(name, model, instances, demands, &pool.uid).unwrap();
    if let Some(nics) = &plan.model {
        cloud
            .put_vmss_model(resource_group, name, nics, etag.as_deref())
            .await
            .unwrap();
    }
    let updates: Vec<InstanceUpdate> = plan
        .instances
        .iter()
        .map(|(id, nics)| InstanceUpdate {
            id: id.clone(),
            nics: nics.clone(),
            etag: instances
                .iter()
                .find(|i| &i.id == id)
                .and_then(|i| i.etag.clone()),
        })
        .collect();
    cloud
        .update_vmss_instances(resource_group, name, &updates)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_vmss_pool_is_provisioned_read_back_and_torn_down() {
    let (arm, cloud, subnet) = fake().await;
    let seeded = arm
        .seed_vmss_pool(VmssPoolSeed {
            resource_group: RG.into(),
            name: "aks-gw-12345678-vmss".into(),
            instances: 2,
            tags: tags("gw"),
            subnet: "vnet/gateway".into(),
            ..VmssPoolSeed::default()
        })
        .unwrap();
    let selector = PoolSelector::NodePool { name: "GW".into() };
    let pool = cloud.get_pool(&selector).await.unwrap();
    assert_eq!(pool.uid, seeded.unique_id);
    assert_eq!(pool.prefix_len_tag, Some(31));
    assert_eq!(pool.node_count(), 2);

    assert_eq!(cloud.get_load_balancer().await.unwrap(), None);
    let lb = cloud
        .put_load_balancer(&ilb(&pool.uid, &subnet, None))
        .await
        .unwrap();
    assert!(lb.etag.is_some());
    let frontend_ip = lb.frontends[0]
        .private_ip
        .expect("frontend address assigned");

    let prefix = cloud
        .create_public_ip_prefix("egressgateway-u1", 31)
        .await
        .unwrap();
    assert_eq!(prefix.len, 31);
    assert!(prefix.prefix.is_some());
    let demands = [IpConfigDemand::want(
        "egressgateway-u1".into(),
        Some(prefix.id.clone()),
    )];
    write_vmss(&cloud, &pool, &demands).await;
    let m = cloud.client().metrics().snapshot();
    assert_eq!(m[op::VMSS_UPDATE].calls, 1, "one model write");
    let instance_writes = m.get(op::VMSS_UPDATE_INSTANCES).map_or(0, |s| s.calls)
        + m.get(op::VMSS_VM_UPDATE).map_or(0, |s| s.calls);
    assert!((1..=2).contains(&instance_writes), "{instance_writes}");

    // Read back: every node has its secondary address; the LB sees its pool used.
    let pool = cloud.get_pool(&selector).await.unwrap();
    let PoolKind::Vmss { instances, .. } = &pool.kind else {
        panic!()
    };
    let nodes = gateway_nodes(
        instances
            .iter()
            .map(|i| (i.computer_name.as_str(), i.nics.as_slice())),
        "egressgateway-u1",
    );
    assert_eq!(nodes.len(), 2, "{instances:?}");
    let lb = cloud.get_load_balancer().await.unwrap().unwrap();
    assert_eq!(lb.frontends[0].private_ip, Some(frontend_ip));
    assert!(lb.backends_in_use.contains(&pool.uid.to_ascii_lowercase()));
    let again = plan_vmss(
        "x",
        match &pool.kind {
            PoolKind::Vmss { model, .. } => model,
            PoolKind::Vm { .. } => panic!(),
        },
        instances,
        &demands,
        &pool.uid,
    )
    .unwrap();
    assert_eq!(again.writes(), 0, "what was written reads back as planned");

    // Tear down in Azure's order: ipConfigs, then prefix and LB.
    write_vmss(&cloud, &pool, &[]).await;
    cloud
        .delete_public_ip_prefix("egressgateway-u1")
        .await
        .unwrap();
    let lb = cloud.get_load_balancer().await.unwrap().unwrap();
    assert!(lb.backends_in_use.is_empty());
    cloud
        .delete_load_balancer(lb.etag.as_deref())
        .await
        .unwrap();
    cloud.delete_load_balancer(None).await.unwrap();
    let left = arm.leftovers();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_vm_pool_is_provisioned_read_back_and_torn_down() {
    let (arm, cloud, subnet) = fake().await;
    arm.seed_vm_pool(VmPoolSeed {
        resource_group: RG.into(),
        pool: "gwvms".into(),
        vms: 2,
        tags: tags("gwvms"),
        subnet: "vnet/gateway".into(),
    })
    .unwrap();
    let byo = arm.seed_prefix("byo-rg", "byo", 30).unwrap();
    let selector = PoolSelector::NodePool {
        name: "gwvms".into(),
    };
    let pool = cloud.get_pool(&selector).await.unwrap();
    assert_eq!(pool.uid, vm_pool_uid("gwvms"));
    let PoolKind::Vm { nics } = &pool.kind else {
        panic!("VM pool")
    };
    assert_eq!(nics.len(), 2);
    assert!(nics.iter().all(|n| n.etag.is_some()));
    let got = cloud
        .get_public_ip_prefix(&PrefixRef::Byo(
            egress_core::arm::ArmId::parse(&byo.id).unwrap(),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.len, 30);

    cloud
        .put_load_balancer(&ilb(&pool.uid, &subnet, None))
        .await
        .unwrap();
    for nic in nics {
        let ip = cloud
            .ensure_public_ip(
                &vm_pool_public_ip_name("egressgateway-v1", &nic.name),
                &byo.id,
            )
            .await
            .unwrap();
        let demands = [IpConfigDemand::want("egressgateway-v1".into(), Some(ip))];
        let planned = plan_nics(
            &nic.name,
            std::slice::from_ref(nic),
            &demands,
            &pool.uid,
            PublicKind::PublicIp,
        )
        .unwrap()
        .unwrap();
        cloud.put_nic(&planned[0]).await.unwrap();
    }
    // Creating a public IP that exists is a read, not a write.
    let before = cloud.client().metrics().calls(op::PIP_PUT);
    cloud
        .ensure_public_ip(
            &vm_pool_public_ip_name("egressgateway-v1", &nics[0].name),
            &byo.id,
        )
        .await
        .unwrap();
    assert_eq!(cloud.client().metrics().calls(op::PIP_PUT), before);

    let pool = cloud.get_pool(&selector).await.unwrap();
    let PoolKind::Vm { nics } = &pool.kind else {
        panic!()
    };
    let nodes = gateway_nodes(
        nics.iter()
            .map(|n| (n.name.as_str(), std::slice::from_ref(n))),
        "egressgateway-v1",
    );
    assert_eq!(nodes.len(), 2);
    let ips = cloud.list_public_ips().await.unwrap();
    assert_eq!(ips.len(), 2);
    assert!(
        ips.iter()
            .all(|p| p.attached_to.is_some() && p.prefix_id.is_some())
    );

    for nic in nics {
        let planned = plan_nics(
            &nic.name,
            std::slice::from_ref(nic),
            &[],
            &pool.uid,
            PublicKind::PublicIp,
        )
        .unwrap()
        .unwrap();
        cloud.put_nic(&planned[0]).await.unwrap();
    }
    for ip in cloud.list_public_ips().await.unwrap() {
        assert!(ip.attached_to.is_none());
        cloud.delete_public_ip(&ip.name).await.unwrap();
    }
    let lb = cloud.get_load_balancer().await.unwrap().unwrap();
    cloud
        .delete_load_balancer(lb.etag.as_deref())
        .await
        .unwrap();
    let left = arm.leftovers();
    assert!(
        left.load_balancers.is_empty()
            && left.public_ips.is_empty()
            && left.ip_configurations.is_empty(),
        "{left:?}"
    );
}

#[tokio::test]
async fn azures_failures_reach_the_controller_as_failure_kinds() {
    let (arm, cloud, subnet) = fake().await;
    arm.seed_vmss_pool(VmssPoolSeed {
        resource_group: RG.into(),
        name: "vmss".into(),
        instances: 1,
        tags: tags("gw"),
        subnet: "vnet/gateway".into(),
        ..VmssPoolSeed::default()
    })
    .unwrap();
    let pool = cloud
        .get_pool(&PoolSelector::NodePool { name: "gw".into() })
        .await
        .unwrap();

    // 429: the delay goes up, nothing retried here.
    arm.script_fault(FaultRule::new(
        op::LB_GET,
        Fault::throttle(Duration::from_secs(9)),
    ));
    let e = cloud.get_load_balancer().await.unwrap_err();
    assert_eq!(
        e.failure_kind(),
        Some(FailureKind::Throttled {
            retry_after_secs: Some(9)
        })
    );

    // 5xx: retried inside, the call succeeds.
    arm.script_fault(
        FaultRule::new(
            op::LB_GET,
            Fault::ServerError {
                status: 503,
                code: None,
            },
        )
        .times(2),
    );
    assert_eq!(cloud.get_load_balancer().await.unwrap(), None);

    // A failed operation keeps Azure's code.
    arm.script_fault(FaultRule::new(
        op::PREFIX_PUT,
        Fault::FailOperation {
            code: "PublicIpPrefixQuotaExceeded".into(),
            message: None,
        },
    ));
    let e = cloud
        .create_public_ip_prefix("egressgateway-q", 31)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("create_public_ip_prefix"));
    assert!(
        format!("{e:?}").contains("PublicIpPrefixQuotaExceeded"),
        "{e:?}"
    );

    // Applied, then 500: the retry's If-Match fails, core re-reads and finds it applied.
    let lb = cloud
        .put_load_balancer(&ilb(&pool.uid, &subnet, None))
        .await
        .unwrap();
    let mut changed = lb.clone();
    changed.probes[0].interval_secs = 10;
    arm.script_fault(FaultRule::new(op::LB_PUT, Fault::AppliedThenError));
    let e = cloud.put_load_balancer(&changed).await.unwrap_err();
    assert_eq!(e.failure_kind(), Some(FailureKind::Conflict), "{e}");
    let now = cloud.get_load_balancer().await.unwrap().unwrap();
    assert_eq!(now.probes[0].interval_secs, 10);

    // Another writer changed the model: the stale write is refused, not lost.
    let PoolKind::Vmss {
        resource_group,
        name,
        model,
        etag,
        ..
    } = &pool.kind
    else {
        panic!()
    };
    cloud
        .put_vmss_model(resource_group, name, model, etag.as_deref())
        .await
        .unwrap();
    let e = cloud
        .put_vmss_model(resource_group, name, model, etag.as_deref())
        .await
        .unwrap_err();
    assert_eq!(e.failure_kind(), Some(FailureKind::Conflict));
    let e = cloud
        .client()
        .patch_vmss_network(
            resource_group,
            name,
            &egress_azure::models::NetworkProfile::default(),
            etag.as_deref(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(412), "Azure's own 412: {e}");
}
