//! The simulated Azure subscription. It refuses what Azure refuses (see
//! [`rules`](self::rules)), so a plan that would fail against Azure fails in
//! core's fast tests first.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use ipnet::{IpNet, Ipv4Net};

use super::{Faults, injected, lock};
use crate::lb::LoadBalancer;
use crate::model::PoolSelector;
use crate::names::{is_managed_name, same_name};
use crate::traits::{
    CloudProvider, InstanceUpdate, PoolInfo, PoolKind, PrefixRef, PublicIp, PublicIpPrefix,
};
use crate::vmss::{Instance, IpConfig, Nic};
use crate::{Error, FailureKind, Layer};

mod rules;

pub use rules::Refused;

/// A public IP as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPublicIp {
    /// Its name as created.
    pub name: String,
    /// ARM ID.
    pub id: String,
    /// The prefix it was allocated from (ARM ID).
    pub prefix_id: String,
}

/// The state of the simulated cloud.
#[derive(Debug, Default)]
pub struct CloudState {
    /// Pools by key (`vmss/<rg>/<name>` or `vm/<pool>`, lower-case), with the
    /// pool name tag.
    pub pools: BTreeMap<String, (Option<String>, PoolInfo)>,
    /// The internal load balancer (`backends_in_use` is computed on read).
    pub lb: Option<LoadBalancer>,
    /// Public IP prefixes by lower-case ARM ID.
    pub prefixes: BTreeMap<String, PublicIpPrefix>,
    /// Public IPs by lower-case name.
    pub public_ips: BTreeMap<String, StoredPublicIp>,
    /// Writes per operation (an instance update counts one per instance).
    pub writes: BTreeMap<&'static str, usize>,
    /// Reads per operation.
    pub reads: BTreeMap<&'static str, usize>,
    /// Every call refused by one of Azure's rules, as `op: reason` (stale
    /// `ETag`s are counted apart).
    pub refusals: Vec<String>,
    /// Writes refused because the object changed since it was read.
    pub precondition_failures: usize,
    /// Failures to inject.
    pub faults: Faults,
    /// Writes another writer makes right before our next call of an
    /// operation, after we read: our guarded write then meets a new `ETag`.
    races: BTreeMap<&'static str, Race>,
    next_private: u32,
    next_public: u32,
    next_etag: u64,
}

/// Another writer's change, run on the state.
struct Race(Box<dyn FnOnce(&mut CloudState) + Send>);

impl std::fmt::Debug for Race {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Race")
    }
}

/// A simulated Azure subscription.
#[derive(Debug)]
pub struct InMemoryCloud {
    subscription: String,
    resource_group: String,
    state: Mutex<CloudState>,
}

impl InMemoryCloud {
    /// An empty subscription with the cluster's resource group.
    pub fn new(subscription: &str, resource_group: &str) -> Self {
        Self {
            subscription: subscription.into(),
            resource_group: resource_group.into(),
            state: Mutex::new(CloudState {
                next_private: 0x0A00_0100,
                ..CloudState::default()
            }),
        }
    }

    /// Direct access to the simulated state.
    pub fn state(&self) -> MutexGuard<'_, CloudState> {
        lock(&self.state)
    }

    fn gateway_subnet(&self, rg: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/vnet/subnets/gateway",
            self.subscription
        )
    }

    /// A primary NIC in the gateway subnet, without an address yet.
    fn primary_nic(&self, name: String, rg: &str) -> Nic {
        Nic {
            name,
            etag: None,
            primary: true,
            ip_configs: vec![IpConfig {
                name: "ipconfig1".into(),
                primary: true,
                subnet_id: Some(self.gateway_subnet(rg)),
                ..IpConfig::default()
            }],
        }
    }

    /// Adds a VMSS gateway pool tagged with `pool_name` (if any) and a prefix
    /// length tag, with `instances` instances on one primary NIC each. Its
    /// unique ID is `uid-<name>`, whichever selector reaches it.
    pub fn add_vmss_pool(
        &self,
        rg: &str,
        name: &str,
        pool_name: Option<&str>,
        prefix_tag: Option<u8>,
        instances: usize,
    ) {
        let etag = self.state().etag();
        let info = PoolInfo {
            uid: format!("uid-{name}"),
            prefix_len_tag: prefix_tag,
            kind: PoolKind::Vmss {
                resource_group: rg.into(),
                name: name.into(),
                model: vec![self.primary_nic("nic".into(), rg)],
                etag: Some(etag),
                instances: Vec::new(),
            },
        };
        self.state().pools.insert(
            vmss_key(rg, name),
            (pool_name.map(str::to_ascii_lowercase), info),
        );
        self.scale_vmss(rg, name, instances);
    }

    /// Adds a VM gateway pool: `nics` pre-created NICs tagged with the pool name.
    pub fn add_vm_pool(&self, pool_name: &str, prefix_tag: Option<u8>, nics: usize) {
        let mut nics: Vec<Nic> = (0..nics)
            .map(|i| self.primary_nic(format!("{pool_name}-nic-{i}"), &self.resource_group))
            .collect();
        let mut st = self.state();
        st.assign_addresses(&mut nics);
        for n in &mut nics {
            n.etag = Some(st.etag());
        }
        let info = PoolInfo {
            uid: format!("uid-vm-{pool_name}"),
            prefix_len_tag: prefix_tag,
            kind: PoolKind::Vm { nics },
        };
        st.pools.insert(
            format!("vm/{}", pool_name.to_ascii_lowercase()),
            (Some(pool_name.to_ascii_lowercase()), info),
        );
    }

    /// Grows a VMSS pool to `instances` instances, built from the current
    /// model as Azure would (with fresh addresses).
    pub fn scale_vmss(&self, rg: &str, vmss: &str, instances: usize) {
        let mut st = self.state();
        let Some(PoolKind::Vmss {
            model,
            instances: list,
            name,
            ..
        }) = st.pool_mut(rg, vmss).map(|p| p.kind.clone())
        else {
            return;
        };
        let mut list = list;
        while list.len() < instances {
            let mut nics = model.clone();
            st.assign_addresses(&mut nics);
            list.push(Instance {
                id: list.len().to_string(),
                computer_name: format!("{name}{:06}", list.len()),
                failed: false,
                etag: Some(st.etag()),
                nics,
            });
        }
        if let Some(PoolKind::Vmss {
            instances: target, ..
        }) = st.pool_mut(rg, vmss).map(|p| &mut p.kind)
        {
            *target = list;
        }
    }

    /// Another writer (AKS itself, an operator) changes a VMSS model: `edit`
    /// runs on its NIC configurations and the `ETag` changes.
    pub fn external_model_write(&self, rg: &str, vmss: &str, edit: impl FnOnce(&mut Vec<Nic>)) {
        let mut st = self.state();
        let new = st.etag();
        if let Some(PoolKind::Vmss { model, etag, .. }) = st.pool_mut(rg, vmss).map(|p| &mut p.kind)
        {
            edit(model);
            *etag = Some(new);
        }
    }

    /// Right before our next `op` call, another writer changes a VMSS model
    /// (AKS itself writes the same VMSS): `edit` runs on its NIC
    /// configurations and its `ETag` changes, so a write planned from the
    /// earlier read is refused.
    pub fn race_model_write(
        &self,
        op: &'static str,
        rg: &str,
        vmss: &str,
        edit: impl FnOnce(&mut Vec<Nic>) + Send + 'static,
    ) {
        let (rg, vmss) = (rg.to_string(), vmss.to_string());
        self.state().races.insert(
            op,
            Race(Box::new(move |st: &mut CloudState| {
                let new = st.etag();
                if let Some(PoolKind::Vmss { model, etag, .. }) =
                    st.pool_mut(&rg, &vmss).map(|p| &mut p.kind)
                {
                    edit(model);
                    *etag = Some(new);
                }
            })),
        );
    }

    /// Right before our next `op` call, another writer changes the load
    /// balancer (its `ETag` changes).
    pub fn race_lb_write(
        &self,
        op: &'static str,
        edit: impl FnOnce(&mut LoadBalancer) + Send + 'static,
    ) {
        self.state().races.insert(
            op,
            Race(Box::new(move |st: &mut CloudState| {
                let new = st.etag();
                if let Some(lb) = st.lb.as_mut() {
                    edit(lb);
                    lb.etag = Some(new);
                }
            })),
        );
    }

    /// Another writer changes the load balancer: `edit` runs on it and the
    /// `ETag` changes.
    pub fn external_lb_write(&self, edit: impl FnOnce(&mut LoadBalancer)) {
        let mut st = self.state();
        let new = st.etag();
        if let Some(lb) = st.lb.as_mut() {
            edit(lb);
            lb.etag = Some(new);
        }
    }

    /// Adds a bring-your-own prefix in resource group `byo` and returns its ARM ID.
    pub fn add_byo_prefix(&self, name: &str, len: u8) -> String {
        let id = format!(
            "/subscriptions/{}/resourceGroups/byo/providers/Microsoft.Network/publicIPPrefixes/{name}",
            self.subscription
        );
        let mut st = self.state();
        let prefix = st.alloc_prefix(len);
        st.prefixes.insert(
            id.to_ascii_lowercase(),
            PublicIpPrefix {
                id: id.clone(),
                len,
                prefix: Some(prefix),
            },
        );
        id
    }

    /// Total writes so far.
    pub fn total_writes(&self) -> usize {
        self.state().writes.values().sum()
    }

    /// Total reads so far.
    pub fn total_reads(&self) -> usize {
        self.state().reads.values().sum()
    }

    /// Queues failures for an operation: the next calls fail with these kinds.
    pub fn fail_next(&self, op: &'static str, kinds: &[FailureKind]) {
        self.state().faults.queue(op, kinds);
    }

    /// Queues failures that strike after the write took effect.
    pub fn fail_next_after_effect(&self, op: &'static str, kinds: &[FailureKind]) {
        self.state().faults.queue_after_effect(op, kinds);
    }

    /// Makes every call of an operation fail until cleared.
    pub fn fail_always(&self, op: &'static str, kind: Option<FailureKind>) {
        let mut st = self.state();
        match kind {
            Some(k) => st.faults.always.insert(op, k),
            None => st.faults.always.remove(op),
        };
    }

    /// Every object left in the cloud that this system manages: ipConfigs
    /// and backend memberships on every model, instance and NIC, the load
    /// balancer and its parts, managed prefixes and every public IP.
    pub fn leftovers(&self) -> Vec<String> {
        let st = self.state();
        let mut out = Vec::new();
        for (owner, c) in st.all_ip_configs() {
            if is_managed_name(&c.name) {
                out.push(format!("{owner}: ipConfig {}", c.name));
            }
            for b in &c.backend_pools {
                out.push(format!("{owner}: {} in backend pool {b}", c.name));
            }
        }
        if let Some(lb) = &st.lb {
            out.push(format!(
                "load balancer ({} frontends, {} backends)",
                lb.frontends.len(),
                lb.backends.len()
            ));
            out.extend(
                lb.rules
                    .iter()
                    .map(|r| format!("load-balancing rule {}", r.name)),
            );
            out.extend(lb.probes.iter().map(|p| format!("probe {}", p.name)));
        }
        out.extend(
            st.prefixes
                .values()
                .filter(|p| p.id.rsplit('/').next().is_some_and(is_managed_name))
                .map(|p| format!("prefix {}", p.id)),
        );
        out.extend(
            st.public_ips
                .values()
                .map(|ip| format!("public IP {}", ip.name)),
        );
        out
    }

    /// A write call: fails before the effect if a fault says so; otherwise
    /// `apply` runs (and may refuse by Azure's rules), and a fault that
    /// strikes after the effect fails the call once it took effect.
    fn write<T>(
        &self,
        op: &'static str,
        apply: impl FnOnce(&mut CloudState) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut st = self.state();
        if let Some(Race(race)) = st.races.remove(op) {
            race(&mut st);
        }
        let fault = st.faults.take(op);
        if let Some(f) = fault.filter(|f| !f.after_effect) {
            return Err(injected(Layer::Cloud, op, f.kind));
        }
        *st.writes.entry(op).or_default() += 1;
        let out = apply(&mut st);
        if let Err(e) = &out {
            let why = source_text(e);
            // A stale ETag is how a race shows, not a call Azure forbids.
            if why.starts_with("PreconditionFailed") {
                st.precondition_failures += 1;
            } else {
                st.refusals.push(format!("{op}: {e}: {why}"));
            }
        }
        match fault {
            Some(f) if out.is_ok() => Err(injected(Layer::Cloud, op, f.kind)),
            _ => out,
        }
    }

    fn read(&self, op: &'static str) -> Result<MutexGuard<'_, CloudState>, Error> {
        let mut st = self.state();
        st.faults.check(Layer::Cloud, op)?;
        *st.reads.entry(op).or_default() += 1;
        Ok(st)
    }

    fn prefix_id(&self, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/publicIPPrefixes/{name}",
            self.subscription, self.resource_group
        )
    }

    fn public_ip_id(&self, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/publicIPAddresses/{name}",
            self.subscription, self.resource_group
        )
    }
}

fn source_text(e: &Error) -> String {
    std::error::Error::source(e).map_or_else(String::new, ToString::to_string)
}

impl CloudState {
    fn etag(&mut self) -> String {
        self.next_etag += 1;
        format!("W/\"{}\"", self.next_etag)
    }

    fn alloc_private(&mut self) -> IpAddr {
        self.next_private += 1;
        IpAddr::V4(Ipv4Addr::from(self.next_private))
    }

    /// Prefixes come from the three documentation ranges, in turn.
    fn alloc_prefix(&mut self, len: u8) -> IpNet {
        const RANGES: [u32; 3] = [0xC000_0200, 0xC633_6400, 0xCB00_7100];
        let size = 1u32 << (32 - u32::from(len.clamp(24, 32)));
        let offset = self.next_public % 768;
        self.next_public += size;
        let base = RANGES[(offset / 256) as usize] + (offset % 256);
        IpNet::V4(
            Ipv4Net::new(Ipv4Addr::from(base), len)
                .unwrap_or_default()
                .trunc(),
        )
    }

    fn assign_addresses(&mut self, nics: &mut [Nic]) {
        for c in nics.iter_mut().flat_map(|n| n.ip_configs.iter_mut()) {
            if c.private_ip.is_none() {
                c.private_ip = Some(self.alloc_private());
            }
        }
    }

    fn pool_mut(&mut self, rg: &str, vmss: &str) -> Option<&mut PoolInfo> {
        self.pools
            .get_mut(&vmss_key(rg, vmss))
            .map(|(_, info)| info)
    }

    /// Every ipConfig of every model, instance and NIC, with its owner.
    fn all_ip_configs(&self) -> Vec<(String, &IpConfig)> {
        let mut out = Vec::new();
        for (key, (_, info)) in &self.pools {
            match &info.kind {
                PoolKind::Vmss {
                    model, instances, ..
                } => {
                    let owner = format!("{key} model");
                    out.extend(configs(model).map(|c| (owner.clone(), c)));
                    for i in instances {
                        let owner = format!("{key} instance {}", i.id);
                        out.extend(configs(&i.nics).map(|c| (owner.clone(), c)));
                    }
                }
                PoolKind::Vm { nics } => {
                    for n in nics {
                        let owner = format!("nic {}", n.name);
                        out.extend(configs(std::slice::from_ref(n)).map(|c| (owner.clone(), c)));
                    }
                }
            }
        }
        out
    }
}

fn configs(nics: &[Nic]) -> impl Iterator<Item = &IpConfig> {
    nics.iter().flat_map(|n| &n.ip_configs)
}

fn vmss_key(rg: &str, vmss: &str) -> String {
    format!(
        "vmss/{}/{}",
        rg.to_ascii_lowercase(),
        vmss.to_ascii_lowercase()
    )
}

fn refused(op: &'static str, kind: FailureKind, why: Refused) -> Error {
    Error::adapter(Layer::Cloud, op, kind, why)
}

fn not_found(op: &'static str, what: String) -> Error {
    refused(op, FailureKind::NotFound, Refused::NotFound(what))
}

fn check_etag(
    op: &'static str,
    what: &str,
    have: Option<&String>,
    sent: Option<&str>,
) -> Result<(), Error> {
    match sent {
        Some(sent) if have.map(String::as_str) != Some(sent) => Err(refused(
            op,
            FailureKind::Conflict,
            Refused::PreconditionFailed(format!("{what} changed since it was read")),
        )),
        _ => Ok(()),
    }
}

#[async_trait]
impl CloudProvider for InMemoryCloud {
    async fn get_pool(&self, pool: &PoolSelector) -> Result<PoolInfo, Error> {
        let st = self.read("get_pool")?;
        let found = match pool {
            PoolSelector::NodePool { name } => st
                .pools
                .values()
                .find(|(tag, _)| tag.as_deref() == Some(name.to_ascii_lowercase().as_str())),
            PoolSelector::Vmss {
                resource_group,
                name,
                ..
            } => st.pools.get(&vmss_key(resource_group, name)),
        };
        found
            .map(|(_, info)| info.clone())
            .ok_or_else(|| not_found("get_pool", format!("gateway pool {pool:?}")))
    }

    async fn put_vmss_model(
        &self,
        resource_group: &str,
        vmss: &str,
        nics: &[Nic],
        etag: Option<&str>,
    ) -> Result<(), Error> {
        const OP: &str = "put_vmss_model";
        self.write(OP, |st| {
            let stored = match st.pool_mut(resource_group, vmss).map(|p| &p.kind) {
                Some(PoolKind::Vmss { etag, .. }) => etag.clone(),
                _ => return Err(not_found(OP, format!("VMSS {resource_group}/{vmss}"))),
            };
            check_etag(OP, "the VMSS", stored.as_ref(), etag)?;
            rules::references(st, OP, nics)?;
            let new = st.etag();
            if let Some(PoolKind::Vmss { model, etag, .. }) =
                st.pool_mut(resource_group, vmss).map(|p| &mut p.kind)
            {
                *model = nics
                    .iter()
                    .map(|n| Nic {
                        etag: None,
                        ..n.clone()
                    })
                    .collect();
                *etag = Some(new);
            }
            Ok(())
        })
    }

    async fn update_vmss_instances(
        &self,
        resource_group: &str,
        vmss: &str,
        updates: &[InstanceUpdate],
    ) -> Result<(), Error> {
        const OP: &str = "update_vmss_instance";
        // One write per instance, as parallel instance PUTs would be; every
        // one is attempted and the first failure is reported.
        let mut first = None;
        for u in updates {
            let out = self.write(OP, |st| {
                let current = match st.pool_mut(resource_group, vmss).map(|p| &p.kind) {
                    Some(PoolKind::Vmss { instances, .. }) => {
                        instances.iter().find(|i| i.id == u.id).cloned()
                    }
                    _ => None,
                }
                .ok_or_else(|| not_found(OP, format!("instance {} of {vmss}", u.id)))?;
                check_etag(OP, "the instance", current.etag.as_ref(), u.etag.as_deref())?;
                rules::references(st, OP, &u.nics)?;
                rules::prefix_capacity(st, OP, &current.nics, &u.nics)?;
                let mut nics = u.nics.clone();
                st.assign_addresses(&mut nics);
                let new = st.etag();
                if let Some(PoolKind::Vmss { instances, .. }) =
                    st.pool_mut(resource_group, vmss).map(|p| &mut p.kind)
                    && let Some(inst) = instances.iter_mut().find(|i| i.id == u.id)
                {
                    inst.nics = nics;
                    inst.failed = false;
                    inst.etag = Some(new);
                }
                Ok(())
            });
            if let Err(e) = out {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn put_nic(&self, nic: &Nic) -> Result<(), Error> {
        const OP: &str = "put_nic";
        self.write(OP, |st| {
            let current = st
                .pools
                .values()
                .find_map(|(_, info)| match &info.kind {
                    PoolKind::Vm { nics } => nics.iter().find(|n| same_name(&n.name, &nic.name)),
                    PoolKind::Vmss { .. } => None,
                })
                .cloned()
                .ok_or_else(|| not_found(OP, format!("NIC {}", nic.name)))?;
            check_etag(OP, "the NIC", current.etag.as_ref(), nic.etag.as_deref())?;
            rules::references(st, OP, std::slice::from_ref(nic))?;
            rules::public_ips_free(st, OP, nic)?;
            let mut stored = nic.clone();
            st.assign_addresses(std::slice::from_mut(&mut stored));
            stored.etag = Some(st.etag());
            for (_, info) in st.pools.values_mut() {
                if let PoolKind::Vm { nics } = &mut info.kind
                    && let Some(n) = nics.iter_mut().find(|n| same_name(&n.name, &nic.name))
                {
                    *n = stored;
                    break;
                }
            }
            Ok(())
        })
    }

    async fn get_load_balancer(&self) -> Result<Option<LoadBalancer>, Error> {
        let st = self.read("get_load_balancer")?;
        Ok(st.lb.clone().map(|mut lb| {
            lb.backends_in_use = rules::backends_in_use(&st, &lb);
            lb
        }))
    }

    async fn put_load_balancer(&self, lb: &LoadBalancer) -> Result<LoadBalancer, Error> {
        const OP: &str = "put_load_balancer";
        self.write(OP, |st| {
            match (&st.lb, &lb.etag) {
                (Some(_), None) => {
                    return Err(refused(
                        OP,
                        FailureKind::Conflict,
                        Refused::PreconditionFailed(
                            "the load balancer exists but the write expected to create it".into(),
                        ),
                    ));
                }
                (Some(stored), Some(_)) => {
                    check_etag(
                        OP,
                        "the load balancer",
                        stored.etag.as_ref(),
                        lb.etag.as_deref(),
                    )?;
                }
                (None, Some(_)) => {
                    return Err(not_found(OP, "the load balancer".into()));
                }
                (None, None) => {}
            }
            rules::lb_consistent(OP, lb)?;
            rules::lb_removals_free(st, OP, lb)?;
            let mut stored = lb.clone();
            stored.backends_in_use.clear();
            for f in &mut stored.frontends {
                if f.private_ip.is_none() {
                    f.private_ip = Some(st.alloc_private());
                }
            }
            stored.etag = Some(st.etag());
            st.lb = Some(stored.clone());
            stored.backends_in_use = rules::backends_in_use(st, &stored);
            Ok(stored)
        })
    }

    async fn delete_load_balancer(&self, etag: Option<&str>) -> Result<(), Error> {
        const OP: &str = "delete_load_balancer";
        self.write(OP, |st| {
            let Some(lb) = &st.lb else {
                return Ok(());
            };
            check_etag(OP, "the load balancer", lb.etag.as_ref(), etag)?;
            if let Some(b) = rules::backends_in_use(st, lb).into_iter().next() {
                return Err(refused(
                    OP,
                    FailureKind::Conflict,
                    Refused::InUse(format!(
                        "backend pool {b} of the load balancer is referenced"
                    )),
                ));
            }
            st.lb = None;
            Ok(())
        })
    }

    async fn get_public_ip_prefix(
        &self,
        prefix: &PrefixRef,
    ) -> Result<Option<PublicIpPrefix>, Error> {
        let id = match prefix {
            PrefixRef::Managed(name) => self.prefix_id(name),
            PrefixRef::Byo(id) => id.to_string(),
        };
        Ok(self
            .read("get_public_ip_prefix")?
            .prefixes
            .get(&id.to_ascii_lowercase())
            .cloned())
    }

    async fn create_public_ip_prefix(&self, name: &str, len: u8) -> Result<PublicIpPrefix, Error> {
        const OP: &str = "create_public_ip_prefix";
        let id = self.prefix_id(name);
        self.write(OP, |st| {
            if let Some(existing) = st.prefixes.get(&id.to_ascii_lowercase()) {
                if existing.len != len {
                    return Err(refused(
                        OP,
                        FailureKind::Permanent,
                        Refused::Immutable(format!(
                            "prefix {name} is /{}; its length cannot change",
                            existing.len
                        )),
                    ));
                }
                return Ok(existing.clone());
            }
            let prefix = PublicIpPrefix {
                id: id.clone(),
                len,
                prefix: Some(st.alloc_prefix(len)),
            };
            st.prefixes.insert(id.to_ascii_lowercase(), prefix.clone());
            Ok(prefix)
        })
    }

    async fn list_public_ip_prefixes(&self) -> Result<Vec<PublicIpPrefix>, Error> {
        let marker = format!(
            "/resourcegroups/{}/",
            self.resource_group.to_ascii_lowercase()
        );
        Ok(self
            .read("list_public_ip_prefixes")?
            .prefixes
            .iter()
            .filter(|(id, _)| id.contains(&marker))
            .map(|(_, p)| p.clone())
            .collect())
    }

    async fn delete_public_ip_prefix(&self, name: &str) -> Result<(), Error> {
        const OP: &str = "delete_public_ip_prefix";
        let id = self.prefix_id(name);
        self.write(OP, |st| {
            if !st.prefixes.contains_key(&id.to_ascii_lowercase()) {
                return Ok(());
            }
            if let Some(user) = rules::prefix_users(st, &id).into_iter().next() {
                return Err(refused(
                    OP,
                    FailureKind::Conflict,
                    Refused::InUse(format!("prefix {name} is used by {user}")),
                ));
            }
            st.prefixes.remove(&id.to_ascii_lowercase());
            Ok(())
        })
    }

    async fn list_public_ips(&self) -> Result<Vec<PublicIp>, Error> {
        let st = self.read("list_public_ips")?;
        Ok(st
            .public_ips
            .values()
            .map(|ip| PublicIp {
                name: ip.name.clone(),
                id: ip.id.clone(),
                prefix_id: Some(ip.prefix_id.clone()),
                attached_to: rules::attached_to(&st, &ip.id),
            })
            .collect())
    }

    async fn ensure_public_ip(&self, name: &str, prefix_id: &str) -> Result<String, Error> {
        const OP: &str = "ensure_public_ip";
        if let Some(ip) = self
            .read("get_public_ip")?
            .public_ips
            .get(&name.to_ascii_lowercase())
        {
            return Ok(ip.id.clone());
        }
        let id = self.public_ip_id(name);
        self.write(OP, |st| {
            rules::prefix_has_room(st, OP, prefix_id, 1)?;
            st.public_ips.insert(
                name.to_ascii_lowercase(),
                StoredPublicIp {
                    name: name.into(),
                    id: id.clone(),
                    prefix_id: prefix_id.into(),
                },
            );
            Ok(id.clone())
        })
    }

    async fn delete_public_ip(&self, name: &str) -> Result<(), Error> {
        const OP: &str = "delete_public_ip";
        self.write(OP, |st| {
            let Some(ip) = st.public_ips.get(&name.to_ascii_lowercase()) else {
                return Ok(());
            };
            if let Some(owner) = rules::attached_to(st, &ip.id) {
                return Err(refused(
                    OP,
                    FailureKind::Conflict,
                    Refused::InUse(format!("public IP {name} is attached to {owner}")),
                ));
            }
            st.public_ips.remove(&name.to_ascii_lowercase());
            Ok(())
        })
    }
}
