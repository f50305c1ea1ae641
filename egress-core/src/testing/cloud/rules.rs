//! Azure's rules, as the simulated cloud enforces them: references must
//! exist, objects in use cannot be removed, prefixes have a capacity, and a
//! public IP belongs to one ipConfig at most.

use std::collections::BTreeSet;

use super::{CloudState, configs, refused};
use crate::lb::LoadBalancer;
use crate::names::same_name;
use crate::traits::PoolKind;
use crate::vmss::Nic;
use crate::{Error, FailureKind};

/// Why the simulated cloud refused a call, worded after Azure's error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The object does not exist.
    #[error("ResourceNotFound: {0}")]
    NotFound(String),
    /// A reference to an object that does not exist.
    #[error("InvalidResourceReference: {0}")]
    Reference(String),
    /// The object is still used by another.
    #[error("InUse: {0}")]
    InUse(String),
    /// The `ETag` sent does not match.
    #[error("PreconditionFailed: {0}")]
    PreconditionFailed(String),
    /// A prefix has no address left.
    #[error("PublicIpPrefixOutOfIpAddresses: {0}")]
    OutOfAddresses(String),
    /// A property that cannot change.
    #[error("PropertyChangeNotAllowed: {0}")]
    Immutable(String),
}

/// The last segment of an ARM ID, or the name itself.
fn leaf(reference: &str) -> &str {
    reference.rsplit('/').next().unwrap_or(reference)
}

/// Every reference of `nics` must exist: backend pools of the load balancer,
/// public IP prefixes and public IPs.
pub(super) fn references(st: &CloudState, op: &'static str, nics: &[Nic]) -> Result<(), Error> {
    for c in configs(nics) {
        for b in &c.backend_pools {
            let exists = st
                .lb
                .as_ref()
                .is_some_and(|lb| lb.backends.iter().any(|x| same_name(x, leaf(b))));
            if !exists {
                return Err(dangling(op, &c.name, "backend pool", b));
            }
        }
        if let Some(p) = &c.public_ip_prefix
            && !st.prefixes.contains_key(&p.to_ascii_lowercase())
        {
            return Err(dangling(op, &c.name, "public IP prefix", p));
        }
        if let Some(ip) = &c.public_ip
            && !st.public_ips.values().any(|x| same_name(&x.id, ip))
        {
            return Err(dangling(op, &c.name, "public IP", ip));
        }
    }
    Ok(())
}

fn dangling(op: &'static str, config: &str, kind: &str, target: &str) -> Error {
    refused(
        op,
        FailureKind::Permanent,
        Refused::Reference(format!(
            "ipConfig {config} references {kind} {target}, which does not exist"
        )),
    )
}

/// Addresses allocated from a prefix: one per instance ipConfig with a public
/// IP configuration from it, one per public IP made from it.
fn allocated(st: &CloudState, prefix_id: &str) -> usize {
    let on_instances: usize = st
        .pools
        .values()
        .map(|(_, info)| match &info.kind {
            PoolKind::Vmss { instances, .. } => instances
                .iter()
                .flat_map(|i| configs(&i.nics))
                .filter(|c| {
                    c.public_ip_prefix
                        .as_deref()
                        .is_some_and(|p| same_name(p, prefix_id))
                })
                .count(),
            PoolKind::Vm { .. } => 0,
        })
        .sum();
    on_instances
        + st.public_ips
            .values()
            .filter(|ip| same_name(&ip.prefix_id, prefix_id))
            .count()
}

/// The prefix exists and has `more` addresses free.
pub(super) fn prefix_has_room(
    st: &CloudState,
    op: &'static str,
    prefix_id: &str,
    more: usize,
) -> Result<(), Error> {
    let Some(p) = st.prefixes.get(&prefix_id.to_ascii_lowercase()) else {
        return Err(refused(
            op,
            FailureKind::Permanent,
            Refused::Reference(format!("public IP prefix {prefix_id} does not exist")),
        ));
    };
    let capacity = 1usize << (32 - u32::from(p.len.min(32)));
    let used = allocated(st, prefix_id);
    if used + more > capacity {
        return Err(refused(
            op,
            FailureKind::Permanent,
            Refused::OutOfAddresses(format!(
                "prefix {prefix_id} (/{}) has {capacity} addresses, {used} allocated, {more} more asked",
                p.len
            )),
        ));
    }
    Ok(())
}

/// An instance going from `old` to `new` NIC configurations fits in every
/// prefix it draws from.
pub(super) fn prefix_capacity(
    st: &CloudState,
    op: &'static str,
    old: &[Nic],
    new: &[Nic],
) -> Result<(), Error> {
    let uses = |nics: &[Nic], p: &str| {
        configs(nics)
            .filter(|c| {
                c.public_ip_prefix
                    .as_deref()
                    .is_some_and(|x| same_name(x, p))
            })
            .count()
    };
    let prefixes: BTreeSet<String> = configs(new)
        .filter_map(|c| c.public_ip_prefix.as_deref())
        .map(str::to_ascii_lowercase)
        .collect();
    for p in prefixes {
        let more = uses(new, &p).saturating_sub(uses(old, &p));
        if more > 0 {
            prefix_has_room(st, op, &p, more)?;
        }
    }
    Ok(())
}

/// The ipConfig a public IP is attached to, if any.
pub(super) fn attached_to(st: &CloudState, public_ip_id: &str) -> Option<String> {
    st.all_ip_configs()
        .into_iter()
        .find(|(_, c)| {
            c.public_ip
                .as_deref()
                .is_some_and(|ip| same_name(ip, public_ip_id))
        })
        .map(|(owner, c)| format!("{owner} ipConfig {}", c.name))
}

/// Each public IP `nic` attaches is attached nowhere else.
pub(super) fn public_ips_free(st: &CloudState, op: &'static str, nic: &Nic) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    for c in &nic.ip_configs {
        let Some(ip) = &c.public_ip else {
            continue;
        };
        let elsewhere = st.all_ip_configs().into_iter().find(|(owner, other)| {
            other.public_ip.as_deref().is_some_and(|x| same_name(x, ip))
                && !(same_name(owner, &format!("nic {}", nic.name))
                    && same_name(&other.name, &c.name))
        });
        if let Some((owner, other)) = elsewhere {
            return Err(refused(
                op,
                FailureKind::Conflict,
                Refused::InUse(format!(
                    "public IP {ip} is already attached to {owner} ipConfig {}",
                    other.name
                )),
            ));
        }
        if !seen.insert(ip.to_ascii_lowercase()) {
            return Err(refused(
                op,
                FailureKind::Permanent,
                Refused::InUse(format!(
                    "public IP {ip} is attached twice on NIC {}",
                    nic.name
                )),
            ));
        }
    }
    Ok(())
}

/// Backend pools (lower-case names) that some ipConfig references.
pub(super) fn backends_in_use(st: &CloudState, lb: &LoadBalancer) -> BTreeSet<String> {
    let referenced: BTreeSet<String> = st
        .all_ip_configs()
        .into_iter()
        .flat_map(|(_, c)| c.backend_pools.iter().map(|b| leaf(b).to_ascii_lowercase()))
        .collect();
    lb.backends
        .iter()
        .map(|b| b.to_ascii_lowercase())
        .filter(|b| referenced.contains(b))
        .collect()
}

/// Every rule references a frontend, backend pool and probe of the same body.
pub(super) fn lb_consistent(op: &'static str, lb: &LoadBalancer) -> Result<(), Error> {
    for r in &lb.rules {
        let missing = if !lb.frontends.iter().any(|f| same_name(&f.name, &r.frontend)) {
            Some(("frontend", &r.frontend))
        } else if !lb.backends.iter().any(|b| same_name(b, &r.backend)) {
            Some(("backend pool", &r.backend))
        } else if !lb.probes.iter().any(|p| same_name(&p.name, &r.probe)) {
            Some(("probe", &r.probe))
        } else {
            None
        };
        if let Some((kind, name)) = missing {
            return Err(refused(
                op,
                FailureKind::Permanent,
                Refused::Reference(format!(
                    "rule {} references {kind} {name}, which does not exist",
                    r.name
                )),
            ));
        }
    }
    Ok(())
}

/// A load-balancer write does not drop a backend pool that is referenced.
pub(super) fn lb_removals_free(
    st: &CloudState,
    op: &'static str,
    new: &LoadBalancer,
) -> Result<(), Error> {
    let Some(current) = &st.lb else {
        return Ok(());
    };
    for b in backends_in_use(st, current) {
        if !new.backends.iter().any(|x| same_name(x, &b)) {
            return Err(refused(
                op,
                FailureKind::Conflict,
                Refused::InUse(format!(
                    "backend pool {b} cannot be removed: ipConfigs reference it"
                )),
            ));
        }
    }
    Ok(())
}

/// What uses a prefix: ipConfigs of models and instances, and public IPs.
pub(super) fn prefix_users(st: &CloudState, prefix_id: &str) -> Vec<String> {
    let mut out: Vec<String> = st
        .all_ip_configs()
        .into_iter()
        .filter(|(_, c)| {
            c.public_ip_prefix
                .as_deref()
                .is_some_and(|p| same_name(p, prefix_id))
        })
        .map(|(owner, c)| format!("{owner} ipConfig {}", c.name))
        .collect();
    out.extend(
        st.public_ips
            .values()
            .filter(|ip| same_name(&ip.prefix_id, prefix_id))
            .map(|ip| format!("public IP {}", ip.name)),
    );
    out
}
