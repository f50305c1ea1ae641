//! IP-prefix and subnet sizing.
//!
//! Public mode: every gateway node gets one address from the configuration's
//! public IP prefix, so the prefix must hold at least as many addresses as the
//! pool has nodes. Azure offers IPv4 public IP prefixes from /28 (16 addresses)
//! to /31 (2 addresses).
//!
//! Private mode: every gateway node takes one secondary IP per configuration
//! from the gateway subnet, on top of its own primary IP, and Azure reserves
//! five addresses in every subnet.

use crate::Error;

/// The shortest IPv4 public IP prefix Azure offers (16 addresses).
pub const MIN_PUBLIC_PREFIX_LEN: u8 = 28;
/// The longest IPv4 public IP prefix Azure offers (2 addresses).
pub const MAX_PUBLIC_PREFIX_LEN: u8 = 31;
/// Addresses Azure reserves in every subnet: network, gateway, two for DNS, broadcast.
pub const AZURE_RESERVED_PER_SUBNET: u64 = 5;

/// Addresses in an IPv4 prefix of length `len` (`len` above 32 holds none).
pub const fn capacity(len: u8) -> u64 {
    if len > 32 { 0 } else { 1u64 << (32 - len) }
}

/// Whether Azure offers a public IP prefix of this length.
pub const fn is_supported_public_len(len: u8) -> bool {
    len >= MIN_PUBLIC_PREFIX_LEN && len <= MAX_PUBLIC_PREFIX_LEN
}

/// The longest (smallest) Azure public IP prefix with room for `nodes` gateway
/// nodes. Pools of zero to two nodes get /31, the smallest Azure offers.
pub fn smallest_public_prefix(nodes: u32) -> Result<u8, Error> {
    (MIN_PUBLIC_PREFIX_LEN..=MAX_PUBLIC_PREFIX_LEN)
        .rev()
        .find(|&len| capacity(len) >= u64::from(nodes))
        .ok_or(Error::TooManyNodes { nodes })
}

/// Checks that a public prefix of `len` fits a pool of `nodes`; `field` names
/// where the length came from (a spec field or the pool's tag).
pub fn check_public_prefix(field: &'static str, len: u8, nodes: u32) -> Result<(), Error> {
    if !is_supported_public_len(len) {
        return Err(Error::PrefixLength {
            field,
            len: i64::from(len),
        });
    }
    let cap = capacity(len);
    if cap >= u64::from(nodes) {
        return Ok(());
    }
    Err(Error::PrefixCapacity {
        field,
        len,
        capacity: u32::try_from(cap).unwrap_or(u32::MAX),
        nodes,
        suggested: smallest_public_prefix(nodes).map_or_else(
            |_| "none (more than 16 nodes)".to_string(),
            |l| l.to_string(),
        ),
    })
}

/// What a private-mode gateway subnet must hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubnetDemand {
    /// Gateway nodes in the pool.
    pub nodes: u32,
    /// Configurations (SGCs) targeting the pool.
    pub configurations: u32,
    /// Extra nodes that may exist during an upgrade or replacement.
    pub surge_nodes: u32,
    /// Addresses in the subnet used by anything else.
    pub used_elsewhere: u64,
}

impl SubnetDemand {
    /// Addresses needed: each node, surge nodes included, takes its primary IP
    /// plus one secondary IP per configuration.
    pub const fn required(&self) -> u64 {
        let per_node = 1 + self.configurations as u64;
        (self.nodes as u64 + self.surge_nodes as u64) * per_node + self.used_elsewhere
    }
}

/// Room in a subnet after a demand is met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubnetUsage {
    /// Addresses usable after Azure's reservations.
    pub usable: u64,
    /// Addresses the demand needs.
    pub required: u64,
    /// Addresses left over.
    pub free: u64,
}

/// Checks a private-mode IPv4 subnet of length `len` against `demand`.
pub fn check_private_subnet(len: u8, demand: SubnetDemand) -> Result<SubnetUsage, Error> {
    let usable = capacity(len).saturating_sub(AZURE_RESERVED_PER_SUBNET);
    let required = demand.required();
    if required <= usable {
        Ok(SubnetUsage {
            usable,
            required,
            free: usable - required,
        })
    } else {
        Err(Error::SubnetTooSmall {
            len,
            usable,
            required,
            nodes: demand.nodes,
            configs: demand.configurations,
            surge: demand.surge_nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn prefix_lengths_for_pool_sizes() {
        assert_eq!(smallest_public_prefix(0), Ok(31));
        assert_eq!(smallest_public_prefix(1), Ok(31));
        assert_eq!(smallest_public_prefix(2), Ok(31));
        assert_eq!(smallest_public_prefix(3), Ok(30));
        assert_eq!(smallest_public_prefix(8), Ok(29));
        assert_eq!(smallest_public_prefix(9), Ok(28));
        assert_eq!(smallest_public_prefix(16), Ok(28));
        assert_eq!(
            smallest_public_prefix(17),
            Err(Error::TooManyNodes { nodes: 17 })
        );
        let msg = smallest_public_prefix(17).unwrap_err().to_string();
        assert!(msg.contains("/28"), "{msg}");
    }

    #[test]
    fn capacity_errors_name_the_field_and_suggest_a_fit() {
        let err =
            check_public_prefix("spec.gatewayVmssProfile.publicIpPrefixSize", 31, 4).unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.gatewayVmssProfile.publicIpPrefixSize /31 holds 2 addresses, but the gateway pool has 4 nodes (each needs one); use /30 or shrink the pool"
        );
        assert!(matches!(
            check_public_prefix("tag aks-managed-gatewayIPPrefixSize", 27, 1),
            Err(Error::PrefixLength { len: 27, .. })
        ));
        assert_eq!(check_public_prefix("f", 28, 16), Ok(()));
    }

    #[test]
    fn private_subnet_counts_reserved_addresses_and_surge() {
        // /28: 16 - 5 = 11 usable. 2 nodes + 1 surge, 2 configs: 3 * 3 = 9.
        let demand = SubnetDemand {
            nodes: 2,
            configurations: 2,
            surge_nodes: 1,
            used_elsewhere: 0,
        };
        assert_eq!(
            check_private_subnet(28, demand),
            Ok(SubnetUsage {
                usable: 11,
                required: 9,
                free: 2
            })
        );
        let tight = SubnetDemand {
            configurations: 3,
            ..demand
        };
        let err = check_private_subnet(28, tight).unwrap_err();
        assert!(err.to_string().contains("11 usable"), "{err}");
        assert!(err.to_string().contains("12 are needed"), "{err}");
    }

    proptest! {
        #[test]
        fn smallest_prefix_is_the_tightest_fit(nodes in 0u32..64) {
            match smallest_public_prefix(nodes) {
                Ok(len) => {
                    prop_assert!(is_supported_public_len(len));
                    prop_assert!(capacity(len) >= u64::from(nodes));
                    // One step longer would not fit (or is not offered).
                    prop_assert!(len == MAX_PUBLIC_PREFIX_LEN || capacity(len + 1) < u64::from(nodes));
                    prop_assert_eq!(check_public_prefix("f", len, nodes), Ok(()));
                }
                Err(_) => prop_assert!(u64::from(nodes) > capacity(MIN_PUBLIC_PREFIX_LEN)),
            }
        }

        #[test]
        fn subnet_check_matches_arithmetic(len in 16u8..=30, nodes in 0u32..40, configs in 0u32..20, surge in 0u32..4, other in 0u64..50) {
            let demand = SubnetDemand { nodes, configurations: configs, surge_nodes: surge, used_elsewhere: other };
            let usable = (1u64 << (32 - len)).saturating_sub(5);
            let required = u64::from(nodes + surge) * u64::from(1 + configs) + other;
            match check_private_subnet(len, demand) {
                Ok(u) => { prop_assert!(required <= usable); prop_assert_eq!(u.free, usable - required); }
                Err(_) => prop_assert!(required > usable),
            }
            // Adding a configuration never frees addresses.
            let more = SubnetDemand { configurations: configs + 1, ..demand };
            prop_assert!(more.required() >= demand.required());
        }
    }
}
