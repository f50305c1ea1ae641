//! Step 3 of a pass: the internal load balancer, once for all pools.

use std::collections::BTreeMap;

use crate::Error;
use crate::lb::{self, LbChange, LoadBalancer, PoolDemand, RuleDemand};
use crate::names::same_name;
use crate::traits::{CloudProvider, PoolInfo};

use super::{ControllerSettings, Entry};

pub(super) async fn reconcile_lb<C: CloudProvider + ?Sized>(
    cloud: &C,
    entries: &mut [Entry],
    pools: &BTreeMap<String, Vec<usize>>,
    infos: &BTreeMap<String, PoolInfo>,
    settings: &ControllerSettings,
) -> Option<LoadBalancer> {
    let demands: Vec<PoolDemand> = pools
        .iter()
        .filter_map(|(key, members)| {
            let info = infos.get(key)?;
            let rules = members
                .iter()
                .filter(|&&m| entries[m].active())
                .filter_map(|&m| {
                    Some(RuleDemand {
                        lb_uid: entries[m].children.as_ref()?.lb_uid.clone(),
                        sgc_uid: entries[m].obj.id.uid.clone(),
                    })
                })
                .collect();
            Some(PoolDemand {
                pool_uid: info.uid.clone(),
                subnet_id: settings.frontend_subnet_id.clone(),
                rules,
            })
        })
        .collect();
    let everyone = |entries: &mut [Entry], err: &Error| {
        for e in entries.iter_mut().filter(|e| e.cfg.is_some()) {
            e.errors.push(err.clone());
        }
    };
    let observed = match cloud.get_load_balancer().await {
        Ok(lb) => lb,
        Err(err) => {
            everyone(entries, &err);
            return None;
        }
    };
    let plan = lb::plan(observed.as_ref(), &demands, settings.probe);
    for err in &plan.errors {
        for e in entries.iter_mut().filter(|e| e.active()) {
            let hit = match err {
                lb::LbError::PortsExhausted { lb_uid, .. } => e
                    .children
                    .as_ref()
                    .is_some_and(|c| same_name(&c.lb_uid, lb_uid)),
                lb::LbError::UnexpectedFrontend { .. } => true,
            };
            if hit {
                e.fail(Error::LoadBalancer(err.to_string()));
            }
        }
    }
    let stored = match &plan.change {
        LbChange::None => Ok(observed),
        LbChange::Put(lb) => cloud.put_load_balancer(lb).await.map(Some),
        LbChange::Delete => cloud
            .delete_load_balancer(observed.as_ref().and_then(|o| o.etag.as_deref()))
            .await
            .map(|()| None),
    };
    match stored {
        Ok(lb) => {
            for e in entries.iter_mut() {
                e.port = e
                    .children
                    .as_ref()
                    .and_then(|c| plan.ports.get(&c.lb_uid))
                    .copied();
            }
            // `Some` tells the status step the load balancer was read this
            // pass, even when it was just deleted.
            lb.or_else(|| Some(LoadBalancer::default()))
        }
        Err(err) => {
            everyone(entries, &err);
            None
        }
    }
}
