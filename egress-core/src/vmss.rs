//! Secondary ipConfig planning on gateway VMSS models, their instances and the
//! pre-created NICs of VM pools.
//!
//! Every configuration that targets a pool gets an ipConfig named
//! `egressgateway-<uid>` on the primary NIC of each node, in the subnet of the
//! node's primary ipConfig, with a public IP configuration from the prefix in
//! public mode. All pending configurations of a pool are planned at once, so N
//! of them cost one write per Azure resource (the VMSS model, each instance, or
//! each NIC) instead of N. Managed ipConfigs nobody asks for are removed. As
//! upstream does, the primary ipConfig joins the pool's ILB backend pool while
//! any managed ipConfig exists and leaves it when none remains.

use std::net::IpAddr;

use crate::model::GatewayNode;
use crate::names::{is_managed_name, same_name as eq};

/// One IP configuration of a NIC.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IpConfig {
    /// Name.
    pub name: String,
    /// Whether this is the NIC's primary ipConfig.
    pub primary: bool,
    /// IPv6 rather than IPv4.
    pub ipv6: bool,
    /// Subnet (ARM ID).
    pub subnet_id: Option<String>,
    /// Public IP prefix the ipConfig's public IP comes from (ARM ID); VMSS only.
    pub public_ip_prefix: Option<String>,
    /// A standalone public IP attached to it (ARM ID); VM-pool NICs only.
    pub public_ip: Option<String>,
    /// Backend pools it belongs to (ARM IDs or names, compared case-insensitively).
    pub backend_pools: Vec<String>,
    /// The private address Azure assigned (observed only, never planned).
    pub private_ip: Option<IpAddr>,
}

/// One NIC (or NIC configuration of a VMSS model or instance).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Nic {
    /// Name.
    pub name: String,
    /// Whether this is the primary NIC.
    pub primary: bool,
    /// Its ipConfigs.
    pub ip_configs: Vec<IpConfig>,
    /// The `ETag` of a standalone NIC (VM pools) when read: its write sends it
    /// as `If-Match`. `None` for NIC configurations inside a VMSS.
    pub etag: Option<String>,
}

/// A configuration that needs a secondary IP on every node of the pool.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IpConfigDemand {
    /// `egressgateway-<uid>`.
    pub name: String,
    /// Public mode: the prefix the node's public IP comes from (VMSS), or the
    /// public IP to attach (VM pools, one per NIC). `None` in private mode.
    pub public: Option<String>,
    /// Keep the ipConfig exactly as it is where it exists, and add it nowhere:
    /// the configuration is serving, but what it should become is not known
    /// to be safe yet (its prefix could not be read, its new spec is
    /// rejected). `public` is ignored.
    pub hold: bool,
}

impl IpConfigDemand {
    /// An ipConfig that must exist with `public` on every node.
    pub fn want(name: String, public: Option<String>) -> Self {
        Self {
            name,
            public,
            hold: false,
        }
    }

    /// An ipConfig kept as it is where it exists.
    pub fn hold(name: String) -> Self {
        Self {
            name,
            public: None,
            hold: true,
        }
    }
}

/// A VMSS instance as observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instance {
    /// Instance ID.
    pub id: String,
    /// OS computer name (the Kubernetes node name).
    pub computer_name: String,
    /// Provisioning failed; an update is forced to repair it.
    pub failed: bool,
    /// The instance's `ETag` when read.
    pub etag: Option<String>,
    /// Its NIC configurations.
    pub nics: Vec<Nic>,
}

/// Why an ipConfig list could not be planned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NicError {
    /// No NIC is marked primary.
    #[error("{owner} has no primary network interface")]
    NoPrimaryNic {
        /// The VMSS, instance or NIC.
        owner: String,
    },
    /// The primary NIC has no primary ipConfig.
    #[error("{owner}: the primary network interface has no primary IP configuration")]
    NoPrimaryIpConfig {
        /// The VMSS, instance or NIC.
        owner: String,
    },
}

fn eq_opt(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Whether an existing managed ipConfig already matches what is wanted.
fn matches(have: &IpConfig, want: &IpConfig) -> bool {
    !have.primary
        && !have.ipv6
        && eq_opt(have.subnet_id.as_deref(), want.subnet_id.as_deref())
        && eq_opt(
            have.public_ip_prefix.as_deref(),
            want.public_ip_prefix.as_deref(),
        )
        && eq_opt(have.public_ip.as_deref(), want.public_ip.as_deref())
}

/// Which field a demand's public reference fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PublicKind {
    /// VMSS models and instances: a public IP configuration from a prefix.
    Prefix,
    /// VM-pool NICs: a standalone public IP.
    PublicIp,
}

/// Plans the ipConfigs of one NIC list. Returns the new list when it must
/// change, `None` when it is already right.
pub fn plan_nics(
    owner: &str,
    nics: &[Nic],
    demands: &[IpConfigDemand],
    backend_pool: &str,
    kind: PublicKind,
) -> Result<Option<Vec<Nic>>, NicError> {
    let primary_idx = nics
        .iter()
        .position(|n| n.primary)
        .or_else(|| (nics.len() == 1).then_some(0))
        .ok_or_else(|| NicError::NoPrimaryNic {
            owner: owner.to_string(),
        })?;
    let mut out = nics.to_vec();
    let nic = &mut out[primary_idx];
    let subnet = nic
        .ip_configs
        .iter()
        .find(|c| c.primary)
        .or_else(|| (nic.ip_configs.len() == 1).then(|| &nic.ip_configs[0]))
        .ok_or_else(|| NicError::NoPrimaryIpConfig {
            owner: owner.to_string(),
        })?
        .subnet_id
        .clone();

    let mut configs: Vec<IpConfig> = Vec::with_capacity(nic.ip_configs.len() + demands.len());
    // Keep everything that is not ours, and ours that still match a demand.
    for c in &nic.ip_configs {
        if !is_managed_name(&c.name) {
            configs.push(c.clone());
            continue;
        }
        if let Some(d) = demands.iter().find(|d| eq(&d.name, &c.name))
            && (d.hold || matches(c, &desired(d, subnet.as_ref(), kind)))
        {
            configs.push(c.clone());
        }
    }
    for d in demands.iter().filter(|d| !d.hold) {
        if !configs.iter().any(|c| eq(&c.name, &d.name)) {
            configs.push(desired(d, subnet.as_ref(), kind));
        }
    }
    let any_managed = configs.iter().any(|c| is_managed_name(&c.name));
    if let Some(primary) = configs.iter_mut().find(|c| c.primary) {
        let has = primary.backend_pools.iter().any(|b| eq(b, backend_pool));
        if any_managed && !has {
            primary.backend_pools.push(backend_pool.to_string());
        } else if !any_managed && has {
            primary.backend_pools.retain(|b| !eq(b, backend_pool));
        }
    }
    nic.ip_configs = configs;
    Ok((out != nics).then_some(out))
}

fn desired(d: &IpConfigDemand, subnet: Option<&String>, kind: PublicKind) -> IpConfig {
    IpConfig {
        name: d.name.clone(),
        primary: false,
        ipv6: false,
        subnet_id: subnet.cloned(),
        public_ip_prefix: d.public.clone().filter(|_| kind == PublicKind::Prefix),
        public_ip: d.public.clone().filter(|_| kind == PublicKind::PublicIp),
        backend_pools: Vec::new(),
        private_ip: None,
    }
}

/// Writes needed for one VMSS pool.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmssPlan {
    /// The model's new NIC configurations, if the model must change.
    pub model: Option<Vec<Nic>>,
    /// Instances to update, with their new NIC configurations.
    pub instances: Vec<(String, Vec<Nic>)>,
    /// Instances that could not be planned.
    pub errors: Vec<NicError>,
}

impl VmssPlan {
    /// Number of Azure writes the plan makes.
    pub fn writes(&self) -> usize {
        usize::from(self.model.is_some()) + self.instances.len()
    }
}

/// Plans a VMSS pool: its model and every instance, for all `demands` at once.
pub fn plan_vmss(
    vmss_name: &str,
    model: &[Nic],
    instances: &[Instance],
    demands: &[IpConfigDemand],
    backend_pool: &str,
) -> Result<VmssPlan, NicError> {
    let mut plan = VmssPlan {
        model: plan_nics(vmss_name, model, demands, backend_pool, PublicKind::Prefix)?,
        ..VmssPlan::default()
    };
    for inst in instances {
        let owner = format!("{vmss_name} instance {}", inst.id);
        match plan_nics(
            &owner,
            &inst.nics,
            demands,
            backend_pool,
            PublicKind::Prefix,
        ) {
            Ok(Some(nics)) => plan.instances.push((inst.id.clone(), nics)),
            Ok(None) if inst.failed => plan.instances.push((inst.id.clone(), inst.nics.clone())),
            Ok(None) => {}
            Err(e) => plan.errors.push(e),
        }
    }
    Ok(plan)
}

/// The gateway nodes of one configuration as observed on the instances (or
/// NICs, named by the caller): primary IP and the configuration's secondary IP.
/// Nodes where either address is not assigned yet are left out.
pub fn gateway_nodes<'a>(
    owners: impl IntoIterator<Item = (&'a str, &'a [Nic])>,
    config_name: &str,
) -> Vec<GatewayNode> {
    let mut nodes: Vec<GatewayNode> = owners
        .into_iter()
        .filter_map(|(node_name, nics)| {
            let nic = nics.iter().find(|n| n.primary).or_else(|| nics.first())?;
            let primary_ip = nic.ip_configs.iter().find(|c| c.primary)?.private_ip?;
            let secondary_ip = nic
                .ip_configs
                .iter()
                .find(|c| eq(&c.name, config_name))?
                .private_ip?;
            Some(GatewayNode {
                node_name: node_name.to_string(),
                primary_ip,
                secondary_ip,
            })
        })
        .collect();
    nodes.sort();
    nodes
}

#[cfg(test)]
mod tests;
