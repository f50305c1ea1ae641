//! The local Azure: a fake Resource Manager listening inside the cluster's
//! control-plane namespace (the nodes' default router), so the controller
//! reaches it from its pod as it would reach Azure, while the test process
//! holds its state.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use egress_fakearm::{FakeArm, FakeArmOptions, VmssPoolSeed};
use egress_testkit::netns::Netns;

use crate::E2eError;

/// The cluster's resource group, as AKS names its node resource group.
pub const RESOURCE_GROUP: &str = "mc-local";
/// The virtual network of the nodes and the load balancer's frontends.
pub const VNET: &str = "vnet";
/// The subnet of the internal load balancer's frontends.
pub const FRONTEND_SUBNET: &str = "ilb";
/// The gateway pool's name tag (`aks-managed-poolName`).
pub const POOL: &str = "gwpool";
/// The gateway pool's scale set, named as AKS names it.
pub const VMSS: &str = "aks-gwpool-12345678-vmss";
/// The static token the controller sends to the fake (it checks one is sent).
pub const TOKEN: &str = "local";
/// The control plane's bridge address, where the fake listens.
pub const LISTEN_ADDRESS: &str = "10.77.0.1";
/// Its tenant, as the cloud configuration names it.
pub const TENANT: &str = "00000000-0000-0000-0000-0000000000aa";

/// A scale-set instance's computer name as Azure makes it: the scale set's
/// name and the instance ID in six base-36 digits (`...vmss00000a`). AKS
/// names the node after it. The cluster needs the names before the fake
/// can start (it listens inside the cluster's network), so the stack
/// computes them and then checks them against the fake's instances.
pub fn computer_name(instance: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut n = instance;
    let mut out = String::new();
    for _ in 0..6 {
        out.insert(0, char::from(DIGITS[(n % 36) as usize]));
        n /= 36;
    }
    format!("{VMSS}{out}")
}

/// The fake ARM and what was seeded in it.
#[derive(Debug)]
pub struct LocalAzure {
    /// The server (state, counts, leftovers, faults).
    pub arm: Arc<FakeArm>,
    /// Where the cluster reaches it: `http://10.77.0.1:<port>`.
    pub endpoint: String,
    /// Seeded bring-your-own prefixes by name: their ARM IDs.
    pub byo_prefixes: BTreeMap<String, String>,
    /// The gateway pool's instances' computer names (AKS names the nodes
    /// after them), in instance order.
    pub computer_names: Vec<String>,
}

impl LocalAzure {
    /// Starts the fake inside `cp` and seeds a virtual network (gateways in
    /// `10.0.16.0/20`, frontends in `10.0.2.0/24`), one VMSS gateway pool of
    /// `instances` with `/prefix_len` prefixes, and the named BYO prefixes
    /// (of the pool's length, as a BYO prefix must be). Must run on a tokio runtime.
    pub fn start(
        cp: &Netns,
        instances: u32,
        prefix_len: u8,
        byo: &[&str],
        latency: Duration,
    ) -> Result<Self, E2eError> {
        let listen: SocketAddr = format!("{LISTEN_ADDRESS}:0")
            .parse()
            .map_err(|e| E2eError::Unexpected(format!("listen address: {e}")))?;
        let listener = cp
            .run(move || std::net::TcpListener::bind(listen))?
            .map_err(E2eError::io(format!(
                "listening on {listen} in the control plane"
            )))?;
        let arm = FakeArm::start_on(
            listener,
            FakeArmOptions {
                latency,
                ..FakeArmOptions::default()
            },
        )?;
        let port = arm.local_addr().port();
        arm.seed_vnet(
            RESOURCE_GROUP,
            VNET,
            "10.0.0.0/16",
            &[
                ("gateway", "10.0.16.0/20"),
                (FRONTEND_SUBNET, "10.0.2.0/24"),
            ],
        )?;
        arm.seed_vmss_pool(VmssPoolSeed {
            resource_group: RESOURCE_GROUP.into(),
            name: VMSS.into(),
            instances,
            tags: [
                (egress_core::names::TAG_POOL_NAME, POOL.to_string()),
                (egress_core::names::TAG_PREFIX_SIZE, prefix_len.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            subnet: format!("{VNET}/gateway"),
            ..VmssPoolSeed::default()
        })?;
        let mut byo_prefixes = BTreeMap::new();
        for name in byo {
            let p = arm.seed_prefix("byo", name, prefix_len)?;
            byo_prefixes.insert((*name).to_string(), p.id);
        }
        let state = arm.state();
        let computer_names = state["virtualMachineScaleSets"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|s| s["instances"].as_array().cloned().unwrap_or_default())
            .filter_map(|i| {
                i["properties"]["osProfile"]["computerName"]
                    .as_str()
                    .map(str::to_string)
            })
            .collect();
        Ok(Self {
            computer_names,
            arm: Arc::new(arm),
            endpoint: format!("http://{LISTEN_ADDRESS}:{port}"),
            byo_prefixes,
        })
    }

    /// Each gateway instance's primary private address (its NIC's primary
    /// ipConfig), by computer name.
    pub fn primary_addresses(&self) -> Vec<(String, String)> {
        let state = self.arm.state();
        let mut out = Vec::new();
        for set in state["virtualMachineScaleSets"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let names: BTreeMap<String, String> = set["instances"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    Some((
                        i["id"].as_str()?.to_lowercase(),
                        i["properties"]["osProfile"]["computerName"]
                            .as_str()?
                            .to_string(),
                    ))
                })
                .collect();
            for nic in set["networkInterfaces"].as_array().into_iter().flatten() {
                let Some(id) = nic["id"].as_str().map(str::to_lowercase) else {
                    continue;
                };
                let Some(name) = names
                    .iter()
                    .find(|(vm, _)| id.starts_with(&format!("{vm}/")))
                    .map(|(_, n)| n.clone())
                else {
                    continue;
                };
                let configs = nic["properties"]["ipConfigurations"].as_array();
                let primary = configs.and_then(|c| {
                    c.iter()
                        .find(|c| c["properties"]["primary"].as_bool() == Some(true))
                        .or_else(|| c.first())
                });
                if let Some(ip) = primary.and_then(|c| c["properties"]["privateIPAddress"].as_str())
                {
                    out.push((name, ip.to_string()));
                }
            }
        }
        out
    }

    /// The cloud configuration (`azure.json`) for the chart's values.
    pub fn cloud_config(&self) -> serde_json::Value {
        serde_json::json!({
            "cloud": "AzurePublicCloud",
            "tenantId": TENANT,
            "subscriptionId": self.arm.subscription(),
            "useManagedIdentityExtension": true,
            "resourceGroup": RESOURCE_GROUP,
            "location": "westus",
            "loadBalancerResourceGroup": RESOURCE_GROUP,
            "vnetName": VNET,
            "vnetResourceGroup": RESOURCE_GROUP,
            "subnetName": FRONTEND_SUBNET,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn computer_names_count_in_base_36() {
        assert_eq!(super::computer_name(0), "aks-gwpool-12345678-vmss000000");
        assert_eq!(super::computer_name(10), "aks-gwpool-12345678-vmss00000a");
        assert_eq!(super::computer_name(37), "aks-gwpool-12345678-vmss000011");
    }
}
