//! The simulated Azure subscription.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use ipnet::{IpNet, Ipv4Net};

use super::{Faults, lock, not_found};
use crate::lb::LoadBalancer;
use crate::model::PoolSelector;
use crate::names::is_managed_name;
use crate::traits::{
    CloudProvider, InstanceUpdate, PoolInfo, PoolKind, PrefixRef, PublicIp, PublicIpPrefix,
};
use crate::vmss::{Instance, IpConfig, Nic};
use crate::{Error, FailureKind, Layer};

/// The state of the simulated cloud.
#[derive(Debug, Default)]
pub struct CloudState {
    /// Pools by key (`vmss/<rg>/<name>` lower-case).
    pub pools: BTreeMap<String, (Option<String>, PoolInfo)>,
    /// The internal load balancer.
    pub lb: Option<LoadBalancer>,
    /// Public IP prefixes by lower-case ARM ID.
    pub prefixes: BTreeMap<String, PublicIpPrefix>,
    /// Public IPs by name: (ARM ID, prefix ID).
    pub public_ips: BTreeMap<String, (String, String)>,
    /// Writes per operation.
    pub writes: BTreeMap<&'static str, usize>,
    /// Failures to inject.
    pub faults: Faults,
    next_private: u32,
    next_public: u32,
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
    /// length tag, with `instances` instances on one primary NIC each.
    pub fn add_vmss_pool(
        &self,
        rg: &str,
        name: &str,
        pool_name: Option<&str>,
        prefix_tag: Option<u8>,
        instances: usize,
    ) {
        let info = PoolInfo {
            uid: format!("uid-{name}"),
            prefix_len_tag: prefix_tag,
            kind: PoolKind::Vmss {
                resource_group: rg.into(),
                name: name.into(),
                model: vec![self.primary_nic("nic".into(), rg)],
                etag: None,
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
                etag: None,
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

    /// Adds a bring-your-own prefix and returns its ARM ID.
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

    /// Queues failures for an operation: the next calls fail with these kinds.
    pub fn fail_next(&self, op: &'static str, kinds: &[FailureKind]) {
        self.state().faults.queue(op, kinds);
    }

    /// Makes every call of an operation fail until cleared.
    pub fn fail_always(&self, op: &'static str, kind: Option<FailureKind>) {
        let mut st = self.state();
        match kind {
            Some(k) => st.faults.always.insert(op, k),
            None => st.faults.always.remove(op),
        };
    }

    /// Every object left in the cloud that this system manages: ipConfigs,
    /// load-balancer parts, managed prefixes and public IPs.
    pub fn leftovers(&self) -> Vec<String> {
        let st = self.state();
        let mut out = Vec::new();
        for (key, (_, info)) in &st.pools {
            let lists: Vec<(String, &[Nic])> = match &info.kind {
                PoolKind::Vmss {
                    model, instances, ..
                } => std::iter::once((format!("{key} model"), model.as_slice()))
                    .chain(
                        instances
                            .iter()
                            .map(|i| (format!("{key} instance {}", i.id), i.nics.as_slice())),
                    )
                    .collect(),
                PoolKind::Vm { nics } => nics
                    .iter()
                    .map(|n| (format!("nic {}", n.name), std::slice::from_ref(n)))
                    .collect(),
            };
            for (owner, nics) in lists {
                for c in nics.iter().flat_map(|n| &n.ip_configs) {
                    if is_managed_name(&c.name) {
                        out.push(format!("{owner}: ipConfig {}", c.name));
                    }
                    if !c.backend_pools.is_empty() {
                        out.push(format!("{owner}: backend membership of {}", c.name));
                    }
                }
            }
        }
        if let Some(lb) = &st.lb {
            out.push(format!("load balancer with {} rules", lb.rules.len()));
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
                .filter(|p| p.id.contains("/egressgateway-"))
                .map(|p| format!("prefix {}", p.id)),
        );
        out.extend(st.public_ips.keys().map(|n| format!("public IP {n}")));
        out
    }

    fn write(&self, op: &'static str) -> Result<MutexGuard<'_, CloudState>, Error> {
        let mut st = self.state();
        st.faults.check(Layer::Cloud, op)?;
        *st.writes.entry(op).or_default() += 1;
        Ok(st)
    }

    fn read(&self, op: &'static str) -> Result<MutexGuard<'_, CloudState>, Error> {
        let mut st = self.state();
        st.faults.check(Layer::Cloud, op)?;
        Ok(st)
    }

    fn prefix_id(&self, name: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/publicIPPrefixes/{name}",
            self.subscription, self.resource_group
        )
    }
}

impl CloudState {
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
}

fn vmss_key(rg: &str, vmss: &str) -> String {
    format!(
        "vmss/{}/{}",
        rg.to_ascii_lowercase(),
        vmss.to_ascii_lowercase()
    )
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
            .ok_or_else(|| not_found(Layer::Cloud, "get_pool"))
    }

    async fn put_vmss_model(
        &self,
        resource_group: &str,
        vmss: &str,
        nics: &[Nic],
        _etag: Option<&str>,
    ) -> Result<(), Error> {
        let mut st = self.write("put_vmss_model")?;
        match st.pool_mut(resource_group, vmss).map(|p| &mut p.kind) {
            Some(PoolKind::Vmss { model, .. }) => {
                *model = nics.to_vec();
                Ok(())
            }
            _ => Err(not_found(Layer::Cloud, "put_vmss_model")),
        }
    }

    async fn update_vmss_instances(
        &self,
        resource_group: &str,
        vmss: &str,
        updates: &[InstanceUpdate],
    ) -> Result<(), Error> {
        for u in updates {
            let mut st = self.write("update_vmss_instance")?;
            let mut nics = u.nics.clone();
            st.assign_addresses(&mut nics);
            let Some(PoolKind::Vmss { instances, .. }) =
                st.pool_mut(resource_group, vmss).map(|p| &mut p.kind)
            else {
                return Err(not_found(Layer::Cloud, "update_vmss_instance"));
            };
            let inst = instances
                .iter_mut()
                .find(|i| i.id == u.id)
                .ok_or_else(|| not_found(Layer::Cloud, "update_vmss_instance"))?;
            inst.nics = nics;
            inst.failed = false;
        }
        Ok(())
    }

    async fn put_nic(&self, nic: &Nic) -> Result<(), Error> {
        let mut st = self.write("put_nic")?;
        let mut nic = nic.clone();
        st.assign_addresses(std::slice::from_mut(&mut nic));
        for (_, info) in st.pools.values_mut() {
            if let PoolKind::Vm { nics } = &mut info.kind
                && let Some(n) = nics
                    .iter_mut()
                    .find(|n| n.name.eq_ignore_ascii_case(&nic.name))
            {
                *n = nic;
                return Ok(());
            }
        }
        Err(not_found(Layer::Cloud, "put_nic"))
    }

    async fn get_load_balancer(&self) -> Result<Option<LoadBalancer>, Error> {
        Ok(self.read("get_load_balancer")?.lb.clone())
    }

    async fn put_load_balancer(&self, lb: &LoadBalancer) -> Result<LoadBalancer, Error> {
        let mut st = self.write("put_load_balancer")?;
        let mut lb = lb.clone();
        for f in &mut lb.frontends {
            if f.private_ip.is_none() {
                f.private_ip = Some(st.alloc_private());
            }
        }
        st.lb = Some(lb.clone());
        Ok(lb)
    }

    async fn delete_load_balancer(&self, _etag: Option<&str>) -> Result<(), Error> {
        self.write("delete_load_balancer")?.lb = None;
        Ok(())
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
        let id = self.prefix_id(name);
        let mut st = self.write("create_public_ip_prefix")?;
        let prefix = PublicIpPrefix {
            id: id.clone(),
            len,
            prefix: Some(st.alloc_prefix(len)),
        };
        st.prefixes.insert(id.to_ascii_lowercase(), prefix.clone());
        Ok(prefix)
    }

    async fn delete_public_ip_prefix(&self, name: &str) -> Result<(), Error> {
        let id = self.prefix_id(name);
        let mut st = self.write("delete_public_ip_prefix")?;
        st.prefixes.remove(&id.to_ascii_lowercase());
        st.public_ips
            .retain(|_, (_, p)| !p.eq_ignore_ascii_case(&id));
        Ok(())
    }

    async fn list_public_ips(&self) -> Result<Vec<PublicIp>, Error> {
        let st = self.read("list_public_ips")?;
        Ok(st
            .public_ips
            .iter()
            .map(|(name, (id, prefix))| PublicIp {
                name: name.clone(),
                id: id.clone(),
                prefix_id: Some(prefix.clone()),
                attached_to: None,
            })
            .collect())
    }

    async fn ensure_public_ip(&self, name: &str, prefix_id: &str) -> Result<String, Error> {
        if let Some((id, _)) = self.read("ensure_public_ip")?.public_ips.get(name) {
            return Ok(id.clone());
        }
        let id = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/publicIPAddresses/{name}",
            self.subscription, self.resource_group
        );
        self.write("ensure_public_ip")?
            .public_ips
            .insert(name.into(), (id.clone(), prefix_id.into()));
        Ok(id)
    }

    async fn delete_public_ip(&self, name: &str) -> Result<(), Error> {
        self.write("delete_public_ip")?.public_ips.remove(name);
        Ok(())
    }
}
