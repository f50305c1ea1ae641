//! Names, labels and constants shared with the upstream project, so a cluster
//! can move between the two without recreating Kubernetes or Azure objects.

/// Pod annotation that opts a pod into a gateway configuration.
pub const POD_ANNOTATION: &str = "kubernetes.azure.com/static-gateway-configuration";
/// Finalizer on static gateway configurations.
pub const SGC_FINALIZER: &str = "static-gateway-configuration-controller.microsoft.com";
/// Finalizer on load-balancer configurations.
pub const LB_FINALIZER: &str = "gateway-lb-configuration-controller.microsoft.com";
/// Finalizer on VM configurations.
pub const VM_FINALIZER: &str = "gateway-vm-configuration-controller.microsoft.com";
/// Default name of the internal load balancer.
pub const DEFAULT_ILB_NAME: &str = "kubeegressgateway-ilb";
/// Azure tag naming a node's pool.
pub const TAG_POOL_NAME: &str = "aks-managed-poolName";
/// Azure tag carrying a pool's public IP prefix length.
pub const TAG_PREFIX_SIZE: &str = "aks-managed-gatewayIPPrefixSize";
/// Azure tag marking NICs pre-created for a gateway VM pool.
pub const TAG_GATEWAY_NIC: &str = "aks-managed-static-gateway-nic";
/// First WireGuard / load-balancer port of a pool (inclusive).
pub const PORT_MIN: u16 = 6000;
/// End of the port range (exclusive).
pub const PORT_END: u16 = 7000;
/// Default port of the gateway health probe.
pub const DEFAULT_PROBE_PORT: u16 = 8082;
/// Azure's limit on the length of the resource names derived here.
pub const AZURE_NAME_MAX: usize = 80;

/// Name of every Azure object managed for one configuration: the secondary
/// ipConfigs, their public IP configuration and a managed public IP prefix.
pub fn managed_resource_name(uid: &str) -> String {
    format!("egressgateway-{uid}")
}

/// Azure resource names compare case-insensitively.
pub fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Whether an ipConfig name is one this system manages.
pub fn is_managed_name(name: &str) -> bool {
    name.get(..14)
        .is_some_and(|p| p.eq_ignore_ascii_case("egressgateway-"))
}

/// Secret holding a configuration's gateway key pair.
pub fn key_secret_name(sgc_uid: &str) -> String {
    format!("sgw-{sgc_uid}")
}

/// Gateway-side WireGuard interface of a configuration.
pub fn gateway_interface(port: u16) -> String {
    format!("wg-{port}")
}

/// Health-probe path of a configuration.
pub fn probe_path(sgc_uid: &str) -> String {
    format!("/gw/{sgc_uid}")
}

/// Name of the public IP created for one configuration on one pre-created
/// NIC of a VM pool: `<ipConfig name>-<FNV-1a 64 of the NIC name, lower-case
/// hex, unpadded>`. Upstream puts the prefix's name first; for a managed
/// prefix that is the same name (the prefix is named like the ipConfig), and
/// for a bring-your-own prefix shared by two configurations it would give
/// both the same public IP, so the configuration's name is used instead.
pub fn vm_pool_public_ip_name(ip_config_name: &str, nic_name: &str) -> String {
    format!("{ip_config_name}-{:x}", fnv1a64(nic_name.as_bytes()))
}

const fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_upstream_scheme() {
        assert_eq!(managed_resource_name("u1"), "egressgateway-u1");
        assert!(is_managed_name("EgressGateway-abc"));
        assert!(!is_managed_name("egressgateway"));
        assert_eq!(key_secret_name("u1"), "sgw-u1");
        assert_eq!(gateway_interface(6000), "wg-6000");
        assert_eq!(probe_path("u1"), "/gw/u1");
        // Known values of the naming hash.
        assert_eq!(vm_pool_public_ip_name("p", ""), "p-cbf29ce484222325");
        assert_eq!(
            vm_pool_public_ip_name("test-prefix", "aks-nodepool1-12345678-vmss000000"),
            "test-prefix-65d70f8df610e8df"
        );
    }
}
