//! Every ipConfig in the cloud and what it references: the VMSS models, the instances' network
//! configurations and the standalone NICs. The reference and in-use rules, and the read-only
//! back-references (`backendIPConfigurations`, `publicIPAddresses`, `ipConfiguration`), are all
//! computed from this one walk, so they can never disagree with the stored bodies.

use serde_json::Value;

use crate::ids::{child_id, key};
use crate::json::{arr_at, ref_id, ref_ids, str_at};
use crate::state::State;

/// Where an ipConfig lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// A scale set's model (key of the scale set).
    Model(String),
    /// A scale-set instance (key of the scale set, instance id).
    Instance(String, u32),
    /// A standalone NIC (its key).
    Nic(String),
}

/// One ipConfig and its references (keys are lower-case ids).
#[derive(Debug, Clone)]
pub struct IpConfigRef {
    /// Where it lives.
    pub holder: Holder,
    /// How error messages name it: the scale set for a model ipConfig, else the ipConfig id.
    pub referrer: String,
    /// The ipConfig's id as Azure reports it in back-references (for a model: a path under the
    /// scale set naming the NIC configuration and ipConfig).
    pub id: String,
    /// The NIC (configuration) name.
    pub nic_name: String,
    /// The ipConfig name.
    pub name: String,
    /// Its subnet id, as written.
    pub subnet: Option<String>,
    /// Backend pool ids, as written.
    pub backend_pools: Vec<String>,
    /// Other load-balancer children it references (inbound NAT pools and rules), as written.
    pub other_lb_refs: Vec<String>,
    /// The public IP id (standalone NICs), as written.
    pub public_ip: Option<String>,
    /// The public IP prefix id of its public IP configuration (scale sets), as written.
    pub public_prefix: Option<String>,
    /// It has a scale-set public IP configuration (with or without a prefix).
    pub has_public_config: bool,
}

impl IpConfigRef {
    /// Every load-balancer child it references.
    pub fn lb_refs(&self) -> impl Iterator<Item = &String> {
        self.backend_pools.iter().chain(self.other_lb_refs.iter())
    }
}

/// The ipConfigs of scale-set style NIC configurations (`networkInterfaceConfigurations`).
/// `nic_base` builds the NIC id an ipConfig belongs to from the NIC configuration name.
pub fn of_nic_configs(
    holder: &Holder,
    referrer: Option<&str>,
    nic_configs: &[Value],
    nic_base: &dyn Fn(&str) -> String,
) -> Vec<IpConfigRef> {
    let mut out = Vec::new();
    for nic in nic_configs {
        let nic_name = nic.get("name").and_then(Value::as_str).unwrap_or_default();
        let nic_id = nic_base(nic_name);
        for ipc in arr_at(nic, &["properties", "ipConfigurations"]) {
            let name = ipc.get("name").and_then(Value::as_str).unwrap_or_default();
            let id = child_id(&nic_id, "ipConfigurations", name);
            let public = ipc
                .get("properties")
                .and_then(|p| p.get("publicIPAddressConfiguration"));
            out.push(IpConfigRef {
                holder: holder.clone(),
                referrer: referrer.map_or_else(|| id.clone(), str::to_owned),
                id,
                nic_name: nic_name.to_owned(),
                name: name.to_owned(),
                subnet: str_at(ipc, &["properties", "subnet", "id"]).map(str::to_owned),
                backend_pools: owned(ref_ids(
                    ipc,
                    &["properties", "loadBalancerBackendAddressPools"],
                )),
                other_lb_refs: owned(ref_ids(ipc, &["properties", "loadBalancerInboundNatPools"])),
                public_ip: None,
                public_prefix: public
                    .and_then(|p| str_at(p, &["properties", "publicIPPrefix", "id"]))
                    .map(str::to_owned),
                has_public_config: public.is_some_and(|p| !p.is_null()),
            });
        }
    }
    out
}

/// The ipConfigs of a standalone NIC body (`properties.ipConfigurations`).
pub fn of_nic(nic_key: &str, nic_id: &str, body: &Value) -> Vec<IpConfigRef> {
    arr_at(body, &["properties", "ipConfigurations"])
        .iter()
        .map(|ipc| {
            let name = ipc.get("name").and_then(Value::as_str).unwrap_or_default();
            let id = child_id(nic_id, "ipConfigurations", name);
            IpConfigRef {
                holder: Holder::Nic(nic_key.to_owned()),
                referrer: id.clone(),
                id,
                nic_name: crate::ids::last_segment(nic_id).to_owned(),
                name: name.to_owned(),
                subnet: str_at(ipc, &["properties", "subnet", "id"]).map(str::to_owned),
                backend_pools: owned(ref_ids(
                    ipc,
                    &["properties", "loadBalancerBackendAddressPools"],
                )),
                other_lb_refs: owned(ref_ids(ipc, &["properties", "loadBalancerInboundNatRules"])),
                public_ip: ipc
                    .get("properties")
                    .and_then(|p| p.get("publicIPAddress"))
                    .and_then(ref_id)
                    .map(str::to_owned),
                public_prefix: None,
                has_public_config: false,
            }
        })
        .collect()
}

/// The NIC configurations of a scale-set model body.
pub fn model_nic_configs(vmss_body: &Value) -> &[Value] {
    arr_at(
        vmss_body,
        &[
            "properties",
            "virtualMachineProfile",
            "networkProfile",
            "networkInterfaceConfigurations",
        ],
    )
}

/// The NIC configurations of a scale-set instance body.
pub fn instance_nic_configs(instance_body: &Value) -> &[Value] {
    arr_at(
        instance_body,
        &[
            "properties",
            "networkProfileConfiguration",
            "networkInterfaceConfigurations",
        ],
    )
}

/// The ipConfigs of a scale-set model.
pub fn of_model(vmss_key: &str, vmss_id: &str, body: &Value) -> Vec<IpConfigRef> {
    let base = child_id(vmss_id, "virtualMachineProfile", "networkProfile");
    of_nic_configs(
        &Holder::Model(vmss_key.to_owned()),
        Some(vmss_id),
        model_nic_configs(body),
        &|nic| child_id(&base, "networkInterfaceConfigurations", nic),
    )
}

/// The id of instance `i`'s NIC named `nic` (Azure's shape for scale-set NICs).
pub fn instance_nic_id(vmss_id: &str, instance: u32, nic: &str) -> String {
    child_id(
        &child_id(vmss_id, "virtualMachines", &instance.to_string()),
        "networkInterfaces",
        nic,
    )
}

/// The ipConfigs of a scale-set instance's network configuration.
pub fn of_instance(vmss_key: &str, vmss_id: &str, instance: u32, body: &Value) -> Vec<IpConfigRef> {
    of_nic_configs(
        &Holder::Instance(vmss_key.to_owned(), instance),
        None,
        instance_nic_configs(body),
        &|nic| instance_nic_id(vmss_id, instance, nic),
    )
}

/// Every ipConfig in the cloud.
pub fn all(state: &State) -> Vec<IpConfigRef> {
    let mut out = Vec::new();
    for (k, vmss) in &state.vmss {
        let id = str_at(&vmss.entry.body, &["id"]).unwrap_or_default();
        out.extend(of_model(k, id, &vmss.entry.body));
        for (i, inst) in &vmss.instances {
            out.extend(of_instance(k, id, *i, &inst.entry.body));
        }
    }
    for (k, nic) in &state.nics {
        let id = str_at(&nic.body, &["id"]).unwrap_or_default();
        out.extend(of_nic(k, id, &nic.body));
    }
    out
}

/// True when `refs` contains `target` (compared as keys).
pub fn contains_key(refs: &[String], target_key: &str) -> bool {
    refs.iter().any(|r| key(r) == target_key)
}

fn owned(v: Vec<&str>) -> Vec<String> {
    v.into_iter().map(str::to_owned).collect()
}
