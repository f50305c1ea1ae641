use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A pod's WireGuard identity, written by the node agent and read by gateways.
#[derive(CustomResource, JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "egressgateway.kubernetes.azure.com",
    version = "v1alpha1",
    kind = "PodEndpoint",
    namespaced,
    status = "PodEndpointStatus",
    shortname = "podep",
    category = "egressgateway",
    printcolumn = r#"{"name":"Gateway","type":"string","jsonPath":".spec.staticGatewayConfiguration"}"#,
    printcolumn = r#"{"name":"Pod IP","type":"string","jsonPath":".spec.podIpAddress"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct PodEndpointSpec {
    /// Name of the SGC (same namespace as the pod).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_gateway_configuration: Option<String>,
    /// The pod's IP in CIDR form, e.g. `10.244.0.5/32`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ip_address: Option<String>,
    /// The pod-side WireGuard public key (base64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_public_key: Option<String>,
}

/// The pod's effective egress, written by the node agent. Every field is
/// optional, so upstream's empty status stays valid.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodEndpointStatus {
    /// The gateway endpoint the pod's tunnel sends to (`ip:port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_endpoint: Option<String>,
    /// The egress addresses of the configuration the pod uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_ip_prefix: Option<String>,
    /// `staticEgressGateway` or `azureNetworking`, as applied in the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_route: Option<String>,
}
