use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Selects gateway nodes by VMSS instead of by node-pool name.
///
/// Upstream always serialises this object, so `{}` means "not set": the
/// profile counts as set only when one of its fields is non-empty.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayVmssProfile {
    /// Resource group of the gateway VMSS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 90))]
    pub vmss_resource_group: Option<String>,
    /// Name of the gateway VMSS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub vmss_name: Option<String>,
    /// Length of the public IP prefix to provision (28 to 31 in public mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 31))]
    pub public_ip_prefix_size: Option<i32>,
}

impl GatewayVmssProfile {
    /// Whether any field is set; upstream treats an all-empty profile as absent.
    pub fn is_set(&self) -> bool {
        self.vmss_resource_group
            .as_deref()
            .is_some_and(|s| !s.is_empty())
            || self.vmss_name.as_deref().is_some_and(|s| !s.is_empty())
            || self.public_ip_prefix_size.is_some_and(|n| n != 0)
    }
}
