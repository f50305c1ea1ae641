//! Step 1 of a pass: read every pool once, group configurations by the
//! pool's unique ID, and decide moves between pools.

use std::collections::BTreeMap;

use futures_util::future::join_all;

use crate::model::PoolSelector;
use crate::names::same_name;
use crate::traits::{CloudProvider, ClusterApi, PoolInfo, PoolKind};
use crate::vmss::Nic;
use crate::{Error, FailureKind};

use super::prepare::pool_key;
use super::{After, Entry, Role};

/// A pool read this pass, with the configurations acting on it.
#[derive(Debug)]
pub(super) struct Pool {
    /// A selector that reaches it (to read it again after writes).
    pub selector: PoolSelector,
    pub info: PoolInfo,
    pub members: Vec<usize>,
    /// Its writes failed this pass.
    pub write_failed: bool,
    /// It could not be read back after its writes: what it holds now is not
    /// known, so nothing it might reference is deleted this pass.
    pub stale: bool,
}

impl Pool {
    /// Every NIC list of the pool with its owner's node name: the VMSS model
    /// (named `None`), each instance, or each NIC of a VM pool.
    pub fn nic_lists(&self) -> Vec<(Option<&str>, &[Nic])> {
        match &self.info.kind {
            PoolKind::Vmss {
                model, instances, ..
            } => std::iter::once((None, model.as_slice()))
                .chain(
                    instances
                        .iter()
                        .map(|i| (Some(i.computer_name.as_str()), i.nics.as_slice())),
                )
                .collect(),
            PoolKind::Vm { nics } => nics
                .iter()
                .map(|n| (Some(n.name.as_str()), std::slice::from_ref(n)))
                .collect(),
        }
    }

    /// Whether an ipConfig of this name exists anywhere on the pool.
    pub fn has_ip_config(&self, name: &str) -> bool {
        self.nic_lists()
            .iter()
            .flat_map(|(_, nics)| nics.iter().flat_map(|n| &n.ip_configs))
            .any(|c| same_name(&c.name, name))
    }
}

/// How one selector read went.
#[derive(Clone, Debug)]
enum Read {
    Known(usize),
    Gone(Error),
    Unknown(Error),
}

/// Every pool of the pass.
#[derive(Debug, Default)]
pub(super) struct Pools {
    pub list: Vec<Pool>,
    /// Some pool could not be read: what it holds is unknown, so nothing may
    /// be removed from the load balancer this pass.
    pub unknown: Option<String>,
}

impl Pools {
    pub async fn resolve<C, K>(cloud: &C, cluster: &K, entries: &mut [Entry]) -> Self
    where
        C: CloudProvider + ?Sized,
        K: ClusterApi + ?Sized,
    {
        let mut selectors: BTreeMap<String, PoolSelector> = BTreeMap::new();
        for e in entries.iter() {
            let mut add = |c: Option<&crate::model::GatewayConfig>| {
                if let Some(c) = c {
                    selectors
                        .entry(pool_key(&c.pool))
                        .or_insert_with(|| c.pool.clone());
                }
            };
            add(e.acting());
            if e.moving {
                add(e.desired.as_ref());
            }
        }
        let reads = join_all(selectors.values().map(|s| cloud.get_pool(s))).await;
        let mut pools = Self::default();
        let mut by_key: BTreeMap<String, Read> = BTreeMap::new();
        for ((key, sel), read) in selectors.into_iter().zip(reads) {
            let r = match read {
                Ok(info) => Read::Known(pools.insert(sel, info)),
                Err(e) if e.failure_kind() == Some(FailureKind::NotFound) => Read::Gone(e),
                Err(e) => {
                    pools.unknown = Some(format!("gateway pool {key} could not be read"));
                    Read::Unknown(e)
                }
            };
            by_key.insert(key, r);
        }
        for (i, e) in entries.iter_mut().enumerate() {
            if e.moving {
                decide_move(cluster, e, &by_key).await;
            }
            pools.place(i, e, &by_key);
        }
        pools
    }

    fn insert(&mut self, selector: PoolSelector, info: PoolInfo) -> usize {
        if let Some(i) = self
            .list
            .iter()
            .position(|p| same_name(&p.info.uid, &info.uid))
        {
            return i;
        }
        self.list.push(Pool {
            selector,
            info,
            members: Vec::new(),
            write_failed: false,
            stale: false,
        });
        self.list.len() - 1
    }

    /// Puts a configuration on the pool its role acts on.
    fn place(&mut self, i: usize, e: &mut Entry, reads: &BTreeMap<String, Read>) {
        let Some(read) = e.acting().and_then(|c| reads.get(&pool_key(&c.pool))) else {
            return;
        };
        match (read, e.role) {
            (Read::Known(p), Role::Provision | Role::Hold | Role::Leave(_)) => {
                e.pool = Some(*p);
                self.list[*p].members.push(i);
            }
            (Read::Known(_), Role::Idle) => {}
            // A pool that is gone holds nothing of anyone's any more.
            (Read::Gone(_), Role::Leave(_)) => e.pool_gone = true,
            (Read::Gone(err), _) => {
                e.errors.push(err.clone());
                e.role = Role::Idle;
            }
            (Read::Unknown(err), role) => {
                e.errors.push(err.clone());
                if !matches!(role, Role::Leave(_)) {
                    e.role = Role::Idle;
                }
            }
        }
    }
}

/// A configuration whose spec names another pool selector than the one
/// applied: the same pool reached another way is applied at once; another
/// pool means leaving the old one first; while either is unknown it holds.
async fn decide_move<K: ClusterApi + ?Sized>(
    cluster: &K,
    e: &mut Entry,
    reads: &BTreeMap<String, Read>,
) {
    let key = |c: Option<&crate::model::GatewayConfig>| c.map(|c| pool_key(&c.pool));
    let (Some(old), Some(new)) = (
        key(e.applied.as_ref()).and_then(|k| reads.get(&k)),
        key(e.desired.as_ref()).and_then(|k| reads.get(&k)),
    ) else {
        return;
    };
    let reapply_now = match (old, new) {
        (Read::Known(a), Read::Known(b)) if a == b => true,
        (Read::Known(_), Read::Known(_)) => {
            e.role = Role::Leave(After::Reapply);
            false
        }
        (Read::Gone(_), Read::Known(_)) => true,
        (_, Read::Gone(err) | Read::Unknown(err)) | (Read::Unknown(err), _) => {
            // Keep serving where it is until the new pool can be reached.
            e.errors.push(err.clone());
            false
        }
    };
    e.moving = false;
    if reapply_now {
        match cluster.ensure_children(&e.obj.id, &e.obj.spec).await {
            Ok(children) => {
                e.children = Some(children);
                e.applied.clone_from(&e.desired);
                e.role = Role::Provision;
            }
            Err(err) => e.errors.push(err),
        }
    }
}
