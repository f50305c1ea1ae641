//! Step 4 of a pass: managed prefixes and public IPs nobody uses any more.

use std::collections::BTreeMap;

use crate::Error;
use crate::model::EgressMode;
use crate::names::{managed_resource_name, vm_pool_public_ip_name};
use crate::traits::{CloudProvider, PoolInfo, PoolKind, PrefixRef};

use super::{Entry, pool_key};

pub(super) async fn cleanup_prefixes<C: CloudProvider + ?Sized>(
    cloud: &C,
    entries: &mut [Entry],
    infos: &BTreeMap<String, PoolInfo>,
) {
    for e in entries.iter_mut() {
        let Some(children) = e.children.clone() else {
            continue;
        };
        let keeps_managed = !e.obj.deleting
            && e.cfg
                .as_ref()
                .is_some_and(|c| matches!(c.egress, EgressMode::Public { byo_prefix: None }));
        if keeps_managed || e.blocking {
            continue;
        }
        // Only once the ipConfigs that referenced the prefix are gone.
        if e.errors
            .iter()
            .any(|err| !matches!(err, Error::Blocked { .. }))
            && e.obj.deleting
        {
            continue;
        }
        let name = managed_resource_name(&children.vm_uid);
        match cloud
            .get_public_ip_prefix(&PrefixRef::Managed(name.clone()))
            .await
        {
            Ok(Some(_)) => {
                if let Err(err) = cloud.delete_public_ip_prefix(&name).await {
                    e.errors.push(err);
                }
            }
            Ok(None) => {}
            Err(err) => e.errors.push(err),
        }
        // Public IPs a VM pool made from a bring-your-own prefix are ours too.
        if e.obj.deleting
            && let Some(EgressMode::Public {
                byo_prefix: Some(id),
            }) = e.cfg.as_ref().map(|c| &c.egress)
            && let Some(PoolKind::Vm { nics }) = e
                .cfg
                .as_ref()
                .and_then(|c| infos.get(&pool_key(&c.pool)))
                .map(|i| &i.kind)
        {
            for nic in nics {
                if let Err(err) = cloud
                    .delete_public_ip(&vm_pool_public_ip_name(&id.name, &nic.name))
                    .await
                {
                    e.errors.push(err);
                }
            }
        }
    }
}
