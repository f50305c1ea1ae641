//! Seeds: the Azure objects a test, bench or demo starts from (virtual networks and subnets,
//! VMSS gateway pools, virtual-machine pools with their NICs, BYO public IP prefixes). The same
//! JSON is accepted by `POST /_admin/seed` and `fake-arm --seed file.json`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::alloc::{Allocator, assign_private};
use crate::error::FakeArmError;
use crate::ids::{child_id, key, resource_id};
use crate::providers::realize::realize;
use crate::providers::vmss::new_instance_body;
use crate::refs;
use crate::state::{Entry, Instance, Provider, State, Vmss};

/// A whole seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Seed {
    /// Subscription of everything seeded; the fake's default when absent.
    #[serde(default)]
    pub subscription: Option<String>,
    /// Empty resource groups to create (groups holding seeded objects are created anyway).
    #[serde(default)]
    pub resource_groups: Vec<String>,
    /// Virtual networks with subnets.
    #[serde(default)]
    pub virtual_networks: Vec<VnetSeed>,
    /// VMSS gateway pools.
    #[serde(default)]
    pub vmss_pools: Vec<VmssPoolSeed>,
    /// Virtual-machine pools.
    #[serde(default)]
    pub vm_pools: Vec<VmPoolSeed>,
    /// BYO public IP prefixes.
    #[serde(default)]
    pub public_ip_prefixes: Vec<PrefixSeed>,
}

/// A virtual network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VnetSeed {
    /// Resource group.
    pub resource_group: String,
    /// Name.
    pub name: String,
    /// Address space CIDRs.
    pub address_space: Vec<String>,
    /// Subnets.
    pub subnets: Vec<SubnetSeed>,
}

/// A subnet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubnetSeed {
    /// Name.
    pub name: String,
    /// CIDR.
    pub address_prefix: String,
}

/// A VMSS gateway pool (an AKS node pool's scale set).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmssPoolSeed {
    /// Resource group.
    pub resource_group: String,
    /// Scale-set name, e.g. `aks-gwpool-12345678-vmss`.
    pub name: String,
    /// Instance count.
    pub instances: u32,
    /// Tags, e.g. `aks-managed-poolName` and `aks-managed-gatewayIPPrefixSize`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The scale set's `uniqueId`; generated when absent.
    #[serde(default)]
    pub unique_id: Option<String>,
    /// Subnet of the primary NIC: an id, or `vnet/subnet` in the pool's resource group.
    pub subnet: String,
    /// Primary NIC configuration name; the scale-set name when absent.
    #[serde(default)]
    pub nic_config_name: Option<String>,
    /// Primary ipConfig name; `ipconfig1` when absent.
    #[serde(default)]
    pub ip_config_name: Option<String>,
    /// Upgrade policy mode; `Manual` (as AKS) when absent.
    #[serde(default)]
    pub upgrade_mode: Option<String>,
}

/// A virtual-machine pool: VMs, each with one pre-created NIC, as AKS `VirtualMachines` pools.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VmPoolSeed {
    /// Resource group.
    pub resource_group: String,
    /// Pool name (the `aks-managed-poolName` tag).
    pub pool: String,
    /// Number of VMs.
    pub vms: u32,
    /// Extra tags on the VMs and NICs, e.g. `aks-managed-gatewayIPPrefixSize`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Subnet of the NICs: an id, or `vnet/subnet` in the pool's resource group.
    pub subnet: String,
}

/// A BYO public IP prefix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrefixSeed {
    /// Resource group.
    pub resource_group: String,
    /// Name.
    pub name: String,
    /// Prefix length (24..=31).
    pub prefix_length: u8,
}

/// What a seed made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    /// Subnet ids.
    pub subnets: Vec<String>,
    /// Scale sets.
    pub vmss_pools: Vec<SeededVmss>,
    /// Virtual machines and their NICs, per pool.
    pub vm_pools: Vec<SeededVmPool>,
    /// Prefixes.
    pub public_ip_prefixes: Vec<SeededPrefix>,
}

/// A seeded scale set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeededVmss {
    /// Its id.
    pub id: String,
    /// Its `uniqueId`.
    pub unique_id: String,
}

/// A seeded virtual-machine pool.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeededVmPool {
    /// VM ids.
    pub vms: Vec<String>,
    /// NIC ids, one per VM, in the same order.
    pub nics: Vec<String>,
}

/// A seeded prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeededPrefix {
    /// Its id.
    pub id: String,
    /// Its CIDR.
    pub ip_prefix: String,
}

fn refuse(msg: impl Into<String>) -> FakeArmError {
    FakeArmError::Seed(msg.into())
}

fn subnet_id(sub: &str, rg: &str, subnet: &str) -> String {
    if subnet.starts_with('/') {
        return subnet.to_owned();
    }
    let (vnet, name) = subnet.split_once('/').unwrap_or((subnet, ""));
    child_id(
        &resource_id(sub, rg, "Microsoft.Network", "virtualNetworks", vnet),
        "subnets",
        name,
    )
}

fn add_rg(state: &mut State, sub: &str, rg: &str) -> Result<(), FakeArmError> {
    if rg.is_empty() || rg.contains('/') {
        return Err(refuse(format!("resource group name {rg:?} is not valid")));
    }
    state
        .resource_groups
        .insert(key(&format!("/subscriptions/{sub}/resourceGroups/{rg}")));
    Ok(())
}

/// Applies a seed. It is checked as it goes; on error, what was seeded before the faulty item
/// stays (a seed is a test fixture, and the error names the item to fix).
pub fn apply(
    state: &mut State,
    default_sub: &str,
    seed: &Seed,
) -> Result<SeedReport, FakeArmError> {
    let sub = seed
        .subscription
        .clone()
        .unwrap_or_else(|| default_sub.to_owned());
    let mut report = SeedReport::default();
    for rg in &seed.resource_groups {
        add_rg(state, &sub, rg)?;
    }
    for v in &seed.virtual_networks {
        report.subnets.extend(vnet(state, &sub, v)?);
    }
    for p in &seed.public_ip_prefixes {
        report.public_ip_prefixes.push(prefix(state, &sub, p)?);
    }
    for p in &seed.vmss_pools {
        report.vmss_pools.push(vmss_pool(state, &sub, p)?);
    }
    for p in &seed.vm_pools {
        report.vm_pools.push(vm_pool(state, &sub, p)?);
    }
    Ok(report)
}

fn vnet(state: &mut State, sub: &str, v: &VnetSeed) -> Result<Vec<String>, FakeArmError> {
    add_rg(state, sub, &v.resource_group)?;
    let id = resource_id(
        sub,
        &v.resource_group,
        "Microsoft.Network",
        "virtualNetworks",
        &v.name,
    );
    if state.vnets.contains_key(&key(&id)) {
        return Err(refuse(format!("virtual network {id} exists already")));
    }
    for cidr in &v.address_space {
        cidr.parse::<ipnet::Ipv4Net>().map_err(|_| {
            refuse(format!(
                "address space {cidr:?} of {id} is not an IPv4 CIDR"
            ))
        })?;
    }
    let mut subnets = Vec::new();
    let mut ids = Vec::new();
    for s in &v.subnets {
        let net: ipnet::Ipv4Net = s.address_prefix.parse().map_err(|_| {
            refuse(format!(
                "subnet {} of {id}: {:?} is not an IPv4 CIDR",
                s.name, s.address_prefix
            ))
        })?;
        if net.prefix_len() > 29 {
            return Err(refuse(format!(
                "subnet {} of {id}: Azure subnets are /29 or larger",
                s.name
            )));
        }
        let sid = child_id(&id, "subnets", &s.name);
        subnets.push(json!({
            "name": s.name,
            "id": sid,
            "type": "Microsoft.Network/virtualNetworks/subnets",
            "properties": {"addressPrefix": net.to_string(), "privateEndpointNetworkPolicies": "Disabled", "privateLinkServiceNetworkPolicies": "Enabled"}
        }));
        ids.push(sid);
    }
    let body = json!({
        "name": v.name,
        "id": id,
        "type": "Microsoft.Network/virtualNetworks",
        "location": state.location,
        "properties": {
            "addressSpace": {"addressPrefixes": v.address_space},
            "subnets": subnets,
            "resourceGuid": state.next_guid(),
            "virtualNetworkPeerings": [],
            "enableDdosProtection": false,
        }
    });
    let etag = state.next_etag(Provider::Network);
    state.vnets.insert(key(&id), Entry::new(body, etag, true));
    Ok(ids)
}

fn prefix(state: &mut State, sub: &str, p: &PrefixSeed) -> Result<SeededPrefix, FakeArmError> {
    add_rg(state, sub, &p.resource_group)?;
    let id = resource_id(
        sub,
        &p.resource_group,
        "Microsoft.Network",
        "publicIPPrefixes",
        &p.name,
    );
    if state.prefixes.contains_key(&key(&id)) {
        return Err(refuse(format!("public IP prefix {id} exists already")));
    }
    if !(24..=31).contains(&p.prefix_length) {
        return Err(refuse(format!(
            "prefix length {} of {id} is not in 24..=31",
            p.prefix_length
        )));
    }
    let net = Allocator::from_state(state)
        .prefix_block(p.prefix_length)
        .map_err(|e| refuse(e.message))?;
    let body = json!({
        "name": p.name,
        "id": id,
        "type": "Microsoft.Network/publicIPPrefixes",
        "location": state.location,
        "sku": {"name": "Standard", "tier": "Regional"},
        "properties": {
            "publicIPAddressVersion": "IPv4",
            "prefixLength": p.prefix_length,
            "ipPrefix": net.to_string(),
            "ipTags": [],
            "resourceGuid": state.next_guid(),
        }
    });
    let etag = state.next_etag(Provider::Network);
    state
        .prefixes
        .insert(key(&id), Entry::new(body, etag, true));
    Ok(SeededPrefix {
        id,
        ip_prefix: net.to_string(),
    })
}

/// The model of a seeded scale set, shaped as AKS writes one (user-assigned identity,
/// extensions, empty lists), so clients meet the awkward parts of real bodies.
fn vmss_model(
    state: &mut State,
    sub: &str,
    p: &VmssPoolSeed,
    id: &str,
    subnet: &str,
) -> (Value, String) {
    let unique_id = p.unique_id.clone().unwrap_or_else(|| state.next_guid());
    let nic = p.nic_config_name.clone().unwrap_or_else(|| p.name.clone());
    let ipc = p
        .ip_config_name
        .clone()
        .unwrap_or_else(|| "ipconfig1".to_owned());
    let identity_id = resource_id(
        sub,
        &p.resource_group,
        "Microsoft.ManagedIdentity",
        "userAssignedIdentities",
        &format!("{}-agentpool", p.name),
    );
    let (principal, client) = (state.next_guid(), state.next_guid());
    let body = json!({
        "name": p.name,
        "id": id,
        "type": "Microsoft.Compute/virtualMachineScaleSets",
        "location": state.location,
        "tags": p.tags,
        "sku": {"name": "Standard_D2s_v3", "tier": "Standard", "capacity": p.instances},
        "identity": {
            "type": "UserAssigned",
            "userAssignedIdentities": {identity_id: {"principalId": principal, "clientId": client}}
        },
        "properties": {
            "singlePlacementGroup": false,
            "orchestrationMode": "Uniform",
            "upgradePolicy": {"mode": p.upgrade_mode.clone().unwrap_or_else(|| "Manual".to_owned())},
            "overprovision": false,
            "doNotRunExtensionsOnOverprovisionedVMs": false,
            "uniqueId": unique_id,
            "timeCreated": "2026-01-01T00:00:00.0000000+00:00",
            "virtualMachineProfile": {
                "osProfile": {
                    "computerNamePrefix": p.name,
                    "adminUsername": "azureuser",
                    "linuxConfiguration": {"disablePasswordAuthentication": true, "provisionVMAgent": true},
                    "secrets": [],
                },
                "storageProfile": {
                    "imageReference": {"id": format!("/subscriptions/{sub}/resourceGroups/AKS-Ubuntu/providers/Microsoft.Compute/galleries/AKSUbuntu/images/2204gen2containerd/versions/202601.01.0")},
                    "osDisk": {"caching": "ReadOnly", "createOption": "FromImage", "diskSizeGB": 128, "managedDisk": {"storageAccountType": "Premium_LRS"}},
                    "dataDisks": [],
                },
                "networkProfile": {
                    "networkInterfaceConfigurations": [{
                        "name": nic,
                        "properties": {
                            "primary": true,
                            "enableAcceleratedNetworking": false,
                            "enableIPForwarding": true,
                            "dnsSettings": {"dnsServers": []},
                            "ipConfigurations": [{
                                "name": ipc,
                                "properties": {
                                    "primary": true,
                                    "subnet": {"id": subnet},
                                    "privateIPAddressVersion": "IPv4",
                                    "loadBalancerBackendAddressPools": [],
                                }
                            }]
                        }
                    }]
                },
                "extensionProfile": {"extensions": [{
                    "name": "vmssCSE",
                    "properties": {"publisher": "Microsoft.Azure.Extensions", "type": "CustomScript", "typeHandlerVersion": "2.0", "autoUpgradeMinorVersion": true, "settings": {}}
                }]},
            },
        }
    });
    (body, unique_id)
}

fn vmss_pool(state: &mut State, sub: &str, p: &VmssPoolSeed) -> Result<SeededVmss, FakeArmError> {
    add_rg(state, sub, &p.resource_group)?;
    let id = resource_id(
        sub,
        &p.resource_group,
        "Microsoft.Compute",
        "virtualMachineScaleSets",
        &p.name,
    );
    let k = key(&id);
    if state.vmss.contains_key(&k) {
        return Err(refuse(format!("scale set {id} exists already")));
    }
    let subnet = subnet_id(sub, &p.resource_group, &p.subnet);
    if crate::providers::vnet::find_subnet(state, &subnet).is_none() {
        return Err(refuse(format!(
            "subnet {subnet} of scale set {id} is not seeded"
        )));
    }
    let (body, unique_id) = vmss_model(state, sub, p, &id, &subnet);
    let mut alloc = Allocator::from_state(state);
    let configs = refs::model_nic_configs(&body).to_vec();
    let mut instances = BTreeMap::new();
    for i in 0..p.instances {
        let ib = new_instance_body(state, &body, i);
        let r =
            realize(state, &mut alloc, &id, i, &configs, None).map_err(|e| refuse(e.message))?;
        let etag = state.next_etag(Provider::Compute);
        for ipc in refs::of_instance(&k, &id, i, &ib) {
            state.seeded_ip_configs.insert(key(&ipc.id));
        }
        instances.insert(
            i,
            Instance {
                entry: Entry::new(ib, etag, true),
                nics: r.nics,
                public_ips: r.public_ips,
            },
        );
    }
    for ipc in refs::of_model(&k, &id, &body) {
        state.seeded_ip_configs.insert(key(&ipc.id));
    }
    let etag = state.next_etag(Provider::Compute);
    state.vmss.insert(
        k,
        Vmss {
            entry: Entry::new(body, etag, true),
            instances,
        },
    );
    Ok(SeededVmss { id, unique_id })
}

fn vm_pool(state: &mut State, sub: &str, p: &VmPoolSeed) -> Result<SeededVmPool, FakeArmError> {
    add_rg(state, sub, &p.resource_group)?;
    let subnet = subnet_id(sub, &p.resource_group, &p.subnet);
    if crate::providers::vnet::find_subnet(state, &subnet).is_none() {
        return Err(refuse(format!(
            "subnet {subnet} of VM pool {} is not seeded",
            p.pool
        )));
    }
    let mut tags: BTreeMap<String, String> = p.tags.clone();
    tags.insert("aks-managed-poolName".into(), p.pool.clone());
    let mut nic_tags = tags.clone();
    nic_tags.insert("aks-managed-static-gateway-nic".into(), "true".into());
    let mut alloc = Allocator::from_state(state);
    let mut out = SeededVmPool::default();
    for i in 0..p.vms {
        let vm_name = format!("aks-{}-{i}", p.pool);
        let vm_id = resource_id(
            sub,
            &p.resource_group,
            "Microsoft.Compute",
            "virtualMachines",
            &vm_name,
        );
        let nic_id = resource_id(
            sub,
            &p.resource_group,
            "Microsoft.Network",
            "networkInterfaces",
            &format!("{vm_name}-nic"),
        );
        if state.vms.contains_key(&key(&vm_id)) || state.nics.contains_key(&key(&nic_id)) {
            return Err(refuse(format!(
                "virtual machine {vm_id} or its NIC exists already"
            )));
        }
        let ipc_id = child_id(&nic_id, "ipConfigurations", "ipconfig1");
        let mut ipc = json!({
            "name": "ipconfig1",
            "id": ipc_id,
            "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
            "properties": {"primary": true, "subnet": {"id": subnet}, "privateIPAllocationMethod": "Dynamic"}
        });
        assign_private(state, &mut alloc, &mut ipc, None, &ipc_id)
            .map_err(|e| refuse(e.message))?;
        let g = state.next_guid().replace('-', "").to_ascii_uppercase();
        let nic = json!({
            "name": format!("{vm_name}-nic"),
            "id": nic_id,
            "type": "Microsoft.Network/networkInterfaces",
            "location": state.location,
            "tags": nic_tags,
            "properties": {
                "ipConfigurations": [ipc],
                "dnsSettings": {"dnsServers": [], "appliedDnsServers": []},
                "macAddress": format!("00-0D-3A-{}-{}-{}", &g[0..2], &g[2..4], &g[4..6]),
                "enableAcceleratedNetworking": false,
                "enableIPForwarding": true,
                "primary": true,
                "virtualMachine": {"id": vm_id},
                "nicType": "Standard",
            }
        });
        let vm = json!({
            "name": vm_name,
            "id": vm_id,
            "type": "Microsoft.Compute/virtualMachines",
            "location": state.location,
            "tags": tags,
            "properties": {
                "vmId": state.next_guid(),
                "hardwareProfile": {"vmSize": "Standard_D2s_v3"},
                "osProfile": {"computerName": vm_name, "adminUsername": "azureuser", "secrets": []},
                "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": true}}]},
            }
        });
        state.seeded_ip_configs.insert(key(&ipc_id));
        let etag = state.next_etag(Provider::Network);
        state.nics.insert(key(&nic_id), Entry::new(nic, etag, true));
        let etag = state.next_etag(Provider::Compute);
        state.vms.insert(key(&vm_id), Entry::new(vm, etag, true));
        out.vms.push(vm_id);
        out.nics.push(nic_id);
    }
    Ok(out)
}

/// The seed JSON of a file or admin body.
pub fn parse(json: &[u8]) -> Result<Seed, FakeArmError> {
    serde_json::from_slice(json).map_err(|source| FakeArmError::Json {
        what: "seed",
        source,
    })
}
