//! Every ARM call needs a bearer token and a supported `api-version`, checked per provider.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{COMPUTE, NET, VMSS_NET, api, setup};

#[tokio::test]
async fn a_missing_or_unsupported_api_version_is_refused_naming_it() {
    let (_arm, c, ids) = setup().await;
    let r = c.get(&ids.vmss).await;
    assert_eq!((r.status, r.code()), (400, "MissingApiVersionParameter"));
    let r = c.get(&api(&ids.vmss, NET)).await;
    assert_eq!((r.status, r.code()), (400, "NoRegisteredProviderFound"));
    assert!(
        r.message().contains(NET) && r.message().contains(COMPUTE),
        "{}",
        r.message()
    );
    let r = c.get(&api(&ids.prefix, COMPUTE)).await;
    assert_eq!((r.status, r.code()), (400, "NoRegisteredProviderFound"));
    let r = c.get(&api(&ids.prefix, "yesterday")).await;
    assert_eq!((r.status, r.code()), (400, "InvalidApiVersionParameter"));
    assert_eq!(c.get(&api(&ids.prefix, NET)).await.status, 200);
}

#[tokio::test]
async fn the_scale_set_nic_list_has_its_own_api_version() {
    let (_arm, c, ids) = setup().await;
    let nics = format!("{}/networkInterfaces", ids.vmss);
    let r = c.get(&api(&nics, COMPUTE)).await;
    assert_eq!((r.status, r.code()), (400, "NoRegisteredProviderFound"));
    assert!(r.message().contains(VMSS_NET));
    let r = c.get(&api(&nics, VMSS_NET)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["value"].as_array().unwrap().len(), 2);
    let one = format!(
        "{}/virtualMachines/1/networkInterfaces/{}",
        ids.vmss,
        common::VMSS
    );
    assert_eq!(c.get(&api(&one, VMSS_NET)).await.body["name"], common::VMSS);
}

#[tokio::test]
async fn calls_without_a_bearer_token_are_refused_and_never_logged_with_it() {
    let (arm, mut c, ids) = setup().await;
    let authed = c.clone();
    c.token = None;
    let r = c.get(&api(&ids.vmss, COMPUTE)).await;
    assert_eq!((r.status, r.code()), (401, "AuthenticationFailed"));
    c.token = Some(String::new());
    assert_eq!(c.get(&api(&ids.vmss, COMPUTE)).await.status, 401);
    let r = authed
        .send(http::Method::GET, &api(&ids.vmss, COMPUTE), None, &[])
        .await;
    assert_eq!(r.status, 200);
    let log = serde_json::to_string(&arm.requests()).unwrap();
    assert!(
        !log.contains("test-token") && !log.to_ascii_lowercase().contains("authorization"),
        "{log}"
    );
    assert_eq!(arm.requests().len(), 3);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_refused() {
    let (_arm, c, ids) = setup().await;
    let r = c.get(&api(&ids.net("routeTables", "rt"), NET)).await;
    assert_eq!((r.status, r.code()), (404, "InvalidResourceType"));
    let r = c
        .patch(&api(&ids.prefix, NET), &serde_json::json!({}))
        .await;
    assert_eq!((r.status, r.code()), (405, "MethodNotAllowed"));
    let r = c.get(&api(&ids.net("loadBalancers", "none"), NET)).await;
    assert_eq!((r.status, r.code()), (404, "ResourceNotFound"));
    let r = c
        .get(&api(&format!("{}/virtualMachines/7", ids.vmss), COMPUTE))
        .await;
    assert_eq!((r.status, r.code()), (404, "NotFound"));
}

#[tokio::test]
async fn bad_bodies_are_refused_with_a_clear_error() {
    let (_arm, c, ids) = setup().await;
    let r = c
        .send(http::Method::PUT, &api(&ids.lb, NET), None, &[])
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidRequestFormat"));
    let r = c.put(&api(&ids.lb, NET), &serde_json::json!([1])).await;
    assert_eq!((r.status, r.code()), (400, "InvalidRequestFormat"));
    let r = c
        .put(&api(&ids.lb, NET), &serde_json::json!({"properties": {}}))
        .await;
    assert_eq!((r.status, r.code()), (400, "LocationRequired"));
}
