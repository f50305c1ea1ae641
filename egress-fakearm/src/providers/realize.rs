//! Scale-set network configurations: checking a model's or an instance's
//! `networkInterfaceConfigurations`, and building an instance's realized NICs from its
//! configuration (private addresses from the subnet, public ones from the prefix), keeping the
//! addresses an ipConfig already has.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use serde_json::{Value, json};

use crate::alloc::{Allocator, assign_private};
use crate::arm_error::ArmError;
use crate::ids::{child_id, key};
use crate::json::{arr_at, at, set_at, str_at};
use crate::refs::{self, IpConfigRef};
use crate::rules;
use crate::state::{Instance, InstancePublicIp, State};

use super::common::unique_names;

/// Checks NIC configurations: unique names, one primary NIC and one primary ipConfig where
/// there are several, and every reference existing.
/// Chosen code for the primary rules: `InvalidParameter`.
pub fn check_configs(
    state: &State,
    owner: &str,
    configs: &[Value],
    ipcs: &[IpConfigRef],
) -> Result<(), ArmError> {
    unique_names(configs, "networkInterfaceConfigurations", owner)?;
    let primary = |v: &Value| at(v, &["properties", "primary"]) == Some(&json!(true));
    if configs.len() > 1 && configs.iter().filter(|c| primary(c)).count() != 1 {
        return Err(ArmError::bad_request(
            "InvalidParameter",
            format!(
                "{owner} has {} network interface configurations; exactly one must be primary.",
                configs.len()
            ),
        ));
    }
    for nic in configs {
        let nic_name = str_at(nic, &["name"]).unwrap_or_default();
        let list = arr_at(nic, &["properties", "ipConfigurations"]);
        if list.is_empty() {
            return Err(ArmError::bad_request(
                "InvalidParameter",
                format!(
                    "Network interface configuration {nic_name} of {owner} has no IP configuration."
                ),
            ));
        }
        unique_names(
            list,
            "ipConfigurations",
            &format!("{owner} (network interface configuration {nic_name})"),
        )?;
        if list.len() > 1 && list.iter().filter(|c| primary(c)).count() != 1 {
            return Err(ArmError::bad_request(
                "InvalidParameter",
                format!(
                    "Network interface configuration {nic_name} of {owner} has {} IP configurations; exactly one must be primary.",
                    list.len()
                ),
            ));
        }
    }
    rules::check_references(state, ipcs)
}

/// A prefix's network.
pub fn prefix_net(state: &State, prefix_id: &str) -> Option<Ipv4Net> {
    state
        .prefixes
        .get(&key(prefix_id))
        .and_then(|e| str_at(&e.body, &["properties", "ipPrefix"]))
        .and_then(|s| s.parse().ok())
}

/// Refuses a model whose prefixes cannot hold an address for every instance's ipConfig that
/// would take one on upgrade (Azure checks the scale set's capacity against the prefix).
pub fn check_model_capacity(
    state: &State,
    vmss_key: &str,
    vmss_id: &str,
    model_ipcs: &[IpConfigRef],
) -> Result<(), ArmError> {
    let Some(vmss) = state.vmss.get(vmss_key) else {
        return Ok(());
    };
    let alloc = Allocator::from_state(state);
    let mut need: BTreeMap<String, (String, usize)> = BTreeMap::new();
    for ipc in model_ipcs {
        let Some(prefix) = &ipc.public_prefix else {
            continue;
        };
        let pk = key(prefix);
        let slot = format!("{}/{}", ipc.nic_name, ipc.name).to_ascii_lowercase();
        let missing = vmss
            .instances
            .values()
            .filter(|inst| {
                inst.public_ips
                    .get(&slot)
                    .is_none_or(|p| p.prefix_key != pk)
            })
            .count();
        need.entry(pk).or_insert_with(|| (prefix.clone(), 0)).1 += missing;
    }
    for (_, (prefix, n)) in need {
        let Some(net) = prefix_net(state, &prefix) else {
            continue;
        };
        let free = alloc.free_in(net);
        if n > free {
            return Err(ArmError::bad_request(
                "PublicIpPrefixOutOfIpAddressesForVMScaleSet",
                format!(
                    "Public IP prefix {prefix} ({net}) has {free} free addresses but virtual machine scale set {vmss_id} needs {n} more."
                ),
            ));
        }
    }
    Ok(())
}

/// The NICs and public addresses an instance gets from its configuration.
#[derive(Debug, Clone)]
pub struct Realized {
    /// Azure-shaped NICs.
    pub nics: Vec<Value>,
    /// Public addresses by `"{nic}/{ipConfig}"` (lower-case).
    pub public_ips: BTreeMap<String, InstancePublicIp>,
}

/// Builds instance `instance`'s NICs from `configs`.
pub fn realize(
    state: &State,
    alloc: &mut Allocator,
    vmss_id: &str,
    instance: u32,
    configs: &[Value],
    old: Option<&Instance>,
) -> Result<Realized, ArmError> {
    let vm_id = child_id(vmss_id, "virtualMachines", &instance.to_string());
    let mut nics = Vec::new();
    let mut public_ips = BTreeMap::new();
    for config in configs {
        let nic_name = str_at(config, &["name"]).unwrap_or_default();
        let nic_id = refs::instance_nic_id(vmss_id, instance, nic_name);
        let old_nic = old.and_then(|o| {
            o.nics
                .iter()
                .find(|n| str_at(n, &["name"]).is_some_and(|x| x.eq_ignore_ascii_case(nic_name)))
        });
        let list = arr_at(config, &["properties", "ipConfigurations"]);
        let mut ipcs = Vec::new();
        for ipc in list {
            let name = str_at(ipc, &["name"]).unwrap_or_default();
            let ipc_id = child_id(&nic_id, "ipConfigurations", name);
            let old_ipc = old_nic.and_then(|n| {
                arr_at(n, &["properties", "ipConfigurations"])
                    .iter()
                    .find(|i| str_at(i, &["name"]).is_some_and(|x| x.eq_ignore_ascii_case(name)))
            });
            let mut out = json!({
                "name": name,
                "id": ipc_id,
                "properties": {
                    "privateIPAllocationMethod": "Dynamic",
                    "subnet": at(ipc, &["properties", "subnet"]).cloned().unwrap_or(Value::Null),
                    "primary": at(ipc, &["properties", "primary"]).and_then(Value::as_bool).unwrap_or(list.len() == 1),
                    "privateIPAddressVersion": "IPv4",
                }
            });
            for field in [
                "loadBalancerBackendAddressPools",
                "loadBalancerInboundNatPools",
                "applicationSecurityGroups",
            ] {
                if let Some(v) = at(ipc, &["properties", field]) {
                    set_at(&mut out, &["properties", field], v.clone());
                }
            }
            assign_private(state, alloc, &mut out, old_ipc, &ipc_id)?;
            if let Some(public) =
                at(ipc, &["properties", "publicIPAddressConfiguration"]).filter(|p| !p.is_null())
            {
                let pip_name = str_at(public, &["name"]).unwrap_or(name);
                let pip_id = child_id(&ipc_id, "publicIPAddresses", pip_name);
                let prefix = str_at(public, &["properties", "publicIPPrefix", "id"]);
                let slot = format!("{nic_name}/{name}").to_ascii_lowercase();
                let prefix_key = prefix.map(key).unwrap_or_default();
                let kept = old
                    .and_then(|o| o.public_ips.get(&slot))
                    .filter(|p| p.prefix_key == prefix_key && key(&p.id) == key(&pip_id))
                    .cloned();
                let pip = match kept {
                    Some(p) => p,
                    None => {
                        let address = match prefix {
                            Some(p) => {
                                let net = prefix_net(state, p)
                                    .ok_or_else(|| ArmError::invalid_reference(p, &ipc_id))?;
                                alloc.public_in(
                                    p,
                                    net,
                                    "PublicIpPrefixOutOfIpAddressesForVMScaleSet",
                                )?
                            }
                            None => alloc.standalone_public()?,
                        };
                        InstancePublicIp {
                            id: pip_id.clone(),
                            address,
                            prefix_key,
                        }
                    }
                };
                set_at(
                    &mut out,
                    &["properties", "publicIPAddress"],
                    json!({"id": pip.id}),
                );
                public_ips.insert(slot, pip);
            }
            ipcs.push(out);
        }
        let mac = old_nic
            .and_then(|n| str_at(n, &["properties", "macAddress"]))
            .map_or_else(|| mac_for(&nic_id), str::to_owned);
        let flag = |f: &str| {
            at(config, &["properties", f])
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        nics.push(json!({
            "name": nic_name,
            "id": nic_id,
            "properties": {
                "ipConfigurations": ipcs,
                "dnsSettings": {"dnsServers": [], "appliedDnsServers": []},
                "macAddress": mac,
                "enableAcceleratedNetworking": flag("enableAcceleratedNetworking"),
                "enableIPForwarding": flag("enableIPForwarding"),
                "primary": at(config, &["properties", "primary"]).and_then(Value::as_bool).unwrap_or(configs.len() == 1),
                "virtualMachine": {"id": vm_id},
            }
        }));
    }
    Ok(Realized { nics, public_ips })
}

/// A stable MAC address for a NIC id (Azure's `00-0D-3A` prefix).
fn mac_for(id: &str) -> String {
    let h = key(id).bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!(
        "00-0D-3A-{:02X}-{:02X}-{:02X}",
        (h >> 16) & 0xff,
        (h >> 8) & 0xff,
        h & 0xff
    )
}
