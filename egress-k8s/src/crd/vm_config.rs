use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::profile::GatewayVmssProfile;

fn default_true() -> bool {
    true
}

/// Internal: the VMSS/NIC side of one configuration, owned by its LB configuration.
#[derive(CustomResource, JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "egressgateway.kubernetes.azure.com",
    version = "v1alpha1",
    kind = "GatewayVMConfiguration",
    namespaced,
    status = "GatewayVMConfigurationStatus",
    shortname = "gvmc",
    category = "egressgateway",
    printcolumn = r#"{"name":"Egress Prefix","type":"string","jsonPath":".status.egressIpPrefix"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayVMConfigurationSpec {
    /// Copied from the LB configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_nodepool_name: Option<String>,
    /// Copied from the LB configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_vmss_profile: Option<GatewayVmssProfile>,
    /// Copied from the LB configuration.
    #[serde(default = "default_true")]
    #[schemars(default = "default_true")]
    pub provision_public_ips: bool,
    /// Copied from the LB configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip_prefix_id: Option<String>,
}

/// Observed VMSS/NIC state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayVMConfigurationStatus {
    /// Public prefix CIDR, or the private IPs comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_ip_prefix: Option<String>,
    /// One entry per gateway node.
    #[serde(
        default,
        rename = "gatewayVMProfiles",
        skip_serializing_if = "Option::is_none"
    )]
    pub gateway_vm_profiles: Option<Vec<GatewayVMProfile>>,
}

/// A gateway node's addresses for one configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GatewayVMProfile {
    /// VMSS pools: the instance's computer name. VM pools: the NIC name.
    #[serde(default, rename = "nodeName", skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The node's primary IP.
    #[serde(default, rename = "primaryIP", skip_serializing_if = "Option::is_none")]
    pub primary_ip: Option<String>,
    /// The configuration's secondary IP on this node.
    #[serde(
        default,
        rename = "secondaryIP",
        skip_serializing_if = "Option::is_none"
    )]
    pub secondary_ip: Option<String>,
}
