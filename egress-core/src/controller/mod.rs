//! The controller's reconcile pass, generic over [`CloudProvider`] and
//! [`ClusterApi`].
//!
//! One pass looks at every configuration at once:
//!
//! 1. Validate each spec; for valid ones ensure the finalizer, the key Secret
//!    and the LB and VM configuration objects (whose UIDs name Azure objects).
//! 2. Per gateway pool: read it, check prefix capacity, get or create public IP
//!    prefixes, and plan the secondary ipConfigs of every configuration on the
//!    pool together, so N pending configurations cost one write per VMSS
//!    model, instance or NIC.
//! 3. Plan the internal load balancer once for all pools.
//! 4. Delete managed prefixes nobody uses, write status, and finish deletions.
//!
//! Safety rules: a configuration whose state could not be read (a transient
//! error) blocks writes to its pool and to the load balancer for this pass, so
//! it is never torn down by mistake. A deletion finishes (finalizer removed)
//! only after every Azure step for it succeeded, so nothing is left behind.
//! Nothing sleeps here: the [`PassReport`] says what happened and
//! [`PassReport::requeue`] turns it into a delay.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::backoff::Backoff;
use crate::lb::{LoadBalancer, ProbeSettings};
use crate::model::{
    ConfigId, EgressAddresses, EgressMode, GatewayConfig, GatewayNode, GatewayStatus, PoolSelector,
    ServerProfile,
};
use crate::traits::{
    ChildUids, CloudProvider, ClusterApi, ConfigObject, KeyInfo, PoolInfo, PublicIpPrefix,
};
use crate::validate::{ValidationContext, validate};
use crate::{Error, FailureKind};

mod balancer;
mod cleanup;
mod pool;

use balancer::reconcile_lb;
use cleanup::cleanup_prefixes;
use pool::{PoolResult, reconcile_pool};

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
    /// The spec is rejected; nothing is provisioned for it.
    Invalid(Vec<Error>),
    /// Provisioning failed this pass; retried with backoff.
    Failed(Vec<Error>),
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
    /// Errors that call for a retry, per configuration.
    pub fn retryable(&self) -> impl Iterator<Item = (&ConfigId, &[Error])> {
        self.outcomes.iter().filter_map(|(id, o)| match o {
            Outcome::Failed(e) | Outcome::DeletePending(e) => Some((id, e.as_slice())),
            _ => None,
        })
    }

    /// When to run the next pass. `attempts` counts consecutive failures per
    /// configuration and is updated here; `sample` is a uniform random number
    /// in `[0, 1)` for jitter.
    pub fn requeue(
        &self,
        backoff: &Backoff,
        attempts: &mut BTreeMap<ConfigId, u32>,
        sample: f64,
    ) -> Duration {
        let mut next = backoff.resync;
        attempts.retain(|id, _| {
            matches!(
                self.outcomes.get(id),
                Some(Outcome::Failed(_) | Outcome::DeletePending(_))
            )
        });
        for (id, errors) in self.retryable() {
            let n = attempts.entry(id.clone()).or_insert(0);
            *n += 1;
            next = next.min(backoff.after_errors(errors, *n, sample));
        }
        next
    }
}

/// Per-configuration working state of a pass.
#[derive(Debug)]
struct Entry {
    obj: ConfigObject,
    cfg: Option<GatewayConfig>,
    children: Option<ChildUids>,
    key: Option<KeyInfo>,
    errors: Vec<Error>,
    /// Rejected for good this pass: leaves the demand.
    invalid: bool,
    /// Its state is unknown: its pool must not change this pass.
    blocking: bool,
    prefix: Option<PublicIpPrefix>,
    nodes: Vec<GatewayNode>,
    /// The load-balancer port, once planned.
    port: Option<u16>,
}

impl Entry {
    fn active(&self) -> bool {
        !self.obj.deleting
            && !self.invalid
            && !self.blocking
            && self.cfg.is_some()
            && self.children.is_some()
    }

    /// A rule the configuration no longer meets. One that was serving keeps
    /// serving with the error reported (tearing a working gateway down would
    /// hurt more); one that never was is rejected.
    fn reject(&mut self, e: Error) -> bool {
        if self.obj.status.is_ready() {
            self.errors.push(e);
            false
        } else {
            self.fail(e);
            true
        }
    }

    fn fail(&mut self, e: Error) {
        if is_definitive(&e) && !self.obj.deleting {
            self.invalid = true;
        }
        self.errors.push(e);
    }
}

/// Not found and permanent failures will not change on retry; everything else
/// might, so the state behind it counts as unknown.
fn is_definitive(e: &Error) -> bool {
    !matches!(
        e.failure_kind(),
        Some(FailureKind::Conflict | FailureKind::Throttled { .. } | FailureKind::Transient)
    )
}

fn pool_key(sel: &PoolSelector) -> String {
    match sel {
        PoolSelector::NodePool { name } => format!("pool/{}", name.to_ascii_lowercase()),
        PoolSelector::Vmss {
            resource_group,
            name,
            ..
        } => {
            format!(
                "vmss/{}/{}",
                resource_group.to_ascii_lowercase(),
                name.to_ascii_lowercase()
            )
        }
    }
}

/// Runs one reconcile pass. Fails only when the configurations cannot be listed.
pub async fn reconcile<C, K>(
    cloud: &C,
    cluster: &K,
    settings: &ControllerSettings,
) -> Result<PassReport, Error>
where
    C: CloudProvider + ?Sized,
    K: ClusterApi + ?Sized,
{
    let mut entries = prepare(cluster, settings).await?;

    let mut pools: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some(cfg) = &e.cfg {
            pools.entry(pool_key(&cfg.pool)).or_default().push(i);
        }
    }
    let mut infos: BTreeMap<String, PoolInfo> = BTreeMap::new();
    let mut lb_blocked = None;
    for (key, members) in &pools {
        match reconcile_pool(cloud, &mut entries, members).await {
            PoolResult::Known(info) => {
                infos.insert(key.clone(), info);
            }
            PoolResult::Gone => {}
            PoolResult::Unknown(reason) => lb_blocked = Some(reason),
        }
    }

    let lb = if let Some(reason) = lb_blocked {
        for e in entries.iter_mut().filter(|e| e.cfg.is_some()) {
            e.errors.push(Error::Blocked {
                reason: reason.clone(),
            });
        }
        None
    } else {
        reconcile_lb(cloud, &mut entries, &pools, &infos, settings).await
    };

    cleanup_prefixes(cloud, &mut entries, &infos).await;
    finish(cluster, &mut entries, lb.as_ref(), &infos).await
}

async fn prepare<K: ClusterApi + ?Sized>(
    cluster: &K,
    settings: &ControllerSettings,
) -> Result<Vec<Entry>, Error> {
    let ctx = ValidationContext {
        subscription_id: settings.subscription_id.clone(),
        ..ValidationContext::default()
    };
    let mut entries = Vec::new();
    for obj in cluster.list_configs().await? {
        if obj.deleting && !obj.finalized {
            continue; // Not ours any more.
        }
        let validated = validate(obj.id.clone(), &obj.spec, &ctx);
        let nodes = obj.nodes.clone();
        let mut e = Entry {
            cfg: validated.as_ref().ok().cloned(),
            obj,
            children: None,
            key: None,
            errors: Vec::new(),
            invalid: false,
            blocking: false,
            prefix: None,
            // What is known until the pool is read again this pass.
            nodes,
            port: None,
        };
        if e.obj.deleting {
            e.children = e.obj.children.clone();
        } else if let Err(errors) = validated {
            if let Err(err) = cluster.report_invalid(&e.obj.id, &errors).await {
                e.errors.push(err);
            }
            e.invalid = true;
            e.errors.extend(errors);
        } else {
            let id = e.obj.id.clone();
            let steps = async {
                if !e.obj.finalized {
                    cluster.add_finalizer(&id).await?;
                }
                let key = cluster.ensure_key_secret(&id).await?;
                let children = cluster.ensure_children(&id, &e.obj.spec).await?;
                Ok::<_, Error>((key, children))
            };
            match steps.await {
                Ok((key, children)) => {
                    e.key = Some(key);
                    e.children = Some(children);
                }
                Err(err) => {
                    e.blocking = true;
                    e.errors.push(err);
                }
            }
        }
        entries.push(e);
    }
    Ok(entries)
}

async fn finish<K: ClusterApi + ?Sized>(
    cluster: &K,
    entries: &mut [Entry],
    lb: Option<&LoadBalancer>,
    infos: &BTreeMap<String, PoolInfo>,
) -> Result<PassReport, Error> {
    let mut report = PassReport::default();
    for e in entries.iter_mut() {
        let pool_uid = e
            .cfg
            .as_ref()
            .and_then(|c| infos.get(&pool_key(&c.pool)))
            .map(|info| info.uid.as_str());
        let id = e.obj.id.clone();
        let outcome = if e.obj.deleting {
            if e.errors.is_empty() {
                let done = async {
                    cluster.delete_children(&id).await?;
                    cluster.delete_key_secret(&id).await?;
                    cluster.remove_finalizer(&id).await
                };
                match done.await {
                    Ok(()) => Outcome::Deleted,
                    Err(err) => Outcome::DeletePending(vec![err]),
                }
            } else {
                Outcome::DeletePending(std::mem::take(&mut e.errors))
            }
        } else if e.invalid {
            Outcome::Invalid(std::mem::take(&mut e.errors))
        } else {
            let status = status_of(e, lb, pool_uid);
            // A pass with errors saw only part of the picture: keep the last
            // known status rather than overwrite it with gaps.
            if e.active()
                && e.errors.is_empty()
                && (status != e.obj.status || e.nodes != e.obj.nodes)
                && let Err(err) = cluster.write_status(&id, &status, &e.nodes).await
            {
                e.errors.push(err);
            }
            if !e.errors.is_empty() {
                Outcome::Failed(std::mem::take(&mut e.errors))
            } else if e.active() && status.is_ready() {
                Outcome::Ready
            } else {
                Outcome::Pending
            }
        };
        report.outcomes.insert(id, outcome);
    }
    Ok(report)
}

fn status_of(e: &Entry, lb: Option<&LoadBalancer>, pool_uid: Option<&str>) -> GatewayStatus {
    let Some(cfg) = &e.cfg else {
        return e.obj.status.clone();
    };
    let egress = match &cfg.egress {
        EgressMode::Public { .. } => e
            .prefix
            .as_ref()
            .and_then(|p| p.prefix)
            .map(EgressAddresses::Prefix),
        EgressMode::Private if e.nodes.is_empty() => None,
        EgressMode::Private => Some(EgressAddresses::Private(
            e.nodes.iter().map(|n| n.secondary_ip).collect(),
        )),
    };
    let frontend_ip = lb.and_then(|lb| {
        lb.frontends
            .iter()
            .find(|f| pool_uid.is_some_and(|u| f.name.eq_ignore_ascii_case(u)))
            .and_then(|f| f.private_ip)
    });
    let server = match (frontend_ip, e.port, &e.key) {
        (Some(ip), Some(port), Some(key)) => Some(ServerProfile {
            ip,
            port,
            public_key: key.public_key.clone(),
            key_secret: key.secret.clone(),
        }),
        // The load balancer was not read this pass: keep what is known.
        _ if lb.is_none() => e.obj.status.server.clone(),
        _ => None,
    };
    GatewayStatus { egress, server }
}

#[cfg(test)]
mod tests;
