use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::profile::GatewayVmssProfile;

// CEL fragments shared by several rules. A profile of `{}` counts as unset,
// exactly as upstream's reconciler decides it.
const POOL_SET: &str = "(has(self.gatewayNodepoolName) && self.gatewayNodepoolName != '')";
const PROFILE_SET: &str = "(has(self.gatewayVmssProfile) && ((has(self.gatewayVmssProfile.vmssResourceGroup) && self.gatewayVmssProfile.vmssResourceGroup != '') || (has(self.gatewayVmssProfile.vmssName) && self.gatewayVmssProfile.vmssName != '') || (has(self.gatewayVmssProfile.publicIpPrefixSize) && self.gatewayVmssProfile.publicIpPrefixSize != 0)))";
const PUBLIC: &str = "(!has(self.provisionPublicIps) || self.provisionPublicIps)";

/// Where a pod's default route points.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RouteMode {
    /// Default route stays on the pod's primary interface; `excludeCidrs` go
    /// through the gateway.
    #[serde(rename = "azureNetworking")]
    AzureNetworking,
    /// Default route goes through the gateway; `excludeCidrs` stay on the
    /// primary interface.
    #[default]
    #[serde(rename = "staticEgressGateway")]
    StaticEgressGateway,
}

/// The rule sits on each item, so its cost stays small for long lists and the
/// error path names the offending index (`spec.excludeCidrs[3]`).
fn exclude_cidrs_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "Destination CIDRs (IPv4 or IPv6) that take the opposite path of the default route.",
        "type": "array",
        "maxItems": 4096,
        "items": {
            "type": "string",
            "maxLength": 64,
            "x-kubernetes-validations": [{
                "rule": "isCIDR(self)",
                "messageExpression": "'spec.excludeCidrs entries must be IPv4 or IPv6 CIDRs such as 10.0.0.0/8, got ' + self",
            }],
        },
    })
}

fn default_true() -> bool {
    true
}

/// Desired state of a static egress gateway configuration.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "egressgateway.kubernetes.azure.com",
    version = "v1alpha1",
    kind = "StaticGatewayConfiguration",
    namespaced,
    status = "StaticGatewayConfigurationStatus",
    shortname = "sgc",
    category = "egressgateway",
    printcolumn = r#"{"name":"Pool","type":"string","jsonPath":".spec.gatewayNodepoolName"}"#,
    printcolumn = r#"{"name":"VMSS","type":"string","jsonPath":".spec.gatewayVmssProfile.vmssName","priority":1}"#,
    printcolumn = r#"{"name":"Public","type":"boolean","jsonPath":".spec.provisionPublicIps","description":"true: public IP prefix (public mode); false: private IPs (private mode)"}"#,
    printcolumn = r#"{"name":"Egress Prefix","type":"string","jsonPath":".status.egressIpPrefix"}"#,
    printcolumn = r#"{"name":"Gateway IP","type":"string","jsonPath":".status.gatewayServerProfile.ip"}"#,
    printcolumn = r#"{"name":"Port","type":"integer","jsonPath":".status.gatewayServerProfile.port"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(format!("{POOL_SET} != {PROFILE_SET}"))
    .message("exactly one of spec.gatewayNodepoolName and spec.gatewayVmssProfile must be set")
    .reason(Reason::FieldValueInvalid))]
#[x_kube(validation = Rule::new(format!("!{PROFILE_SET} || (has(self.gatewayVmssProfile.vmssResourceGroup) && self.gatewayVmssProfile.vmssResourceGroup != '')"))
    .message("spec.gatewayVmssProfile.vmssResourceGroup is required when spec.gatewayVmssProfile is set")
    .field_path(".gatewayVmssProfile.vmssResourceGroup")
    .reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new(format!("!{PROFILE_SET} || (has(self.gatewayVmssProfile.vmssName) && self.gatewayVmssProfile.vmssName != '')"))
    .message("spec.gatewayVmssProfile.vmssName is required when spec.gatewayVmssProfile is set")
    .field_path(".gatewayVmssProfile.vmssName")
    .reason(Reason::FieldValueRequired))]
#[x_kube(validation = Rule::new(format!("!{PROFILE_SET} || !{PUBLIC} || (has(self.gatewayVmssProfile.publicIpPrefixSize) && self.gatewayVmssProfile.publicIpPrefixSize >= 28 && self.gatewayVmssProfile.publicIpPrefixSize <= 31)"))
    .message("spec.gatewayVmssProfile.publicIpPrefixSize must be between 28 and 31 (the public IP prefix lengths Azure offers) when spec.provisionPublicIps is true")
    .field_path(".gatewayVmssProfile.publicIpPrefixSize"))]
#[x_kube(validation = Rule::new(format!("!has(self.publicIpPrefixId) || self.publicIpPrefixId == '' || {PUBLIC}"))
    .message("spec.publicIpPrefixId must be empty when spec.provisionPublicIps is false (private mode uses no public IP prefix)")
    .field_path(".publicIpPrefixId")
    .reason(Reason::FieldValueForbidden))]
pub struct StaticGatewayConfigurationSpec {
    /// Name of the gateway node pool (matched against the `aks-managed-poolName` tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub gateway_nodepool_name: Option<String>,
    /// Alternative to the pool name: the gateway VMSS and its prefix size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_vmss_profile: Option<GatewayVmssProfile>,
    /// Whether the pod's default route goes through the gateway.
    #[serde(default)]
    pub default_route: RouteMode,
    /// `true`: public mode (a public IP prefix backs the egress IPs);
    /// `false`: private mode.
    #[serde(default = "default_true")]
    #[schemars(default = "default_true")]
    pub provision_public_ips: bool,
    /// ARM ID of a bring-your-own public IP prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    #[x_kube(validation = Rule::new("self == '' || self.matches('(?i)^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\\\\.Network/publicIPPrefixes/[^/]+$')")
        .message("spec.publicIpPrefixId must be an ARM ID of the form /subscriptions/<subscription>/resourceGroups/<group>/providers/Microsoft.Network/publicIPPrefixes/<name>"))]
    pub public_ip_prefix_id: Option<String>,
    /// Destination CIDRs (IPv4 or IPv6) that take the opposite path of the default route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "exclude_cidrs_schema")]
    pub exclude_cidrs: Option<Vec<String>>,
}

/// Observed state, written by the controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StaticGatewayConfigurationStatus {
    /// Public mode: the public IP prefix CIDR. Private mode: the gateway
    /// nodes' secondary IPs, comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_ip_prefix: Option<String>,
    /// How pods reach the gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_server_profile: Option<GatewayServerProfile>,
    /// Standard conditions (an addition to upstream's fields): `Ready`, and
    /// `Degraded` while a serving configuration's latest spec is not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

/// The gateway's WireGuard endpoint as pods see it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayServerProfile {
    /// Internal load balancer frontend IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// Load balancer rule port (6000 to 6999).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// Gateway WireGuard public key (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The Secret holding the gateway's private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_secret_ref: Option<ObjectReference>,
}
