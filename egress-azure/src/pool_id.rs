//! Gateway pool identities, derived exactly as upstream derives them so an
//! upgraded cluster keeps its load-balancer frontends and backend pools.

use uuid::Uuid;

/// Upstream's namespace for VM-pool identities.
pub const VM_POOL_NAMESPACE: Uuid = Uuid::from_u128(0x2c96_e82c_842f_11f0_8ea5_6bee_1427_8ecd);

/// A VM pool's identity: the name-based UUID (version 3, MD5) of the pool
/// name in [`VM_POOL_NAMESPACE`]. (A VMSS pool's is its `uniqueId`.)
pub fn vm_pool_uid(pool_name: &str) -> String {
    Uuid::new_v3(&VM_POOL_NAMESPACE, pool_name.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_upstreams_value() {
        assert_eq!(
            vm_pool_uid("testgw"),
            "13ffb2ec-b84e-3e00-8265-06efd5a2f4f2"
        );
    }
}
