//! The domain model, free of Kubernetes and Azure SDK types.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::arm::ArmId;
use crate::routes::RouteMode;

/// Identity of a static gateway configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConfigId {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Kubernetes name.
    pub name: String,
    /// Kubernetes UID; Azure names derive from it.
    pub uid: String,
}

impl fmt::Display for ConfigId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A configuration's spec as written by the user, before validation. Field
/// names follow the CRD; every field may be missing or malformed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewaySpec {
    /// `spec.gatewayNodepoolName`.
    pub gateway_nodepool_name: Option<String>,
    /// `spec.gatewayVmssProfile`.
    pub vmss_profile: Option<VmssProfileSpec>,
    /// `spec.provisionPublicIps`.
    pub provision_public_ips: bool,
    /// `spec.publicIpPrefixId`.
    pub public_ip_prefix_id: Option<String>,
    /// `spec.defaultRoute`.
    pub default_route: RouteMode,
    /// `spec.excludeCidrs`.
    pub exclude_cidrs: Vec<String>,
}

/// `spec.gatewayVmssProfile` as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VmssProfileSpec {
    /// `vmssResourceGroup`.
    pub resource_group: Option<String>,
    /// `vmssName`.
    pub name: Option<String>,
    /// `publicIpPrefixSize`.
    pub prefix_len: Option<i64>,
}

impl VmssProfileSpec {
    /// Upstream treats a profile with every field empty as absent.
    pub fn is_set(&self) -> bool {
        self.resource_group
            .as_deref()
            .is_some_and(|s| !s.is_empty())
            || self.name.as_deref().is_some_and(|s| !s.is_empty())
            || self.prefix_len.is_some_and(|n| n != 0)
    }
}

/// Which gateway nodes serve a configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PoolSelector {
    /// A node pool, found by its `aks-managed-poolName` tag.
    NodePool {
        /// The pool name.
        name: String,
    },
    /// A VMSS named directly.
    Vmss {
        /// Resource group.
        resource_group: String,
        /// VMSS name.
        name: String,
        /// Public IP prefix length from the profile (0 when unset).
        prefix_len: u8,
    },
}

/// How egress addresses are provided.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EgressMode {
    /// Public IPs from a prefix: bring-your-own, or managed when `None`.
    Public {
        /// A user-provided prefix.
        byo_prefix: Option<ArmId>,
    },
    /// The nodes' secondary private IPs, routed by the user's network.
    Private,
}

/// A validated gateway configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Identity.
    pub id: ConfigId,
    /// Gateway nodes.
    pub pool: PoolSelector,
    /// Public or private egress.
    pub egress: EgressMode,
    /// Default-route mode for pods.
    pub route_mode: RouteMode,
    /// Parsed `excludeCidrs`.
    pub exclude_cidrs: Vec<IpNet>,
}

/// The egress addresses of a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EgressAddresses {
    /// Public mode: the prefix.
    Prefix(IpNet),
    /// Private mode: one secondary IP per gateway node.
    Private(Vec<IpAddr>),
}

impl fmt::Display for EgressAddresses {
    /// The `status.egressIpPrefix` text: the prefix, or the IPs comma-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Prefix(net) => write!(f, "{net}"),
            Self::Private(ips) => {
                for (i, ip) in ips.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{ip}")?;
                }
                Ok(())
            }
        }
    }
}

/// A reference to the Secret that holds a gateway's private key. The key
/// itself never appears in the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretRef {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub name: String,
}

/// How pods reach a configuration's gateway.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerProfile {
    /// Load-balancer frontend IP.
    pub ip: IpAddr,
    /// WireGuard / rule port.
    pub port: u16,
    /// Gateway public key (base64).
    pub public_key: String,
    /// Where the private key is kept.
    pub key_secret: SecretRef,
}

/// Observed state of a configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GatewayStatus {
    /// The egress addresses, once provisioned.
    pub egress: Option<EgressAddresses>,
    /// The gateway endpoint, once provisioned.
    pub server: Option<ServerProfile>,
}

impl GatewayStatus {
    /// Ready for pods: both halves present (what upstream's daemon requires).
    pub fn is_ready(&self) -> bool {
        self.egress.is_some() && self.server.is_some()
    }
}

/// A gateway node's addresses for one configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GatewayNode {
    /// VMSS: the computer name; VM pools: the NIC name.
    pub node_name: String,
    /// The node's primary IP.
    pub primary_ip: IpAddr,
    /// The configuration's secondary IP on this node.
    pub secondary_ip: IpAddr,
}

/// A pod that uses a gateway.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodEndpoint {
    /// Pod namespace (also the configuration's).
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// Name of the configuration it uses.
    pub config: String,
    /// The pod's address, the peer's only allowed IP.
    pub pod_ip: IpAddr,
    /// The pod's WireGuard public key (base64).
    pub public_key: String,
}
