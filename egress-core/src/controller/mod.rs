//! The controller's reconcile pass, generic over [`CloudProvider`] and
//! [`ClusterApi`].
//!
//! One pass looks at every configuration at once and gives each one role:
//! provision its spec, hold what Azure has for it, leave its pool
//! (deletion, or a move to another pool), or nothing. Then, in the order
//! Azure's rules demand:
//!
//! 1. read every pool once and group configurations by the pool's unique ID,
//!    so two selectors that reach the same machines are one pool;
//! 2. get or create public IP prefixes (creates run in parallel);
//! 3. add to the internal load balancer what the pools are about to reference
//!    (never removing anything yet);
//! 4. write each pool's ipConfigs for all its configurations at once;
//! 5. remove from the load balancer what nothing needs or references any more;
//! 6. delete managed prefixes and public IPs nobody uses;
//! 7. write status, and finish deletions and moves whose Azure side is gone.
//!
//! Safety rules: a configuration that serves keeps serving (its ipConfigs and
//! rule untouched, its error reported) until a change is known to be safe,
//! whatever went wrong: an edit the controller rejects, a prefix it cannot
//! read, a port it cannot get. A deletion finishes only when nothing of it is
//! left in Azure. When a pool cannot be read, nothing is removed from the load
//! balancer. Nothing sleeps here: the [`PassReport`] says what happened and
//! [`PassReport::requeue`] turns it into a delay.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::lb::ProbeSettings;
use crate::model::{ConfigId, GatewayConfig, GatewayNode};
use crate::names::managed_resource_name;
use crate::traits::{ChildUids, CloudProvider, ClusterApi, ConfigObject, KeyInfo, PublicIpPrefix};
use crate::{Error, FailureKind};

mod balancer;
mod cleanup;
mod finish;
mod pool;
mod pools;
mod prefix;
mod prepare;
pub mod schedule;

use pools::Pools;

/// What the controller is configured with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ControllerSettings {
    /// The subscription it manages.
    pub subscription_id: String,
    /// Subnet of new load-balancer frontends (ARM ID).
    pub frontend_subnet_id: String,
    /// Health-probe settings.
    pub probe: ProbeSettings,
}

/// Where a configuration stands after a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Provisioned; status complete.
    Ready,
    /// Progressing without error (for example waiting for an address).
    Pending,
    /// Serving what Azure holds for it, but its latest spec is not applied:
    /// the errors say why (a rejected edit, a prefix that cannot be read).
    Held(Vec<Error>),
    /// The spec is rejected; nothing is provisioned for it.
    Invalid(Vec<Error>),
    /// Provisioning failed this pass; retried with backoff.
    Failed(Vec<Error>),
    /// Moving to another pool: its old pool is clean, and the next pass
    /// provisions the new one.
    Moving,
    /// Deletion finished; nothing is left.
    Deleted,
    /// Deletion is waiting for a step that failed; retried with backoff.
    DeletePending(Vec<Error>),
}

/// The result of one pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Outcome per configuration.
    pub outcomes: BTreeMap<ConfigId, Outcome>,
}

impl PassReport {
    /// Errors that call for a retry, per configuration. A held configuration
    /// whose errors are all definitive (a rejected spec) waits for a change
    /// of its spec instead.
    pub fn retryable(&self) -> impl Iterator<Item = (&ConfigId, &[Error])> {
        self.outcomes.iter().filter_map(|(id, o)| match o {
            Outcome::Failed(e) | Outcome::DeletePending(e) => Some((id, e.as_slice())),
            Outcome::Held(e) if e.iter().any(|e| !is_definitive(e)) => Some((id, e.as_slice())),
            _ => None,
        })
    }

    /// When to run the next pass. `attempts` counts consecutive failures per
    /// configuration and is updated here; `sample` is a uniform random number
    /// in `[0, 1)` for jitter. A move in progress asks for the next pass now.
    pub fn requeue(
        &self,
        backoff: &Backoff,
        attempts: &mut BTreeMap<ConfigId, u32>,
        sample: f64,
    ) -> Duration {
        if self.outcomes.values().any(|o| *o == Outcome::Moving) {
            return Duration::ZERO;
        }
        let mut next = backoff.resync;
        let retrying: Vec<(&ConfigId, &[Error])> = self.retryable().collect();
        attempts.retain(|id, _| retrying.iter().any(|(r, _)| *r == id));
        for (id, errors) in retrying {
            let n = attempts.entry(id.clone()).or_insert(0);
            *n += 1;
            next = next.min(backoff.after_errors(errors, *n, sample));
        }
        next
    }
}

/// What a pass does for one configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Bring Azure to the desired spec on its pool.
    Provision,
    /// Keep what Azure holds for the applied spec exactly as it is.
    Hold,
    /// Remove everything of it from its applied pool, then finish.
    Leave(After),
    /// Nothing in Azure to touch (never provisioned, or its pool is gone).
    Idle,
}

/// What follows a [`Role::Leave`] once the old pool is clean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    /// Deletion: remove the children, the key Secret and the finalizer.
    Finalize,
    /// A move: apply the desired spec; the next pass provisions it.
    Reapply,
}

/// Per-configuration working state of a pass.
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // independent facts found along one pass
struct Entry {
    obj: ConfigObject,
    /// The user's spec, validated.
    desired: Option<GatewayConfig>,
    /// The spec Azure holds (from the children), validated.
    applied: Option<GatewayConfig>,
    children: Option<ChildUids>,
    key: Option<KeyInfo>,
    role: Role,
    /// The desired pool differs from the applied one: decided once both are read.
    moving: bool,
    /// The spec itself is rejected.
    rejected: bool,
    errors: Vec<Error>,
    /// Index of the pool it acts on in [`Pools`].
    pool: Option<usize>,
    /// The pool it acts on does not exist any more.
    pool_gone: bool,
    /// Public mode: its prefix, once known.
    prefix: Option<PublicIpPrefix>,
    /// Already as desired everywhere: planned as a hold, no prefix read.
    settled: bool,
    nodes: Vec<GatewayNode>,
    /// The load-balancer port, once planned.
    port: Option<u16>,
}

impl Entry {
    fn new(obj: ConfigObject) -> Self {
        Self {
            desired: None,
            applied: None,
            children: obj.children.clone(),
            key: None,
            role: Role::Idle,
            moving: false,
            rejected: false,
            errors: Vec::new(),
            pool: None,
            pool_gone: false,
            prefix: None,
            settled: false,
            nodes: obj.nodes.clone(),
            port: None,
            obj,
        }
    }

    /// `egressgateway-<vm uid>`: its ipConfigs and managed prefix.
    fn managed_name(&self) -> Option<String> {
        self.children
            .as_ref()
            .map(|c| managed_resource_name(&c.vm_uid))
    }

    /// The configuration its role acts on: desired when provisioning, applied
    /// otherwise.
    fn acting(&self) -> Option<&GatewayConfig> {
        match self.role {
            Role::Provision => self.desired.as_ref(),
            _ => self.applied.as_ref(),
        }
    }

    /// Something keeps the desired spec from being applied: a configuration
    /// that serves holds; one that does not records the error and waits.
    fn hold_or_fail(&mut self, e: Error, serving: bool) {
        if self.role == Role::Provision {
            self.role = if serving { Role::Hold } else { Role::Idle };
        }
        self.errors.push(e);
    }
}

/// Not found and permanent failures will not change on retry; everything
/// else might.
fn is_definitive(e: &Error) -> bool {
    !matches!(
        e.failure_kind(),
        Some(FailureKind::Conflict | FailureKind::Throttled { .. } | FailureKind::Transient)
    )
}

/// Runs one reconcile pass. Fails only when the configurations cannot be listed.
pub async fn reconcile<C, K>(
    cloud: &C,
    cluster: &K,
    settings: &ControllerSettings,
) -> Result<crate::controller::PassReport, Error>
where
    C: CloudProvider + ?Sized,
    K: ClusterApi + ?Sized,
{
    let mut entries = prepare::prepare(cluster, settings).await?;
    if entries.is_empty() {
        return Ok(PassReport::default());
    }
    let mut pools = Pools::resolve(cloud, cluster, &mut entries).await;
    prefix::ensure_prefixes(cloud, &mut entries, &pools).await;
    let mut lb = balancer::add(cloud, &mut entries, &pools, settings).await;
    pool::write_pools(cloud, &mut entries, &mut pools).await;
    balancer::remove(cloud, &mut entries, &pools, settings, &mut lb).await;
    cleanup::cleanup(cloud, &mut entries, &pools).await;
    Ok(finish::finish(cluster, &mut entries, lb.as_ref(), &pools).await)
}

#[cfg(test)]
mod tests;
