//! Load-balancer bodies Azure refuses: duplicate child names and rules that collide on ports.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Ids, NET, api, lb_body, setup};
use serde_json::{Value, json};

fn rule(ids: &Ids, name: &str, fe_port: u16, be_port: u16, floating: bool) -> Value {
    json!({"name": name, "properties": {
        "frontendIPConfiguration": {"id": ids.frontend("fe1")},
        "backendAddressPool": {"id": ids.pool("a")},
        "probe": {"id": ids.probe("probe1")},
        "protocol": "Udp", "frontendPort": fe_port, "backendPort": be_port, "enableFloatingIP": floating
    }})
}

#[tokio::test]
async fn duplicate_frontend_names_are_refused() {
    let (_arm, c, ids) = setup().await;
    let mut body = lb_body(&ids, &["a"]);
    let fe = body["properties"]["frontendIPConfigurations"][0].clone();
    let mut twin = fe.clone();
    twin["name"] = json!("FE1");
    body["properties"]["frontendIPConfigurations"] = json!([fe, twin]);
    let r = c.put(&api(&ids.lb, NET), &body).await;
    assert_eq!((r.status, r.code()), (400, "DuplicateResourceName"));
    assert!(
        r.message().contains("frontendIPConfigurations"),
        "{}",
        r.message()
    );
}

#[tokio::test]
async fn rules_colliding_on_frontend_or_backend_ports_are_refused() {
    let (_arm, c, ids) = setup().await;
    let mut body = lb_body(&ids, &["a"]);
    body["properties"]["loadBalancingRules"] = json!([
        rule(&ids, "r1", 6000, 6000, false),
        rule(&ids, "r2", 6000, 6001, false)
    ]);
    let r = c.put(&api(&ids.lb, NET), &body).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "RulesUseSameFrontendIPConfigurationProtocolAndPort")
    );

    body["properties"]["loadBalancingRules"] = json!([
        rule(&ids, "r1", 6000, 6000, false),
        rule(&ids, "r2", 6001, 6000, false)
    ]);
    let r = c.put(&api(&ids.lb, NET), &body).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "RulesUseSameBackendPortProtocolAndPool")
    );

    body["properties"]["loadBalancingRules"] = json!([
        rule(&ids, "r1", 6000, 6000, true),
        rule(&ids, "r2", 6001, 6000, true)
    ]);
    let r = c.put(&api(&ids.lb, NET), &body).await;
    assert_eq!(
        r.status, 201,
        "floating IP rules may share a backend port: {:?}",
        r.body
    );
    let probe = &r.body["properties"]["probes"][0]["properties"]["loadBalancingRules"];
    assert_eq!(
        probe.as_array().unwrap().len(),
        2,
        "probes report the rules that use them"
    );
}
