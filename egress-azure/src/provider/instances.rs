//! Instance writes: one `manualupgrade` call when it is safe and equivalent,
//! otherwise one conditional PUT per instance, all in parallel.
//!
//! An upgrade costs one write and one operation for the whole pool, where
//! PUTs cost one write per instance (in parallel, so about the same time).
//! It is used only when it is equivalent and harmless: every instance must
//! end up with exactly the model's NIC configurations, every instance ran
//! the latest model when read (so the model differs from it only by the
//! network change core planned), and the model's `ETag` is still the one this
//! adapter wrote (so nobody, AKS included, changed the model in between: an
//! upgrade would roll their change out too, maybe reimaging the nodes).

use egress_core::traits::InstanceUpdate;
use egress_core::vmss::Nic;
use futures::future::join_all;

use super::{ArmCloud, convert, key};
use crate::Error;
use crate::models::NetworkProfile;

/// NIC configurations as compared for "the same as the model": names and
/// references without case, observed addresses and `ETag`s left out.
fn normalised(nics: &[Nic]) -> Vec<Nic> {
    let mut out = nics.to_vec();
    for n in &mut out {
        n.name.make_ascii_lowercase();
        n.etag = None;
        for c in &mut n.ip_configs {
            c.name.make_ascii_lowercase();
            c.private_ip = None;
            for s in [&mut c.subnet_id, &mut c.public_ip_prefix, &mut c.public_ip]
                .into_iter()
                .flatten()
            {
                s.make_ascii_lowercase();
            }
            for b in &mut c.backend_pools {
                b.make_ascii_lowercase();
            }
            c.backend_pools.sort();
        }
    }
    out
}

impl ArmCloud {
    /// Whether one upgrade call is equivalent to these updates, and the
    /// model's `ETag` it must still carry.
    fn upgrade_applies(&self, rg: &str, vmss: &str, updates: &[InstanceUpdate]) -> Option<String> {
        let cache = self.cache();
        let model = cache.vmss.get(&key(&[rg, vmss]))?;
        let model_nics = normalised(&convert::vmss_nics_to_core(
            model.value.nic_configs()?,
            &self.ids,
        ));
        let all_equal = updates.iter().all(|u| normalised(&u.nics) == model_nics);
        let all_current = updates.iter().all(|u| {
            cache
                .instances
                .get(&key(&[rg, vmss, &u.id]))
                .is_some_and(|i| {
                    i.etag == u.etag
                        && i.value
                            .properties
                            .as_ref()
                            .and_then(|p| p.latest_model_applied)
                            == Some(true)
                })
        });
        (all_equal && all_current)
            .then(|| model.etag.clone())
            .flatten()
    }

    pub(super) async fn update_instances_inner(
        &self,
        rg: &str,
        vmss: &str,
        updates: &[InstanceUpdate],
    ) -> Result<(), Error> {
        if updates.is_empty() {
            return Ok(());
        }
        if let Some(model_etag) = self.upgrade_applies(rg, vmss, updates) {
            let now = self.client.get_vmss(rg, vmss).await?;
            if now.as_ref().and_then(|n| n.etag.as_deref()) == Some(model_etag.as_str()) {
                let ids: Vec<String> = updates.iter().map(|u| u.id.clone()).collect();
                let result = self.client.update_instances(rg, vmss, &ids).await;
                let mut cache = self.cache();
                for u in updates {
                    cache.instances.remove(&key(&[rg, vmss, &u.id]));
                }
                return result;
            }
            tracing::info!(
                vmss,
                "scale-set model changed since it was written; updating instances one by one"
            );
        }
        let results = join_all(updates.iter().map(|u| self.put_instance(rg, vmss, u))).await;
        // Report the first failure; every write was attempted.
        results
            .into_iter()
            .collect::<Result<Vec<()>, Error>>()
            .map(|_| ())
    }

    async fn put_instance(&self, rg: &str, vmss: &str, u: &InstanceUpdate) -> Result<(), Error> {
        let k = key(&[rg, vmss, &u.id]);
        let cached = self.cache().instances.get(&k).cloned();
        let resource = format!("{vmss} instance {}", u.id);
        let base = self
            .base(cached, u.etag.as_deref(), &resource, || {
                self.client.get_vmss_vm(rg, vmss, &u.id)
            })
            .await?;
        let raw = base.value.nic_configs().cloned().unwrap_or_default();
        let network = NetworkProfile {
            network_interface_configurations: Some(convert::merge_vmss_nics(
                &raw, &u.nics, &self.ids,
            )),
            ..NetworkProfile::default()
        };
        let location = base
            .value
            .extra
            .get("location")
            .and_then(|l| l.as_str())
            .map(str::to_string);
        let if_match = u.etag.as_deref().or(base.etag.as_deref());
        let written = self
            .client
            .put_vmss_vm_network(rg, vmss, &u.id, location.as_deref(), &network, if_match)
            .await?;
        self.cache().instances.insert(k, written);
        Ok(())
    }
}
