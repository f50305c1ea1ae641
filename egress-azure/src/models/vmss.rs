//! Virtual machine scale sets (`Microsoft.Compute/virtualMachineScaleSets`)
//! and their instances, down to the NIC configurations.

use serde::{Deserialize, Serialize};

use super::common::{Extra, SubResource, Tags};

/// A scale set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Vmss {
    /// ARM ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    /// Entity tag of this version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<VmssProperties>,
    /// Unmodelled fields (sku, identity, zones, plan, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `properties` of a scale set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmssProperties {
    /// Azure's unique ID; names the pool's ILB frontend and backend pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    /// Provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// The model of new and upgraded instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_machine_profile: Option<VmProfile>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `properties.virtualMachineProfile`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmProfile {
    /// The network profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_profile: Option<NetworkProfile>,
    /// Unmodelled fields (storage, OS, extensions, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// A network profile of a scale-set model or instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkProfile {
    /// NIC configurations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_interface_configurations: Option<Vec<NicConfig>>,
    /// Unmodelled fields (healthProbe, networkApiVersion, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One NIC configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NicConfig {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<NicConfigProperties>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `properties` of a NIC configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NicConfigProperties {
    /// Primary NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    /// IP configurations.
    #[serde(
        default,
        rename = "ipConfigurations",
        skip_serializing_if = "Option::is_none"
    )]
    pub ip_configurations: Option<Vec<VmssIpConfig>>,
    /// Unmodelled fields (NSG, DNS settings, accelerated networking, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One IP configuration of a NIC configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VmssIpConfig {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<VmssIpConfigProperties>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `properties` of a scale-set IP configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmssIpConfigProperties {
    /// Primary ipConfig of the NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
    /// Subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<SubResource>,
    /// `IPv4` or `IPv6`.
    #[serde(
        default,
        rename = "privateIPAddressVersion",
        skip_serializing_if = "Option::is_none"
    )]
    pub private_ip_address_version: Option<String>,
    /// Public IP configuration (a public IP per instance, from a prefix).
    #[serde(
        default,
        rename = "publicIPAddressConfiguration",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_ip_address_configuration: Option<PublicIpConfig>,
    /// Load-balancer backend pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_backend_address_pools: Option<Vec<SubResource>>,
    /// Unmodelled fields (application gateway pools, NAT pools, ASGs, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `publicIPAddressConfiguration` of a scale-set IP configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PublicIpConfig {
    /// Name.
    #[serde(default)]
    pub name: String,
    /// Properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<PublicIpConfigProperties>,
    /// Unmodelled fields (sku, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `properties` of a public IP configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PublicIpConfigProperties {
    /// The prefix the instance's public IP comes from.
    #[serde(
        default,
        rename = "publicIPPrefix",
        skip_serializing_if = "Option::is_none"
    )]
    pub public_ip_prefix: Option<SubResource>,
    /// Unmodelled fields.
    #[serde(flatten)]
    pub extra: Extra,
}

/// A scale-set instance (`.../virtualMachines/{instanceId}`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmssVm {
    /// ARM ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Instance ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    /// Entity tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Properties.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<VmssVmProperties>,
    /// Unmodelled fields (resources, sku, zones, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `properties` of a scale-set instance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmssVmProperties {
    /// Whether the instance runs the scale set's current model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_model_applied: Option<bool>,
    /// Provisioning state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_state: Option<String>,
    /// OS profile (computer name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_profile: Option<super::OsProfile>,
    /// The instance's own NIC configurations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_profile_configuration: Option<NetworkProfile>,
    /// Unmodelled fields (networkProfile, storageProfile, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Vmss {
    /// The model's NIC configurations, if the scale set has a network profile.
    pub fn nic_configs(&self) -> Option<&Vec<NicConfig>> {
        self.properties
            .as_ref()?
            .virtual_machine_profile
            .as_ref()?
            .network_profile
            .as_ref()?
            .network_interface_configurations
            .as_ref()
    }

    /// The model's network profile, if any.
    pub fn network_profile(&self) -> Option<&NetworkProfile> {
        self.properties
            .as_ref()?
            .virtual_machine_profile
            .as_ref()?
            .network_profile
            .as_ref()
    }
}

impl VmssVm {
    /// The instance's NIC configurations.
    pub fn nic_configs(&self) -> Option<&Vec<NicConfig>> {
        self.properties
            .as_ref()?
            .network_profile_configuration
            .as_ref()?
            .network_interface_configurations
            .as_ref()
    }
}
