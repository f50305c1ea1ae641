//! Addresses: private ones from the subnet's `addressPrefix`, public ones from prefixes in the
//! documentation ranges; a prefix of length L holds 2^(32-L) addresses and then refuses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::Ipv4Addr;

use common::{COMPUTE, NET, VMSS_NET, api, model_with_ipconfig, network_patch, setup};
use http::Method;
use ipnet::Ipv4Net;
use serde_json::{Value, json};

fn ipcs(nics: &Value) -> Vec<Value> {
    nics["value"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| {
            n["properties"]["ipConfigurations"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect()
}

#[tokio::test]
async fn instance_ipconfigs_get_private_addresses_from_the_subnet_and_public_ones_from_the_prefix()
{
    let (arm, c, ids) = setup().await;
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let nics = model_with_ipconfig(&vmss.body, "egressgateway-a", None, Some(&ids.prefix));
    c.write_ok(
        Method::PATCH,
        &api(&ids.vmss, COMPUTE),
        Some(&network_patch(&nics)),
    )
    .await;
    let before = c
        .get(&api(&format!("{}/networkInterfaces", ids.vmss), VMSS_NET))
        .await;
    c.write_ok(
        Method::POST,
        &api(&format!("{}/manualupgrade", ids.vmss), COMPUTE),
        Some(&json!({"instanceIds": ["0", "1"]})),
    )
    .await;
    let after = c
        .get(&api(&format!("{}/networkInterfaces", ids.vmss), VMSS_NET))
        .await;

    let subnet: Ipv4Net = "10.0.1.0/24".parse().unwrap();
    let all = ipcs(&after.body);
    assert_eq!(all.len(), 4, "two ipConfigs on each of two instances");
    let mut seen = std::collections::BTreeSet::new();
    for ipc in &all {
        let addr: Ipv4Addr = ipc["properties"]["privateIPAddress"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            subnet.contains(&addr) && addr.octets()[3] >= 4,
            "{addr} outside the subnet's usable range"
        );
        assert!(seen.insert(addr), "{addr} handed out twice");
    }
    // The primary ipConfigs keep their addresses across the upgrade.
    for ipc in ipcs(&before.body) {
        let same = all.iter().find(|i| i["id"] == ipc["id"]).unwrap();
        assert_eq!(
            same["properties"]["privateIPAddress"],
            ipc["properties"]["privateIPAddress"]
        );
    }
    // Secondary ipConfigs carry an instance public IP from the prefix.
    let prefix: Ipv4Net = ids.prefix_cidr.parse().unwrap();
    assert!(
        ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]
            .iter()
            .any(|r| r.parse::<Ipv4Net>().unwrap().contains(&prefix))
    );
    let state = arm.state();
    let pips = state["virtualMachineScaleSets"][0]["publicIPAddresses"]
        .as_array()
        .unwrap();
    assert_eq!(pips.len(), 2);
    for p in pips {
        let a: Ipv4Addr = p["ipAddress"].as_str().unwrap().parse().unwrap();
        assert!(prefix.contains(&a), "{a} not from {prefix}");
    }
    let secondary = all.iter().find(|i| i["name"] == "egressgateway-a").unwrap();
    assert!(
        secondary["properties"]["publicIPAddress"]["id"]
            .as_str()
            .unwrap()
            .contains("/ipConfigurations/egressgateway-a/publicIPAddresses/")
    );
}

#[tokio::test]
async fn a_prefix_too_small_for_the_scale_set_is_refused_on_the_model_write() {
    let (_arm, c, ids) = setup().await;
    // A /31 holds two addresses; two ipConfigs on two instances need four.
    let small = ids.net("publicIPPrefixes", "small");
    c.write_ok(
        Method::PUT,
        &api(&small, NET),
        Some(&json!({"location": "westus", "properties": {"prefixLength": 31}})),
    )
    .await;
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let mut nics = model_with_ipconfig(&vmss.body, "egressgateway-a", None, Some(&small));
    let mut second = nics[0]["properties"]["ipConfigurations"][1].clone();
    second["name"] = json!("egressgateway-b");
    second["properties"]["publicIPAddressConfiguration"]["name"] = json!("egressgateway-b");
    nics[0]["properties"]["ipConfigurations"]
        .as_array_mut()
        .unwrap()
        .push(second);
    let r = c
        .patch(&api(&ids.vmss, COMPUTE), &network_patch(&nics))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "PublicIpPrefixOutOfIpAddressesForVMScaleSet")
    );
    // One ipConfig per instance fits exactly.
    let nics = model_with_ipconfig(&vmss.body, "egressgateway-a", None, Some(&small));
    c.write_ok(
        Method::PATCH,
        &api(&ids.vmss, COMPUTE),
        Some(&network_patch(&nics)),
    )
    .await;
}

#[tokio::test]
async fn an_exhausted_prefix_refuses_instance_updates_and_public_ips() {
    let (_arm, c, ids) = setup().await;
    // Fill the /30 BYO prefix with four public IPs; the fifth is refused.
    for i in 0..4 {
        let pip = ids.net("publicIPAddresses", &format!("pip{i}"));
        let r = c.write_ok(Method::PUT, &api(&pip, NET), Some(&json!({"location": "westus", "properties": {"publicIPPrefix": {"id": ids.prefix}}}))).await;
        let addr: Ipv4Addr = r.body["properties"]["ipAddress"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ids.prefix_cidr.parse::<Ipv4Net>().unwrap().contains(&addr));
    }
    let r = c
        .put(
            &api(&ids.net("publicIPAddresses", "pip4"), NET),
            &json!({"location": "westus", "properties": {"publicIPPrefix": {"id": ids.prefix}}}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "PublicIpPrefixOutOfIpAddresses")
    );

    // An instance asking for an address from it is refused as well.
    let inst = format!("{}/virtualMachines/0", ids.vmss);
    let got = c.get(&api(&inst, COMPUTE)).await;
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let mut fake_model = vmss.body.clone();
    fake_model["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"] =
        got.body["properties"]["networkProfileConfiguration"]["networkInterfaceConfigurations"]
            .clone();
    let nics = model_with_ipconfig(&fake_model, "egressgateway-a", None, Some(&ids.prefix));
    let r = c.put(&api(&inst, COMPUTE), &json!({"properties": {"networkProfileConfiguration": {"networkInterfaceConfigurations": nics}}})).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "PublicIpPrefixOutOfIpAddressesForVMScaleSet")
    );
}

#[tokio::test]
async fn prefixes_are_allocated_from_documentation_ranges_without_overlap() {
    let (_arm, c, ids) = setup().await;
    let mut nets: Vec<Ipv4Net> = vec![ids.prefix_cidr.parse().unwrap()];
    for (i, len) in [28, 31, 29].into_iter().enumerate() {
        let p = ids.net("publicIPPrefixes", &format!("managed{i}"));
        let r = c
            .write_ok(
                Method::PUT,
                &api(&p, NET),
                Some(&json!({"location": "westus", "properties": {"prefixLength": len}})),
            )
            .await;
        let net: Ipv4Net = r.body["properties"]["ipPrefix"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(net.prefix_len(), len);
        assert!(
            nets.iter()
                .all(|o| !o.contains(&net.network()) && !net.contains(&o.network())),
            "{net} overlaps {nets:?}"
        );
        nets.push(net);
    }
    let r = c
        .put(
            &api(&ids.net("publicIPPrefixes", "big"), NET),
            &json!({"location": "westus", "properties": {"prefixLength": 20}}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidPublicIpPrefixLength"));
    let r = c
        .put(
            &api(&ids.net("publicIPPrefixes", "managed0"), NET),
            &json!({"location": "westus", "properties": {"prefixLength": 30}}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "PropertyChangeNotAllowed"));
}

#[tokio::test]
async fn nic_and_lb_frontend_addresses_come_from_the_subnet_and_static_ones_are_checked() {
    let (_arm, c, ids) = setup().await;
    let nic = ids.net("networkInterfaces", "nic1");
    let body =
        |ipc: Value| json!({"location": "westus", "properties": {"ipConfigurations": [ipc]}});
    let r = c
        .write_ok(
            Method::PUT,
            &api(&nic, NET),
            Some(&body(
                json!({"name": "a", "properties": {"subnet": {"id": ids.subnet}}}),
            )),
        )
        .await;
    let addr = r.body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(addr.starts_with("10.0.1."), "{addr}");
    // Re-PUT keeps the address.
    let again = c
        .write_ok(
            Method::PUT,
            &api(&nic, NET),
            Some(&body(
                json!({"name": "a", "properties": {"subnet": {"id": ids.subnet}}}),
            )),
        )
        .await;
    assert_eq!(
        again.body["properties"]["ipConfigurations"][0]["properties"]["privateIPAddress"],
        json!(addr)
    );
    // A static address already taken, or outside the subnet, is refused.
    let taken = json!({"name": "a", "properties": {"subnet": {"id": ids.subnet}, "privateIPAllocationMethod": "Static", "privateIPAddress": addr}});
    let r = c
        .put(
            &api(&ids.net("networkInterfaces", "nic2"), NET),
            &body(taken),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "PrivateIPAddressInUse"));
    let outside = json!({"name": "a", "properties": {"subnet": {"id": ids.subnet}, "privateIPAllocationMethod": "Static", "privateIPAddress": "10.0.2.10"}});
    let r = c
        .put(
            &api(&ids.net("networkInterfaces", "nic2"), NET),
            &body(outside),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "PrivateIPAddressNotInSubnet"));
}

#[tokio::test]
async fn swapping_ipconfigs_on_a_full_prefix_reuses_the_freed_addresses() {
    let (arm, c, ids) = setup().await;
    let small = ids.net("publicIPPrefixes", "small");
    c.write_ok(
        Method::PUT,
        &api(&small, NET),
        Some(&json!({"location": "westus", "properties": {"prefixLength": 31}})),
    )
    .await;
    let vmss = c.get(&api(&ids.vmss, COMPUTE)).await;
    let upgrade = api(&format!("{}/manualupgrade", ids.vmss), COMPUTE);
    let both = json!({"instanceIds": ["0", "1"]});
    let a = model_with_ipconfig(&vmss.body, "egressgateway-a", None, Some(&small));
    c.write_ok(
        Method::PATCH,
        &api(&ids.vmss, COMPUTE),
        Some(&network_patch(&a)),
    )
    .await;
    c.write_ok(Method::POST, &upgrade, Some(&both)).await;
    // The /31 is full; replacing ipConfig a by b in one write frees and reuses its addresses.
    let b = model_with_ipconfig(&vmss.body, "egressgateway-b", None, Some(&small));
    c.write_ok(
        Method::PATCH,
        &api(&ids.vmss, COMPUTE),
        Some(&network_patch(&b)),
    )
    .await;
    c.write_ok(Method::POST, &upgrade, Some(&both)).await;
    let state = arm.state();
    let pips = state["virtualMachineScaleSets"][0]["publicIPAddresses"]
        .as_array()
        .unwrap();
    assert_eq!(pips.len(), 2);
    assert!(
        pips.iter()
            .all(|p| p["id"].as_str().unwrap().contains("egressgateway-b"))
    );
}

#[tokio::test]
async fn replacing_an_ipconfig_on_a_full_subnet_reuses_its_address() {
    let (arm, c, ids) = setup().await;
    // A /29 has three usable addresses (.4 to .6).
    let tiny = arm
        .seed_vnet(common::RG, "tiny", "10.9.0.0/16", &[("s", "10.9.0.0/29")])
        .unwrap()
        .remove(0);
    let nic = ids.net("networkInterfaces", "nic1");
    let body = |names: &[&str]| {
        let ipcs: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(i, n)| json!({"name": n, "properties": {"primary": i == 0, "subnet": {"id": tiny}}}))
            .collect();
        json!({"location": "westus", "properties": {"ipConfigurations": ipcs}})
    };
    c.write_ok(Method::PUT, &api(&nic, NET), Some(&body(&["a", "b", "c"])))
        .await;
    let r = c
        .put(
            &api(&ids.net("networkInterfaces", "nic2"), NET),
            &body(&["x"]),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "SubnetIsFull"));
    let r = c
        .write_ok(Method::PUT, &api(&nic, NET), Some(&body(&["a", "b", "d"])))
        .await;
    assert_eq!(
        r.body["properties"]["ipConfigurations"][2]["properties"]["privateIPAddress"],
        "10.9.0.6"
    );
}
