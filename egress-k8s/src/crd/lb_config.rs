use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::profile::GatewayVmssProfile;

fn default_true() -> bool {
    true
}

/// Internal: the load-balancer side of one configuration, owned by its SGC.
#[derive(CustomResource, JsonSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "egressgateway.kubernetes.azure.com",
    version = "v1alpha1",
    kind = "GatewayLBConfiguration",
    namespaced,
    status = "GatewayLBConfigurationStatus",
    shortname = "glbc",
    category = "egressgateway",
    printcolumn = r#"{"name":"Frontend IP","type":"string","jsonPath":".status.frontendIp"}"#,
    printcolumn = r#"{"name":"Port","type":"integer","jsonPath":".status.serverPort"}"#,
    printcolumn = r#"{"name":"Egress Prefix","type":"string","jsonPath":".status.egressIpPrefix"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayLBConfigurationSpec {
    /// Copied from the SGC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_nodepool_name: Option<String>,
    /// Copied from the SGC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_vmss_profile: Option<GatewayVmssProfile>,
    /// Copied from the SGC.
    #[serde(default = "default_true")]
    #[schemars(default = "default_true")]
    pub provision_public_ips: bool,
    /// Copied from the SGC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip_prefix_id: Option<String>,
}

/// Observed load-balancer state.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayLBConfigurationStatus {
    /// ILB frontend private IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontend_ip: Option<String>,
    /// Allocated rule port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_port: Option<i32>,
    /// Copied from the VM configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_ip_prefix: Option<String>,
}
