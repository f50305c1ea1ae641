//! Scale-set instances (`…/virtualMachines/{id}`), their realized NICs (`…/networkInterfaces`)
//! and `manualupgrade`.

use serde_json::{Value, json};

use crate::arm_error::ArmError;
use crate::exchange::Reply;
use crate::ids::{child_id, key};
use crate::json::{at, set_at};
use crate::lro;
use crate::refs;
use crate::state::{Provider, State, Target};

use super::common::{WriteCtx, accepted, decorate, got, preflight};
use super::realize::{apply_configs, check_configs, rebuild};

fn parse_instance(vmss_id: &str, instance: &str) -> Result<u32, ArmError> {
    instance
        .parse()
        .map_err(|_| ArmError::child_not_found(&child_id(vmss_id, "virtualMachines", instance)))
}

/// An instance as Azure returns it: `latestModelApplied` tells whether its network
/// configuration is the model's; `networkProfile` lists its realized NICs.
pub fn view(state: &State, vmss_key: &str, instance: u32) -> Option<Value> {
    let vmss = state.vmss.get(vmss_key)?;
    let inst = vmss.instances.get(&instance)?;
    let mut body = decorate(&inst.entry);
    let latest =
        refs::instance_nic_configs(&inst.entry.body) == refs::model_nic_configs(&vmss.entry.body);
    set_at(
        &mut body,
        &["properties", "latestModelApplied"],
        json!(latest),
    );
    let nics: Vec<Value> = inst
        .nics
        .iter()
        .map(|n| json!({"id": n.get("id")}))
        .collect();
    set_at(
        &mut body,
        &["properties", "networkProfile", "networkInterfaces"],
        Value::Array(nics),
    );
    Some(body)
}

/// The realized NICs of an instance as Azure returns them.
pub fn nic_views(state: &State, vmss_key: &str, instance: u32) -> Vec<Value> {
    let Some(inst) = state
        .vmss
        .get(vmss_key)
        .and_then(|v| v.instances.get(&instance))
    else {
        return Vec::new();
    };
    let ps = inst.entry.provisioning_state();
    inst.nics
        .iter()
        .map(|n| {
            let mut n = n.clone();
            set_at(&mut n, &["etag"], json!(inst.entry.etag));
            set_at(&mut n, &["properties", "provisioningState"], json!(ps));
            if let Some(ipcs) = crate::json::at_mut(&mut n, &["properties", "ipConfigurations"])
                .and_then(Value::as_array_mut)
            {
                for ipc in ipcs {
                    set_at(ipc, &["etag"], json!(inst.entry.etag));
                    set_at(ipc, &["properties", "provisioningState"], json!(ps));
                }
            }
            n
        })
        .collect()
}

fn vmss_exists(state: &State, vmss_id: &str) -> Result<String, ArmError> {
    let k = key(vmss_id);
    if state.vmss.contains_key(&k) {
        Ok(k)
    } else {
        Err(ArmError::not_found(vmss_id))
    }
}

/// `VirtualMachineScaleSetVMs_List`.
pub fn list(state: &State, vmss_id: &str) -> Result<Reply, ArmError> {
    let k = vmss_exists(state, vmss_id)?;
    let ids: Vec<u32> = state
        .vmss
        .get(&k)
        .map(|v| v.instances.keys().copied().collect())
        .unwrap_or_default();
    Ok(Reply::list(
        ids.into_iter().filter_map(|i| view(state, &k, i)).collect(),
    ))
}

/// `VirtualMachineScaleSetVMs_Get`.
pub fn get(state: &State, vmss_id: &str, instance: &str) -> Result<Reply, ArmError> {
    let k = vmss_exists(state, vmss_id)?;
    let i = parse_instance(vmss_id, instance)?;
    view(state, &k, i)
        .map(got)
        .ok_or_else(|| ArmError::child_not_found(&child_id(vmss_id, "virtualMachines", instance)))
}

/// `NetworkInterfaces_ListVirtualMachineScaleSetNetworkInterfaces`.
pub fn list_nics(state: &State, vmss_id: &str) -> Result<Reply, ArmError> {
    let k = vmss_exists(state, vmss_id)?;
    let ids: Vec<u32> = state
        .vmss
        .get(&k)
        .map(|v| v.instances.keys().copied().collect())
        .unwrap_or_default();
    Ok(Reply::list(
        ids.into_iter()
            .flat_map(|i| nic_views(state, &k, i))
            .collect(),
    ))
}

/// `NetworkInterfaces_GetVirtualMachineScaleSetNetworkInterface`.
pub fn get_nic(state: &State, vmss_id: &str, instance: &str, nic: &str) -> Result<Reply, ArmError> {
    let k = vmss_exists(state, vmss_id)?;
    let i = parse_instance(vmss_id, instance)?;
    let nic_id = refs::instance_nic_id(vmss_id, i, nic);
    nic_views(state, &k, i)
        .into_iter()
        .find(|n| n.get("id").and_then(Value::as_str).map(key) == Some(key(&nic_id)))
        .map(got)
        .ok_or_else(|| ArmError::child_not_found(&nic_id))
}

/// Fields of an instance a client may echo back but never sets.
const INSTANCE_READ_ONLY: [&str; 7] = [
    "latestModelApplied",
    "instanceId",
    "provisioningState",
    "networkProfile",
    "vmId",
    "modelDefinitionApplied",
    "instanceView",
];

/// `VirtualMachineScaleSetVMs_Update`: writes the instance's own network configuration (and
/// merges its other given properties); its NICs are rebuilt from it.
pub fn put(
    state: &mut State,
    ctx: &WriteCtx<'_>,
    vmss_id: &str,
    instance: &str,
) -> Result<Reply, ArmError> {
    let k = vmss_exists(state, vmss_id)?;
    let i = parse_instance(vmss_id, instance)?;
    let inst_id = child_id(vmss_id, "virtualMachines", &i.to_string());
    let Some(old) = state
        .vmss
        .get(&k)
        .and_then(|v| v.instances.get(&i))
        .cloned()
    else {
        return Err(ArmError::child_not_found(&inst_id));
    };
    preflight(state, ctx.req, &inst_id, Some(&old.entry))?;
    let given = ctx.req.json_object()?;
    let mut body = old.entry.body.clone();
    if let Some(tags) = given.get("tags") {
        set_at(&mut body, &["tags"], tags.clone());
    }
    if let Some(Value::Object(props)) = given.get("properties") {
        for (field, value) in props {
            if !INSTANCE_READ_ONLY.contains(&field.as_str()) {
                set_at(&mut body, &["properties", field], value.clone());
            }
        }
    }
    let configs = refs::instance_nic_configs(&body).to_vec();
    let ipcs = refs::of_instance(&k, vmss_id, i, &body);
    check_configs(state, &inst_id, &configs, &ipcs)?;
    let r = rebuild(state, vmss_id, i, &configs, &old)?;
    let etag = state.next_etag(Provider::Compute);
    if let Some(inst) = state.vmss.get_mut(&k).and_then(|v| v.instances.get_mut(&i)) {
        inst.entry.body = body;
        inst.entry.etag = etag;
        inst.nics = r.nics;
        inst.public_ips = r.public_ips;
    }
    let op = lro::start(
        state,
        Provider::Compute,
        ctx.operation,
        &ctx.req.path,
        vec![Target::Instance(k.clone(), i)],
        false,
        &ctx.shape,
    );
    let view = view(state, &k, i);
    Ok(accepted(state, ctx.req, &op, 200, view))
}

/// `VirtualMachineScaleSets_UpdateInstances` (`manualupgrade`): gives the listed instances the
/// model's network configuration. 202 with the long-running headers, no body.
pub fn manual_upgrade(
    state: &mut State,
    ctx: &WriteCtx<'_>,
    vmss_id: &str,
) -> Result<Reply, ArmError> {
    let k = vmss_exists(state, vmss_id)?;
    let given = ctx.req.json_object()?;
    let Some(list) = at(&given, &["instanceIds"])
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
    else {
        // Chosen code for a missing instance list.
        return Err(ArmError::bad_request(
            "InvalidParameter",
            format!("manualupgrade of {vmss_id} needs a non-empty instanceIds list."),
        ));
    };
    let Some(vmss) = state.vmss.get(&k).cloned() else {
        return Err(ArmError::not_found(vmss_id));
    };
    let mut ids = Vec::new();
    for v in list {
        let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        let inst = text
            .parse::<u32>()
            .ok()
            .filter(|i| vmss.instances.contains_key(i));
        // Chosen code for an instance id the scale set does not have.
        let Some(i) = inst else {
            return Err(ArmError::bad_request(
                "InvalidParameter",
                format!("Scale set {vmss_id} has no instance with id {text}."),
            ));
        };
        if !ids.contains(&i) {
            ids.push(i);
        }
    }
    let configs = refs::model_nic_configs(&vmss.entry.body).to_vec();
    let mut instances = vmss.instances.clone();
    let targets = apply_configs(state, vmss_id, &mut instances, &ids, &configs)?;
    if let Some(v) = state.vmss.get_mut(&k) {
        v.instances = instances;
    }
    let op = lro::start(
        state,
        Provider::Compute,
        ctx.operation,
        &ctx.req.path,
        targets,
        false,
        &ctx.shape,
    );
    Ok(accepted(state, ctx.req, &op, 202, None))
}
