//! `Microsoft.Compute/virtualMachineScaleSets`: the model. A model write changes no instance
//! (unless the upgrade policy is `Automatic`); instances take it through `manualupgrade` or
//! their own update.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::arm_error::ArmError;
use crate::exchange::Reply;
use crate::ids::{child_id, key, last_segment};
use crate::json::{at, merge_patch, set_at, str_at};
use crate::lro;
use crate::refs;
use crate::state::{Entry, Instance, Provider, State, Target, Vmss};

use super::common::{
    WriteCtx, accepted, decorate, got, identity, preflight, require_rg, strip_top_read_only,
};
use super::realize::{apply_configs, check_configs, check_model_capacity};

const TYPE: &str = "Microsoft.Compute/virtualMachineScaleSets";

/// A scale set as Azure returns it.
pub fn view(state: &State, k: &str) -> Option<Value> {
    state.vmss.get(k).map(|v| decorate(&v.entry))
}

/// `VirtualMachineScaleSets_Get`.
pub fn get(state: &State, id: &str) -> Result<Reply, ArmError> {
    view(state, &key(id))
        .map(got)
        .ok_or_else(|| ArmError::not_found(id))
}

/// `VirtualMachineScaleSets_List`.
pub fn list(state: &State, scope: &str) -> Result<Reply, ArmError> {
    super::common::list_scope(state, scope)?;
    let prefix = format!("{}/", key(scope));
    Ok(Reply::list(
        state
            .vmss
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, _)| view(state, k))
            .collect(),
    ))
}

/// Removes what Azure never stores or returns from a model body.
fn scrub(body: &mut Value) {
    strip_top_read_only(body);
    if let Some(os) =
        crate::json::at_mut(body, &["properties", "virtualMachineProfile", "osProfile"])
    {
        crate::json::remove(os, "adminPassword");
        crate::json::remove(os, "customData");
    }
}

/// A new instance's body, taking the model's network configuration.
pub fn new_instance_body(state: &mut State, vmss_body: &Value, instance: u32) -> Value {
    let vmss_id = str_at(vmss_body, &["id"]).unwrap_or_default();
    let name = last_segment(vmss_id);
    let computer_prefix = str_at(
        vmss_body,
        &[
            "properties",
            "virtualMachineProfile",
            "osProfile",
            "computerNamePrefix",
        ],
    )
    .unwrap_or(name);
    let mut body = json!({
        "name": format!("{name}_{instance}"),
        "id": child_id(vmss_id, "virtualMachines", &instance.to_string()),
        "type": "Microsoft.Compute/virtualMachines",
        "location": vmss_body.get("location").cloned().unwrap_or(Value::Null),
        "instanceId": instance.to_string(),
        "properties": {
            "modelDefinitionApplied": "VirtualMachineScaleSet",
            "vmId": state.next_guid(),
            "networkProfileConfiguration": {
                "networkInterfaceConfigurations": refs::model_nic_configs(vmss_body).to_vec(),
            },
            "osProfile": {"computerName": format!("{computer_prefix}{}", base36(instance))},
        }
    });
    if let Some(sku) = vmss_body.get("sku") {
        set_at(
            &mut body,
            &["sku"],
            json!({"name": sku.get("name"), "tier": sku.get("tier")}),
        );
    }
    if let Some(tags) = vmss_body.get("tags") {
        set_at(&mut body, &["tags"], tags.clone());
    }
    body
}

/// AKS-style six-character base-36 instance suffix (`000000`, `000001`, …, `00000a`).
fn base36(mut n: u32) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; 6];
    for slot in out.iter_mut().rev() {
        *slot = digits[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn automatic(body: &Value) -> bool {
    str_at(body, &["properties", "upgradePolicy", "mode"])
        .is_some_and(|m| m.eq_ignore_ascii_case("Automatic"))
}

/// `VirtualMachineScaleSets_CreateOrUpdate`. On an existing scale set the body is merged onto
/// the model (Azure's compute provider keeps what a PUT leaves out of an existing scale set,
/// which is what lets a client PUT only `location` and the network profile).
pub fn put(state: &mut State, ctx: &WriteCtx<'_>, id: &str) -> Result<Reply, ArmError> {
    require_rg(state, id)?;
    let given = ctx.req.json_object()?;
    write(state, ctx, id, given, true)
}

/// `VirtualMachineScaleSets_Update` (PATCH): a JSON merge of the given fields onto the model,
/// arrays given replacing arrays whole.
pub fn patch(state: &mut State, ctx: &WriteCtx<'_>, id: &str) -> Result<Reply, ArmError> {
    if !state.vmss.contains_key(&key(id)) {
        return Err(ArmError::not_found(id));
    }
    let given = ctx.req.json_object()?;
    write(state, ctx, id, given, false)
}

/// The model after a PUT or PATCH: the given body merged onto the stored one (read-only
/// fields kept), or the given body for a create.
fn merged_body(
    state: &mut State,
    id: &str,
    existing: Option<&Entry>,
    given: Value,
    may_create: bool,
) -> Result<Value, ArmError> {
    let mut body = match existing {
        Some(old) => {
            let mut merged = old.body.clone();
            merge_patch(&mut merged, &given);
            // Read-only: the scale set's identity never changes.
            for field in ["uniqueId", "timeCreated"] {
                if let Some(v) = at(&old.body, &["properties", field]) {
                    set_at(&mut merged, &["properties", field], v.clone());
                }
            }
            merged
        }
        None if may_create => given,
        None => return Err(ArmError::not_found(id)),
    };
    identity(&mut body, id, TYPE, existing.map(|e| &e.body))?;
    if existing.is_none() {
        let guid = state.next_guid();
        set_at(&mut body, &["properties", "uniqueId"], json!(guid));
        if at(&body, &["properties", "upgradePolicy"]).is_none() {
            set_at(
                &mut body,
                &["properties", "upgradePolicy"],
                json!({"mode": "Manual"}),
            );
        }
    }
    Ok(body)
}

fn write(
    state: &mut State,
    ctx: &WriteCtx<'_>,
    id: &str,
    mut given: Value,
    may_create: bool,
) -> Result<Reply, ArmError> {
    let k = key(id);
    let existing = state.vmss.get(&k).map(|v| v.entry.clone());
    preflight(state, ctx.req, id, existing.as_ref())?;
    scrub(&mut given);
    let body = merged_body(state, id, existing.as_ref(), given, may_create)?;
    let model_ipcs = refs::of_model(&k, id, &body);
    check_configs(state, id, refs::model_nic_configs(&body), &model_ipcs)?;
    check_model_capacity(state, &k, id, &model_ipcs)?;

    let mut instances: BTreeMap<u32, Instance> = state
        .vmss
        .get(&k)
        .map(|v| v.instances.clone())
        .unwrap_or_default();
    if existing.is_none() {
        let capacity = at(&body, &["sku", "capacity"])
            .and_then(Value::as_u64)
            .unwrap_or(0);
        for i in 0..u32::try_from(capacity).unwrap_or(0) {
            let ib = new_instance_body(state, &body, i);
            let etag = state.next_etag(Provider::Compute);
            let entry = Entry::new(ib, etag, false);
            instances.insert(
                i,
                Instance {
                    entry,
                    nics: Vec::new(),
                    public_ips: BTreeMap::new(),
                },
            );
        }
    }
    // Instances take the model only when new, or when the upgrade policy is Automatic.
    let mut targets = vec![Target::Resource(crate::state::Kind::Vmss, k.clone())];
    if existing.is_none() || automatic(&body) {
        let ids: Vec<u32> = instances.keys().copied().collect();
        let configs = refs::model_nic_configs(&body).to_vec();
        targets.extend(apply_configs(state, id, &mut instances, &ids, &configs)?);
    }
    let etag = state.next_etag(Provider::Compute);
    let seeded = existing.as_ref().is_some_and(|e| e.seeded);
    state.vmss.insert(
        k.clone(),
        Vmss {
            entry: Entry::new(body, etag, seeded),
            instances,
        },
    );
    let op = lro::start(
        state,
        Provider::Compute,
        ctx.operation,
        &ctx.req.path,
        targets,
        false,
        &ctx.shape,
    );
    let view = view(state, &k);
    let status = if existing.is_none() { 201 } else { 200 };
    Ok(accepted(state, ctx.req, &op, status, view))
}
