//! References must exist: Azure refuses a write naming a backend pool, prefix, public IP,
//! subnet, frontend or probe that is not there, with 400 `InvalidResourceReference`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{COMPUTE, NET, api, lb_body, model_with_ipconfig, network_patch, setup};
use serde_json::json;

#[tokio::test]
async fn vmss_patch_naming_a_missing_backend_pool_is_refused_and_changes_nothing() {
    let (arm, c, ids) = setup().await;
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let nics = model_with_ipconfig(
        &vmss.body,
        "egressgateway-a",
        Some(&ids.pool("missing")),
        None,
    );
    let r = c
        .patch(&api(&ids.vmss, COMPUTE), &network_patch(&nics))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "InvalidResourceReference");
    assert!(
        r.message().contains("backendAddressPools/missing"),
        "{}",
        r.message()
    );
    let after = c.get(&api(&ids.vmss, COMPUTE)).await;
    assert_eq!(
        after.etag(),
        vmss.etag(),
        "a refused write must not change the ETag"
    );
    assert_eq!(
        after.body["properties"]["virtualMachineProfile"],
        vmss.body["properties"]["virtualMachineProfile"]
    );
    assert_eq!(
        arm.counts()
            .calls_with_status("VirtualMachineScaleSets_Update", 400),
        1
    );
}

#[tokio::test]
async fn vmss_patch_is_accepted_once_the_pool_exists() {
    let (_arm, c, ids) = setup().await;
    c.write_ok(
        http::Method::PUT,
        &api(&ids.lb, NET),
        Some(&lb_body(&ids, &["pool-a"])),
    )
    .await;
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let nics = model_with_ipconfig(
        &vmss.body,
        "egressgateway-a",
        Some(&ids.pool("pool-a")),
        None,
    );
    c.write_ok(
        http::Method::PATCH,
        &api(&ids.vmss, COMPUTE),
        Some(&network_patch(&nics)),
    )
    .await;
}

#[tokio::test]
async fn vmss_patch_naming_a_missing_prefix_is_refused() {
    let (_arm, c, ids) = setup().await;
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let missing = ids.net("publicIPPrefixes", "nope");
    let nics = model_with_ipconfig(&vmss.body, "egressgateway-a", None, Some(&missing));
    let r = c
        .patch(&api(&ids.vmss, COMPUTE), &network_patch(&nics))
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceReference"));
    assert!(r.message().contains("publicIPPrefixes/nope"));
}

#[tokio::test]
async fn instance_update_naming_a_missing_subnet_is_refused() {
    let (_arm, c, ids) = setup().await;
    let inst = format!("{}/virtualMachines/0", ids.vmss);
    let got = c.get(&api(&inst, COMPUTE)).await;
    let mut cfg = got.body["properties"]["networkProfileConfiguration"].clone();
    cfg["networkInterfaceConfigurations"][0]["properties"]["ipConfigurations"][0]["properties"]["subnet"]
        ["id"] = json!(ids.subnet.replace("/gateway", "/absent"));
    let r = c
        .put(
            &api(&inst, COMPUTE),
            &json!({"properties": {"networkProfileConfiguration": cfg}}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceReference"));
    assert!(r.message().contains("subnets/absent"));
}

#[tokio::test]
async fn nic_naming_a_missing_public_ip_or_pool_is_refused() {
    let (_arm, c, ids) = setup().await;
    let nic = ids.net("networkInterfaces", "nic1");
    let body = |extra: serde_json::Value| {
        let mut props = json!({"subnet": {"id": ids.subnet}});
        props
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"location": "westus", "properties": {"ipConfigurations": [{"name": "ipc", "properties": props}]}})
    };
    let r = c
        .put(
            &api(&nic, NET),
            &body(json!({"publicIPAddress": {"id": ids.net("publicIPAddresses", "ghost")}})),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceReference"));
    assert!(r.message().contains("publicIPAddresses/ghost"));
    let r = c
        .put(
            &api(&nic, NET),
            &body(json!({"loadBalancerBackendAddressPools": [{"id": ids.pool("ghost")}]})),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceReference"));
    let r = c.put(&api(&nic, NET), &body(json!({}))).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

#[tokio::test]
async fn lb_rule_must_reference_this_lbs_frontend_pool_and_probe() {
    let (_arm, c, ids) = setup().await;
    let mut body = lb_body(&ids, &["pool-a"]);
    body["properties"]["loadBalancingRules"][0]["properties"]["probe"]["id"] =
        json!(ids.probe("nope"));
    let r = c.put(&api(&ids.lb, NET), &body).await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceReference"));
    assert!(r.message().contains("probes/nope"));

    let mut body = lb_body(&ids, &["pool-a"]);
    let other = ids.net("loadBalancers", "other-lb");
    body["properties"]["loadBalancingRules"][0]["properties"]["backendAddressPool"]["id"] =
        json!(format!("{other}/backendAddressPools/pool-a"));
    let r = c.put(&api(&ids.lb, NET), &body).await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceReference"));

    let mut body = lb_body(&ids, &["pool-a"]);
    body["properties"]["loadBalancingRules"][0]["properties"]["frontendIPConfiguration"]["id"] =
        json!(ids.frontend("fe9"));
    let r = c.put(&api(&ids.lb, NET), &body).await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceReference"));
}

#[tokio::test]
async fn lb_frontend_in_a_missing_subnet_is_refused() {
    let (_arm, c, ids) = setup().await;
    let mut body = lb_body(&ids, &[]);
    body["properties"]["frontendIPConfigurations"][0]["properties"]["subnet"]["id"] =
        json!(ids.subnet.replace("/gateway", "/nowhere"));
    let r = c.put(&api(&ids.lb, NET), &body).await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceReference"));
}

#[tokio::test]
async fn public_ip_from_a_missing_prefix_is_refused() {
    let (_arm, c, ids) = setup().await;
    let body = json!({"location": "westus", "properties": {"publicIPPrefix": {"id": ids.net("publicIPPrefixes", "ghost")}}});
    let r = c
        .put(&api(&ids.net("publicIPAddresses", "pip1"), NET), &body)
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceReference"));
}

#[tokio::test]
async fn writes_in_a_missing_resource_group_are_refused() {
    let (_arm, c, ids) = setup().await;
    let path = ids
        .net("publicIPPrefixes", "p")
        .replace("/resourceGroups/rg/", "/resourceGroups/nope/");
    let r = c
        .put(
            &api(&path, NET),
            &json!({"location": "westus", "properties": {"prefixLength": 31}}),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "ResourceGroupNotFound"));
}

#[tokio::test]
async fn ipconfigs_of_one_nic_configuration_must_share_a_virtual_network() {
    let (arm, c, ids) = setup().await;
    let far = arm
        .seed_vnet(common::RG, "far", "10.8.0.0/16", &[("s", "10.8.0.0/24")])
        .unwrap()
        .remove(0);
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let mut nics = model_with_ipconfig(&vmss.body, "egressgateway-a", None, None);
    nics[0]["properties"]["ipConfigurations"][1]["properties"]["subnet"]["id"] = json!(far);
    let r = c
        .patch(&api(&ids.vmss, COMPUTE), &network_patch(&nics))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "IpConfigurationsOnSameNicCannotUseDifferentVnets")
    );
}
