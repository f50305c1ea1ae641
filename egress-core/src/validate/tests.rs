use proptest::prelude::*;

use super::*;
use crate::model::VmssProfileSpec;
use crate::routes::RouteMode;

fn id() -> ConfigId {
    ConfigId {
        namespace: "ns".into(),
        name: "gw".into(),
        uid: "0b5b7d1e-1c6e-4b7a-9a65-1a2b3c4d5e6f".into(),
    }
}

fn ctx() -> ValidationContext {
    ValidationContext {
        subscription_id: "sub-1".into(),
        pool_nodes: Some(2),
        pool_prefix_len: None,
    }
}

fn pool_spec() -> GatewaySpec {
    GatewaySpec {
        gateway_nodepool_name: Some("gwpool".into()),
        provision_public_ips: true,
        ..GatewaySpec::default()
    }
}

// Returns the Option the spec field holds, so call sites read like manifests.
#[allow(clippy::unnecessary_wraps)]
fn vmss(rg: Option<&str>, name: Option<&str>, len: Option<i64>) -> Option<VmssProfileSpec> {
    Some(VmssProfileSpec {
        resource_group: rg.map(Into::into),
        name: name.map(Into::into),
        prefix_len: len,
    })
}

fn errors(spec: &GatewaySpec, ctx: &ValidationContext) -> Vec<Error> {
    validate(id(), spec, ctx).expect_err("spec should be invalid")
}

const PREFIX: &str =
    "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Network/publicIPPrefixes/p";

#[test]
fn valid_specs_map_to_the_model() {
    let cfg = validate(id(), &pool_spec(), &ctx()).unwrap();
    assert_eq!(
        cfg.pool,
        PoolSelector::NodePool {
            name: "gwpool".into()
        }
    );
    assert_eq!(cfg.egress, EgressMode::Public { byo_prefix: None });

    let spec = GatewaySpec {
        gateway_nodepool_name: None,
        vmss_profile: vmss(Some("rg"), Some("gw"), Some(30)),
        public_ip_prefix_id: Some(PREFIX.into()),
        default_route: RouteMode::Primary,
        exclude_cidrs: vec!["10.0.0.0/8".into(), " fd00::/8 ".into()],
        ..pool_spec()
    };
    let cfg = validate(id(), &spec, &ctx()).unwrap();
    assert_eq!(
        cfg.pool,
        PoolSelector::Vmss {
            resource_group: "rg".into(),
            name: "gw".into(),
            prefix_len: 30
        }
    );
    assert!(matches!(cfg.egress, EgressMode::Public { byo_prefix: Some(ref p) } if p.name == "p"));
    assert_eq!(cfg.exclude_cidrs.len(), 2);

    // Private mode ignores the prefix size; an all-empty profile counts as unset.
    let private = GatewaySpec {
        provision_public_ips: false,
        vmss_profile: vmss(None, None, Some(0)),
        ..pool_spec()
    };
    assert_eq!(
        validate(id(), &private, &ctx()).unwrap().egress,
        EgressMode::Private
    );
}

#[test]
#[allow(clippy::too_many_lines)] // one table row per rule
fn each_rule_has_its_own_error_naming_the_field() {
    let cases: Vec<(GatewaySpec, ValidationContext, Error)> = vec![
        (
            GatewaySpec {
                gateway_nodepool_name: None,
                ..pool_spec()
            },
            ctx(),
            Error::PoolSelector,
        ),
        (
            GatewaySpec {
                vmss_profile: vmss(Some("rg"), Some("gw"), Some(31)),
                ..pool_spec()
            },
            ctx(),
            Error::PoolSelector,
        ),
        (
            GatewaySpec {
                gateway_nodepool_name: None,
                vmss_profile: vmss(None, Some("gw"), Some(31)),
                ..pool_spec()
            },
            ctx(),
            Error::Required {
                field: "spec.gatewayVmssProfile.vmssResourceGroup",
            },
        ),
        (
            GatewaySpec {
                gateway_nodepool_name: None,
                vmss_profile: vmss(Some("rg"), Some(" "), Some(31)),
                ..pool_spec()
            },
            ctx(),
            Error::Required {
                field: "spec.gatewayVmssProfile.vmssName",
            },
        ),
        (
            GatewaySpec {
                gateway_nodepool_name: None,
                vmss_profile: vmss(Some("rg"), Some("gw"), Some(27)),
                ..pool_spec()
            },
            ctx(),
            Error::PrefixLength {
                field: F_PREFIX_SIZE,
                len: 27,
            },
        ),
        (
            GatewaySpec {
                gateway_nodepool_name: None,
                vmss_profile: vmss(Some("rg"), Some("gw"), Some(-3)),
                ..pool_spec()
            },
            ctx(),
            Error::PrefixLength {
                field: F_PREFIX_SIZE,
                len: -3,
            },
        ),
        (
            GatewaySpec {
                gateway_nodepool_name: None,
                vmss_profile: vmss(Some("rg"), Some("gw"), Some(31)),
                ..pool_spec()
            },
            ValidationContext {
                pool_nodes: Some(3),
                ..ctx()
            },
            Error::PrefixCapacity {
                field: F_PREFIX_SIZE,
                len: 31,
                capacity: 2,
                nodes: 3,
                suggested: "30".into(),
            },
        ),
        (
            pool_spec(),
            ValidationContext {
                pool_nodes: Some(20),
                pool_prefix_len: Some(28),
                ..ctx()
            },
            Error::PrefixCapacity {
                field: "tag aks-managed-gatewayIPPrefixSize of the gateway pool",
                len: 28,
                capacity: 16,
                nodes: 20,
                suggested: "none (more than 16 nodes)".into(),
            },
        ),
        (
            GatewaySpec {
                exclude_cidrs: vec!["10.0.0.0/8".into(), "10.1.2.3".into()],
                ..pool_spec()
            },
            ctx(),
            Error::Cidr {
                field: "spec.excludeCidrs",
                index: 1,
                value: "10.1.2.3".into(),
            },
        ),
        (
            GatewaySpec {
                provision_public_ips: false,
                public_ip_prefix_id: Some(PREFIX.into()),
                ..pool_spec()
            },
            ctx(),
            Error::PrefixWithoutPublicIps,
        ),
        (
            GatewaySpec {
                public_ip_prefix_id: Some("my-prefix".into()),
                ..pool_spec()
            },
            ctx(),
            Error::ArmId {
                field: F_PREFIX_ID,
                value: "my-prefix".into(),
                expected: PUBLIC_IP_PREFIX,
            },
        ),
        (
            GatewaySpec {
                public_ip_prefix_id: Some(PREFIX.replace("sub-1", "sub-2")),
                ..pool_spec()
            },
            ctx(),
            Error::Subscription {
                field: F_PREFIX_ID,
                found: "sub-2".into(),
                expected: "sub-1".into(),
            },
        ),
    ];
    for (spec, ctx, want) in cases {
        let got = errors(&spec, &ctx);
        assert_eq!(got, vec![want.clone()], "spec {spec:?}");
        let text = want.to_string();
        assert!(
            text.contains("spec.") || text.contains("tag "),
            "message names no field: {text}"
        );
    }
}

#[test]
fn derived_names_respect_azure_limits() {
    // Public IPs are named after the configuration, not the prefix: a long
    // bring-your-own prefix name is fine.
    let long = format!(
        "/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Network/publicIPPrefixes/{}",
        "p".repeat(64)
    );
    let spec = GatewaySpec {
        public_ip_prefix_id: Some(long),
        ..pool_spec()
    };
    assert!(validate(id(), &spec, &ctx()).is_ok());
    let long_uid = ConfigId {
        uid: "u".repeat(70),
        ..id()
    };
    let errs = validate(long_uid, &pool_spec(), &ctx()).unwrap_err();
    assert!(
        matches!(
            errs[..],
            [Error::NameTooLong {
                field: "metadata.uid",
                ..
            }]
        ),
        "{errs:?}"
    );
}

#[test]
fn all_violations_are_reported_together() {
    let spec = GatewaySpec {
        gateway_nodepool_name: None,
        vmss_profile: vmss(None, None, Some(40)),
        provision_public_ips: false,
        public_ip_prefix_id: Some("x".into()),
        exclude_cidrs: vec!["nope".into(), "also/bad".into()],
        ..GatewaySpec::default()
    };
    let errs = errors(&spec, &ctx());
    assert_eq!(errs.len(), 6, "{errs:#?}");
}

proptest! {
    /// Validation never panics, and accepts exactly when no rule is violated:
    /// on success every excludeCidrs entry is kept.
    #[test]
    fn validation_is_total(
        name in prop::option::of("[a-z]{0,3}"),
        rg in prop::option::of("[a-z]{0,2}"),
        vm in prop::option::of("[a-z]{0,2}"),
        len in prop::option::of(-2i64..40),
        public in any::<bool>(),
        cidrs in prop::collection::vec(prop_oneof!["10\\.[0-9]{1,3}\\.0\\.0/[0-9]{1,2}", "[a-z]{1,4}"], 0..4),
        nodes in 0u32..20,
    ) {
        let spec = GatewaySpec {
            gateway_nodepool_name: name,
            vmss_profile: vmss(rg.as_deref(), vm.as_deref(), len),
            provision_public_ips: public,
            exclude_cidrs: cidrs.clone(),
            ..GatewaySpec::default()
        };
        let ctx = ValidationContext { pool_nodes: Some(nodes), ..ctx() };
        match validate(id(), &spec, &ctx) {
            Ok(cfg) => prop_assert_eq!(cfg.exclude_cidrs.len(), cidrs.len()),
            Err(errs) => prop_assert!(!errs.is_empty()),
        }
    }
}
