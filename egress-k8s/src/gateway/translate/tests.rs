#![allow(clippy::unwrap_used)]

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ObjectReference;

use super::*;
use crate::crd::{
    GatewayServerProfile, GatewayVMConfigurationSpec, GatewayVMConfigurationStatus,
    GatewayVMProfile, GatewayVmssProfile, PodEndpointSpec, StaticGatewayConfigurationSpec,
    StaticGatewayConfigurationStatus,
};

fn node() -> NodeIdentity {
    NodeIdentity {
        computer_name: "gw000000".into(),
        nic_name: None,
        pool_name: Some("GwPool".into()),
        vmss_name: Some("aks-gw-123-vmss".into()),
        resource_group: Some("MC_rg".into()),
    }
}

fn sgc(name: &str, pool: Option<&str>, ready: bool) -> StaticGatewayConfiguration {
    let mut s = StaticGatewayConfiguration::new(
        name,
        StaticGatewayConfigurationSpec {
            gateway_nodepool_name: pool.map(Into::into),
            gateway_vmss_profile: None,
            default_route: crd::RouteMode::default(),
            provision_public_ips: true,
            public_ip_prefix_id: None,
            exclude_cidrs: None,
        },
    );
    s.metadata.namespace = Some("apps".into());
    s.metadata.uid = Some(format!("uid-{name}"));
    if ready {
        s.status = Some(StaticGatewayConfigurationStatus {
            egress_ip_prefix: Some("203.0.113.0/30".into()),
            gateway_server_profile: Some(GatewayServerProfile {
                ip: Some("192.0.2.100".into()),
                port: Some(6000),
                public_key: Some("pk".into()),
                private_key_secret_ref: Some(ObjectReference {
                    namespace: Some("kube-egress-gateway-system".into()),
                    name: Some(format!("sgw-uid-{name}")),
                    ..ObjectReference::default()
                }),
            }),
            ..StaticGatewayConfigurationStatus::default()
        });
    }
    s
}

fn vm(name: &str, node_name: &str) -> GatewayVMConfiguration {
    let mut v = GatewayVMConfiguration::new(
        name,
        GatewayVMConfigurationSpec {
            gateway_nodepool_name: None,
            gateway_vmss_profile: None,
            provision_public_ips: true,
            public_ip_prefix_id: None,
        },
    );
    v.metadata.namespace = Some("apps".into());
    v.status = Some(GatewayVMConfigurationStatus {
        egress_ip_prefix: None,
        gateway_vm_profiles: Some(vec![GatewayVMProfile {
            node_name: Some(node_name.into()),
            primary_ip: Some("192.0.2.1".into()),
            secondary_ip: Some("203.0.113.10".into()),
        }]),
    });
    v
}

#[test]
fn ready_applicable_configurations_become_active_and_others_do_not() {
    let mut by_vmss = sgc("d", None, true);
    by_vmss.spec.gateway_vmss_profile = Some(GatewayVmssProfile {
        vmss_resource_group: Some("mc_RG".into()),
        vmss_name: Some("AKS-gw-123-vmss".into()),
        public_ip_prefix_size: Some(31),
    });
    let sgcs = [
        sgc("a", Some("gwpool"), true),
        sgc("b", Some("other"), true),
        sgc("c", Some("gwpool"), false),
        by_vmss,
        sgc("e", Some("gwpool"), true),
    ];
    let vms = [
        vm("a", "gw000000"),
        vm("b", "gw000000"),
        vm("d", "gw000000"),
        vm("e", "someone-else"),
    ];
    let mut secret = Secret::default();
    secret.metadata.namespace = Some("kube-egress-gateway-system".into());
    secret.metadata.name = Some("sgw-uid-a".into());
    secret.data = Some(
        [(
            "PrivateKey".to_string(),
            ByteString(b"cHJpdmF0ZQ==\n".to_vec()),
        )]
        .into(),
    );
    let mut pe = crd::PodEndpoint::new(
        "pod-1",
        PodEndpointSpec {
            static_gateway_configuration: Some("a".into()),
            pod_ip_address: Some("10.244.0.5/32".into()),
            pod_public_key: Some("pod-key".into()),
        },
    );
    pe.metadata.namespace = Some("apps".into());
    let mut bad = pe.clone();
    bad.spec.pod_ip_address = Some("not-an-ip".into());

    let snap = snapshot(&sgcs, &vms, [&secret], [&pe, &bad], &node());
    let names: Vec<&str> = snap.configs.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        ["a", "d"],
        "pool match, VMSS match (case-insensitive)"
    );
    assert_eq!(
        snap.unplaced,
        ["uid-e"],
        "applies but its VM configuration lacks this node"
    );
    assert_eq!(snap.configs[0].server.port, 6000);
    assert_eq!(
        snap.configs[0].node.secondary_ip.to_string(),
        "203.0.113.10"
    );
    assert_eq!(snap.endpoints.len(), 1);
    assert_eq!(snap.endpoints[0].pod_ip.to_string(), "10.244.0.5");
    assert!(
        snap.rejected[0].contains("spec.podIpAddress"),
        "{:?}",
        snap.rejected
    );
    assert_eq!(
        snap.keys[&(
            "kube-egress-gateway-system".to_string(),
            "sgw-uid-a".to_string()
        )],
        "cHJpdmF0ZQ=="
    );
}

#[test]
fn a_nic_named_profile_matches_a_vm_pool_node() {
    let mut n = node();
    n.nic_name = Some("gw-nic-3".into());
    assert!(node_addresses(&vm("a", "gw-nic-3"), &n).is_some());
    assert!(node_addresses(&vm("a", "gw-nic-4"), &n).is_none());
}
