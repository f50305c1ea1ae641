//! Step 2 of a pass: one gateway pool, its prefixes and its ipConfigs.

use crate::model::{EgressMode, PoolSelector};
use crate::names::{managed_resource_name, vm_pool_public_ip_name};
use crate::sizing::check_public_prefix;
use crate::traits::{CloudProvider, InstanceUpdate, PoolInfo, PoolKind, PrefixRef};
use crate::validate::{F_PREFIX_SIZE, F_PREFIX_TAG};
use crate::vmss::{IpConfigDemand, Nic, PublicKind, gateway_nodes, plan_nics, plan_vmss};
use crate::{Error, FailureKind};

use super::{Entry, is_definitive, pool_key};

pub(super) enum PoolResult {
    Known(PoolInfo),
    Gone,
    Unknown(String),
}

pub(super) async fn reconcile_pool<C: CloudProvider + ?Sized>(
    cloud: &C,
    entries: &mut [Entry],
    members: &[usize],
) -> PoolResult {
    let Some(sel) = members
        .iter()
        .find_map(|&i| entries[i].cfg.as_ref().map(|c| c.pool.clone()))
    else {
        return PoolResult::Gone;
    };
    let label = pool_key(&sel);
    if let Some(&i) = members.iter().find(|&&i| entries[i].blocking) {
        let reason = format!(
            "{label}: configuration {} could not be read",
            entries[i].obj.id
        );
        for &m in members {
            entries[m].errors.push(Error::Blocked {
                reason: reason.clone(),
            });
        }
        return PoolResult::Unknown(reason);
    }
    let info = match cloud.get_pool(&sel).await {
        Ok(info) => info,
        Err(e) if e.failure_kind() == Some(FailureKind::NotFound) => {
            for &m in members {
                if !entries[m].obj.deleting {
                    entries[m].fail(e.clone());
                }
            }
            return PoolResult::Gone;
        }
        Err(e) => {
            for &m in members {
                entries[m].errors.push(e.clone());
            }
            return PoolResult::Unknown(format!("{label} could not be read"));
        }
    };

    for &m in members {
        if entries[m].active() {
            ensure_prefix(cloud, &mut entries[m], &info).await;
        }
    }
    if members.iter().any(|&m| entries[m].blocking) {
        return PoolResult::Unknown(format!("{label}: a public IP prefix could not be read"));
    }

    let writes = match write_pool(cloud, entries, members, &info).await {
        Ok(n) => n,
        Err(e) => {
            for &m in members {
                entries[m].errors.push(e.clone());
            }
            0
        }
    };
    // Azure assigns the new secondary addresses; read them back once.
    let info = if writes > 0 {
        cloud.get_pool(&sel).await.unwrap_or(info)
    } else {
        info
    };
    for &m in members {
        if let (true, Some(c)) = (entries[m].active(), &entries[m].children) {
            let name = managed_resource_name(&c.vm_uid);
            entries[m].nodes = match &info.kind {
                PoolKind::Vmss { instances, .. } => gateway_nodes(
                    instances
                        .iter()
                        .map(|i| (i.computer_name.as_str(), i.nics.as_slice())),
                    &name,
                ),
                PoolKind::Vm { nics } => gateway_nodes(
                    nics.iter()
                        .map(|n| (n.name.as_str(), std::slice::from_ref(n))),
                    &name,
                ),
            };
        }
    }
    PoolResult::Known(info)
}

async fn ensure_prefix<C: CloudProvider + ?Sized>(cloud: &C, e: &mut Entry, info: &PoolInfo) {
    let (Some(cfg), Some(children)) = (e.cfg.clone(), e.children.clone()) else {
        return;
    };
    let EgressMode::Public { byo_prefix } = &cfg.egress else {
        return;
    };
    let (field, len) = match &cfg.pool {
        PoolSelector::Vmss { prefix_len, .. } => (F_PREFIX_SIZE, Some(*prefix_len)),
        PoolSelector::NodePool { .. } => (F_PREFIX_TAG, info.prefix_len_tag),
    };
    let Some(len) = len else {
        e.fail(Error::Required { field });
        return;
    };
    let nodes = u32::try_from(info.node_count()).unwrap_or(u32::MAX);
    if let Err(err) = check_public_prefix(field, len, nodes)
        && e.reject(err)
    {
        return;
    }
    let r = match byo_prefix {
        Some(id) => PrefixRef::Byo(id.clone()),
        None => PrefixRef::Managed(managed_resource_name(&children.vm_uid)),
    };
    let found = match cloud.get_public_ip_prefix(&r).await {
        Ok(found) => found,
        Err(err) => {
            e.blocking |= !is_definitive(&err);
            e.fail(err);
            return;
        }
    };
    let prefix = match (found, &r) {
        (Some(p), _) => p,
        (None, PrefixRef::Byo(id)) => {
            e.fail(Error::PrefixMissing {
                prefix: id.to_string(),
            });
            return;
        }
        (None, PrefixRef::Managed(name)) => match cloud.create_public_ip_prefix(name, len).await {
            Ok(p) => p,
            Err(err) => {
                e.fail(err);
                return;
            }
        },
    };
    if prefix.len != len
        && e.reject(Error::PrefixLengthMismatch {
            prefix: prefix.id.clone(),
            found: prefix.len,
            required: len,
        })
    {
        return;
    }
    e.prefix = Some(prefix);
}

/// Plans and writes the pool's ipConfigs for every active member at once.
async fn write_pool<C: CloudProvider + ?Sized>(
    cloud: &C,
    entries: &[Entry],
    members: &[usize],
    info: &PoolInfo,
) -> Result<usize, Error> {
    let active: Vec<&Entry> = members
        .iter()
        .map(|&m| &entries[m])
        .filter(|e| e.active())
        .collect();
    let mut writes = 0;
    match &info.kind {
        PoolKind::Vmss {
            resource_group,
            name,
            model,
            etag,
            instances,
        } => {
            let demands: Vec<IpConfigDemand> = active
                .iter()
                .filter_map(|e| {
                    Some(IpConfigDemand {
                        name: managed_resource_name(&e.children.as_ref()?.vm_uid),
                        public: e.prefix.as_ref().map(|p| p.id.clone()),
                    })
                })
                .collect();
            let plan = plan_vmss(name, model, instances, &demands, &info.uid)
                .map_err(|e| Error::Pool(e.to_string()))?;
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
                cloud
                    .update_vmss_instances(resource_group, name, &updates)
                    .await?;
                writes += updates.len();
            }
            if let Some(e) = plan.errors.first() {
                return Err(Error::Pool(e.to_string()));
            }
        }
        PoolKind::Vm { nics } => {
            for nic in nics {
                let mut demands = Vec::with_capacity(active.len());
                for e in &active {
                    let Some(children) = &e.children else {
                        continue;
                    };
                    let public = match &e.prefix {
                        Some(p) => {
                            let prefix_name = p.id.rsplit('/').next().unwrap_or_default();
                            Some(
                                cloud
                                    .ensure_public_ip(
                                        &vm_pool_public_ip_name(prefix_name, &nic.name),
                                        &p.id,
                                    )
                                    .await?,
                            )
                        }
                        None => None,
                    };
                    demands.push(IpConfigDemand {
                        name: managed_resource_name(&children.vm_uid),
                        public,
                    });
                }
                let planned = plan_nics(
                    &nic.name,
                    std::slice::from_ref(nic),
                    &demands,
                    &info.uid,
                    PublicKind::PublicIp,
                )
                .map_err(|e| Error::Pool(e.to_string()))?;
                if let Some(new) = planned.as_deref().and_then(<[Nic]>::first) {
                    cloud.put_nic(new).await?;
                    writes += 1;
                }
            }
        }
    }
    Ok(writes)
}
