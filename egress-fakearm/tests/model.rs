//! A scale-set model write changes no instance: instances stay stale
//! (`latestModelApplied: false`) until `manualupgrade` or their own update; their NICs are
//! rebuilt from their configuration. Fields the fake does not model survive a round trip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{COMPUTE, NET, VMSS_NET, api, lb_body, model_with_ipconfig, network_patch, setup};
use http::Method;
use serde_json::{Value, json};

async fn instance(c: &common::Client, ids: &common::Ids, i: u32) -> Value {
    c.get(&api(&format!("{}/virtualMachines/{i}", ids.vmss), COMPUTE))
        .await
        .body
}

fn ipconfig_names(nics: &Value, instance: u32) -> Vec<String> {
    nics["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| {
            n["id"]
                .as_str()
                .unwrap()
                .contains(&format!("/virtualMachines/{instance}/"))
        })
        .flat_map(|n| {
            n["properties"]["ipConfigurations"]
                .as_array()
                .unwrap()
                .clone()
        })
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_model_write_leaves_instances_stale_until_manualupgrade() {
    let (_arm, c, ids) = setup().await;
    c.write_ok(
        Method::PUT,
        &api(&ids.lb, NET),
        Some(&lb_body(&ids, &["pool-a"])),
    )
    .await;
    assert_eq!(
        instance(&c, &ids, 0).await["properties"]["latestModelApplied"],
        true
    );
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let nics = model_with_ipconfig(
        &vmss.body,
        "egressgateway-a",
        Some(&ids.pool("pool-a")),
        None,
    );
    c.write_ok(
        Method::PATCH,
        &api(&ids.vmss, COMPUTE),
        Some(&network_patch(&nics)),
    )
    .await;
    for i in 0..2 {
        assert_eq!(
            instance(&c, &ids, i).await["properties"]["latestModelApplied"],
            false
        );
    }
    let list = c
        .get(&api(&format!("{}/networkInterfaces", ids.vmss), VMSS_NET))
        .await
        .body;
    assert_eq!(ipconfig_names(&list, 0), ["ipconfig1"]);
    let lb = c.get(&api(&ids.lb, NET)).await;
    assert!(
        lb.body["properties"]["backendAddressPools"][0]["properties"]
            .get("backendIPConfigurations")
            .is_none()
    );

    c.write_ok(
        Method::POST,
        &api(&format!("{}/manualupgrade", ids.vmss), COMPUTE),
        Some(&json!({"instanceIds": ["0"]})),
    )
    .await;
    assert_eq!(
        instance(&c, &ids, 0).await["properties"]["latestModelApplied"],
        true
    );
    assert_eq!(
        instance(&c, &ids, 1).await["properties"]["latestModelApplied"],
        false
    );
    let list = c
        .get(&api(&format!("{}/networkInterfaces", ids.vmss), VMSS_NET))
        .await
        .body;
    assert_eq!(ipconfig_names(&list, 0), ["ipconfig1", "egressgateway-a"]);
    assert_eq!(ipconfig_names(&list, 1), ["ipconfig1"]);
    let lb = c.get(&api(&ids.lb, NET)).await;
    let members =
        lb.body["properties"]["backendAddressPools"][0]["properties"]["backendIPConfigurations"]
            .as_array()
            .unwrap()
            .clone();
    assert_eq!(members.len(), 1);
    assert!(members[0]["id"].as_str().unwrap().ends_with(
        "/virtualMachines/0/networkInterfaces/aks-gw-12345678-vmss/ipConfigurations/egressgateway-a"
    ));
    assert_eq!(
        lb.body["properties"]["backendAddressPools"][0]["properties"]["loadBalancingRules"][0]["id"],
        json!(format!("{}/loadBalancingRules/rule1", ids.lb))
    );
}

#[tokio::test]
async fn an_instance_update_applies_its_own_configuration() {
    let (_arm, c, ids) = setup().await;
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let nics = model_with_ipconfig(&vmss.body, "egressgateway-a", None, None);
    c.write_ok(
        Method::PATCH,
        &api(&ids.vmss, COMPUTE),
        Some(&network_patch(&nics)),
    )
    .await;
    let path = format!("{}/virtualMachines/1", ids.vmss);
    let body = json!({"properties": {"networkProfileConfiguration": {"networkInterfaceConfigurations": nics}}});
    let r = c
        .write_ok(Method::PUT, &api(&path, COMPUTE), Some(&body))
        .await;
    assert_eq!(r.body["properties"]["latestModelApplied"], true);
    assert_eq!(
        instance(&c, &ids, 0).await["properties"]["latestModelApplied"],
        false
    );
    let list = c
        .get(&api(&format!("{}/networkInterfaces", ids.vmss), VMSS_NET))
        .await
        .body;
    assert_eq!(ipconfig_names(&list, 1), ["ipconfig1", "egressgateway-a"]);
}

#[tokio::test]
async fn unknown_fields_survive_a_read_modify_write() {
    let (_arm, c, ids) = setup().await;
    let mut vmss = c.get(&api(&ids.vmss, COMPUTE)).await.body;
    assert!(
        vmss["identity"]["userAssignedIdentities"]
            .as_object()
            .unwrap()
            .len()
            == 1
    );
    assert_eq!(
        vmss["properties"]["virtualMachineProfile"]["storageProfile"]["dataDisks"],
        json!([])
    );
    vmss["properties"]["someFutureField"] = json!({"nested": [1, 2, {}]});
    c.write_ok(Method::PUT, &api(&ids.vmss, COMPUTE), Some(&vmss))
        .await;
    let after = c.get(&api(&ids.vmss, COMPUTE)).await.body;
    assert_eq!(
        after["properties"]["someFutureField"],
        json!({"nested": [1, 2, {}]})
    );
    assert_eq!(after["identity"], vmss["identity"]);
    assert_eq!(
        after["properties"]["virtualMachineProfile"]["extensionProfile"],
        vmss["properties"]["virtualMachineProfile"]["extensionProfile"]
    );
    assert_eq!(
        after["properties"]["uniqueId"],
        "11111111-2222-3333-4444-555555555555"
    );

    // A narrow PATCH keeps everything it does not name.
    let patch = json!({"properties": {"virtualMachineProfile": {"networkProfile": {"networkInterfaceConfigurations": after["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"]}}}});
    c.write_ok(Method::PATCH, &api(&ids.vmss, COMPUTE), Some(&patch))
        .await;
    let again = c.get(&api(&ids.vmss, COMPUTE)).await.body;
    assert_eq!(
        again["properties"]["virtualMachineProfile"]["storageProfile"],
        after["properties"]["virtualMachineProfile"]["storageProfile"]
    );
    assert_eq!(
        again["properties"]["someFutureField"],
        after["properties"]["someFutureField"]
    );

    let mut lb = lb_body(&ids, &["a"]);
    lb["properties"]["backendAddressPools"][0]["properties"] = json!({"customThing": true});
    lb["properties"]["extra"] = json!(["x"]);
    c.write_ok(Method::PUT, &api(&ids.lb, NET), Some(&lb)).await;
    let got = c.get(&api(&ids.lb, NET)).await.body;
    assert_eq!(got["properties"]["extra"], json!(["x"]));
    assert_eq!(
        got["properties"]["backendAddressPools"][0]["properties"]["customThing"],
        true
    );
}

#[tokio::test]
async fn manualupgrade_needs_known_instance_ids() {
    let (_arm, c, ids) = setup().await;
    let path = api(&format!("{}/manualupgrade", ids.vmss), COMPUTE);
    let r = c.post(&path, &json!({"instanceIds": ["9"]})).await;
    assert_eq!((r.status, r.code()), (400, "InvalidParameter"));
    let r = c.post(&path, &json!({})).await;
    assert_eq!((r.status, r.code()), (400, "InvalidParameter"));
}

#[tokio::test]
async fn a_model_needs_one_primary_ipconfig_and_unique_names() {
    let (_arm, c, ids) = setup().await;
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let mut nics = model_with_ipconfig(&vmss.body, "egressgateway-a", None, None);
    nics[0]["properties"]["ipConfigurations"][1]["properties"]["primary"] = json!(true);
    let r = c
        .patch(&api(&ids.vmss, COMPUTE), &network_patch(&nics))
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidParameter"));
    let mut nics = model_with_ipconfig(&vmss.body, "ipconfig1", None, None);
    nics[0]["properties"]["ipConfigurations"][1]["name"] = json!("IPCONFIG1");
    let r = c
        .patch(&api(&ids.vmss, COMPUTE), &network_patch(&nics))
        .await;
    assert_eq!((r.status, r.code()), (400, "DuplicateResourceName"));
}
