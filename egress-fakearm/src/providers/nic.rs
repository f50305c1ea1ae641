//! `Microsoft.Network/networkInterfaces` (the NICs of virtual-machine pools).

use serde_json::{Value, json};

use crate::alloc::{Allocator, assign_private, named};
use crate::arm_error::ArmError;
use crate::exchange::Reply;
use crate::ids::{child_id, key};
use crate::json::{arr_at, set_at, str_at};
use crate::refs::{self, Holder};
use crate::rules;
use crate::state::{Kind, Provider, State};

use super::common::{
    WriteCtx, commit, decorate, got, identity, in_scope, list_scope, preflight, require_rg,
    strip_top_read_only, unique_names,
};

const TYPE: &str = "Microsoft.Network/networkInterfaces";
const IPC_TYPE: &str = "Microsoft.Network/networkInterfaces/ipConfigurations";

/// A NIC as Azure returns it.
pub fn view(state: &State, k: &str) -> Option<Value> {
    let entry = state.nics.get(k)?;
    let mut body = decorate(entry);
    let ps = entry.provisioning_state();
    if let Some(ipcs) = crate::json::at_mut(&mut body, &["properties", "ipConfigurations"])
        .and_then(Value::as_array_mut)
    {
        for ipc in ipcs {
            set_at(ipc, &["etag"], json!(entry.etag));
            set_at(ipc, &["properties", "provisioningState"], json!(ps));
        }
    }
    Some(body)
}

/// `NetworkInterfaces_Get`.
pub fn get(state: &State, id: &str) -> Result<Reply, ArmError> {
    view(state, &key(id))
        .map(got)
        .ok_or_else(|| ArmError::not_found(id))
}

/// `NetworkInterfaces_List`.
pub fn list(state: &State, scope: &str) -> Result<Reply, ArmError> {
    list_scope(state, scope)?;
    Ok(Reply::list(
        in_scope(&state.nics, scope)
            .filter_map(|(k, _)| view(state, k))
            .collect(),
    ))
}

/// Checks a NIC body's ipConfigurations and fills in what Azure fills in (ids, types,
/// private addresses). `old` is the stored NIC, if any.
pub fn build(
    state: &State,
    id: &str,
    body: &mut Value,
    old: Option<&Value>,
) -> Result<(), ArmError> {
    let ipcs_in = arr_at(body, &["properties", "ipConfigurations"]).to_vec();
    if ipcs_in.is_empty() {
        // Chosen code for a NIC without ipConfigurations.
        return Err(ArmError::bad_request(
            "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
            format!("Network interface {id} must have at least one IP configuration."),
        ));
    }
    unique_names(&ipcs_in, "ipConfigurations", id)?;
    let primaries = ipcs_in
        .iter()
        .filter(|i| crate::json::at(i, &["properties", "primary"]) == Some(&json!(true)))
        .count();
    if ipcs_in.len() > 1 && primaries != 1 {
        // Chosen code: Azure requires exactly one primary ipConfig on a NIC with several.
        return Err(ArmError::bad_request(
            "InvalidParameter",
            format!(
                "Network interface {id} has {} IP configurations and {primaries} marked primary; exactly one must be.",
                ipcs_in.len()
            ),
        ));
    }
    let k = key(id);
    let new_refs = refs::of_nic(&k, id, body);
    rules::check_references(state, &new_refs)?;
    let vnets: std::collections::BTreeSet<String> = new_refs
        .iter()
        .filter_map(|r| r.subnet.as_deref())
        .filter_map(super::vnet::vnet_of_subnet)
        .collect();
    if vnets.len() > 1 {
        // Chosen code (Azure refuses ipConfigs of one NIC in different virtual networks).
        return Err(ArmError::bad_request(
            "IpConfigurationsOnSameNicCannotUseDifferentVnets",
            format!(
                "The IP configurations of network interface {id} are in different virtual networks."
            ),
        ));
    }
    rules::check_public_ip_single_use(state, &Holder::Nic(k), &new_refs)?;
    let mut alloc = Allocator::from_state(state);
    let old_ipcs = old.map_or(&[][..], |o| arr_at(o, &["properties", "ipConfigurations"]));
    alloc.release_unkept(&named(old_ipcs), &named(&ipcs_in));
    let mut out = Vec::with_capacity(ipcs_in.len());
    for mut ipc in ipcs_in {
        let name = ipc
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let ipc_id = child_id(id, "ipConfigurations", &name);
        let old_ipc = old_ipcs.iter().find(|o| {
            o.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
        });
        if let Some(p) = ipc.get_mut("properties") {
            crate::json::remove(p, "provisioningState");
        }
        crate::json::remove(&mut ipc, "etag");
        set_at(&mut ipc, &["id"], json!(ipc_id));
        set_at(&mut ipc, &["type"], json!(IPC_TYPE));
        if crate::json::at(&ipc, &["properties", "primary"]).is_none() {
            set_at(&mut ipc, &["properties", "primary"], json!(primaries == 0));
        }
        assign_private(state, &mut alloc, &mut ipc, old_ipc, &ipc_id)?;
        out.push(ipc);
    }
    set_at(body, &["properties", "ipConfigurations"], Value::Array(out));
    Ok(())
}

/// `NetworkInterfaces_CreateOrUpdate`.
pub fn put(state: &mut State, ctx: &WriteCtx<'_>, id: &str) -> Result<Reply, ArmError> {
    require_rg(state, id)?;
    let k = key(id);
    let existing = state.nics.get(&k).cloned();
    preflight(state, ctx.req, id, existing.as_ref())?;
    let mut body = ctx.req.json_object()?;
    strip_top_read_only(&mut body);
    identity(&mut body, id, TYPE, existing.as_ref().map(|e| &e.body))?;
    // Read-only fields Azure keeps whatever the client sends.
    for field in ["virtualMachine", "macAddress"] {
        match existing
            .as_ref()
            .and_then(|e| crate::json::at(&e.body, &["properties", field]))
        {
            Some(v) => set_at(&mut body, &["properties", field], v.clone()),
            None => {
                if let Some(p) = body.get_mut("properties") {
                    crate::json::remove(p, field);
                }
            }
        }
    }
    build(state, id, &mut body, existing.as_ref().map(|e| &e.body))?;
    if str_at(&body, &["properties", "macAddress"]).is_none() {
        let g = state.next_guid().replace('-', "");
        let mac = format!("00-0D-3A-{}-{}-{}", &g[0..2], &g[2..4], &g[4..6]).to_ascii_uppercase();
        set_at(&mut body, &["properties", "macAddress"], json!(mac));
    }
    Ok(commit(state, ctx, Kind::Nic, Provider::Network, id, body))
}
