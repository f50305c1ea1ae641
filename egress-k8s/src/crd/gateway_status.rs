use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Per-node report of the gateway daemon: configured interfaces and peers.
#[derive(CustomResource, JsonSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "egressgateway.kubernetes.azure.com",
    version = "v1alpha1",
    kind = "GatewayStatus",
    namespaced,
    status = "GatewayStatusStatus",
    shortname = "gwstatus",
    category = "egressgateway",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayStatusSpec {
    /// Configurations whose interface is up on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_gateway_configurations: Option<Vec<GatewayConfiguration>>,
    /// Peers configured on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_peer_configurations: Option<Vec<PeerConfiguration>>,
}

/// A configured gateway interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayConfiguration {
    /// `<namespace>/<name>` of the SGC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_gateway_configuration: Option<String>,
    /// The WireGuard interface, `wg-<port>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
}

/// A configured WireGuard peer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerConfiguration {
    /// `<namespace>/<name>` of the PodEndpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_endpoint: Option<String>,
    /// The WireGuard interface, `wg-<port>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// The pod's WireGuard public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// Empty, kept for wire compatibility.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GatewayStatusStatus {}
