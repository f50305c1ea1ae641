//! Objects in use cannot be removed: a backend pool still referenced, a load balancer still
//! referenced, a prefix with addresses or public IPs, an attached public IP. And a public IP
//! serves one ipConfig only.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{
    COMPUTE, Client, Ids, NET, RG, api, lb_body, model_with_ipconfig, network_patch, setup,
};
use egress_fakearm::{FakeArm, VmPoolSeed};
use http::Method;
use serde_json::{Value, json};

async fn add_model_ipconfig(c: &Client, ids: &Ids, pool: Option<&str>, prefix: Option<&str>) {
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let nics = model_with_ipconfig(&vmss.body, "egressgateway-a", pool, prefix);
    c.write_ok(
        Method::PATCH,
        &api(&ids.vmss, COMPUTE),
        Some(&network_patch(&nics)),
    )
    .await;
}

async fn clear_model_ipconfig(c: &Client, ids: &Ids) {
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let mut nics = vmss.body["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"].clone();
    nics[0]["properties"]["ipConfigurations"]
        .as_array_mut()
        .unwrap()
        .retain(|i| i["name"] != "egressgateway-a");
    c.write_ok(
        Method::PATCH,
        &api(&ids.vmss, COMPUTE),
        Some(&network_patch(&nics)),
    )
    .await;
}

async fn upgrade(c: &Client, ids: &Ids) {
    let path = format!("{}/manualupgrade", ids.vmss);
    c.write_ok(
        Method::POST,
        &api(&path, COMPUTE),
        Some(&json!({"instanceIds": ["0", "1"]})),
    )
    .await;
}

/// A VM pool NIC (seeded), with an extra ipConfig added by GET-modify-PUT.
fn vm_pool_nic(arm: &FakeArm, ids: &Ids, name: &str) -> String {
    let pool = arm
        .seed_vm_pool(VmPoolSeed {
            resource_group: RG.into(),
            pool: name.into(),
            vms: 1,
            subnet: ids.subnet.clone(),
            ..VmPoolSeed::default()
        })
        .unwrap();
    pool.nics[0].clone()
}

async fn put_nic_extra(c: &Client, nic: &str, extra: Value) -> common::Resp {
    let mut body = c.get(&api(nic, NET)).await.body;
    let subnet = body["properties"]["ipConfigurations"][0]["properties"]["subnet"].clone();
    let mut props = json!({"primary": false, "subnet": subnet});
    props
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body["properties"]["ipConfigurations"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "egress", "properties": props}));
    c.put(&api(nic, NET), &body).await
}

#[tokio::test]
async fn lb_put_dropping_a_pool_the_vmss_model_references_is_refused() {
    let (_arm, c, ids) = setup().await;
    c.write_ok(
        Method::PUT,
        &api(&ids.lb, NET),
        Some(&lb_body(&ids, &["pool-a"])),
    )
    .await;
    add_model_ipconfig(&c, &ids, Some(&ids.pool("pool-a")), None).await;
    let r = c.put(&api(&ids.lb, NET), &lb_body(&ids, &[])).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "LoadBalancerBackendAddressPoolInUse")
    );
    assert!(
        r.message().contains(common::VMSS),
        "names the scale set: {}",
        r.message()
    );
    // Instances never took the model, so removing it from the model frees the pool.
    clear_model_ipconfig(&c, &ids).await;
    c.write_ok(Method::PUT, &api(&ids.lb, NET), Some(&lb_body(&ids, &[])))
        .await;
}

#[tokio::test]
async fn lb_put_dropping_a_pool_an_instance_still_references_is_refused() {
    let (_arm, c, ids) = setup().await;
    c.write_ok(
        Method::PUT,
        &api(&ids.lb, NET),
        Some(&lb_body(&ids, &["pool-a"])),
    )
    .await;
    add_model_ipconfig(&c, &ids, Some(&ids.pool("pool-a")), None).await;
    upgrade(&c, &ids).await;
    clear_model_ipconfig(&c, &ids).await;
    let r = c.put(&api(&ids.lb, NET), &lb_body(&ids, &[])).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "LoadBalancerBackendAddressPoolInUse")
    );
    assert!(
        r.message()
            .contains("/virtualMachines/0/networkInterfaces/"),
        "names the instance ipConfig: {}",
        r.message()
    );
    upgrade(&c, &ids).await;
    c.write_ok(Method::PUT, &api(&ids.lb, NET), Some(&lb_body(&ids, &[])))
        .await;
}

#[tokio::test]
async fn lb_put_dropping_a_pool_a_nic_references_is_refused() {
    let (arm, c, ids) = setup().await;
    c.write_ok(
        Method::PUT,
        &api(&ids.lb, NET),
        Some(&lb_body(&ids, &["pool-a"])),
    )
    .await;
    let nic = vm_pool_nic(&arm, &ids, "vmpool");
    let r = put_nic_extra(
        &c,
        &nic,
        json!({"loadBalancerBackendAddressPools": [{"id": ids.pool("pool-a")}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = c.put(&api(&ids.lb, NET), &lb_body(&ids, &[])).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "LoadBalancerBackendAddressPoolInUse")
    );
    assert!(
        r.message()
            .contains(&format!("{nic}/ipConfigurations/egress")),
        "{}",
        r.message()
    );
}

#[tokio::test]
async fn deleting_a_load_balancer_in_use_is_refused_until_nothing_references_it() {
    let (_arm, c, ids) = setup().await;
    c.write_ok(
        Method::PUT,
        &api(&ids.lb, NET),
        Some(&lb_body(&ids, &["pool-a"])),
    )
    .await;
    add_model_ipconfig(&c, &ids, Some(&ids.pool("pool-a")), None).await;
    let r = c.delete(&api(&ids.lb, NET)).await;
    assert_eq!((r.status, r.code()), (400, "LoadBalancerInUse"));
    assert_eq!(c.get(&api(&ids.lb, NET)).await.status, 200);
    clear_model_ipconfig(&c, &ids).await;
    let r = c.write_ok(Method::DELETE, &api(&ids.lb, NET), None).await;
    assert_eq!(r.status, 202);
    let gone = c.get(&api(&ids.lb, NET)).await;
    assert_eq!((gone.status, gone.code()), (404, "ResourceNotFound"));
    assert_eq!(
        c.delete(&api(&ids.lb, NET)).await.status,
        204,
        "deleting what is gone is 204"
    );
}

#[tokio::test]
async fn deleting_a_prefix_with_public_ips_is_refused() {
    let (_arm, c, ids) = setup().await;
    let pip = ids.net("publicIPAddresses", "pip1");
    c.write_ok(
        Method::PUT,
        &api(&pip, NET),
        Some(&json!({"location": "westus", "properties": {"publicIPPrefix": {"id": ids.prefix}}})),
    )
    .await;
    let prefix = c.get(&api(&ids.prefix, NET)).await;
    assert_eq!(
        prefix.body["properties"]["publicIPAddresses"],
        json!([{"id": pip}])
    );
    let r = c.delete(&api(&ids.prefix, NET)).await;
    assert_eq!((r.status, r.code()), (400, "PublicIpPrefixInUse"));
    assert!(r.message().contains("pip1"));
    c.write_ok(Method::DELETE, &api(&pip, NET), None).await;
    c.write_ok(Method::DELETE, &api(&ids.prefix, NET), None)
        .await;
    assert_eq!(c.get(&api(&ids.prefix, NET)).await.status, 404);
}

#[tokio::test]
async fn deleting_a_prefix_with_instance_addresses_is_refused() {
    let (_arm, c, ids) = setup().await;
    add_model_ipconfig(&c, &ids, None, Some(&ids.prefix)).await;
    let r = c.delete(&api(&ids.prefix, NET)).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "PublicIpPrefixInUse"),
        "the model names it"
    );
    upgrade(&c, &ids).await;
    let prefix = c.get(&api(&ids.prefix, NET)).await;
    assert_eq!(
        prefix.body["properties"]["publicIPAddresses"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "one address per instance"
    );
    clear_model_ipconfig(&c, &ids).await;
    let r = c.delete(&api(&ids.prefix, NET)).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "PublicIpPrefixInUse"),
        "the instances still hold addresses"
    );
    assert!(
        r.message().contains("/virtualMachines/0/"),
        "{}",
        r.message()
    );
    upgrade(&c, &ids).await;
    c.write_ok(Method::DELETE, &api(&ids.prefix, NET), None)
        .await;
}

#[tokio::test]
async fn deleting_an_attached_public_ip_is_refused() {
    let (arm, c, ids) = setup().await;
    let pip = ids.net("publicIPAddresses", "pip1");
    c.write_ok(
        Method::PUT,
        &api(&pip, NET),
        Some(&json!({"location": "westus", "properties": {"publicIPPrefix": {"id": ids.prefix}}})),
    )
    .await;
    let nic = vm_pool_nic(&arm, &ids, "vmpool");
    let r = put_nic_extra(&c, &nic, json!({"publicIPAddress": {"id": pip}})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let got = c.get(&api(&pip, NET)).await;
    assert_eq!(
        got.body["properties"]["ipConfiguration"]["id"],
        json!(format!("{nic}/ipConfigurations/egress"))
    );
    let r = c.delete(&api(&pip, NET)).await;
    assert_eq!((r.status, r.code()), (400, "PublicIPAddressInUse"));
}

#[tokio::test]
async fn one_public_ip_cannot_serve_two_ip_configs() {
    let (arm, c, ids) = setup().await;
    let pip = ids.net("publicIPAddresses", "pip1");
    c.write_ok(
        Method::PUT,
        &api(&pip, NET),
        Some(&json!({"location": "westus", "properties": {"publicIPPrefix": {"id": ids.prefix}}})),
    )
    .await;
    let nic1 = vm_pool_nic(&arm, &ids, "pool1");
    let nic2 = vm_pool_nic(&arm, &ids, "pool2");
    assert_eq!(
        put_nic_extra(&c, &nic1, json!({"publicIPAddress": {"id": pip}}))
            .await
            .status,
        200
    );
    let r = put_nic_extra(&c, &nic2, json!({"publicIPAddress": {"id": pip}})).await;
    assert_eq!((r.status, r.code()), (400, "PublicIPAddressInUse"));
    assert!(
        r.message().contains(&nic1),
        "names the current user: {}",
        r.message()
    );

    // Twice on one NIC is refused too.
    let mut body = c.get(&api(&nic2, NET)).await.body;
    let subnet = body["properties"]["ipConfigurations"][0]["properties"]["subnet"].clone();
    let pip2 = ids.net("publicIPAddresses", "pip2");
    c.write_ok(
        Method::PUT,
        &api(&pip2, NET),
        Some(&json!({"location": "westus"})),
    )
    .await;
    for name in ["a", "b"] {
        body["properties"]["ipConfigurations"].as_array_mut().unwrap().push(
            json!({"name": name, "properties": {"subnet": subnet, "publicIPAddress": {"id": pip2}}}),
        );
    }
    let r = c.put(&api(&nic2, NET), &body).await;
    assert_eq!((r.status, r.code()), (400, "PublicIPAddressInUse"));
}
