//! Steps 3 and 5 of a pass: the internal load balancer. Additions are written
//! before the pools (an ipConfig may only reference a backend pool that
//! exists), removals after them (a backend pool can only go once nothing
//! references it).

use crate::Error;
use crate::lb::{self, LbChange, LbError, LoadBalancer, PoolDemand, RuleDemand};
use crate::names::same_name;
use crate::traits::CloudProvider;

use super::pools::Pools;
use super::{ControllerSettings, Entry, Role};

/// Rules wanted per known pool: every configuration that provisions or
/// holds there.
fn demands(entries: &[Entry], pools: &Pools, settings: &ControllerSettings) -> Vec<PoolDemand> {
    pools
        .list
        .iter()
        .map(|pool| PoolDemand {
            pool_uid: pool.info.uid.clone(),
            subnet_id: settings.frontend_subnet_id.clone(),
            rules: pool
                .members
                .iter()
                .map(|&m| &entries[m])
                .filter(|e| matches!(e.role, Role::Provision | Role::Hold))
                .filter_map(|e| {
                    Some(RuleDemand {
                        lb_uid: e.children.as_ref()?.lb_uid.clone(),
                        sgc_uid: e.obj.id.uid.clone(),
                    })
                })
                .collect(),
        })
        .collect()
}

fn record_ports(entries: &mut [Entry], plan: &lb::LbPlan) {
    for e in entries.iter_mut() {
        if let Some(c) = &e.children
            && let Some(&port) = plan.ports.get(&c.lb_uid)
        {
            e.port = Some(port);
        }
    }
}

/// Adds what the pools are about to reference. Returns the load balancer as
/// stored, or `None` when it could not be read or written: then no
/// configuration is added to a pool this pass.
pub(super) async fn add<C: CloudProvider + ?Sized>(
    cloud: &C,
    entries: &mut [Entry],
    pools: &Pools,
    settings: &ControllerSettings,
) -> Option<LoadBalancer> {
    let observed = match cloud.get_load_balancer().await {
        Ok(lb) => lb,
        Err(err) => {
            hold_all(entries, pools, &err);
            return None;
        }
    };
    let plan = lb::plan_additions(
        observed.as_ref(),
        &demands(entries, pools, settings),
        settings.probe,
    );
    for err in &plan.errors {
        for e in entries.iter_mut().filter(|e| e.role == Role::Provision) {
            let hit = match err {
                LbError::PortsExhausted { lb_uid, .. } => e
                    .children
                    .as_ref()
                    .is_some_and(|c| same_name(&c.lb_uid, lb_uid)),
                LbError::UnexpectedFrontend { pool_uid, .. } => e
                    .pool
                    .is_some_and(|p| same_name(&pools.list[p].info.uid, pool_uid)),
            };
            if hit {
                let serving = e.obj.status.is_ready();
                e.hold_or_fail(Error::LoadBalancer(err.to_string()), serving);
            }
        }
    }
    let stored = match plan.change {
        LbChange::Put(ref want) => cloud.put_load_balancer(want).await.map(Some),
        LbChange::None | LbChange::Delete => Ok(observed),
    };
    match stored {
        Ok(lb) => {
            record_ports(entries, &plan);
            Some(lb.unwrap_or_default())
        }
        Err(err) => {
            hold_all(entries, pools, &err);
            None
        }
    }
}

/// The load balancer is unknown: nobody is added to a pool this pass.
fn hold_all(entries: &mut [Entry], pools: &Pools, err: &Error) {
    for e in entries.iter_mut() {
        match e.role {
            Role::Provision => {
                let serving = e.obj.status.is_ready()
                    || e.pool
                        .zip(e.managed_name())
                        .is_some_and(|(p, n)| pools.list[p].has_ip_config(&n));
                e.hold_or_fail(err.clone(), serving);
            }
            Role::Leave(_) | Role::Hold => e.errors.push(err.clone()),
            Role::Idle => {}
        }
    }
}

/// Removes what nothing needs any more, once the pools were written. Skipped
/// when a pool or the load balancer is unknown this pass. `lb` is updated to
/// what Azure holds afterwards.
pub(super) async fn remove<C: CloudProvider + ?Sized>(
    cloud: &C,
    entries: &mut [Entry],
    pools: &Pools,
    settings: &ControllerSettings,
    lb: &mut Option<LoadBalancer>,
) {
    let blocked = match (&pools.unknown, lb.as_ref()) {
        (Some(reason), _) => Some(reason.clone()),
        (None, None) => Some("the load balancer could not be read".to_string()),
        (None, Some(_)) => None,
    };
    if let Some(reason) = blocked {
        for e in entries
            .iter_mut()
            .filter(|e| matches!(e.role, Role::Leave(_)))
        {
            e.errors.push(Error::Blocked {
                reason: reason.clone(),
            });
        }
        return;
    }
    let want = demands(entries, pools, settings);
    // Optimistic check against what phase 1 stored, as if nothing referenced
    // a backend pool any more: if even then nothing would change, skip.
    let current = lb
        .clone()
        .filter(|l| *l != LoadBalancer::default())
        .map(|mut l| {
            l.backends_in_use.clear();
            l
        });
    if lb::plan(current.as_ref(), &want, settings.probe).change == LbChange::None {
        return;
    }
    // The pool writes changed which backend pools are referenced: plan the
    // removal against a fresh read.
    let result = async {
        let fresh = cloud.get_load_balancer().await?;
        let plan = lb::plan(fresh.as_ref(), &want, settings.probe);
        match plan.change {
            LbChange::None => Ok(fresh),
            LbChange::Put(next) => cloud.put_load_balancer(&next).await.map(Some),
            LbChange::Delete => cloud
                .delete_load_balancer(fresh.as_ref().and_then(|f| f.etag.as_deref()))
                .await
                .map(|()| None),
        }
    }
    .await;
    match result {
        Ok(stored) => {
            // Whatever a leaving configuration had must be gone now.
            for e in entries
                .iter_mut()
                .filter(|e| matches!(e.role, Role::Leave(_)))
            {
                if let (Some(c), Some(s)) = (&e.children, &stored)
                    && s.rules.iter().any(|r| same_name(&r.name, &c.lb_uid))
                {
                    e.errors.push(Error::LoadBalancer(format!(
                        "rule {} is still on the load balancer",
                        c.lb_uid
                    )));
                }
            }
            *lb = Some(stored.unwrap_or_default());
        }
        Err(err) => {
            for e in entries
                .iter_mut()
                .filter(|e| matches!(e.role, Role::Leave(_)))
            {
                e.errors.push(err.clone());
            }
        }
    }
}
