//! The reference rules shared by every writer of ipConfigs (scale-set models, instances and
//! NICs): whatever an ipConfig names must exist, and a public IP serves one ipConfig.

use serde_json::Value;

use crate::arm_error::ArmError;
use crate::ids::{key, split_child};
use crate::json::arr_at;
use crate::refs::{self, Holder, IpConfigRef};
use crate::state::State;

/// True when a load-balancer child (backend pool, frontend, probe, NAT rule or pool) exists.
pub fn lb_child_exists(state: &State, child_id: &str) -> bool {
    let Some((lb, kind, name)) = split_child(child_id) else {
        return false;
    };
    let collection = match kind.as_str() {
        "backendaddresspools" => "backendAddressPools",
        "frontendipconfigurations" => "frontendIPConfigurations",
        "probes" => "probes",
        "inboundnatrules" => "inboundNatRules",
        "inboundnatpools" => "inboundNatPools",
        "loadbalancingrules" => "loadBalancingRules",
        _ => return false,
    };
    state.lbs.get(&lb).is_some_and(|entry| {
        arr_at(&entry.body, &["properties", collection])
            .iter()
            .any(|c| {
                c.get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case(&name))
            })
    })
}

/// Every reference of the given ipConfigs must exist: the subnet, load-balancer children,
/// the public IP and the public IP prefix. Otherwise 400 `InvalidResourceReference` naming the
/// reference and the ipConfig.
pub fn check_references(state: &State, ipcs: &[IpConfigRef]) -> Result<(), ArmError> {
    for ipc in ipcs {
        let Some(subnet) = &ipc.subnet else {
            // Chosen code for an ipConfig without a subnet.
            return Err(ArmError::bad_request(
                "InvalidRequestFormat",
                format!("IP configuration {} has no subnet.", ipc.id),
            ));
        };
        if crate::providers::vnet::find_subnet(state, subnet).is_none() {
            return Err(ArmError::invalid_reference(subnet, &ipc.id));
        }
        if let Some(r) = ipc.lb_refs().find(|r| !lb_child_exists(state, r)) {
            return Err(ArmError::invalid_reference(r, &ipc.id));
        }
        if let Some(p) = &ipc.public_ip
            && !state.pips.contains_key(&key(p))
        {
            return Err(ArmError::invalid_reference(p, &ipc.id));
        }
        if let Some(p) = &ipc.public_prefix
            && !state.prefixes.contains_key(&key(p))
        {
            return Err(ArmError::invalid_reference(p, &ipc.id));
        }
    }
    Ok(())
}

/// A public IP belongs to at most one ipConfig: refuses `ipcs` (the new ipConfigs of `holder`)
/// when one names a public IP that another ipConfig (elsewhere, or twice here) already uses.
pub fn check_public_ip_single_use(
    state: &State,
    holder: &Holder,
    ipcs: &[IpConfigRef],
) -> Result<(), ArmError> {
    let others: Vec<IpConfigRef> = refs::all(state)
        .into_iter()
        .filter(|r| &r.holder != holder)
        .collect();
    for (i, ipc) in ipcs.iter().enumerate() {
        let Some(p) = ipc.public_ip.as_deref().map(key) else {
            continue;
        };
        let twice = ipcs[..i]
            .iter()
            .find(|o| o.public_ip.as_deref().map(key).as_deref() == Some(p.as_str()));
        let elsewhere = others
            .iter()
            .find(|o| o.public_ip.as_deref().map(key).as_deref() == Some(p.as_str()));
        let lb_frontend = crate::providers::pip::attached_to(state, &p)
            .into_iter()
            .find(|id| key(id).contains("/providers/microsoft.network/loadbalancers/"));
        let user = twice.or(elsewhere).map(|o| o.id.clone()).or(lb_frontend);
        if let Some(user) = user {
            return Err(ArmError::bad_request(
                "PublicIPAddressInUse",
                format!(
                    "Public IP address {} is already used by IP configuration {user} and cannot be used by {}.",
                    ipc.public_ip.as_deref().unwrap_or_default(),
                    ipc.id
                ),
            ));
        }
    }
    Ok(())
}

/// The ipConfigs (outside `except`) that reference any of `child_keys`, as `referrer` names.
pub fn referrers_of(state: &State, child_keys: &[String]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in refs::all(state) {
        for target in r.lb_refs() {
            let k = key(target);
            if child_keys.contains(&k) {
                out.push((k, r.referrer.clone()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}
