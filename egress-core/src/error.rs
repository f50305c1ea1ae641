use std::net::IpAddr;

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
    /// A destination of the wrong family for a family-specific query.
    #[error("address {addr} is not of the plan's family")]
    Family {
        /// The address.
        addr: IpAddr,
    },
}
