//! From Kubernetes objects to the gateway-node plan's inputs.

use std::collections::BTreeMap;
use std::net::IpAddr;

use egress_core::model::{GatewayNode, PodEndpoint, SecretRef, ServerProfile};
use egress_core::node::ActiveConfig;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use crate::crd::{self, GatewayVMConfiguration, StaticGatewayConfiguration};

/// Who this gateway node is, from IMDS or flags.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeIdentity {
    /// The VM's computer name (VMSS pools name profiles after it).
    pub computer_name: String,
    /// The `aks-managed-nic-name` tag (VM pools name profiles after the NIC).
    pub nic_name: Option<String>,
    /// The `aks-managed-poolName` tag.
    pub pool_name: Option<String>,
    /// The VMSS the node belongs to.
    pub vmss_name: Option<String>,
    /// The VMSS's resource group.
    pub resource_group: Option<String>,
}

fn same(a: Option<&str>, b: Option<&str>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if !a.is_empty() && a.eq_ignore_ascii_case(b))
}

/// Whether a configuration selects this node: by pool name, or by VMSS name
/// and resource group (both case-insensitive, as Azure names are).
pub fn applies_to(sgc: &StaticGatewayConfiguration, node: &NodeIdentity) -> bool {
    let spec = &sgc.spec;
    match spec.gateway_vmss_profile.as_ref().filter(|p| p.is_set()) {
        Some(p) => {
            same(p.vmss_name.as_deref(), node.vmss_name.as_deref())
                && same(
                    p.vmss_resource_group.as_deref(),
                    node.resource_group.as_deref(),
                )
        }
        None => same(
            spec.gateway_nodepool_name.as_deref(),
            node.pool_name.as_deref(),
        ),
    }
}

/// The gateway endpoint of a configuration, once it is ready: egress prefix,
/// frontend IP, a port, the public key and the key Secret all set.
pub fn server_profile(sgc: &StaticGatewayConfiguration) -> Option<ServerProfile> {
    let status = sgc.status.as_ref()?;
    status
        .egress_ip_prefix
        .as_deref()
        .filter(|s| !s.is_empty())?;
    let p = status.gateway_server_profile.as_ref()?;
    let secret = p.private_key_secret_ref.as_ref()?;
    Some(ServerProfile {
        ip: p.ip.as_deref()?.parse().ok()?,
        port: u16::try_from(p.port?).ok().filter(|p| *p != 0)?,
        public_key: p.public_key.clone().filter(|k| !k.is_empty())?,
        key_secret: SecretRef {
            namespace: secret
                .namespace
                .clone()
                .unwrap_or_else(|| sgc.namespace().unwrap_or_default()),
            name: secret.name.clone().filter(|n| !n.is_empty())?,
        },
    })
}

/// This node's addresses in a `GatewayVMConfiguration`: the profile named after
/// the computer name or the NIC-name tag.
pub fn node_addresses(vm: &GatewayVMConfiguration, node: &NodeIdentity) -> Option<GatewayNode> {
    let profiles = vm.status.as_ref()?.gateway_vm_profiles.as_ref()?;
    profiles.iter().find_map(|p| {
        let name = p.node_name.as_deref()?;
        let ours = name == node.computer_name || node.nic_name.as_deref() == Some(name);
        ours.then(|| {
            Some(GatewayNode {
                node_name: name.to_string(),
                primary_ip: p.primary_ip.as_deref()?.parse().ok()?,
                secondary_ip: p.secondary_ip.as_deref()?.parse().ok()?,
            })
        })?
    })
}

/// A PodEndpoint as the plan takes it. The address may be written as a CIDR
/// (`10.244.0.5/32`, as the node agent does) or bare.
pub fn pod_endpoint(pe: &crd::PodEndpoint) -> Result<PodEndpoint, String> {
    let name = format!("{}/{}", pe.namespace().unwrap_or_default(), pe.name_any());
    let config = pe
        .spec
        .static_gateway_configuration
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("PodEndpoint {name}: spec.staticGatewayConfiguration is empty"))?;
    let ip_text = pe.spec.pod_ip_address.as_deref().unwrap_or_default();
    let ip_part = ip_text.split_once('/').map_or(ip_text, |(ip, _)| ip);
    let pod_ip: IpAddr = ip_part.parse().map_err(|_| {
        format!("PodEndpoint {name}: spec.podIpAddress {ip_text:?} is not an IP address or CIDR")
    })?;
    let public_key = pe
        .spec
        .pod_public_key
        .clone()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| format!("PodEndpoint {name}: spec.podPublicKey is empty"))?;
    Ok(PodEndpoint {
        namespace: pe.namespace().unwrap_or_default(),
        name: pe.name_any(),
        config,
        pod_ip,
        public_key,
    })
}

/// The private key a key Secret holds (its `PrivateKey` entry, the base64
/// WireGuard key as text).
pub fn private_key(secret: &Secret) -> Option<String> {
    let bytes = secret.data.as_ref()?.get("PrivateKey")?;
    String::from_utf8(bytes.0.clone())
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// What the cluster says this node should serve.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Ready configurations that select this node and list its addresses.
    pub configs: Vec<ActiveConfig>,
    /// UIDs of ready configurations that select this node but whose VM
    /// configuration does not (yet, or for a moment) list it.
    pub unplaced: Vec<String>,
    /// Every valid PodEndpoint.
    pub endpoints: Vec<PodEndpoint>,
    /// Private keys by Secret (namespace, name).
    pub keys: BTreeMap<(String, String), String>,
    /// Objects skipped, with the reason.
    pub rejected: Vec<String>,
}

/// Builds the snapshot from the objects a watch holds.
pub fn snapshot<'a>(
    sgcs: impl IntoIterator<Item = &'a StaticGatewayConfiguration>,
    vms: impl IntoIterator<Item = &'a GatewayVMConfiguration>,
    secrets: impl IntoIterator<Item = &'a Secret>,
    pod_endpoints: impl IntoIterator<Item = &'a crd::PodEndpoint>,
    node: &NodeIdentity,
) -> Snapshot {
    let mut out = Snapshot::default();
    let vms: BTreeMap<(String, String), &GatewayVMConfiguration> = vms
        .into_iter()
        .map(|v| ((v.namespace().unwrap_or_default(), v.name_any()), v))
        .collect();
    for sgc in sgcs {
        if sgc.metadata.deletion_timestamp.is_some() || !applies_to(sgc, node) {
            continue;
        }
        let Some(server) = server_profile(sgc) else {
            continue;
        };
        let key = (sgc.namespace().unwrap_or_default(), sgc.name_any());
        let uid = sgc.uid().unwrap_or_default();
        match vms.get(&key).and_then(|vm| node_addresses(vm, node)) {
            Some(addresses) => out.configs.push(ActiveConfig {
                namespace: key.0,
                name: key.1,
                uid,
                server,
                node: addresses,
            }),
            None => out.unplaced.push(uid),
        }
    }
    for s in secrets {
        if let Some(k) = private_key(s) {
            out.keys
                .insert((s.namespace().unwrap_or_default(), s.name_any()), k);
        }
    }
    for pe in pod_endpoints {
        match pod_endpoint(pe) {
            Ok(e) => out.endpoints.push(e),
            Err(reason) => out.rejected.push(reason),
        }
    }
    out.configs.sort_by(|a, b| a.uid.cmp(&b.uid));
    out.endpoints.sort();
    out
}

#[cfg(test)]
mod tests;
