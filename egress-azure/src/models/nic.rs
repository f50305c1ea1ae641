//! Network interfaces (`Microsoft.Network/networkInterfaces`, and the
//! scale-set instance NICs the network provider serves under a VMSS).

use serde::{Deserialize, Serialize};

use super::common::{Extra, SubResource, Tags};

/// A network interface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkInterface {
    /// ARM ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Tags (VM-pool NICs carry the pool name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    /// Entity tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<NicProperties>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `properties` of a network interface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NicProperties {
    /// Primary NIC of its VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    /// Provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// IP configurations.
    #[serde(
        default,
        rename = "ipConfigurations",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_configurations: Option<Vec<NicIpConfig>>,
    /// The VM it is attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_machine: Option<SubResource>,
    /// Unmodelled fields (DNS settings, NSG, MAC address, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One IP configuration of a network interface.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NicIpConfig {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// ARM ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Entity tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<NicIpConfigProperties>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `properties` of a NIC IP configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NicIpConfigProperties {
    /// Primary ipConfig of the NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    /// The private address Azure assigned (sometimes with a `/len`).
    #[serde(
        default,
        rename = "privateIPAddress",
        skip_serializing_if = "Option::is_none"
    )]
    pub private_ip_address: Option<String>,
    /// `IPv4` or `IPv6`.
    #[serde(
        default,
        rename = "privateIPAddressVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub private_ip_address_version: Option<String>,
    /// `Dynamic` or `Static`.
    #[serde(
        default,
        rename = "privateIPAllocationMethod",
        skip_serializing_if = "Option::is_none"
    )]
    pub private_ip_allocation_method: Option<String>,
    /// Subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<SubResource>,
    /// Attached public IP.
    #[serde(
        default,
        rename = "publicIPAddress",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_ip_address: Option<SubResource>,
    /// Load-balancer backend pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_backend_address_pools: Option<Vec<SubResource>>,
    /// Unmodelled fields (provisioningState, ASGs, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

impl NetworkInterface {
    /// The IP configurations, empty when absent.
    pub fn ip_configs(&self) -> &[NicIpConfig] {
        self.properties
            .as_ref()
            .and_then(|p| p.ip_configurations.as_deref())
            .unwrap_or_default()
    }
}
