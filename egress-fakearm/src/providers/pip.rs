//! `Microsoft.Network/publicIPAddresses`: an address from a prefix (or from the fake's free
//! documentation range); attached to at most one ipConfig; not deletable while attached.

use serde_json::{Value, json};

use crate::alloc::Allocator;
use crate::arm_error::ArmError;
use crate::exchange::Reply;
use crate::ids::key;
use crate::json::{arr_at, set_at, str_at};
use crate::refs;
use crate::state::{Kind, Provider, State};

use super::common::{
    WriteCtx, commit, decorate, delete, got, identity, in_scope, list_scope, preflight, require_rg,
    strip_top_read_only,
};

const TYPE: &str = "Microsoft.Network/publicIPAddresses";

/// The ids of the ipConfigs (NIC ipConfigs and load-balancer frontends) using a public IP.
pub fn attached_to(state: &State, pip_key: &str) -> Vec<String> {
    let mut out: Vec<String> = refs::all(state)
        .into_iter()
        .filter(|r| r.public_ip.as_deref().map(key).as_deref() == Some(pip_key))
        .map(|r| r.id)
        .collect();
    for lb in state.lbs.values() {
        for fe in arr_at(&lb.body, &["properties", "frontendIPConfigurations"]) {
            if str_at(fe, &["properties", "publicIPAddress", "id"])
                .map(key)
                .as_deref()
                == Some(pip_key)
            {
                out.extend(str_at(fe, &["id"]).map(str::to_owned));
            }
        }
    }
    out
}

/// A public IP as Azure returns it, with the read-only `ipConfiguration`.
pub fn view(state: &State, k: &str) -> Option<Value> {
    let entry = state.pips.get(k)?;
    let mut body = decorate(entry);
    if let Some(ipc) = attached_to(state, k).into_iter().next() {
        set_at(
            &mut body,
            &["properties", "ipConfiguration"],
            json!({"id": ipc}),
        );
    }
    Some(body)
}

/// `PublicIPAddresses_Get`.
pub fn get(state: &State, id: &str) -> Result<Reply, ArmError> {
    view(state, &key(id))
        .map(got)
        .ok_or_else(|| ArmError::not_found(id))
}

/// `PublicIPAddresses_List`.
pub fn list(state: &State, scope: &str) -> Result<Reply, ArmError> {
    list_scope(state, scope)?;
    Ok(Reply::list(
        in_scope(&state.pips, scope)
            .filter_map(|(k, _)| view(state, k))
            .collect(),
    ))
}

/// `PublicIPAddresses_CreateOrUpdate`.
pub fn put(state: &mut State, ctx: &WriteCtx<'_>, id: &str) -> Result<Reply, ArmError> {
    require_rg(state, id)?;
    let k = key(id);
    let existing = state.pips.get(&k).cloned();
    preflight(state, ctx.req, id, existing.as_ref())?;
    let mut body = ctx.req.json_object()?;
    strip_top_read_only(&mut body);
    if let Some(p) = body.get_mut("properties") {
        crate::json::remove(p, "ipConfiguration");
        crate::json::remove(p, "ipAddress");
    }
    identity(&mut body, id, TYPE, existing.as_ref().map(|e| &e.body))?;
    let prefix = str_at(&body, &["properties", "publicIPPrefix", "id"]).map(str::to_owned);
    let prefix_net = match &prefix {
        Some(p) => {
            let entry = state
                .prefixes
                .get(&key(p))
                .ok_or_else(|| ArmError::invalid_reference(p, id))?;
            let net = str_at(&entry.body, &["properties", "ipPrefix"])
                .and_then(|s| s.parse::<ipnet::Ipv4Net>().ok());
            Some(net.ok_or_else(|| ArmError::invalid_reference(p, id))?)
        }
        None => None,
    };
    let address = if let Some(old) = &existing {
        let old_prefix = str_at(&old.body, &["properties", "publicIPPrefix", "id"]).map(key);
        if old_prefix != prefix.as_deref().map(key) {
            return Err(ArmError::bad_request(
                "PropertyChangeNotAllowed",
                format!("Changing property 'publicIPPrefix' of {id} is not allowed."),
            ));
        }
        str_at(&old.body, &["properties", "ipAddress"])
            .unwrap_or_default()
            .to_owned()
    } else {
        let mut alloc = Allocator::from_state(state);
        match (&prefix, prefix_net) {
            (Some(p), Some(net)) => alloc.public_in(p, net, "PublicIpPrefixOutOfIpAddresses")?,
            _ => alloc.standalone_public()?,
        }
        .to_string()
    };
    set_at(&mut body, &["properties", "ipAddress"], json!(address));
    for (field, default) in [
        ("publicIPAddressVersion", json!("IPv4")),
        ("publicIPAllocationMethod", json!("Static")),
        ("idleTimeoutInMinutes", json!(4)),
        ("ipTags", json!([])),
    ] {
        if crate::json::at(&body, &["properties", field]).is_none() {
            set_at(&mut body, &["properties", field], default);
        }
    }
    if body.get("sku").is_none() {
        set_at(
            &mut body,
            &["sku"],
            json!({"name": "Standard", "tier": "Regional"}),
        );
    }
    Ok(commit(
        state,
        ctx,
        Kind::PublicIp,
        Provider::Network,
        id,
        body,
    ))
}

/// `PublicIPAddresses_Delete`: refused with `PublicIPAddressInUse` while attached.
pub fn remove(state: &mut State, ctx: &WriteCtx<'_>, id: &str) -> Result<Reply, ArmError> {
    let k = key(id);
    let Some(existing) = state.pips.get(&k).cloned() else {
        return Ok(Reply::empty(204));
    };
    preflight(state, ctx.req, id, Some(&existing))?;
    let users = attached_to(state, &k);
    if !users.is_empty() {
        return Err(ArmError::bad_request(
            "PublicIPAddressInUse",
            format!(
                "Public IP address {id} cannot be deleted because it is in use by IP configuration {}.",
                users.join(", ")
            ),
        ));
    }
    Ok(delete(state, ctx, Kind::PublicIp, Provider::Network, id))
}
