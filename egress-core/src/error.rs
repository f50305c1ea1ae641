use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// Everything egress-core can reject. Validation variants name the field they
/// are about, using the JSON path a user would write in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither or both of the pool selectors are set.
    #[error("exactly one of spec.gatewayNodepoolName and spec.gatewayVmssProfile must be set")]
    PoolSelector,
    /// A required field is empty.
    #[error("{field} is required")]
    Required {
        /// The field's path.
        field: &'static str,
    },
    /// A public IP prefix length outside what Azure offers.
    #[error("{field} is /{len}, but Azure public IP prefixes must be /28 to /31")]
    PrefixLength {
        /// The field's path.
        field: &'static str,
        /// The rejected length.
        len: i64,
    },
    /// More gateway nodes than the prefix has addresses.
    #[error(
        "{field} /{len} holds {capacity} addresses, but the gateway pool has {nodes} nodes (each needs one); use /{suggested} or shrink the pool"
    )]
    PrefixCapacity {
        /// The field's path.
        field: &'static str,
        /// The prefix length.
        len: u8,
        /// Addresses in the prefix.
        capacity: u32,
        /// Gateway nodes in the pool.
        nodes: u32,
        /// The smallest prefix length that would fit, if Azure offers one.
        suggested: String,
    },
    /// More gateway nodes than the largest Azure prefix holds.
    #[error(
        "{nodes} gateway nodes need more than 16 egress addresses, but the largest Azure public IP prefix is /28 (16 addresses)"
    )]
    TooManyNodes {
        /// Gateway nodes requested.
        nodes: u32,
    },
    /// A string that is not a CIDR.
    #[error("{field}[{index}] is {value:?}, not an IPv4 or IPv6 CIDR such as 10.0.0.0/8")]
    Cidr {
        /// The list field's path.
        field: &'static str,
        /// Position in the list.
        index: usize,
        /// The rejected text.
        value: String,
    },
    /// A BYO prefix set together with private mode.
    #[error("spec.publicIpPrefixId must be empty when spec.provisionPublicIps is false")]
    PrefixWithoutPublicIps,
    /// A string that is not an ARM resource ID of the expected type.
    #[error(
        "{field} is {value:?}, not an ARM ID of the form /subscriptions/<id>/resourceGroups/<group>/providers/{expected}/<name>"
    )]
    ArmId {
        /// The field's path.
        field: &'static str,
        /// The rejected text.
        value: String,
        /// The expected provider and type.
        expected: &'static str,
    },
    /// A BYO prefix in another subscription than the cluster's.
    #[error(
        "{field} is in subscription {found}, but the controller manages subscription {expected}"
    )]
    Subscription {
        /// The field's path.
        field: &'static str,
        /// The prefix's subscription.
        found: String,
        /// The configured subscription.
        expected: String,
    },
    /// A derived Azure resource name longer than Azure allows.
    #[error(
        "{field} leads to the Azure name {name:?} ({len} characters), above Azure's limit of {max}"
    )]
    NameTooLong {
        /// The field the name is derived from.
        field: &'static str,
        /// The derived name.
        name: String,
        /// Its length.
        len: usize,
        /// Azure's limit.
        max: usize,
    },
    /// A private-mode subnet without room for the secondary IPs.
    #[error(
        "subnet /{len} has {usable} usable addresses (Azure reserves 5), but {required} are needed: {nodes} nodes x (1 primary + {configs} configurations) plus {surge} surge nodes"
    )]
    SubnetTooSmall {
        /// The subnet's prefix length.
        len: u8,
        /// Addresses Azure leaves usable.
        usable: u64,
        /// Addresses needed.
        required: u64,
        /// Gateway nodes.
        nodes: u32,
        /// Configurations on the pool.
        configs: u32,
        /// Surge nodes to leave room for.
        surge: u32,
    },
    /// A bring-your-own or managed prefix of the wrong length.
    #[error("public IP prefix {prefix} is /{found}, but the gateway pool needs /{required}")]
    PrefixLengthMismatch {
        /// The prefix.
        prefix: String,
        /// Its length.
        found: u8,
        /// The length the pool needs.
        required: u8,
    },
    /// A bring-your-own prefix that does not exist.
    #[error("public IP prefix {prefix} (spec.publicIpPrefixId) does not exist")]
    PrefixMissing {
        /// The prefix's ARM ID.
        prefix: String,
    },
    /// Not planned this pass because something it depends on could not be read.
    #[error("not changed this pass: {reason}")]
    Blocked {
        /// What could not be read.
        reason: String,
    },
    /// The load balancer could not give the configuration a rule.
    #[error("load balancer: {0}")]
    LoadBalancer(String),
    /// A pool's machines could not be planned.
    #[error("gateway pool: {0}")]
    Pool(String),
    /// A call through one of the traits failed.
    #[error("{layer} call {op} failed ({kind})")]
    Adapter {
        /// Which trait.
        layer: Layer,
        /// The call.
        op: &'static str,
        /// How the caller should react.
        kind: FailureKind,
        /// The adapter's own error.
        #[source]
        source: AdapterSource,
    },
    /// A destination of the wrong family for a family-specific query.
    #[error("address {addr} is not of the plan's family")]
    Family {
        /// The address.
        addr: IpAddr,
    },
}

/// The trait an adapter error came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// [`crate::traits::CloudProvider`].
    Cloud,
    /// [`crate::traits::ClusterApi`].
    Cluster,
    /// [`crate::traits::Dataplane`].
    Dataplane,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cloud => "cloud",
            Self::Cluster => "cluster",
            Self::Dataplane => "dataplane",
        })
    }
}

/// How a failed call should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The object does not exist.
    NotFound,
    /// A concurrent change (`ETag` or `resourceVersion` mismatch): re-read and retry.
    Conflict,
    /// Rate limited; retry after the server's hint when it gave one.
    Throttled {
        /// Seconds from a `Retry-After` header.
        retry_after_secs: Option<u64>,
    },
    /// Likely to succeed on retry (timeouts, 5xx).
    Transient,
    /// Will not succeed without a change (bad request, forbidden).
    Permanent,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => f.write_str("not found"),
            Self::Conflict => f.write_str("conflict"),
            Self::Throttled {
                retry_after_secs: Some(s),
            } => write!(f, "throttled, retry after {s} s"),
            Self::Throttled {
                retry_after_secs: None,
            } => f.write_str("throttled"),
            Self::Transient => f.write_str("transient"),
            Self::Permanent => f.write_str("permanent"),
        }
    }
}

/// An adapter's error, shared so [`Error`] stays cheap to clone. Two sources
/// compare equal when their messages do.
#[derive(Clone)]
pub struct AdapterSource(pub Arc<dyn std::error::Error + Send + Sync>);

impl AdapterSource {
    /// Wraps an adapter error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(e))
    }
}

impl fmt::Debug for AdapterSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for AdapterSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for AdapterSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for AdapterSource {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for AdapterSource {}

impl Error {
    /// Builds an adapter error.
    pub fn adapter(
        layer: Layer,
        op: &'static str,
        kind: FailureKind,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Adapter {
            layer,
            op,
            kind,
            source: AdapterSource::new(source),
        }
    }

    /// The failure kind, for adapter errors.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        match self {
            Self::Adapter { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}
