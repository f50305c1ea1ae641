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
use crate::state::{Instance, InstancePublicIp, Provider, State, Target};

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
    rules::check_references(state, ipcs)?;
    // Chosen code (Azure refuses ipConfigs of one NIC in different virtual networks).
    for nic in configs {
        let nic_name = str_at(nic, &["name"]).unwrap_or_default();
        let vnets: std::collections::BTreeSet<String> = ipcs
            .iter()
            .filter(|i| i.nic_name == nic_name)
            .filter_map(|i| i.subnet.as_deref().and_then(super::vnet::vnet_of_subnet))
            .collect();
        if vnets.len() > 1 {
            return Err(ArmError::bad_request(
                "IpConfigurationsOnSameNicCannotUseDifferentVnets",
                format!(
                    "The IP configurations of network interface configuration {nic_name} of {owner} are in different virtual networks."
                ),
            ));
        }
    }
    Ok(())
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
    for (pk, (prefix, n)) in need {
        let Some(net) = prefix_net(state, &prefix) else {
            continue;
        };
        // Addresses this scale set's instances hold from the prefix for ipConfigs the new model
        // drops come back on upgrade.
        let kept: Vec<String> = model_ipcs
            .iter()
            .filter(|i| i.public_prefix.as_deref().map(key).as_deref() == Some(pk.as_str()))
            .map(|i| format!("{}/{}", i.nic_name, i.name).to_ascii_lowercase())
            .collect();
        let returning = vmss
            .instances
            .values()
            .flat_map(|inst| inst.public_ips.iter())
            .filter(|(slot, p)| p.prefix_key == pk && !kept.contains(slot))
            .count();
        let free = alloc.free_in(net) + returning;
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

/// Builds instance `instance`'s NICs from `configs`, first freeing what the old ones held
/// and the new ones do not keep.
pub fn rebuild(
    state: &State,
    vmss_id: &str,
    instance: u32,
    configs: &[Value],
    old: &Instance,
) -> Result<Realized, ArmError> {
    let mut alloc = Allocator::from_state(state);
    release_unkept(&mut alloc, old, configs);
    realize(state, &mut alloc, vmss_id, instance, configs, Some(old))
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
                let slot = format!("{nic_name}/{name}").to_ascii_lowercase();
                let old_pip = old.and_then(|o| o.public_ips.get(&slot));
                let pip = public_address(state, alloc, public, &ipc_id, name, old_pip)?;
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
            "type": "Microsoft.Network/networkInterfaces",
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

/// `("{nic}/{ipConfig}", ipConfig)` pairs of NIC-shaped objects (configurations or realized NICs).
fn qualified(nics: &[Value]) -> Vec<(String, &Value)> {
    nics.iter()
        .flat_map(|n| {
            let nic = str_at(n, &["name"]).unwrap_or_default().to_owned();
            arr_at(n, &["properties", "ipConfigurations"])
                .iter()
                .map(move |i| {
                    (
                        format!("{nic}/{}", str_at(i, &["name"]).unwrap_or_default()),
                        i,
                    )
                })
        })
        .collect()
}

/// Frees what instance `old` holds that its new configuration does not keep, so a write that
/// swaps one ipConfig for another on a full subnet or prefix is not refused.
fn release_unkept(alloc: &mut Allocator, old: &Instance, configs: &[Value]) {
    alloc.release_unkept(&qualified(&old.nics), &qualified(configs));
    let wanted = qualified(configs);
    for (slot, pip) in &old.public_ips {
        let kept = wanted.iter().any(|(name, ipc)| {
            let Some(public) = at(ipc, &["properties", "publicIPAddressConfiguration"]) else {
                return false;
            };
            let ipc_name = str_at(ipc, &["name"]).unwrap_or_default();
            let pip_name = str_at(public, &["name"]).unwrap_or(ipc_name);
            let prefix = str_at(public, &["properties", "publicIPPrefix", "id"])
                .map(key)
                .unwrap_or_default();
            name.eq_ignore_ascii_case(slot)
                && prefix == pip.prefix_key
                && crate::ids::last_segment(&pip.id).eq_ignore_ascii_case(pip_name)
        });
        if !kept {
            alloc.release_public(pip.address);
        }
    }
}

/// Gives instances `ids` the network configuration `configs`: checks that none is busy,
/// builds every one's NICs (all or nothing), then stores them. Returns the operation targets.
pub fn apply_configs(
    state: &mut State,
    vmss_id: &str,
    instances: &mut BTreeMap<u32, Instance>,
    ids: &[u32],
    configs: &[Value],
) -> Result<Vec<Target>, ArmError> {
    let mut alloc = Allocator::from_state(state);
    for inst in ids.iter().filter_map(|i| instances.get(i)) {
        release_unkept(&mut alloc, inst, configs);
    }
    let mut built = Vec::new();
    for i in ids {
        let inst = instances.get(i);
        let inst_id = child_id(vmss_id, "virtualMachines", &i.to_string());
        crate::lro::ensure_idle(state, inst.and_then(|x| x.entry.busy_op()), &inst_id)?;
        built.push((*i, realize(state, &mut alloc, vmss_id, *i, configs, inst)?));
    }
    let mut targets = Vec::new();
    for (i, r) in built {
        let etag = state.next_etag(Provider::Compute);
        if let Some(inst) = instances.get_mut(&i) {
            set_at(
                &mut inst.entry.body,
                &[
                    "properties",
                    "networkProfileConfiguration",
                    "networkInterfaceConfigurations",
                ],
                Value::Array(configs.to_vec()),
            );
            inst.entry.etag = etag;
            inst.nics = r.nics;
            inst.public_ips = r.public_ips;
        }
        targets.push(Target::Instance(key(vmss_id), i));
    }
    Ok(targets)
}

/// The public address of an instance ipConfig's public IP configuration: the one it had
/// (same public IP, same prefix), or a new one from the prefix (or the free range).
fn public_address(
    state: &State,
    alloc: &mut Allocator,
    public: &Value,
    ipc_id: &str,
    ipc_name: &str,
    old: Option<&InstancePublicIp>,
) -> Result<InstancePublicIp, ArmError> {
    let pip_name = str_at(public, &["name"]).unwrap_or(ipc_name);
    let pip_id = child_id(ipc_id, "publicIPAddresses", pip_name);
    let prefix = str_at(public, &["properties", "publicIPPrefix", "id"]);
    let prefix_key = prefix.map(key).unwrap_or_default();
    if let Some(p) = old.filter(|p| p.prefix_key == prefix_key && key(&p.id) == key(&pip_id)) {
        return Ok(p.clone());
    }
    let address = match prefix {
        Some(p) => {
            let net = prefix_net(state, p).ok_or_else(|| ArmError::invalid_reference(p, ipc_id))?;
            alloc.public_in(p, net, "PublicIpPrefixOutOfIpAddressesForVMScaleSet")?
        }
        None => alloc.standalone_public()?,
    };
    Ok(InstancePublicIp {
        id: pip_id,
        address,
        prefix_key,
    })
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
