//! Step 2 of a pass: the public IP prefix of every configuration that
//! provisions in public mode. Reads and creates run in parallel, so 100 new
//! configurations with managed prefixes wait for one create, not 100.

use futures_util::future::join_all;

use crate::model::{EgressAddresses, EgressMode, PoolSelector};
use crate::names::{same_name, vm_pool_public_ip_name};
use crate::sizing::check_public_prefix;
use crate::traits::{CloudProvider, PoolKind, PrefixRef, PublicIpPrefix};
use crate::validate::{F_PREFIX_SIZE, F_PREFIX_TAG};
use crate::{Error, FailureKind};

use super::pools::{Pool, Pools};
use super::{Entry, Role};

pub(super) async fn ensure_prefixes<C: CloudProvider + ?Sized>(
    cloud: &C,
    entries: &mut [Entry],
    pools: &Pools,
) {
    let mut needs: Vec<(usize, u8, PrefixRef)> = Vec::new();
    for (i, e) in entries.iter_mut().enumerate() {
        let (Role::Provision, Some(p)) = (e.role, e.pool) else {
            continue;
        };
        let pool = &pools.list[p];
        if let Some((len, need)) = plan(e, pool) {
            needs.push((i, len, need));
        }
    }
    // Reads first (all at once), then creates of the managed prefixes found
    // missing (all at once).
    let reads = join_all(needs.iter().map(|(_, _, r)| cloud.get_public_ip_prefix(r))).await;
    let mut creates: Vec<(usize, u8, String)> = Vec::new();
    for ((i, len, need), read) in needs.into_iter().zip(reads) {
        let e = &mut entries[i];
        let serving = serving(e, pools);
        match (need, read) {
            (_, Ok(Some(prefix))) => accept(e, prefix, len, serving),
            (PrefixRef::Managed(name), Ok(None)) => creates.push((i, len, name)),
            (PrefixRef::Byo(id), Ok(None)) => e.hold_or_fail(
                Error::PrefixMissing {
                    prefix: id.to_string(),
                },
                serving,
            ),
            (_, Err(err)) => e.hold_or_fail(err, serving),
        }
    }
    let made = join_all(
        creates
            .iter()
            .map(|(_, len, name)| cloud.create_public_ip_prefix(name, *len)),
    )
    .await;
    for ((i, len, _), result) in creates.into_iter().zip(made) {
        let serving = serving(&entries[i], pools);
        match result {
            Ok(prefix) => accept(&mut entries[i], prefix, len, serving),
            Err(err) => entries[i].hold_or_fail(err, serving),
        }
    }
}

/// Whether the configuration has anything on its pool (or a status that
/// says it serves): then a problem holds it rather than failing it.
fn serving(e: &Entry, pools: &Pools) -> bool {
    e.obj.status.is_ready()
        || e.pool
            .zip(e.managed_name())
            .is_some_and(|(p, name)| pools.list[p].has_ip_config(&name))
}

/// Checks the spec against the pool, and says which prefix to read or
/// create. `None` when nothing needs reading: private mode, a rejection, or
/// a configuration already in place everywhere (settled).
fn plan(e: &mut Entry, pool: &Pool) -> Option<(u8, PrefixRef)> {
    let cfg = e.desired.clone()?;
    let EgressMode::Public { byo_prefix } = &cfg.egress else {
        return None;
    };
    let name = e.managed_name()?;
    let serving = e.obj.status.is_ready() || pool.has_ip_config(&name);
    let (field, len) = match &cfg.pool {
        PoolSelector::Vmss { prefix_len, .. } => (F_PREFIX_SIZE, Some(*prefix_len)),
        PoolSelector::NodePool { .. } => (F_PREFIX_TAG, pool.info.prefix_len_tag),
    };
    let Some(len) = len else {
        e.rejected = true;
        e.hold_or_fail(Error::Required { field }, serving);
        return None;
    };
    let nodes = u32::try_from(pool.info.node_count()).unwrap_or(u32::MAX);
    if let Err(err) = check_public_prefix(field, len, nodes) {
        e.rejected = true;
        e.hold_or_fail(err, serving);
        return None;
    }
    let want = match byo_prefix {
        Some(id) => PrefixRef::Byo(id.clone()),
        None => PrefixRef::Managed(name.clone()),
    };
    if let Some(prefix) = settled(e, pool, &name, &want, len) {
        e.settled = true;
        e.prefix = Some(prefix);
        return None;
    }
    Some((len, want))
}

/// A configuration whose spec is applied, whose status is complete and whose
/// ipConfig sits on every node with the expected prefix needs no prefix read:
/// a prefix cannot change its range, and Azure refuses to delete one in use.
/// On a VM pool, every NIC must carry the public IP made for it.
fn settled(
    e: &Entry,
    pool: &Pool,
    name: &str,
    want: &PrefixRef,
    len: u8,
) -> Option<PublicIpPrefix> {
    let Some(EgressAddresses::Prefix(range)) = &e.obj.status.egress else {
        return None;
    };
    if !e.obj.status.is_ready()
        || e.children.as_ref().is_none_or(|c| c.applied != e.obj.spec)
        || range.prefix_len() != len
    {
        return None;
    }
    let vm_pool = matches!(pool.info.kind, PoolKind::Vm { .. });
    let mut id = None;
    for (_, nics) in pool.nic_lists() {
        let primary = nics.iter().find(|n| n.primary).or_else(|| nics.first())?;
        let c = primary
            .ip_configs
            .iter()
            .find(|c| same_name(&c.name, name))?;
        if vm_pool {
            // A VM-pool NIC carries the public IP made for it from the prefix.
            let ip = c.public_ip.as_deref()?;
            let expected = vm_pool_public_ip_name(name, &primary.name);
            if !same_name(ip.rsplit('/').next().unwrap_or(ip), &expected) {
                return None;
            }
            continue;
        }
        let p = c.public_ip_prefix.as_deref()?;
        let expected = match want {
            PrefixRef::Byo(byo) => same_name(p, &byo.to_string()),
            PrefixRef::Managed(m) => same_name(p.rsplit('/').next().unwrap_or(p), m),
        };
        if !expected {
            return None;
        }
        id = Some(p.to_string());
    }
    let id = match (id, want) {
        (Some(id), _) => id,
        (None, PrefixRef::Byo(byo)) => byo.to_string(),
        (None, PrefixRef::Managed(m)) => m.clone(),
    };
    Some(PublicIpPrefix {
        id,
        len,
        prefix: Some(*range),
    })
}

/// A prefix read or made: it must have the pool's length.
fn accept(e: &mut Entry, prefix: PublicIpPrefix, len: u8, serving: bool) {
    if prefix.len != len {
        e.rejected = true;
        e.hold_or_fail(
            Error::PrefixLengthMismatch {
                prefix: prefix.id.clone(),
                found: prefix.len,
                required: len,
            },
            serving,
        );
        return;
    }
    if prefix.prefix.is_none() {
        e.hold_or_fail(
            Error::adapter(
                crate::Layer::Cloud,
                "get_public_ip_prefix",
                FailureKind::Transient,
                NoRange(prefix.id.clone()),
            ),
            serving,
        );
        return;
    }
    e.prefix = Some(prefix);
}

/// A prefix Azure has not given a range yet.
#[derive(Debug, thiserror::Error)]
#[error("public IP prefix {0} has no address range yet")]
struct NoRange(String);
