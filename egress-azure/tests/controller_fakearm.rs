//! The controller's reconcile pass through the ARM adapter over HTTP against
//! the fake ARM server: configurations of every kind on a VMSS pool and a VM
//! pool come up without a single call Azure refuses, a settled pass writes
//! nothing, a move between pools and a deletion leave nothing behind.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::collections::BTreeMap;
use std::time::Duration;

use egress_azure::{ArmClient, ArmCloud, ArmCredential, ClientSettings, Placement};
use egress_core::controller::{ControllerSettings, Outcome, PassReport, reconcile};
use egress_core::lb::ProbeSettings;
use egress_core::model::{GatewaySpec, VmssProfileSpec};
use egress_core::testing::InMemoryCluster;
use egress_fakearm::{FakeArm, FakeArmOptions, VmPoolSeed, VmssPoolSeed};

const RG: &str = "mc-rg";

struct Rig {
    arm: FakeArm,
    cloud: ArmCloud,
    cluster: InMemoryCluster,
    settings: ControllerSettings,
}

async fn rig() -> Rig {
    let arm = FakeArm::start(FakeArmOptions {
        latency: Duration::from_millis(20),
        ..FakeArmOptions::default()
    })
    .await
    .unwrap();
    let subnets = arm
        .seed_vnet(
            RG,
            "vnet",
            "10.0.0.0/16",
            &[("gateway", "10.0.1.0/24"), ("ilb", "10.0.2.0/24")],
        )
        .unwrap();
    let tags = |pool: &str| {
        BTreeMap::from([
            ("aks-managed-poolName".to_string(), pool.to_string()),
            (
                "aks-managed-gatewayIPPrefixSize".to_string(),
                "30".to_string(),
            ),
        ])
    };
    arm.seed_vmss_pool(VmssPoolSeed {
        resource_group: RG.into(),
        name: "aks-gw-12345678-vmss".into(),
        instances: 3,
        tags: tags("gw"),
        subnet: "vnet/gateway".into(),
        ..VmssPoolSeed::default()
    })
    .unwrap();
    arm.seed_vmss_pool(VmssPoolSeed {
        resource_group: RG.into(),
        name: "aks-gw2-12345678-vmss".into(),
        instances: 2,
        tags: tags("gw2"),
        subnet: "vnet/gateway".into(),
        ..VmssPoolSeed::default()
    })
    .unwrap();
    arm.seed_vm_pool(VmPoolSeed {
        resource_group: RG.into(),
        pool: "vmgw".into(),
        vms: 2,
        tags: tags("vmgw"),
        subnet: "vnet/gateway".into(),
    })
    .unwrap();
    let mut s = ClientSettings::new(arm.base_url(), arm.subscription());
    s.poll_interval = Duration::from_millis(10);
    s.max_poll_interval = Duration::from_millis(20);
    s.backoff_base = Duration::from_millis(10);
    s.backoff_max = Duration::from_millis(100);
    let client = ArmClient::new(s, ArmCredential::static_token("test")).unwrap();
    let cloud = ArmCloud::new(
        client,
        Placement {
            location: "westus".into(),
            resource_group: RG.into(),
            lb_resource_group: RG.into(),
            lb_name: "kubeegressgateway-ilb".into(),
        },
    );
    let settings = ControllerSettings {
        subscription_id: arm.subscription().to_string(),
        frontend_subnet_id: subnets[1].clone(),
        probe: ProbeSettings::default(),
    };
    Rig {
        arm,
        cloud,
        cluster: InMemoryCluster::default(),
        settings,
    }
}

impl Rig {
    /// One pass; no call may be refused by Azure's rules (a 400, 409 or 412).
    async fn pass(&self) -> PassReport {
        self.arm.reset_counts();
        let report = reconcile(&self.cloud, &self.cluster, &self.settings)
            .await
            .unwrap();
        let refused: Vec<String> = self
            .arm
            .requests()
            .into_iter()
            .filter(|r| matches!(r.status, 400 | 409 | 412))
            .map(|r| format!("{} {} -> {} {:?}", r.method, r.path, r.status, r.error_code))
            .collect();
        assert!(refused.is_empty(), "refused: {refused:#?}\n{report:#?}");
        report
    }

    async fn until_ready(&self, n: usize) -> usize {
        for passes in 1..=5 {
            let report = self.pass().await;
            let ready = report
                .outcomes
                .values()
                .filter(|o| **o == Outcome::Ready)
                .count();
            if ready == n {
                return passes;
            }
            assert!(
                !report
                    .outcomes
                    .values()
                    .any(|o| matches!(o, Outcome::Invalid(_))),
                "{report:#?}"
            );
        }
        panic!("not Ready within 5 passes");
    }
}

fn spec(pool: &str, public: bool, prefix: Option<String>) -> GatewaySpec {
    GatewaySpec {
        gateway_nodepool_name: Some(pool.into()),
        provision_public_ips: public,
        public_ip_prefix_id: prefix,
        ..GatewaySpec::default()
    }
}

#[tokio::test]
async fn every_kind_of_configuration_comes_up_settles_and_goes_away() {
    let r = rig().await;
    let byo = |name: &str| r.arm.seed_prefix("byo-rg", name, 30).unwrap().id;
    let (b1, b2) = (byo("b1"), byo("b2"));
    r.cluster
        .apply("ns", "vmss-private", spec("gw", false, None));
    r.cluster
        .apply("ns", "vmss-managed", spec("gw", true, None));
    r.cluster
        .apply("ns", "vmss-byo", spec("gw", true, Some(b1)));
    r.cluster.apply(
        "ns",
        "vmss-by-profile",
        GatewaySpec {
            gateway_nodepool_name: None,
            vmss_profile: Some(VmssProfileSpec {
                resource_group: Some(RG.into()),
                name: Some("aks-gw-12345678-vmss".into()),
                prefix_len: Some(30),
            }),
            ..spec("", false, None)
        },
    );
    r.cluster
        .apply("ns", "vm-byo", spec("vmgw", true, Some(b2)));
    r.cluster
        .apply("ns", "vm-private", spec("vmgw", false, None));
    assert_eq!(r.until_ready(6).await, 1, "one pass from empty");

    let stored = r.cluster.get("ns", "vmss-managed").unwrap().obj;
    assert_eq!(stored.nodes.len(), 3);
    let server = stored.status.server.unwrap();
    assert!(server.ip.to_string().starts_with("10.0.2."), "{server:?}");
    let managed = stored.status.egress.unwrap().to_string();
    assert!(managed.ends_with("/30"), "{managed}");
    assert_eq!(
        r.cluster.get("ns", "vm-private").unwrap().obj.nodes.len(),
        2
    );

    // Settled: no write, and a handful of reads.
    r.pass().await;
    let counts = r.arm.counts();
    assert_eq!(counts.writes, 0, "{counts:#?}");
    println!("settled pass with 6 configurations: {} reads", counts.reads);

    for name in [
        "vmss-private",
        "vmss-managed",
        "vmss-byo",
        "vmss-by-profile",
        "vm-byo",
        "vm-private",
    ] {
        r.cluster.delete("ns", name);
    }
    let report = r.pass().await;
    assert!(
        report.outcomes.values().all(|o| *o == Outcome::Deleted),
        "{report:#?}"
    );
    let left = r.arm.leftovers();
    assert!(left.is_empty(), "{left:#?}");
}

#[tokio::test]
async fn a_configuration_moves_between_pools_over_http() {
    let r = rig().await;
    r.cluster.apply("ns", "gw", spec("gw", true, None));
    r.until_ready(1).await;
    r.cluster.apply("ns", "gw", spec("gw2", true, None));
    let moving = r.pass().await;
    assert_eq!(
        moving.outcomes.values().next(),
        Some(&Outcome::Moving),
        "{moving:#?}"
    );
    r.until_ready(1).await;
    let stored = r.cluster.get("ns", "gw").unwrap().obj;
    assert_eq!(stored.nodes.len(), 2, "on the 2-instance pool now");
    r.cluster.delete("ns", "gw");
    r.pass().await;
    let left = r.arm.leftovers();
    assert!(left.is_empty(), "{left:#?}");
}
