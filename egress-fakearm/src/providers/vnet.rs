//! `Microsoft.Network/virtualNetworks` and their subnets (read-only over HTTP; seeded).

use serde_json::{Value, json};

use crate::arm_error::ArmError;
use crate::exchange::Reply;
use crate::ids::{child_id, key, split_child};
use crate::json::{arr_at, set_at};
use crate::refs::{self, Holder};
use crate::state::State;

use super::common::{decorate, got};

/// The stored subnet object a subnet id names, if its virtual network and it exist.
pub fn find_subnet<'a>(state: &'a State, subnet_id: &str) -> Option<&'a Value> {
    let (vnet, kind, name) = split_child(subnet_id)?;
    if kind != "subnets" {
        return None;
    }
    let entry = state.vnets.get(&vnet)?;
    arr_at(&entry.body, &["properties", "subnets"])
        .iter()
        .find(|s| {
            s.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(&name))
        })
}

/// The virtual network key of a subnet id.
pub fn vnet_of_subnet(subnet_id: &str) -> Option<String> {
    split_child(subnet_id).map(|(vnet, _, _)| vnet)
}

/// A virtual network as Azure returns it, with each subnet's read-only `ipConfigurations`.
pub fn view(state: &State, vnet_key: &str) -> Option<Value> {
    let entry = state.vnets.get(vnet_key)?;
    let mut body = decorate(entry);
    let all = refs::all(state);
    let state_name = entry.provisioning_state();
    if let Some(subnets) =
        crate::json::at_mut(&mut body, &["properties", "subnets"]).and_then(Value::as_array_mut)
    {
        for subnet in subnets {
            let sid = subnet
                .get("id")
                .and_then(Value::as_str)
                .map(key)
                .unwrap_or_default();
            let ipcs: Vec<Value> = all
                .iter()
                .filter(|r| !matches!(r.holder, Holder::Model(_)))
                .filter(|r| r.subnet.as_deref().map(key).as_deref() == Some(sid.as_str()))
                .map(|r| json!({"id": r.id}))
                .collect();
            set_at(
                subnet,
                &["properties", "provisioningState"],
                json!(state_name),
            );
            set_at(subnet, &["etag"], json!(entry.etag));
            if ipcs.is_empty() {
                if let Some(p) = crate::json::at_mut(subnet, &["properties"]) {
                    crate::json::remove(p, "ipConfigurations");
                }
            } else {
                set_at(
                    subnet,
                    &["properties", "ipConfigurations"],
                    Value::Array(ipcs),
                );
            }
        }
    }
    Some(body)
}

/// `VirtualNetworks_Get`.
pub fn get(state: &State, id: &str) -> Result<Reply, ArmError> {
    view(state, &key(id))
        .map(got)
        .ok_or_else(|| ArmError::not_found(id))
}

/// `Subnets_Get`.
pub fn get_subnet(state: &State, vnet_id: &str, name: &str) -> Result<Reply, ArmError> {
    let vnet = view(state, &key(vnet_id)).ok_or_else(|| ArmError::not_found(vnet_id))?;
    let sid = key(&child_id(vnet_id, "subnets", name));
    arr_at(&vnet, &["properties", "subnets"])
        .iter()
        .find(|s| s.get("id").and_then(Value::as_str).map(key).as_deref() == Some(sid.as_str()))
        .cloned()
        .map(got)
        .ok_or_else(|| ArmError::child_not_found(&child_id(vnet_id, "subnets", name)))
}
