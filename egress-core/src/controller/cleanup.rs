//! Step 6 of a pass: managed prefixes and public IPs nobody uses any more.
//! Ownership is by name (`egressgateway-<vm uid>` for a managed prefix,
//! `egressgateway-<vm uid>-<hash>` for a VM pool's public IPs), so whatever a
//! configuration made is found even after a spec change or a lost answer.
//! Nothing still referenced is deleted (Azure would refuse it anyway); a
//! leaving configuration waits for it instead.

use crate::Error;
use crate::model::EgressMode;
use crate::names::{same_name, vm_pool_public_ip_name};
use crate::traits::{CloudProvider, PoolKind, PublicIp, PublicIpPrefix};

use super::pools::Pools;
use super::{Entry, Role};

/// The last segment of an ARM ID.
fn leaf(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

pub(super) async fn cleanup<C: CloudProvider + ?Sized>(
    cloud: &C,
    entries: &mut [Entry],
    pools: &Pools,
) {
    let candidates: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| {
            // Only where the pool's current state is known: what it still
            // references must not be deleted.
            let known = e.pool_gone || e.pool.is_some_and(|p| !pools.list[p].stale);
            e.children.is_some() && known && matches!(e.role, Role::Provision | Role::Leave(_))
        })
        .map(|(i, _)| i)
        .collect();
    if candidates.is_empty() {
        return;
    }
    let leaving = candidates
        .iter()
        .any(|&i| matches!(entries[i].role, Role::Leave(_)));
    let vm_pool = pools
        .list
        .iter()
        .any(|p| matches!(p.info.kind, PoolKind::Vm { .. }));
    let mut public_ips = if leaving || vm_pool {
        match cloud.list_public_ips().await {
            Ok(list) => Some(list),
            Err(err) => {
                blame_leaving(entries, &candidates, &err);
                None
            }
        }
    } else {
        Some(Vec::new())
    };
    if let Some(list) = public_ips.as_mut() {
        for &i in &candidates {
            delete_public_ips(cloud, &mut entries[i], pools, list).await;
        }
    }
    let prefixes = match cloud.list_public_ip_prefixes().await {
        Ok(p) => p,
        Err(err) => {
            blame_leaving(entries, &candidates, &err);
            return;
        }
    };
    for &i in &candidates {
        delete_managed_prefix(
            cloud,
            &mut entries[i],
            pools,
            &prefixes,
            public_ips.as_deref(),
        )
        .await;
    }
}

fn blame_leaving(entries: &mut [Entry], candidates: &[usize], err: &Error) {
    for &i in candidates {
        if matches!(entries[i].role, Role::Leave(_)) {
            entries[i].errors.push(err.clone());
        }
    }
}

/// Public IPs the configuration made on a VM pool that it no longer wants.
async fn delete_public_ips<C: CloudProvider + ?Sized>(
    cloud: &C,
    e: &mut Entry,
    pools: &Pools,
    list: &mut Vec<PublicIp>,
) {
    let Some(name) = e.managed_name() else {
        return;
    };
    let owned_prefix = format!("{name}-");
    let wanted: Vec<String> = match (e.role, e.pool.map(|p| &pools.list[p].info.kind)) {
        (Role::Provision, Some(PoolKind::Vm { nics }))
            if matches!(
                e.desired.as_ref().map(|d| &d.egress),
                Some(EgressMode::Public { .. })
            ) =>
        {
            nics.iter()
                .map(|n| vm_pool_public_ip_name(&name, &n.name))
                .collect()
        }
        _ => Vec::new(),
    };
    let leaving = matches!(e.role, Role::Leave(_));
    let mut gone = Vec::new();
    for ip in list.iter() {
        let owned = ip
            .name
            .get(..owned_prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(&owned_prefix));
        if !owned || wanted.iter().any(|w| same_name(w, &ip.name)) {
            continue;
        }
        if let Some(owner) = &ip.attached_to {
            // Its NIC write failed or comes later; never detach by force.
            if leaving {
                e.errors.push(Error::Pool(format!(
                    "public IP {} is still attached to {owner}",
                    ip.name
                )));
            }
            continue;
        }
        match cloud.delete_public_ip(&ip.name).await {
            Ok(()) => gone.push(ip.name.clone()),
            Err(err) => e.errors.push(err),
        }
    }
    list.retain(|ip| !gone.contains(&ip.name));
}

/// The configuration's managed prefix, when it no longer wants one and
/// nothing uses it.
async fn delete_managed_prefix<C: CloudProvider + ?Sized>(
    cloud: &C,
    e: &mut Entry,
    pools: &Pools,
    prefixes: &[PublicIpPrefix],
    public_ips: Option<&[PublicIp]>,
) {
    let Some(name) = e.managed_name() else {
        return;
    };
    let wants = e.role == Role::Provision
        && matches!(
            e.desired.as_ref().map(|d| &d.egress),
            Some(EgressMode::Public { byo_prefix: None })
        );
    let Some(prefix) = prefixes.iter().find(|p| same_name(leaf(&p.id), &name)) else {
        return;
    };
    if wants {
        return;
    }
    let on_pool = pools.list.iter().any(|p| {
        p.nic_lists()
            .iter()
            .flat_map(|(_, nics)| nics.iter().flat_map(|n| &n.ip_configs))
            .any(|c| {
                c.public_ip_prefix
                    .as_deref()
                    .is_some_and(|id| same_name(id, &prefix.id))
            })
    });
    let with_ips = public_ips.is_none_or(|ips| {
        ips.iter().any(|ip| {
            ip.prefix_id
                .as_deref()
                .is_some_and(|id| same_name(id, &prefix.id))
        })
    });
    if on_pool || with_ips {
        if matches!(e.role, Role::Leave(_)) {
            e.errors.push(Error::Pool(format!(
                "managed prefix {name} is still in use; it goes once nothing references it"
            )));
        }
        return;
    }
    if let Err(err) = cloud.delete_public_ip_prefix(&name).await {
        e.errors.push(err);
    }
}
