//! Step 0 of a pass: each configuration's specs, its Kubernetes prerequisites
//! (finalizer, key Secret, children) and its role.

use crate::Error;
use crate::traits::ClusterApi;
use crate::validate::{ValidationContext, validate};

use super::{After, ControllerSettings, Entry, Role};

pub(super) async fn prepare<K: ClusterApi + ?Sized>(
    cluster: &K,
    settings: &ControllerSettings,
) -> Result<Vec<Entry>, Error> {
    let ctx = ValidationContext {
        subscription_id: settings.subscription_id.clone(),
        ..ValidationContext::default()
    };
    // The applied spec was accepted when it was applied; only its shape
    // matters now (which pool, which prefix), not today's policy.
    let lenient = ValidationContext::default();
    let mut entries = Vec::new();
    for obj in cluster.list_configs().await? {
        if obj.deleting && !obj.finalized {
            continue; // Not ours any more.
        }
        let mut e = Entry::new(obj);
        let id = e.obj.id.clone();
        e.applied = e
            .children
            .as_ref()
            .and_then(|c| validate(id.clone(), &c.applied, &lenient).ok());
        if e.obj.deleting {
            e.role = Role::Leave(After::Finalize);
            entries.push(e);
            continue;
        }
        match validate(id.clone(), &e.obj.spec, &ctx) {
            Err(errors) => {
                if let Err(err) = cluster.report_invalid(&id, &errors).await {
                    e.errors.push(err);
                }
                e.rejected = true;
                e.role = if e.applied.is_some() {
                    Role::Hold
                } else {
                    Role::Idle
                };
                e.errors.extend(errors);
            }
            Ok(cfg) => {
                e.desired = Some(cfg);
                provision_prerequisites(cluster, &mut e).await;
            }
        }
        entries.push(e);
    }
    Ok(entries)
}

/// Finalizer, key Secret and children for a valid spec. A pool change waits
/// until both pools are read; any other change is applied to the children now.
async fn provision_prerequisites<K: ClusterApi + ?Sized>(cluster: &K, e: &mut Entry) {
    let id = e.obj.id.clone();
    let serving = e.applied.is_some();
    let steps = async {
        if !e.obj.finalized {
            cluster.add_finalizer(&id).await?;
        }
        cluster.ensure_key_secret(&id).await
    };
    match steps.await {
        Ok(key) => e.key = Some(key),
        Err(err) => {
            e.role = Role::Provision;
            e.hold_or_fail(err, serving);
            return;
        }
    }
    let same_pool = match (&e.applied, &e.desired) {
        (Some(a), Some(d)) => pool_key(&a.pool) == pool_key(&d.pool),
        _ => true,
    };
    if !same_pool {
        e.role = Role::Hold;
        e.moving = true;
        return;
    }
    e.role = Role::Provision;
    let unchanged = e.children.as_ref().is_some_and(|c| c.applied == e.obj.spec);
    if !unchanged {
        match cluster.ensure_children(&id, &e.obj.spec).await {
            Ok(children) => {
                e.applied.clone_from(&e.desired);
                e.children = Some(children);
            }
            Err(err) => e.hold_or_fail(err, serving),
        }
    }
}

/// A selector's identity before the pool is read: equal keys reach the same
/// pool for sure; different keys may still (a pool name and a VMSS profile).
pub(super) fn pool_key(sel: &crate::model::PoolSelector) -> String {
    use crate::model::PoolSelector;
    match sel {
        PoolSelector::NodePool { name } => format!("pool/{}", name.to_ascii_lowercase()),
        PoolSelector::Vmss {
            resource_group,
            name,
            ..
        } => format!(
            "vmss/{}/{}",
            resource_group.to_ascii_lowercase(),
            name.to_ascii_lowercase()
        ),
    }
}
