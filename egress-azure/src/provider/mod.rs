//! The ARM implementation of core's [`CloudProvider`].
//!
//! Reads keep the raw bodies they got (with their `ETag`s) so a following write
//! merges core's plan into exactly what was read: nothing Azure returned is
//! dropped, and a write whose `ETag` no longer matches what was read is either
//! refused locally ([`Error::Stale`]) or by Azure (412), both core's
//! `Conflict`.

mod convert;
mod instances;

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use egress_core::lb::LoadBalancer as CoreLb;
use egress_core::model::PoolSelector;
use egress_core::names::{TAG_GATEWAY_NIC, TAG_POOL_NAME, TAG_PREFIX_SIZE};
use egress_core::traits::{
    CloudProvider, InstanceUpdate, PoolInfo, PoolKind, PrefixRef, PublicIp as CorePublicIp,
    PublicIpPrefix as CorePrefix,
};
use egress_core::vmss::{Instance, Nic};

use self::convert::{LbIds, parse_ip};
use crate::Error;
use crate::client::{ArmClient, Fetched};
use crate::config::CloudConfig;
use crate::models::{
    LoadBalancer, LoadBalancerProperties, NetworkInterface, NetworkProfile, PublicIp,
    PublicIpPrefix, PublicIpPrefixProperties, PublicIpProperties, Sku, SubResource, Tags, Vmss,
    VmssVm,
};
use crate::pool_id::vm_pool_uid;

/// Where the adapter's objects live.
#[derive(Clone, Debug)]
pub struct Placement {
    /// Region of created resources.
    pub location: String,
    /// Resource group of gateway pools, managed prefixes and public IPs.
    pub resource_group: String,
    /// Resource group of the internal load balancer.
    pub lb_resource_group: String,
    /// Name of the internal load balancer.
    pub lb_name: String,
}

impl Placement {
    /// From the cloud configuration.
    pub fn from_config(config: &CloudConfig) -> Self {
        Self {
            location: config.location.clone(),
            resource_group: config.resource_group.clone(),
            lb_resource_group: config.load_balancer_resource_group.clone(),
            lb_name: config.load_balancer_name.clone(),
        }
    }
}

type Raw<T> = HashMap<String, Fetched<T>>;

/// Raw bodies last read or written, by lower-cased key.
#[derive(Debug, Default)]
struct Cache {
    vmss: Raw<Vmss>,
    instances: Raw<VmssVm>,
    nics: Raw<NetworkInterface>,
    lb: Option<Fetched<LoadBalancer>>,
}

fn key(parts: &[&str]) -> String {
    parts.join("/").to_ascii_lowercase()
}

fn tag<'a>(tags: Option<&'a Tags>, name: &str) -> Option<&'a str> {
    tags?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Azure Resource Manager as core's [`CloudProvider`].
#[derive(Debug)]
pub struct ArmCloud {
    client: ArmClient,
    place: Placement,
    ids: LbIds,
    cache: Mutex<Cache>,
}

fn core_err(op: &'static str) -> impl FnOnce(Error) -> egress_core::Error {
    move |e| e.into_core(op)
}

impl ArmCloud {
    /// The provider over `client`, placing objects as `place` says.
    pub fn new(client: ArmClient, place: Placement) -> Self {
        let ids = LbIds {
            lb_id: format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/loadBalancers/{}",
                client.subscription(),
                place.lb_resource_group,
                place.lb_name
            ),
        };
        Self {
            client,
            place,
            ids,
            cache: Mutex::new(Cache::default()),
        }
    }

    /// The ARM client (and through it, the metrics).
    pub fn client(&self) -> &ArmClient {
        &self.client
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The raw body core planned from: the cached one if its `ETag` is the
    /// one core holds, else a fresh read, which must still carry that `ETag`.
    async fn base<T: Clone, F, Fut>(
        &self,
        cached: Option<Fetched<T>>,
        etag: Option<&str>,
        resource: &str,
        read: F,
    ) -> Result<Fetched<T>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<Fetched<T>>, Error>>,
    {
        if let Some(c) = cached.filter(|c| etag.is_none() || c.etag.as_deref() == etag) {
            return Ok(c);
        }
        let fresh = read().await?.ok_or_else(|| Error::Unexpected {
            resource: resource.to_string(),
            problem: "does not exist".into(),
        })?;
        if let Some(expected) = etag
            && fresh.etag.as_deref() != Some(expected)
        {
            return Err(Error::Stale {
                resource: resource.to_string(),
                expected: expected.to_string(),
                found: fresh.etag.unwrap_or_default(),
            });
        }
        Ok(fresh)
    }

    async fn vmss_pool(&self, rg: &str, vmss: Fetched<Vmss>) -> Result<PoolInfo, Error> {
        let name = vmss.value.name.clone().unwrap_or_default();
        let uid = vmss
            .value
            .properties
            .as_ref()
            .and_then(|p| p.unique_id.clone())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::Unexpected {
                resource: name.clone(),
                problem: "gateway node pool does not have a uniqueId".into(),
            })?;
        let model_raw = vmss.value.nic_configs().ok_or_else(|| Error::Unexpected {
            resource: name.clone(),
            problem: "scale set has no network profile".into(),
        })?;
        let model = convert::vmss_nics_to_core(model_raw, &self.ids);
        let prefix_len_tag =
            tag(vmss.value.tags.as_ref(), TAG_PREFIX_SIZE).and_then(|v| v.trim().parse().ok());
        let (vms, nics) = tokio::try_join!(
            self.client.list_vmss_vms(rg, &name),
            self.client.list_vmss_nics(rg, &name)
        )?;
        let mut instances = Vec::with_capacity(vms.len());
        let mut cache = self.cache();
        for vm in vms {
            let id = vm.instance_id.clone().unwrap_or_default();
            let props = vm.properties.as_ref();
            let mut inst_nics = vm
                .nic_configs()
                .map(|n| convert::vmss_nics_to_core(n, &self.ids))
                .unwrap_or_default();
            fill_addresses(&mut inst_nics, &id, &nics);
            instances.push(Instance {
                id: id.clone(),
                computer_name: props
                    .and_then(|p| p.os_profile.as_ref())
                    .and_then(|o| o.computer_name.clone())
                    .unwrap_or_default(),
                failed: props
                    .and_then(|p| p.provisioning_state.as_deref())
                    .is_some_and(|s| s.eq_ignore_ascii_case("Failed")),
                etag: vm.etag.clone(),
                nics: inst_nics,
            });
            cache.instances.insert(
                key(&[rg, &name, &id]),
                Fetched {
                    etag: vm.etag.clone(),
                    value: vm,
                },
            );
        }
        let etag = vmss.etag.clone();
        cache.vmss.insert(key(&[rg, &name]), vmss);
        Ok(PoolInfo {
            uid,
            prefix_len_tag,
            kind: PoolKind::Vmss {
                resource_group: rg.to_string(),
                name,
                model,
                etag,
                instances,
            },
        })
    }

    async fn get_pool_inner(&self, pool: &PoolSelector) -> Result<PoolInfo, Error> {
        match pool {
            PoolSelector::Vmss {
                resource_group,
                name,
                ..
            } => {
                let vmss = self
                    .client
                    .get_vmss(resource_group, name)
                    .await?
                    .ok_or_else(|| Error::PoolNotFound(format!("{resource_group}/{name}")))?;
                self.vmss_pool(resource_group, vmss).await
            }
            PoolSelector::NodePool { name } => {
                let rg = &self.place.resource_group;
                let found = self.client.list_vmss(rg).await?.into_iter().find(|v| {
                    tag(v.tags.as_ref(), TAG_POOL_NAME)
                        .is_some_and(|t| t.eq_ignore_ascii_case(name))
                });
                if let Some(vmss) = found {
                    let etag = vmss.etag.clone();
                    return self.vmss_pool(rg, Fetched { value: vmss, etag }).await;
                }
                self.vm_pool(name).await
            }
        }
    }

    async fn vm_pool(&self, pool: &str) -> Result<PoolInfo, Error> {
        let rg = &self.place.resource_group;
        let in_pool = |tags: Option<&Tags>| {
            tag(tags, TAG_POOL_NAME).is_some_and(|t| t.eq_ignore_ascii_case(pool))
        };
        let vms = self.client.list_vms(rg).await?;
        let vm = vms
            .iter()
            .find(|v| in_pool(v.tags.as_ref()))
            .ok_or_else(|| Error::PoolNotFound(pool.to_string()))?;
        let prefix_len_tag =
            tag(vm.tags.as_ref(), TAG_PREFIX_SIZE).and_then(|v| v.trim().parse().ok());
        let raw: Vec<NetworkInterface> = self
            .client
            .list_nics(rg)
            .await?
            .into_iter()
            .filter(|n| tag(n.tags.as_ref(), TAG_GATEWAY_NIC).is_some() && in_pool(n.tags.as_ref()))
            .collect();
        let nics: Vec<Nic> = raw
            .iter()
            .map(|n| convert::nic_to_core(n, None, &self.ids))
            .collect();
        let mut cache = self.cache();
        for n in raw {
            let name = n.name.clone().unwrap_or_default();
            cache.nics.insert(
                key(&[rg, &name]),
                Fetched {
                    etag: n.etag.clone(),
                    value: n,
                },
            );
        }
        Ok(PoolInfo {
            uid: vm_pool_uid(pool),
            prefix_len_tag,
            kind: PoolKind::Vm { nics },
        })
    }

    async fn put_vmss_model_inner(
        &self,
        rg: &str,
        vmss: &str,
        nics: &[Nic],
        etag: Option<&str>,
    ) -> Result<(), Error> {
        let cached = self.cache().vmss.get(&key(&[rg, vmss])).cloned();
        let base = self
            .base(cached, etag, vmss, || self.client.get_vmss(rg, vmss))
            .await?;
        let raw = base.value.nic_configs().cloned().unwrap_or_default();
        let network = NetworkProfile {
            network_interface_configurations: Some(convert::merge_vmss_nics(&raw, nics, &self.ids)),
            ..NetworkProfile::default()
        };
        let if_match = etag.or(base.etag.as_deref());
        let written = self
            .client
            .patch_vmss_network(rg, vmss, &network, if_match)
            .await?;
        self.cache().vmss.insert(key(&[rg, vmss]), written);
        Ok(())
    }

    async fn put_nic_inner(&self, nic: &Nic) -> Result<(), Error> {
        let rg = self.place.resource_group.clone();
        let cached = self.cache().nics.get(&key(&[&rg, &nic.name])).cloned();
        let base = self
            .base(cached, nic.etag.as_deref(), &nic.name, || {
                self.client.get_nic(&rg, &nic.name)
            })
            .await?;
        let body = convert::merge_nic(&base.value, nic, &self.ids);
        let if_match = nic.etag.as_deref().or(base.etag.as_deref());
        let written = self.client.put_nic(&rg, &nic.name, &body, if_match).await?;
        self.cache().nics.insert(key(&[&rg, &nic.name]), written);
        Ok(())
    }

    async fn get_lb_inner(&self) -> Result<Option<CoreLb>, Error> {
        let got = self
            .client
            .get_lb(&self.place.lb_resource_group, &self.place.lb_name)
            .await?;
        let out = got
            .as_ref()
            .map(|f| convert::lb_to_core(&f.value, f.etag.clone()));
        self.cache().lb = got;
        Ok(out)
    }

    async fn put_lb_inner(&self, lb: &CoreLb) -> Result<CoreLb, Error> {
        let (rg, name) = (&self.place.lb_resource_group, &self.place.lb_name);
        let base = match lb.etag.as_deref() {
            Some(etag) => {
                let cached = self.cache().lb.clone();
                self.base(cached, Some(etag), name, || self.client.get_lb(rg, name))
                    .await?
                    .value
            }
            None => LoadBalancer {
                location: Some(self.place.location.clone()),
                sku: Some(Sku {
                    name: Some("Standard".into()),
                    tier: Some("Regional".into()),
                    ..Sku::default()
                }),
                properties: Some(LoadBalancerProperties::default()),
                ..LoadBalancer::default()
            },
        };
        let body = convert::merge_lb(&base, lb, &self.ids);
        let written = match lb.etag.as_deref() {
            Some(etag) => self.client.put_lb(rg, name, &body, Some(etag)).await?,
            None => self.client.create_lb(rg, name, &body).await?,
        };
        let out = convert::lb_to_core(&written.value, written.etag.clone());
        self.cache().lb = Some(written);
        Ok(out)
    }

    fn prefix_to_core(p: &PublicIpPrefix, resource: &str) -> Result<CorePrefix, Error> {
        let props = p.properties.as_ref();
        Ok(CorePrefix {
            id: p.id.clone().unwrap_or_default(),
            len: props
                .and_then(|p| p.prefix_length)
                .ok_or_else(|| Error::Unexpected {
                    resource: resource.to_string(),
                    problem: "public IP prefix has no prefixLength".into(),
                })?,
            prefix: props
                .and_then(|p| p.ip_prefix.as_deref())
                .and_then(|s| s.parse().ok()),
        })
    }

    async fn ensure_public_ip_inner(&self, name: &str, prefix_id: &str) -> Result<String, Error> {
        let rg = &self.place.resource_group;
        if let Some(found) = self.client.get_public_ip(rg, name).await? {
            let from = found
                .value
                .properties
                .as_ref()
                .and_then(|p| p.public_ip_prefix.as_ref())
                .map(SubResource::id_str)
                .unwrap_or_default();
            if from.eq_ignore_ascii_case(prefix_id) {
                return Ok(found.value.id.unwrap_or_default());
            }
            return Err(Error::Unexpected {
                resource: name.to_string(),
                problem: format!("public IP exists but comes from {from:?}, not {prefix_id}"),
            });
        }
        let body = PublicIp {
            location: Some(self.place.location.clone()),
            sku: Some(Sku {
                name: Some("Standard".into()),
                tier: Some("Regional".into()),
                ..Sku::default()
            }),
            properties: Some(PublicIpProperties {
                public_ip_address_version: Some("IPv4".into()),
                public_ip_allocation_method: Some("Static".into()),
                public_ip_prefix: Some(SubResource::to(prefix_id)),
                ..PublicIpProperties::default()
            }),
            ..PublicIp::default()
        };
        let written = self.client.put_public_ip(rg, name, &body, None).await?;
        Ok(written.value.id.unwrap_or_default())
    }
}

/// Fills instance ipConfigs' private addresses from the scale set's NIC list
/// (`.../virtualMachines/{i}/networkInterfaces/{nicConfig}`).
fn fill_addresses(nics: &mut [Nic], instance: &str, listed: &[NetworkInterface]) {
    let marker = format!(
        "/virtualmachines/{}/networkinterfaces/",
        instance.to_ascii_lowercase()
    );
    for nic in nics {
        let Some(found) = listed.iter().find(|n| {
            let id = n.id.as_deref().unwrap_or_default().to_ascii_lowercase();
            id.contains(&marker)
                && id.rsplit('/').next() == Some(nic.name.to_ascii_lowercase().as_str())
        }) else {
            continue;
        };
        for c in &mut nic.ip_configs {
            c.private_ip = found
                .ip_configs()
                .iter()
                .find(|r| r.name.eq_ignore_ascii_case(&c.name))
                .and_then(|r| parse_ip(r.properties.as_ref()?.private_ip_address.as_deref()));
        }
    }
}

#[async_trait]
impl CloudProvider for ArmCloud {
    async fn get_pool(&self, pool: &PoolSelector) -> Result<PoolInfo, egress_core::Error> {
        self.get_pool_inner(pool)
            .await
            .map_err(core_err("get_pool"))
    }

    async fn put_vmss_model(
        &self,
        resource_group: &str,
        vmss: &str,
        nics: &[Nic],
        etag: Option<&str>,
    ) -> Result<(), egress_core::Error> {
        self.put_vmss_model_inner(resource_group, vmss, nics, etag)
            .await
            .map_err(core_err("put_vmss_model"))
    }

    async fn update_vmss_instances(
        &self,
        resource_group: &str,
        vmss: &str,
        updates: &[InstanceUpdate],
    ) -> Result<(), egress_core::Error> {
        self.update_instances_inner(resource_group, vmss, updates)
            .await
            .map_err(core_err("update_vmss_instances"))
    }

    async fn put_nic(&self, nic: &Nic) -> Result<(), egress_core::Error> {
        self.put_nic_inner(nic).await.map_err(core_err("put_nic"))
    }

    async fn get_load_balancer(&self) -> Result<Option<CoreLb>, egress_core::Error> {
        self.get_lb_inner()
            .await
            .map_err(core_err("get_load_balancer"))
    }

    async fn put_load_balancer(&self, lb: &CoreLb) -> Result<CoreLb, egress_core::Error> {
        self.put_lb_inner(lb)
            .await
            .map_err(core_err("put_load_balancer"))
    }

    async fn delete_load_balancer(&self, etag: Option<&str>) -> Result<(), egress_core::Error> {
        self.client
            .delete_lb(&self.place.lb_resource_group, &self.place.lb_name, etag)
            .await
            .map_err(core_err("delete_load_balancer"))?;
        self.cache().lb = None;
        Ok(())
    }

    async fn get_public_ip_prefix(
        &self,
        prefix: &PrefixRef,
    ) -> Result<Option<CorePrefix>, egress_core::Error> {
        let got = match prefix {
            PrefixRef::Managed(name) => {
                self.client
                    .get_prefix(&self.place.resource_group, name)
                    .await
            }
            PrefixRef::Byo(id) => {
                self.client
                    .get_prefix_in(&id.subscription, &id.resource_group, &id.name)
                    .await
            }
        }
        .map_err(core_err("get_public_ip_prefix"))?;
        got.map(|f| Self::prefix_to_core(&f.value, &f.value.id.clone().unwrap_or_default()))
            .transpose()
            .map_err(core_err("get_public_ip_prefix"))
    }

    async fn create_public_ip_prefix(
        &self,
        name: &str,
        len: u8,
    ) -> Result<CorePrefix, egress_core::Error> {
        let body = PublicIpPrefix {
            location: Some(self.place.location.clone()),
            sku: Some(Sku {
                name: Some("Standard".into()),
                tier: Some("Regional".into()),
                ..Sku::default()
            }),
            properties: Some(PublicIpPrefixProperties {
                prefix_length: Some(len),
                public_ip_address_version: Some("IPv4".into()),
                ..PublicIpPrefixProperties::default()
            }),
            ..PublicIpPrefix::default()
        };
        let written = self
            .client
            .put_prefix(&self.place.resource_group, name, &body, None)
            .await
            .map_err(core_err("create_public_ip_prefix"))?;
        Self::prefix_to_core(&written.value, name).map_err(core_err("create_public_ip_prefix"))
    }

    async fn list_public_ip_prefixes(&self) -> Result<Vec<CorePrefix>, egress_core::Error> {
        self.client
            .list_prefixes(&self.place.resource_group)
            .await
            .map_err(core_err("list_public_ip_prefixes"))?
            .iter()
            .map(|p| {
                let id = p.id.clone().unwrap_or_default();
                Self::prefix_to_core(p, &id)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(core_err("list_public_ip_prefixes"))
    }

    async fn delete_public_ip_prefix(&self, name: &str) -> Result<(), egress_core::Error> {
        self.client
            .delete_prefix(&self.place.resource_group, name)
            .await
            .map(|_| ())
            .map_err(core_err("delete_public_ip_prefix"))
    }

    async fn list_public_ips(&self) -> Result<Vec<CorePublicIp>, egress_core::Error> {
        let ips = self
            .client
            .list_public_ips(&self.place.resource_group)
            .await
            .map_err(core_err("list_public_ips"))?;
        Ok(ips
            .into_iter()
            .map(|ip| {
                let p = ip.properties.as_ref();
                CorePublicIp {
                    name: ip.name.clone().unwrap_or_default(),
                    id: ip.id.clone().unwrap_or_default(),
                    prefix_id: p
                        .and_then(|p| p.public_ip_prefix.as_ref())
                        .and_then(|s| s.id.clone()),
                    attached_to: p
                        .and_then(|p| p.ip_configuration.as_ref())
                        .and_then(|s| s.id.clone()),
                }
            })
            .collect())
    }

    async fn ensure_public_ip(
        &self,
        name: &str,
        prefix_id: &str,
    ) -> Result<String, egress_core::Error> {
        self.ensure_public_ip_inner(name, prefix_id)
            .await
            .map_err(core_err("ensure_public_ip"))
    }

    async fn delete_public_ip(&self, name: &str) -> Result<(), egress_core::Error> {
        self.client
            .delete_public_ip(&self.place.resource_group, name)
            .await
            .map(|_| ())
            .map_err(core_err("delete_public_ip"))
    }
}
