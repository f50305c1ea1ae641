use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../tests/fixtures/", $name))
    };
}

/// Parses `text` as `T`, writes it back, and checks the JSON value is the same.
fn round_trip<T: DeserializeOwned + Serialize>(text: &str) -> T {
    let original: Value = serde_json::from_str(text).unwrap();
    let typed: T = serde_json::from_str(text).unwrap();
    let written = serde_json::to_value(&typed).unwrap();
    assert_eq!(written, original, "round trip changed the body");
    typed
}

#[test]
fn every_fixture_round_trips_unchanged() {
    let vmss: Vmss = round_trip(fixture!("vmss_aks_gateway.json"));
    assert_eq!(
        vmss.properties.as_ref().unwrap().unique_id.as_deref(),
        Some("5b4e0c5e-1c2f-4e5a-9d7e-0123456789ab")
    );
    assert_eq!(vmss.nic_configs().unwrap().len(), 1);
    let vm: VmssVm = round_trip(fixture!("vmss_vm_instance.json"));
    assert_eq!(vm.instance_id.as_deref(), Some("0"));
    let nic: NetworkInterface = round_trip(fixture!("nic_vm_pool.json"));
    assert_eq!(nic.ip_configs().len(), 2);
    let lb: LoadBalancer = round_trip(fixture!("lb_with_foreign_children.json"));
    assert_eq!(lb.etag.as_deref(), Some("W/\"e1\""));
    let prefix: PublicIpPrefix = round_trip(fixture!("public_ip_prefix.json"));
    assert_eq!(
        prefix.properties.unwrap().public_ip_addresses,
        Some(Vec::new()),
        "an empty list is read as empty, not absent"
    );
    let _: PublicIp = round_trip(fixture!("public_ip.json"));
    let _: VirtualMachine = round_trip(fixture!("vm_pool_vm.json"));
    let _: Subnet = round_trip(fixture!("subnet.json"));
}

#[test]
fn the_awkward_parts_survive_by_value() {
    let vmss: Vmss = serde_json::from_str(fixture!("vmss_aks_gateway.json")).unwrap();
    let out = serde_json::to_value(&vmss).unwrap();
    // User-assigned identities keyed by ARM ID, one of them an empty object.
    let uai = &out["identity"]["userAssignedIdentities"];
    assert_eq!(uai.as_object().unwrap().len(), 2);
    assert!(uai.as_object().unwrap().values().any(|v| v == &json!({})));
    // Extensions, with empty settings objects and lists.
    let ext = &out["properties"]["virtualMachineProfile"]["extensionProfile"]["extensions"];
    assert_eq!(ext[0]["properties"]["protectedSettings"], json!({}));
    assert_eq!(ext[0]["properties"]["provisionAfterExtensions"], json!([]));
    // Explicit nulls and empty lists in unmodelled places.
    assert_eq!(out["plan"], Value::Null);
    assert!(out.as_object().unwrap().contains_key("plan"));
    assert_eq!(out["zones"], json!([]));
    let nic = &out["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"]
        [0]["properties"];
    assert_eq!(nic["dnsSettings"]["dnsServers"], json!([]));
    assert_eq!(
        nic["ipConfigurations"][0]["properties"]["applicationSecurityGroups"],
        json!([])
    );
}

#[test]
fn absent_lists_stay_absent_and_empty_lists_stay_empty() {
    let absent: VmssIpConfigProperties = serde_json::from_value(json!({"primary": true})).unwrap();
    assert_eq!(absent.load_balancer_backend_address_pools, None);
    assert_eq!(
        serde_json::to_value(&absent).unwrap(),
        json!({"primary": true})
    );
    let empty: VmssIpConfigProperties =
        serde_json::from_value(json!({"loadBalancerBackendAddressPools": []})).unwrap();
    assert_eq!(empty.load_balancer_backend_address_pools, Some(vec![]));
    assert_eq!(
        serde_json::to_value(&empty).unwrap(),
        json!({"loadBalancerBackendAddressPools": []})
    );
}

#[test]
fn editing_a_modelled_field_keeps_its_unmodelled_siblings() {
    let mut vmss: Vmss = serde_json::from_str(fixture!("vmss_aks_gateway.json")).unwrap();
    let nic = &mut vmss
        .properties
        .as_mut()
        .unwrap()
        .virtual_machine_profile
        .as_mut()
        .unwrap()
        .network_profile
        .as_mut()
        .unwrap()
        .network_interface_configurations
        .as_mut()
        .unwrap()[0];
    let configs = nic
        .properties
        .as_mut()
        .unwrap()
        .ip_configurations
        .as_mut()
        .unwrap();
    configs.retain(|c| c.name == "ipconfig1");
    let out = serde_json::to_value(&vmss).unwrap();
    let nic = &out["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"]
        [0]["properties"];
    assert_eq!(nic["ipConfigurations"].as_array().unwrap().len(), 1);
    assert_eq!(nic["auxiliaryMode"], "None");
    assert_eq!(
        nic["ipConfigurations"][0]["properties"]["loadBalancerInboundNatPools"],
        json!([])
    );
}
