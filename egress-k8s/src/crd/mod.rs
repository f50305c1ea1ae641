//! Custom resource types of `egressgateway.kubernetes.azure.com/v1alpha1`.
//!
//! Field names, types and enum values match the upstream project so existing
//! manifests apply unchanged. Where upstream only checked a rule inside the
//! reconciler (or not at all), the schema carries a CEL rule so the API server
//! rejects the object at admission with a message naming the field.

mod gateway_status;
mod lb_config;
mod pod_endpoint;
mod profile;
mod sgc;
mod vm_config;

pub use gateway_status::{
    GatewayConfiguration, GatewayStatus, GatewayStatusSpec, GatewayStatusStatus, PeerConfiguration,
};
pub use lb_config::{
    GatewayLBConfiguration, GatewayLBConfigurationSpec, GatewayLBConfigurationStatus,
};
pub use pod_endpoint::{PodEndpoint, PodEndpointSpec, PodEndpointStatus};
pub use profile::GatewayVmssProfile;
pub use sgc::{
    GatewayServerProfile, RouteMode, StaticGatewayConfiguration, StaticGatewayConfigurationSpec,
    StaticGatewayConfigurationStatus,
};
pub use vm_config::{
    GatewayVMConfiguration, GatewayVMConfigurationSpec, GatewayVMConfigurationStatus,
    GatewayVMProfile,
};

/// The API group shared by all five kinds.
pub const GROUP: &str = "egressgateway.kubernetes.azure.com";
/// The single served and stored version.
pub const VERSION: &str = "v1alpha1";
