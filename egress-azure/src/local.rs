//! The ARM adapter wired to a fake ARM server on loopback: the real HTTP
//! path (models, `ETag`s, long-running operations, retries) against a server
//! that enforces Azure's rules. For tests, benches and the local demo.

use std::time::Duration;

use egress_fakearm::{FakeArm, FakeArmOptions, VmPoolSeed, VmssPoolSeed};

use crate::{ArmClient, ArmCloud, ArmCredential, ClientSettings, Error, Placement};

/// The cluster's resource group in the local cloud.
pub const RESOURCE_GROUP: &str = "mc-local";

/// A fake ARM server and the adapter talking to it.
#[derive(Debug)]
pub struct LocalCloud {
    /// The server: seed it, script faults, read its counts and leftovers.
    pub arm: FakeArm,
    /// The adapter, as the controller uses it.
    pub cloud: ArmCloud,
    /// The subnet of gateway nodes' NICs (ARM ID).
    pub gateway_subnet: String,
    /// The subnet of load-balancer frontends (ARM ID).
    pub frontend_subnet: String,
}

impl LocalCloud {
    /// Starts a fake ARM whose writes take `latency`, with a virtual network
    /// (`10.0.0.0/16`: gateways in `10.0.16.0/20`, room for 4,000 secondary
    /// addresses; frontends in `10.0.2.0/24`).
    pub async fn start(latency: Duration) -> Result<Self, Error> {
        let arm = FakeArm::start(FakeArmOptions {
            latency,
            ..FakeArmOptions::default()
        })
        .await
        .map_err(Error::FakeArm)?;
        let subnets = arm
            .seed_vnet(
                RESOURCE_GROUP,
                "vnet",
                "10.0.0.0/16",
                &[("gateway", "10.0.16.0/20"), ("ilb", "10.0.2.0/24")],
            )
            .map_err(Error::FakeArm)?;
        let [gateway_subnet, frontend_subnet] =
            <[String; 2]>::try_from(subnets).map_err(|s| Error::Unexpected {
                resource: "fake ARM virtual network".into(),
                problem: format!("expected 2 subnets, got {}", s.len()),
            })?;
        let mut settings = ClientSettings::new(arm.base_url(), arm.subscription());
        // Loopback answers at once: poll often so latency figures measure
        // the operations, not the polling.
        settings.poll_interval = Duration::from_millis(100);
        settings.max_poll_interval = Duration::from_millis(500);
        settings.backoff_base = Duration::from_millis(50);
        settings.backoff_max = Duration::from_millis(500);
        let client = ArmClient::new(settings, ArmCredential::static_token("local"))?;
        let cloud = ArmCloud::new(
            client,
            Placement {
                location: "westus".into(),
                resource_group: RESOURCE_GROUP.into(),
                lb_resource_group: RESOURCE_GROUP.into(),
                lb_name: egress_core::names::DEFAULT_ILB_NAME.into(),
            },
        );
        Ok(Self {
            arm,
            cloud,
            gateway_subnet,
            frontend_subnet,
        })
    }

    /// Adds a VMSS gateway pool `name` of `instances`, tagged with the pool
    /// name `pool` and a prefix length; returns its unique ID.
    pub fn add_vmss_pool(
        &self,
        name: &str,
        pool: &str,
        prefix_len: u8,
        instances: u32,
    ) -> Result<String, Error> {
        self.arm
            .seed_vmss_pool(VmssPoolSeed {
                resource_group: RESOURCE_GROUP.into(),
                name: name.into(),
                instances,
                tags: pool_tags(pool, prefix_len),
                subnet: "vnet/gateway".into(),
                ..VmssPoolSeed::default()
            })
            .map(|s| s.unique_id)
            .map_err(Error::FakeArm)
    }

    /// Adds a VM gateway pool `pool` of `vms` machines with one NIC each.
    pub fn add_vm_pool(&self, pool: &str, prefix_len: u8, vms: u32) -> Result<(), Error> {
        self.arm
            .seed_vm_pool(VmPoolSeed {
                resource_group: RESOURCE_GROUP.into(),
                pool: pool.into(),
                vms,
                tags: pool_tags(pool, prefix_len),
                subnet: "vnet/gateway".into(),
            })
            .map(|_| ())
            .map_err(Error::FakeArm)
    }

    /// Adds a bring-your-own prefix in resource group `byo`; returns its ID.
    pub fn add_byo_prefix(&self, name: &str, len: u8) -> Result<String, Error> {
        self.arm
            .seed_prefix("byo", name, len)
            .map(|p| p.id)
            .map_err(Error::FakeArm)
    }
}

fn pool_tags(pool: &str, prefix_len: u8) -> std::collections::BTreeMap<String, String> {
    [
        (egress_core::names::TAG_POOL_NAME, pool.to_string()),
        (egress_core::names::TAG_PREFIX_SIZE, prefix_len.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
