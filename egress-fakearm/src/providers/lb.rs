//! `Microsoft.Network/loadBalancers`: rules must reference the same load balancer's frontends,
//! pools and probes; a pool still referenced cannot be dropped; a load balancer still
//! referenced cannot be deleted. Pools report `backendIPConfigurations`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::alloc::{Allocator, assign_private, named};
use crate::arm_error::ArmError;
use crate::exchange::Reply;
use crate::ids::{child_id, key};
use crate::json::{arr_at, ref_id, set_at, str_at};
use crate::refs::{self, Holder};
use crate::rules::referrers_of;
use crate::state::{Kind, Provider, State};

use super::common::{
    WriteCtx, commit, decorate, delete, got, identity, in_scope, list_scope, preflight, require_rg,
    strip_top_read_only, unique_names,
};

const TYPE: &str = "Microsoft.Network/loadBalancers";

/// The child collections, and the read-only back-reference lists each one reports.
const COLLECTIONS: [(&str, &[&str]); 7] = [
    (
        "frontendIPConfigurations",
        &[
            "loadBalancingRules",
            "inboundNatRules",
            "inboundNatPools",
            "outboundRules",
        ],
    ),
    (
        "backendAddressPools",
        &[
            "backendIPConfigurations",
            "loadBalancingRules",
            "outboundRules",
            "inboundNatRules",
        ],
    ),
    ("loadBalancingRules", &[]),
    ("probes", &["loadBalancingRules"]),
    ("inboundNatRules", &["backendIPConfiguration"]),
    ("inboundNatPools", &[]),
    ("outboundRules", &[]),
];

/// A load balancer as Azure returns it, with children's back-references.
pub fn view(state: &State, k: &str) -> Option<Value> {
    let entry = state.lbs.get(k)?;
    let mut body = decorate(entry);
    let ps = entry.provisioning_state();
    // child key -> (back-reference list name -> ids)
    let mut back: BTreeMap<String, BTreeMap<&str, Vec<String>>> = BTreeMap::new();
    let mut note = |target: Option<&str>, list: &'static str, id: &str| {
        if let Some(t) = target {
            back.entry(key(t))
                .or_default()
                .entry(list)
                .or_default()
                .push(id.to_owned());
        }
    };
    for rule in arr_at(&entry.body, &["properties", "loadBalancingRules"]) {
        let id = str_at(rule, &["id"]).unwrap_or_default();
        note(
            str_at(rule, &["properties", "frontendIPConfiguration", "id"]),
            "loadBalancingRules",
            id,
        );
        note(
            str_at(rule, &["properties", "probe", "id"]),
            "loadBalancingRules",
            id,
        );
        for pool in rule_pools(rule) {
            note(Some(pool), "loadBalancingRules", id);
        }
    }
    for nat in arr_at(&entry.body, &["properties", "inboundNatRules"]) {
        let id = str_at(nat, &["id"]).unwrap_or_default();
        note(
            str_at(nat, &["properties", "frontendIPConfiguration", "id"]),
            "inboundNatRules",
            id,
        );
    }
    for r in refs::all(state) {
        if matches!(r.holder, Holder::Model(_)) {
            continue;
        }
        for pool in &r.backend_pools {
            note(Some(pool), "backendIPConfigurations", &r.id);
        }
    }
    for (collection, _) in COLLECTIONS {
        let Some(items) = crate::json::at_mut(&mut body, &["properties", collection])
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for item in items {
            set_at(item, &["etag"], json!(entry.etag));
            set_at(item, &["properties", "provisioningState"], json!(ps));
            let Some(lists) = item
                .get("id")
                .and_then(Value::as_str)
                .and_then(|id| back.get(&key(id)))
            else {
                continue;
            };
            for (list, ids) in lists {
                let mut ids = ids.clone();
                ids.sort();
                ids.dedup();
                set_at(
                    item,
                    &["properties", list],
                    Value::Array(ids.into_iter().map(|id| json!({"id": id})).collect()),
                );
            }
        }
    }
    Some(body)
}

fn rule_pools(rule: &Value) -> Vec<&str> {
    let mut pools: Vec<&str> = str_at(rule, &["properties", "backendAddressPool", "id"])
        .into_iter()
        .collect();
    pools.extend(
        arr_at(rule, &["properties", "backendAddressPools"])
            .iter()
            .filter_map(ref_id),
    );
    pools
}

/// `LoadBalancers_Get`.
pub fn get(state: &State, id: &str) -> Result<Reply, ArmError> {
    view(state, &key(id))
        .map(got)
        .ok_or_else(|| ArmError::not_found(id))
}

/// `LoadBalancers_List`.
pub fn list(state: &State, scope: &str) -> Result<Reply, ArmError> {
    list_scope(state, scope)?;
    Ok(Reply::list(
        in_scope(&state.lbs, scope)
            .filter_map(|(k, _)| view(state, k))
            .collect(),
    ))
}

/// Normalises children (ids, types, no read-only fields) and checks names.
fn normalise_children(body: &mut Value, id: &str) -> Result<(), ArmError> {
    for (collection, read_only) in COLLECTIONS {
        let Some(items) =
            crate::json::at_mut(body, &["properties", collection]).and_then(Value::as_array_mut)
        else {
            continue;
        };
        unique_names(items, collection, id)?;
        for item in items.iter_mut() {
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            crate::json::remove(item, "etag");
            set_at(item, &["id"], json!(child_id(id, collection, &name)));
            set_at(item, &["type"], json!(format!("{TYPE}/{collection}")));
            if let Some(p) = item.get_mut("properties") {
                crate::json::remove(p, "provisioningState");
                for field in read_only {
                    crate::json::remove(p, field);
                }
            }
        }
    }
    Ok(())
}

/// Names of a collection's children (lower-case keys of their ids).
fn child_keys(body: &Value, collection: &str) -> Vec<String> {
    arr_at(body, &["properties", collection])
        .iter()
        .filter_map(|c| str_at(c, &["id"]))
        .map(key)
        .collect()
}

/// Rules (and NAT rules) must reference this load balancer's own children.
fn check_rule_references(body: &Value) -> Result<(), ArmError> {
    let frontends = child_keys(body, "frontendIPConfigurations");
    let pools = child_keys(body, "backendAddressPools");
    let probes = child_keys(body, "probes");
    let must =
        |r: Option<&str>, set: &[String], rule: &str, required: bool| -> Result<(), ArmError> {
            match r {
                Some(r) if !set.contains(&key(r)) => Err(ArmError::invalid_reference(r, rule)),
                None if required => Err(ArmError::invalid_body(format!(
                    "Rule {rule} has no frontendIPConfiguration."
                ))),
                _ => Ok(()),
            }
        };
    for rule in arr_at(body, &["properties", "loadBalancingRules"]) {
        let rid = str_at(rule, &["id"]).unwrap_or_default();
        must(
            str_at(rule, &["properties", "frontendIPConfiguration", "id"]),
            &frontends,
            rid,
            true,
        )?;
        must(
            str_at(rule, &["properties", "probe", "id"]),
            &probes,
            rid,
            false,
        )?;
        for pool in rule_pools(rule) {
            must(Some(pool), &pools, rid, false)?;
        }
    }
    for nat in arr_at(body, &["properties", "inboundNatRules"]) {
        let rid = str_at(nat, &["id"]).unwrap_or_default();
        must(
            str_at(nat, &["properties", "frontendIPConfiguration", "id"]),
            &frontends,
            rid,
            true,
        )?;
    }
    check_port_conflicts(body)
}

/// Two rules may not share frontend, protocol and frontend port; two rules on one pool may not
/// share protocol and backend port unless both use floating IP.
fn check_port_conflicts(body: &Value) -> Result<(), ArmError> {
    let rules = arr_at(body, &["properties", "loadBalancingRules"]);
    let field = |r: &Value, f: &str| crate::json::at(r, &["properties", f]).cloned();
    let proto = |r: &Value| {
        str_at(r, &["properties", "protocol"])
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let same_proto =
        |a: &Value, b: &Value| proto(a) == proto(b) || proto(a) == "all" || proto(b) == "all";
    let floating =
        |r: &Value| crate::json::at(r, &["properties", "enableFloatingIP"]) == Some(&json!(true));
    for (i, a) in rules.iter().enumerate() {
        for b in &rules[..i] {
            let name = |r: &Value| str_at(r, &["name"]).unwrap_or_default().to_owned();
            let same_fe = str_at(a, &["properties", "frontendIPConfiguration", "id"]).map(key)
                == str_at(b, &["properties", "frontendIPConfiguration", "id"]).map(key);
            if same_fe && same_proto(a, b) && field(a, "frontendPort") == field(b, "frontendPort") {
                // Chosen code for a frontend port used twice.
                return Err(ArmError::bad_request(
                    "RulesUseSameFrontendIPConfigurationProtocolAndPort",
                    format!(
                        "Load balancing rules {} and {} use the same frontend, protocol and frontend port.",
                        name(a),
                        name(b)
                    ),
                ));
            }
            let share_pool = rule_pools(a)
                .iter()
                .any(|p| rule_pools(b).iter().any(|q| key(p) == key(q)));
            if share_pool
                && same_proto(a, b)
                && field(a, "backendPort") == field(b, "backendPort")
                && !(floating(a) && floating(b))
            {
                return Err(ArmError::bad_request(
                    "RulesUseSameBackendPortProtocolAndPool",
                    format!(
                        "Load balancing rules {} and {} use the same backend pool, protocol and backend port.",
                        name(a),
                        name(b)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Frontends: subnet and public IP must exist; private addresses from the subnet.
fn build_frontends(
    state: &State,
    id: &str,
    body: &mut Value,
    old: Option<&Value>,
) -> Result<(), ArmError> {
    let mut alloc = Allocator::from_state(state);
    let old_fes = old.map_or(&[][..], |o| {
        arr_at(o, &["properties", "frontendIPConfigurations"])
    });
    let new_fes = arr_at(body, &["properties", "frontendIPConfigurations"]).to_vec();
    alloc.release_unkept(&named(old_fes), &named(&new_fes));
    let Some(fes) = crate::json::at_mut(body, &["properties", "frontendIPConfigurations"])
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    for fe in fes {
        let fid = str_at(fe, &["id"]).unwrap_or(id).to_owned();
        if let Some(subnet) = str_at(fe, &["properties", "subnet", "id"])
            && super::vnet::find_subnet(state, subnet).is_none()
        {
            return Err(ArmError::invalid_reference(subnet, &fid));
        }
        if let Some(p) = str_at(fe, &["properties", "publicIPAddress", "id"])
            && !state.pips.contains_key(&key(p))
        {
            return Err(ArmError::invalid_reference(p, &fid));
        }
        if let Some(p) = str_at(fe, &["properties", "publicIPPrefix", "id"])
            && !state.prefixes.contains_key(&key(p))
        {
            return Err(ArmError::invalid_reference(p, &fid));
        }
        let name = str_at(fe, &["name"]).unwrap_or_default().to_owned();
        let old_fe = old_fes
            .iter()
            .find(|o| str_at(o, &["name"]).is_some_and(|n| n.eq_ignore_ascii_case(&name)));
        assign_private(state, &mut alloc, fe, old_fe, &fid)?;
    }
    Ok(())
}

/// `LoadBalancers_CreateOrUpdate`.
pub fn put(state: &mut State, ctx: &WriteCtx<'_>, id: &str) -> Result<Reply, ArmError> {
    require_rg(state, id)?;
    let k = key(id);
    let existing = state.lbs.get(&k).cloned();
    preflight(state, ctx.req, id, existing.as_ref())?;
    let mut body = ctx.req.json_object()?;
    strip_top_read_only(&mut body);
    identity(&mut body, id, TYPE, existing.as_ref().map(|e| &e.body))?;
    normalise_children(&mut body, id)?;
    check_rule_references(&body)?;
    build_frontends(state, id, &mut body, existing.as_ref().map(|e| &e.body))?;
    if let Some(old) = &existing {
        let kept = child_keys(&body, "backendAddressPools");
        let dropped: Vec<String> = child_keys(&old.body, "backendAddressPools")
            .into_iter()
            .filter(|p| !kept.contains(p))
            .collect();
        if let Some((pool, referrer)) = referrers_of(state, &dropped).into_iter().next() {
            return Err(ArmError::bad_request(
                "LoadBalancerBackendAddressPoolInUse",
                format!(
                    "Cannot remove backend address pool {pool} from load balancer {id}: it is in use by {referrer}."
                ),
            ));
        }
    }
    if body.get("sku").is_none() {
        set_at(
            &mut body,
            &["sku"],
            json!({"name": "Standard", "tier": "Regional"}),
        );
    }
    let guid = match existing
        .as_ref()
        .and_then(|e| str_at(&e.body, &["properties", "resourceGuid"]))
    {
        Some(g) => g.to_owned(),
        None => state.next_guid(),
    };
    set_at(&mut body, &["properties", "resourceGuid"], json!(guid));
    Ok(commit(
        state,
        ctx,
        Kind::LoadBalancer,
        Provider::Network,
        id,
        body,
    ))
}

/// `LoadBalancers_Delete`: refused with `LoadBalancerInUse` while any ipConfig references one
/// of its children.
pub fn remove(state: &mut State, ctx: &WriteCtx<'_>, id: &str) -> Result<Reply, ArmError> {
    let k = key(id);
    let Some(existing) = state.lbs.get(&k).cloned() else {
        return Ok(Reply::empty(204));
    };
    preflight(state, ctx.req, id, Some(&existing))?;
    let prefix = format!("{k}/");
    let users: Vec<String> = refs::all(state)
        .into_iter()
        .filter(|r| r.lb_refs().any(|t| key(t).starts_with(&prefix)))
        .map(|r| r.referrer)
        .collect();
    if let Some(user) = users.first() {
        return Err(ArmError::bad_request(
            "LoadBalancerInUse",
            format!(
                "Load balancer {id} cannot be deleted because it is in use by {user} ({} referrers).",
                users.len()
            ),
        ));
    }
    Ok(delete(
        state,
        ctx,
        Kind::LoadBalancer,
        Provider::Network,
        id,
    ))
}
