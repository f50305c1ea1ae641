//! `Microsoft.Network/publicIPPrefixes`: allocated from the documentation ranges; a prefix in
//! use (public IPs made from it, instance addresses taken from it, or scale-set configurations
//! naming it) cannot be deleted.

use serde_json::{Value, json};

use crate::alloc::Allocator;
use crate::arm_error::ArmError;
use crate::exchange::Reply;
use crate::ids::key;
use crate::json::{set_at, str_at};
use crate::refs;
use crate::state::{Kind, Provider, State};

use super::common::{
    WriteCtx, commit, decorate, delete, got, identity, in_scope, list_scope, preflight, require_rg,
    strip_top_read_only,
};

const TYPE: &str = "Microsoft.Network/publicIPPrefixes";

/// The smallest and largest prefix lengths the fake hands out. Azure's default range is
/// /28../31 (larger with quota); the fake's public pool is made of /24s.
const MIN_LEN: u64 = 24;
const MAX_LEN: u64 = 31;

/// Ids of the public IPs made from a prefix: standalone public IPs and scale-set instance ones.
pub fn public_ips_of(state: &State, prefix_key: &str) -> Vec<String> {
    let mut out: Vec<String> = state
        .pips
        .values()
        .filter(|p| {
            str_at(&p.body, &["properties", "publicIPPrefix", "id"])
                .map(key)
                .as_deref()
                == Some(prefix_key)
        })
        .filter_map(|p| str_at(&p.body, &["id"]).map(str::to_owned))
        .collect();
    for vmss in state.vmss.values() {
        for inst in vmss.instances.values() {
            out.extend(
                inst.public_ips
                    .values()
                    .filter(|p| p.prefix_key == prefix_key)
                    .map(|p| p.id.clone()),
            );
        }
    }
    out
}

/// A prefix as Azure returns it, with the read-only `publicIPAddresses`.
pub fn view(state: &State, k: &str) -> Option<Value> {
    let entry = state.prefixes.get(k)?;
    let mut body = decorate(entry);
    let ips: Vec<Value> = public_ips_of(state, k)
        .into_iter()
        .map(|id| json!({"id": id}))
        .collect();
    if !ips.is_empty() {
        set_at(
            &mut body,
            &["properties", "publicIPAddresses"],
            Value::Array(ips),
        );
    }
    Some(body)
}

/// `PublicIPPrefixes_Get`.
pub fn get(state: &State, id: &str) -> Result<Reply, ArmError> {
    view(state, &key(id))
        .map(got)
        .ok_or_else(|| ArmError::not_found(id))
}

/// `PublicIPPrefixes_List`.
pub fn list(state: &State, scope: &str) -> Result<Reply, ArmError> {
    list_scope(state, scope)?;
    Ok(Reply::list(
        in_scope(&state.prefixes, scope)
            .filter_map(|(k, _)| view(state, k))
            .collect(),
    ))
}

/// `PublicIPPrefixes_CreateOrUpdate`.
pub fn put(state: &mut State, ctx: &WriteCtx<'_>, id: &str) -> Result<Reply, ArmError> {
    require_rg(state, id)?;
    let k = key(id);
    let existing = state.prefixes.get(&k).cloned();
    preflight(state, ctx.req, id, existing.as_ref())?;
    let mut body = ctx.req.json_object()?;
    strip_top_read_only(&mut body);
    if let Some(p) = body.get_mut("properties") {
        crate::json::remove(p, "publicIPAddresses");
    }
    identity(&mut body, id, TYPE, existing.as_ref().map(|e| &e.body))?;
    let len = crate::json::at(&body, &["properties", "prefixLength"]).and_then(Value::as_u64);
    let Some(len) = len.filter(|l| (MIN_LEN..=MAX_LEN).contains(l)) else {
        // Chosen code for a missing or out-of-range length.
        return Err(ArmError::bad_request(
            "InvalidPublicIpPrefixLength",
            format!(
                "properties.prefixLength of {id} must be an integer from {MIN_LEN} to {MAX_LEN}."
            ),
        ));
    };
    if let Some(v) = str_at(&body, &["properties", "publicIPAddressVersion"])
        && !v.eq_ignore_ascii_case("IPv4")
    {
        return Err(ArmError::bad_request(
            "InvalidRequestFormat",
            format!("The fake serves IPv4 prefixes only; {id} asks for {v}."),
        ));
    }
    let ip_prefix = if let Some(old) = &existing {
        let old_len =
            crate::json::at(&old.body, &["properties", "prefixLength"]).and_then(Value::as_u64);
        if old_len != Some(len) {
            return Err(ArmError::bad_request(
                "PropertyChangeNotAllowed",
                format!("Changing property 'prefixLength' of {id} is not allowed."),
            ));
        }
        str_at(&old.body, &["properties", "ipPrefix"])
            .unwrap_or_default()
            .to_owned()
    } else {
        let len = u8::try_from(len).unwrap_or(32);
        Allocator::from_state(state).prefix_block(len)?.to_string()
    };
    let guid = match existing
        .as_ref()
        .and_then(|e| str_at(&e.body, &["properties", "resourceGuid"]))
    {
        Some(g) => g.to_owned(),
        None => state.next_guid(),
    };
    set_at(&mut body, &["properties", "ipPrefix"], json!(ip_prefix));
    set_at(&mut body, &["properties", "resourceGuid"], json!(guid));
    set_at(
        &mut body,
        &["properties", "publicIPAddressVersion"],
        json!("IPv4"),
    );
    if crate::json::at(&body, &["properties", "ipTags"]).is_none() {
        set_at(&mut body, &["properties", "ipTags"], json!([]));
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
        Kind::PublicIpPrefix,
        Provider::Network,
        id,
        body,
    ))
}

/// `PublicIPPrefixes_Delete`: refused with `PublicIpPrefixInUse` while anything uses it.
pub fn remove(state: &mut State, ctx: &WriteCtx<'_>, id: &str) -> Result<Reply, ArmError> {
    let k = key(id);
    let Some(existing) = state.prefixes.get(&k).cloned() else {
        return Ok(Reply::empty(204));
    };
    preflight(state, ctx.req, id, Some(&existing))?;
    let mut users = public_ips_of(state, &k);
    users.extend(
        refs::all(state)
            .into_iter()
            .filter(|r| r.public_prefix.as_deref().map(key).as_deref() == Some(k.as_str()))
            .map(|r| r.referrer),
    );
    users.dedup();
    if !users.is_empty() {
        return Err(ArmError::bad_request(
            "PublicIpPrefixInUse",
            format!(
                "Public IP prefix {id} cannot be deleted because it is in use by {}.",
                users.join(", ")
            ),
        ));
    }
    Ok(delete(
        state,
        ctx,
        Kind::PublicIpPrefix,
        Provider::Network,
        id,
    ))
}
