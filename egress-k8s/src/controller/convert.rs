//! Between the CRD types and core's model.
//!
//! Empty values are normalised the way upstream reads them (an empty string
//! or an all-empty `gatewayVmssProfile` means "not set"), so a configuration
//! written by upstream, whose children always carry `gatewayVmssProfile: {}`,
//! compares equal to the same spec written here and causes no write.

use std::net::IpAddr;

use egress_core::model::{
    EgressAddresses, GatewayNode, GatewaySpec, GatewayStatus, SecretRef, ServerProfile,
    VmssProfileSpec,
};
use egress_core::routes::RouteMode as CoreRouteMode;
use ipnet::IpNet;

use crate::crd::{
    GatewayLBConfigurationSpec, GatewayVMProfile, GatewayVmssProfile, RouteMode,
    StaticGatewayConfigurationSpec, StaticGatewayConfigurationStatus,
};

fn non_empty(s: Option<&String>) -> Option<String> {
    s.filter(|s| !s.is_empty()).cloned()
}

fn profile(p: Option<&GatewayVmssProfile>) -> Option<VmssProfileSpec> {
    p.filter(|p| p.is_set()).map(|p| VmssProfileSpec {
        resource_group: non_empty(p.vmss_resource_group.as_ref()),
        name: non_empty(p.vmss_name.as_ref()),
        prefix_len: p.public_ip_prefix_size.map(i64::from),
    })
}

/// The user's spec in core's terms.
pub(crate) fn sgc_spec(s: &StaticGatewayConfigurationSpec) -> GatewaySpec {
    GatewaySpec {
        gateway_nodepool_name: non_empty(s.gateway_nodepool_name.as_ref()),
        vmss_profile: profile(s.gateway_vmss_profile.as_ref()),
        provision_public_ips: s.provision_public_ips,
        public_ip_prefix_id: non_empty(s.public_ip_prefix_id.as_ref()),
        default_route: match s.default_route {
            RouteMode::AzureNetworking => CoreRouteMode::Primary,
            RouteMode::StaticEgressGateway => CoreRouteMode::Gateway,
        },
        exclude_cidrs: s.exclude_cidrs.clone().unwrap_or_default(),
    }
}

/// The part of a spec the children carry. Route mode and excluded CIDRs
/// concern pods only, so they are taken from the user's spec.
pub(crate) fn child_spec(
    pool: Option<&String>,
    vmss: Option<&GatewayVmssProfile>,
    public: bool,
    prefix: Option<&String>,
    user: &GatewaySpec,
) -> GatewaySpec {
    GatewaySpec {
        gateway_nodepool_name: non_empty(pool),
        vmss_profile: profile(vmss),
        provision_public_ips: public,
        public_ip_prefix_id: non_empty(prefix),
        default_route: user.default_route,
        exclude_cidrs: user.exclude_cidrs.clone(),
    }
}

/// The LB configuration's spec for `spec`.
pub(crate) fn lb_spec(spec: &GatewaySpec) -> GatewayLBConfigurationSpec {
    GatewayLBConfigurationSpec {
        gateway_nodepool_name: spec.gateway_nodepool_name.clone(),
        gateway_vmss_profile: spec.vmss_profile.as_ref().map(crd_profile),
        provision_public_ips: spec.provision_public_ips,
        public_ip_prefix_id: spec.public_ip_prefix_id.clone(),
    }
}

fn crd_profile(p: &VmssProfileSpec) -> GatewayVmssProfile {
    GatewayVmssProfile {
        vmss_resource_group: p.resource_group.clone(),
        vmss_name: p.name.clone(),
        public_ip_prefix_size: p.prefix_len.and_then(|n| i32::try_from(n).ok()),
    }
}

/// `status.egressIpPrefix` as written: a prefix, or addresses comma-separated.
pub(crate) fn egress(text: Option<&String>) -> Option<EgressAddresses> {
    let text = text.map(|s| s.trim()).filter(|s| !s.is_empty())?;
    if text.contains('/') {
        return text.parse::<IpNet>().ok().map(EgressAddresses::Prefix);
    }
    let ips: Option<Vec<IpAddr>> = text.split(',').map(|s| s.trim().parse().ok()).collect();
    ips.map(EgressAddresses::Private)
}

/// The status as last written. Anything unreadable counts as absent, so the
/// next pass rewrites it.
pub(crate) fn sgc_status(s: Option<&StaticGatewayConfigurationStatus>) -> GatewayStatus {
    let Some(s) = s else {
        return GatewayStatus::default();
    };
    let server = s.gateway_server_profile.as_ref().and_then(|p| {
        let secret = p.private_key_secret_ref.as_ref()?;
        Some(ServerProfile {
            ip: p.ip.as_deref()?.parse().ok()?,
            port: u16::try_from(p.port?).ok()?,
            public_key: p.public_key.clone().filter(|k| !k.is_empty())?,
            key_secret: SecretRef {
                namespace: secret.namespace.clone()?,
                name: secret.name.clone()?,
            },
        })
    });
    GatewayStatus {
        egress: egress(s.egress_ip_prefix.as_ref()),
        server,
    }
}

/// `status.gatewayVMProfiles` in core's terms; unreadable entries are dropped.
pub(crate) fn nodes(profiles: Option<&Vec<GatewayVMProfile>>) -> Vec<GatewayNode> {
    profiles
        .map(|list| {
            list.iter()
                .filter_map(|p| {
                    Some(GatewayNode {
                        node_name: p.node_name.clone()?,
                        primary_ip: p.primary_ip.as_deref()?.parse().ok()?,
                        secondary_ip: p.secondary_ip.as_deref()?.parse().ok()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Core's nodes as `status.gatewayVMProfiles`.
pub(crate) fn vm_profiles(nodes: &[GatewayNode]) -> Vec<GatewayVMProfile> {
    nodes
        .iter()
        .map(|n| GatewayVMProfile {
            node_name: Some(n.node_name.clone()),
            primary_ip: Some(n.primary_ip.to_string()),
            secondary_ip: Some(n.secondary_ip.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_empty_profile_and_empty_strings_mean_unset() {
        let spec: StaticGatewayConfigurationSpec = serde_json::from_value(serde_json::json!({
            "gatewayNodepoolName": "gw", "gatewayVmssProfile": {}, "publicIpPrefixId": "",
        }))
        .unwrap();
        let core = sgc_spec(&spec);
        assert_eq!(core.vmss_profile, None);
        assert_eq!(core.public_ip_prefix_id, None);
        assert!(core.provision_public_ips, "upstream's default");
        let upstream_child = child_spec(
            Some(&"gw".to_string()),
            Some(&GatewayVmssProfile::default()),
            true,
            None,
            &core,
        );
        assert_eq!(upstream_child, core);
    }

    #[test]
    fn egress_text_round_trips() {
        assert_eq!(
            egress(Some(&"10.0.1.8,10.0.1.9".to_string()))
                .unwrap()
                .to_string(),
            "10.0.1.8,10.0.1.9"
        );
        assert_eq!(
            egress(Some(&"203.0.113.4/31".to_string()))
                .unwrap()
                .to_string(),
            "203.0.113.4/31"
        );
        assert_eq!(egress(Some(&"not an address".to_string())), None);
    }
}
