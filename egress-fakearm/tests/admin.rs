//! The admin API under `/_admin`: seed, state, request log, counts, faults, latency, leftovers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{COMPUTE, Client, NET, api, lb_body};
use egress_fakearm::{FakeArm, FakeArmOptions};
use http::Method;
use serde_json::{Value, json};

fn seed_json() -> Value {
    serde_json::from_str(include_str!("../seed.example.json")).unwrap()
}

async fn started() -> (FakeArm, Client) {
    let arm = FakeArm::start(FakeArmOptions::default()).await.unwrap();
    let c = Client::new(&arm);
    (arm, c)
}

#[tokio::test]
async fn seeding_over_http_creates_the_cloud_and_state_shows_it() {
    let (arm, c) = started().await;
    let r = c.post("/_admin/seed", &seed_json()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["vmssPools"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["vmPools"][0]["nics"].as_array().unwrap().len(), 2);
    let state = c.get("/_admin/state").await.body;
    assert_eq!(
        state["virtualMachineScaleSets"][0]["instances"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(state["virtualMachines"].as_array().unwrap().len(), 2);
    assert_eq!(state["networkInterfaces"].as_array().unwrap().len(), 2);
    assert_eq!(
        state["publicIPPrefixes"][0]["properties"]["prefixLength"],
        30
    );
    let vmss = &state["virtualMachineScaleSets"][0]["scaleSet"];
    assert_eq!(vmss["tags"]["aks-managed-poolName"], "gwpool");
    assert!(vmss["properties"]["uniqueId"].as_str().unwrap().len() == 36);
    assert_eq!(state, arm.state());
    // The seeded objects answer on their ARM paths.
    let id = vmss["id"].as_str().unwrap();
    assert_eq!(
        c.get(&api(id, COMPUTE)).await.body["name"],
        "aks-gwpool-12345678-vmss"
    );
    let list = c.get(&api(&format!("/subscriptions/{}/resourceGroups/egress-demo/providers/Microsoft.Compute/virtualMachines", arm.subscription()), COMPUTE)).await;
    assert_eq!(
        list.body["value"][0]["tags"]["aks-managed-poolName"],
        "gwvms"
    );
    assert!(arm.leftovers().is_empty(), "{:?}", arm.leftovers());
}

#[tokio::test]
async fn a_bad_seed_is_refused_naming_the_problem() {
    let (_arm, c) = started().await;
    let mut seed = seed_json();
    seed["vmssPools"][0]["subnet"] = json!("aks-vnet/missing");
    let r = c.post("/_admin/seed", &seed).await;
    assert_eq!((r.status, r.code()), (400, "InvalidAdminRequest"));
    assert!(r.message().contains("subnets/missing"), "{}", r.message());
    let r = c.post("/_admin/seed", &json!({"vmssPool": []})).await;
    assert_eq!(r.status, 400);
    assert!(r.message().contains("vmssPool"), "{}", r.message());
}

#[tokio::test]
async fn requests_counts_and_reset() {
    let (_arm, c) = started().await;
    c.post("/_admin/seed", &seed_json()).await;
    let rg =
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/egress-demo/providers";
    let prefix = format!("{rg}/Microsoft.Network/publicIPPrefixes/byo-prefix");
    c.get(&api(&prefix, NET)).await;
    c.get(&api(&prefix, NET)).await;
    c.put(
        &api(&format!("{rg}/Microsoft.Network/publicIPPrefixes/m"), NET),
        &json!({"location": "westus", "properties": {"prefixLength": 31}}),
    )
    .await;
    c.get(&prefix).await;
    let log = c.get("/_admin/requests").await.body;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 4, "admin calls are not logged");
    assert_eq!(log[2]["operation"], "PublicIPPrefixes_CreateOrUpdate");
    assert_eq!(log[2]["apiVersion"], NET);
    assert_eq!(log[2]["body"]["properties"]["prefixLength"], 31);
    assert_eq!(log[3]["errorCode"], "MissingApiVersionParameter");
    let counts = c.get("/_admin/counts").await.body;
    assert_eq!(counts["reads"], 3);
    assert_eq!(counts["writes"], 1);
    assert_eq!(counts["operations"]["PublicIPPrefixes_Get"]["calls"], 3);
    assert_eq!(
        counts["operations"]["PublicIPPrefixes_Get"]["statuses"]["400"],
        1
    );
    assert_eq!(
        counts["operations"]["PublicIPPrefixes_CreateOrUpdate"]["kind"],
        "write"
    );
    assert_eq!(c.post("/_admin/reset-counts", &json!({})).await.status, 204);
    assert_eq!(c.get("/_admin/counts").await.body["reads"], 0);
    assert_eq!(c.get("/_admin/requests").await.body, json!([]));
}

#[tokio::test]
async fn faults_and_latency_over_http() {
    let (arm, c) = started().await;
    c.post("/_admin/seed", &seed_json()).await;
    let rule = json!({"operation": "PublicIPPrefixes_Get", "times": 1, "fault": {"kind": "throttle", "retryAfterSeconds": 7}});
    assert_eq!(c.post("/_admin/faults", &rule).await.status, 200);
    let more = json!([{"operation": "*", "pathContains": "nothing-matches", "fault": {"kind": "serverError", "status": 502}}]);
    let all = c.post("/_admin/faults", &more).await.body;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let prefix = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/egress-demo/providers/Microsoft.Network/publicIPPrefixes/byo-prefix";
    let r = c.get(&api(prefix, NET)).await;
    assert_eq!(
        (r.status, r.header("retry-after").as_deref()),
        (429, Some("7"))
    );
    assert_eq!(
        c.get("/_admin/faults").await.body.as_array().unwrap().len(),
        1
    );
    assert_eq!(c.delete("/_admin/faults").await.status, 204);
    assert_eq!(c.get("/_admin/faults").await.body, json!([]));
    let bad = c
        .post(
            "/_admin/faults",
            &json!({"operation": "x", "fault": {"kind": "explode"}}),
        )
        .await;
    assert_eq!(bad.status, 400);
    let bad = c
        .post(
            "/_admin/faults",
            &json!({"operation": "x", "fault": {"kind": "serverError", "status": 404}}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.message().contains("404"), "{}", bad.message());

    assert_eq!(
        c.put("/_admin/latency", &json!({"latencyMs": 250}))
            .await
            .status,
        200
    );
    assert_eq!(arm.state()["latencyMs"], 250);
    let r = c
        .put(
            &api(prefix, NET),
            &json!({"location": "westus", "properties": {"prefixLength": 30}}),
        )
        .await;
    assert_eq!(
        c.get(&r.header("azure-asyncoperation").unwrap()).await.body["status"],
        "InProgress"
    );
    assert_eq!(
        c.put("/_admin/latency", &json!({"latency": "2s"}))
            .await
            .status,
        400
    );
    assert_eq!(c.get("/_admin/nothing").await.status, 404);
}

#[tokio::test]
async fn leftovers_list_what_a_controller_made_until_it_is_removed() {
    let (arm, c, ids) = common::setup().await;
    assert!(arm.leftovers().is_empty());
    c.write_ok(
        Method::PUT,
        &api(&ids.lb, NET),
        Some(&lb_body(&ids, &["pool-a"])),
    )
    .await;
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let original = vmss.body["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"].clone();
    let nics = common::model_with_ipconfig(
        &vmss.body,
        "egressgateway-a",
        Some(&ids.pool("pool-a")),
        Some(&ids.prefix),
    );
    c.write_ok(
        Method::PATCH,
        &api(&ids.vmss, COMPUTE),
        Some(&common::network_patch(&nics)),
    )
    .await;
    c.write_ok(
        Method::POST,
        &api(&format!("{}/manualupgrade", ids.vmss), COMPUTE),
        Some(&json!({"instanceIds": ["0", "1"]})),
    )
    .await;
    let left = c.get("/_admin/leftovers").await.body;
    assert_eq!(left["loadBalancers"].as_array().unwrap().len(), 1);
    assert_eq!(
        left["ipConfigurations"].as_array().unwrap().len(),
        3,
        "model + two instances: {left}"
    );
    assert_eq!(left["backendPoolReferences"].as_array().unwrap().len(), 3);
    assert_eq!(left["instancePublicIps"].as_array().unwrap().len(), 2);

    c.write_ok(
        Method::PATCH,
        &api(&ids.vmss, COMPUTE),
        Some(&common::network_patch(&original)),
    )
    .await;
    c.write_ok(
        Method::POST,
        &api(&format!("{}/manualupgrade", ids.vmss), COMPUTE),
        Some(&json!({"instanceIds": ["0", "1"]})),
    )
    .await;
    c.write_ok(Method::DELETE, &api(&ids.lb, NET), None).await;
    assert!(arm.leftovers().is_empty(), "{:?}", arm.leftovers());
}

#[tokio::test]
async fn the_request_log_keeps_the_newest_entries_but_counts_keep_all() {
    let arm = FakeArm::start(FakeArmOptions {
        request_log_limit: 3,
        ..FakeArmOptions::default()
    })
    .await
    .unwrap();
    arm.seed_prefix("rg", "p", 31).unwrap();
    let c = Client::new(&arm);
    let path = format!(
        "/subscriptions/{}/resourceGroups/rg/providers/Microsoft.Network/publicIPPrefixes/p",
        arm.subscription()
    );
    for _ in 0..5 {
        c.get(&api(&path, NET)).await;
    }
    c.get(&path).await;
    let log = arm.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(log[2].status, 400, "the newest entry is last");
    assert_eq!(arm.counts().calls("PublicIPPrefixes_Get"), 6);
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let arm = FakeArm::start(FakeArmOptions::default()).await.unwrap();
    let addr = arm.local_addr();
    assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
    drop(arm);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        tokio::task::yield_now().await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still listening after drop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
