//! Step 4 of a pass: each pool's ipConfigs, for all its configurations at
//! once, so N changes cost one write per VMSS model, instance or NIC.

use futures_util::future::join_all;

use crate::Error;
use crate::model::GatewayNode;
use crate::names::vm_pool_public_ip_name;
use crate::traits::{CloudProvider, InstanceUpdate, PoolKind};
use crate::vmss::{IpConfigDemand, Nic, PublicKind, gateway_nodes, plan_nics, plan_vmss};

use super::pools::{Pool, Pools};
use super::{Entry, Role};

pub(super) async fn write_pools<C: CloudProvider + ?Sized>(
    cloud: &C,
    entries: &mut [Entry],
    pools: &mut Pools,
) {
    for pool in &mut pools.list {
        let written = match &pool.info.kind {
            PoolKind::Vmss { .. } => write_vmss(cloud, entries, pool).await,
            PoolKind::Vm { .. } => write_vm_pool(cloud, entries, pool).await,
        };
        let writes = match written {
            Ok(n) => n,
            Err(err) => {
                pool.write_failed = true;
                for &m in &pool.members {
                    entries[m].errors.push(err.clone());
                }
                1
            }
        };
        // Azure assigned the new addresses (or a failure left the pool in
        // some state): read it back once.
        if writes > 0 {
            match cloud.get_pool(&pool.selector).await {
                Ok(info) => pool.info = info,
                Err(err) => {
                    pool.stale = true;
                    for &m in &pool.members {
                        entries[m].errors.push(err.clone());
                    }
                }
            }
        }
        observe(entries, pool);
    }
}

/// What each member asks of the pool's ipConfigs: provisioning ones their
/// ipConfig (public ones with their prefix or public IP), serving ones on
/// hold as they are, and leaving ones nothing.
fn demands(
    entries: &[Entry],
    pool: &Pool,
    public_ip: impl Fn(&Entry) -> Option<String>,
) -> Vec<IpConfigDemand> {
    pool.members
        .iter()
        .map(|&m| &entries[m])
        .filter_map(|e| {
            let name = e.managed_name()?;
            match e.role {
                Role::Provision if e.settled => Some(IpConfigDemand::hold(name)),
                Role::Provision => Some(IpConfigDemand::want(name, public_ip(e))),
                Role::Hold => Some(IpConfigDemand::hold(name)),
                Role::Leave(_) | Role::Idle => None,
            }
        })
        .collect()
}

async fn write_vmss<C: CloudProvider + ?Sized>(
    cloud: &C,
    entries: &[Entry],
    pool: &Pool,
) -> Result<usize, Error> {
    let PoolKind::Vmss {
        resource_group,
        name,
        model,
        etag,
        instances,
    } = &pool.info.kind
    else {
        return Ok(0);
    };
    let demands = demands(entries, pool, |e| e.prefix.as_ref().map(|p| p.id.clone()));
    let plan = plan_vmss(name, model, instances, &demands, &pool.info.uid)
        .map_err(|e| Error::Pool(e.to_string()))?;
    let mut writes = 0;
    if let Some(nics) = &plan.model {
        cloud
            .put_vmss_model(resource_group, name, nics, etag.as_deref())
            .await?;
        writes += 1;
    }
    if !plan.instances.is_empty() {
        let updates: Vec<InstanceUpdate> = plan
            .instances
            .iter()
            .map(|(id, nics)| InstanceUpdate {
                id: id.clone(),
                nics: nics.clone(),
                etag: instances
                    .iter()
                    .find(|i| &i.id == id)
                    .and_then(|i| i.etag.clone()),
            })
            .collect();
        writes += updates.len();
        cloud
            .update_vmss_instances(resource_group, name, &updates)
            .await?;
    }
    match plan.errors.first() {
        Some(e) => Err(Error::Pool(e.to_string())),
        None => Ok(writes),
    }
}

async fn write_vm_pool<C: CloudProvider + ?Sized>(
    cloud: &C,
    entries: &[Entry],
    pool: &Pool,
) -> Result<usize, Error> {
    let PoolKind::Vm { nics } = &pool.info.kind else {
        return Ok(0);
    };
    // One public IP per provisioning public-mode configuration and NIC,
    // named after both, made (if missing) all at once.
    let mut wanted: Vec<(String, String, String)> = Vec::new();
    for e in pool.members.iter().map(|&m| &entries[m]) {
        let (Role::Provision, false, Some(config), Some(prefix)) =
            (e.role, e.settled, e.managed_name(), e.prefix.as_ref())
        else {
            continue;
        };
        for nic in nics {
            wanted.push((
                format!("{config}/{}", nic.name),
                vm_pool_public_ip_name(&config, &nic.name),
                prefix.id.clone(),
            ));
        }
    }
    let made = join_all(
        wanted
            .iter()
            .map(|(_, ip, prefix)| cloud.ensure_public_ip(ip, prefix)),
    )
    .await;
    let mut ids = std::collections::BTreeMap::new();
    for ((key, _, _), id) in wanted.iter().zip(made) {
        ids.insert(key.clone(), id?);
    }
    let mut puts: Vec<Nic> = Vec::new();
    for nic in nics {
        let demands = demands(entries, pool, |e| {
            let config = e.managed_name()?;
            ids.get(&format!("{config}/{}", nic.name)).cloned()
        });
        let planned = plan_nics(
            &nic.name,
            std::slice::from_ref(nic),
            &demands,
            &pool.info.uid,
            PublicKind::PublicIp,
        )
        .map_err(|e| Error::Pool(e.to_string()))?;
        if let Some(new) = planned.and_then(|v| v.into_iter().next()) {
            puts.push(new);
        }
    }
    let writes = puts.len();
    for result in join_all(puts.iter().map(|n| cloud.put_nic(n))).await {
        result?;
    }
    Ok(writes)
}

/// Each provisioning or holding member's nodes, as the pool now holds them.
fn observe(entries: &mut [Entry], pool: &Pool) {
    for &m in &pool.members {
        let e = &mut entries[m];
        if !matches!(e.role, Role::Provision | Role::Hold) {
            continue;
        }
        let Some(name) = e.managed_name() else {
            continue;
        };
        e.nodes = nodes_of(pool, &name);
    }
}

fn nodes_of(pool: &Pool, name: &str) -> Vec<GatewayNode> {
    gateway_nodes(
        pool.nic_lists()
            .into_iter()
            .filter_map(|(owner, nics)| Some((owner?, nics))),
        name,
    )
}
