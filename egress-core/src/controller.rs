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
use crate::lb::{self, LbChange, LoadBalancer, PoolDemand, ProbeSettings, RuleDemand};
use crate::model::{
    ConfigId, EgressAddresses, EgressMode, GatewayConfig, GatewayNode, GatewayStatus, PoolSelector,
    ServerProfile,
};
use crate::names::{managed_resource_name, vm_pool_public_ip_name};
use crate::sizing::check_public_prefix;
use crate::traits::{
    ChildUids, CloudProvider, ClusterApi, ConfigObject, KeyInfo, PoolInfo, PoolKind, PrefixRef,
    PublicIpPrefix,
};
use crate::validate::{ValidationContext, validate};
use crate::vmss::{IpConfigDemand, Nic, PublicKind, gateway_nodes, plan_nics, plan_vmss};
use crate::{Error, FailureKind};

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
        let failing: Vec<(ConfigId, Vec<Error>)> = self
            .retryable()
            .map(|(id, e)| (id.clone(), e.to_vec()))
            .collect();
        attempts.retain(|id, _| failing.iter().any(|(f, _)| f == id));
        for (id, errors) in failing {
            let n = attempts.entry(id).or_insert(0);
            *n += 1;
            next = next.min(backoff.after_errors(&errors, *n, sample));
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
    finish(cluster, &mut entries, lb.as_ref(), &pools, &infos).await
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
            match cluster.children(&e.obj.id).await {
                Ok(c) => e.children = c,
                Err(err) => {
                    e.blocking = true;
                    e.errors.push(err);
                }
            }
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

enum PoolResult {
    Known(PoolInfo),
    Gone,
    Unknown(String),
}

async fn reconcile_pool<C: CloudProvider + ?Sized>(
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
        PoolSelector::Vmss { prefix_len, .. } => (
            "spec.gatewayVmssProfile.publicIpPrefixSize",
            Some(*prefix_len),
        ),
        PoolSelector::NodePool { .. } => (
            "tag aks-managed-gatewayIPPrefixSize of the gateway pool",
            info.prefix_len_tag,
        ),
    };
    let Some(len) = len else {
        e.fail(Error::Required {
            field: "tag aks-managed-gatewayIPPrefixSize of the gateway pool",
        });
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
                cloud.put_vmss_model(resource_group, name, nics).await?;
                writes += 1;
            }
            for (id, nics) in &plan.instances {
                cloud
                    .update_vmss_instance(resource_group, name, id, nics)
                    .await?;
                writes += 1;
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

async fn reconcile_lb<C: CloudProvider + ?Sized>(
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
        let text = err.to_string();
        for e in entries.iter_mut().filter(|e| e.active()) {
            if e.children
                .as_ref()
                .is_some_and(|c| text.contains(&c.lb_uid))
                || matches!(err, lb::LbError::UnexpectedFrontend { .. })
            {
                e.fail(Error::LoadBalancer(text.clone()));
            }
        }
    }
    let stored = match &plan.change {
        LbChange::None => Ok(observed),
        LbChange::Put(lb) => cloud.put_load_balancer(lb).await.map(Some),
        LbChange::Delete => cloud.delete_load_balancer().await.map(|()| None),
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
            lb.or_else(|| Some(LoadBalancer::default()))
        }
        Err(err) => {
            everyone(entries, &err);
            None
        }
    }
}

async fn cleanup_prefixes<C: CloudProvider + ?Sized>(
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

async fn finish<K: ClusterApi + ?Sized>(
    cluster: &K,
    entries: &mut [Entry],
    lb: Option<&LoadBalancer>,
    pools: &BTreeMap<String, Vec<usize>>,
    infos: &BTreeMap<String, PoolInfo>,
) -> Result<PassReport, Error> {
    let mut report = PassReport::default();
    let pool_uid_of = |i: usize| {
        pools
            .iter()
            .find(|(_, m)| m.contains(&i))
            .and_then(|(k, _)| infos.get(k))
            .map(|info| info.uid.clone())
    };
    for (i, e) in entries.iter_mut().enumerate() {
        let pool_uid = pool_uid_of(i);
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
            let status = status_of(e, lb, pool_uid.as_deref());
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
            } else if !e.active() {
                Outcome::Pending
            } else if status.is_ready() {
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
