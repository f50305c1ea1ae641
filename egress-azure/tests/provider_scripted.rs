//! The `CloudProvider`'s read-modify-write of a scale set over HTTP, against
//! scripted answers built from the fixtures: what it reads, exactly what it
//! sends back, and the choice of one upgrade call for the instances.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    clippy::match_same_arms,
    clippy::needless_pass_by_value,
    clippy::format_push_string
)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use egress_azure::client::op;
use egress_azure::{ArmClient, ArmCloud, ArmCredential, ClientSettings, Placement};
use egress_core::model::PoolSelector;
use egress_core::traits::{CloudProvider, InstanceUpdate, PoolKind};
use egress_core::vmss::{IpConfigDemand, plan_vmss};
use serde_json::{Value, json};
use support::scripted::{Response, Scripted};

const VMSS: &str = include_str!("fixtures/vmss_aks_gateway.json");
const VM: &str = include_str!("fixtures/vmss_vm_instance.json");
const RG: &str = "MC_demo_demo_westeurope";
const NAME: &str = "aks-gwpool-31415926-vmss";
const PREFIX: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/MC_demo_demo_westeurope/providers/Microsoft.Network/publicIPPrefixes/egressgateway-new1";

fn nic_configs(v: &Value) -> Value {
    v["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"]
        .clone()
}

#[tokio::test]
async fn a_vmss_write_sends_only_nic_configurations_with_their_unknown_fields() {
    let vmss: Arc<Mutex<Value>> = Arc::new(Mutex::new(serde_json::from_str(VMSS).unwrap()));
    // The instance runs the current model's network profile.
    let mut vm: Value = serde_json::from_str(VM).unwrap();
    vm["properties"]["networkProfileConfiguration"]["networkInterfaceConfigurations"] =
        nic_configs(&vmss.lock().unwrap());
    let state = vmss.clone();
    let server = Scripted::start(move |req, _| {
        let t = req.target.split('?').next().unwrap().to_string();
        let mut v = state.lock().unwrap();
        match req.method.as_str() {
            "GET" if t.ends_with("/virtualMachines") => Response::json(200, json!({"value": [vm.clone()]})),
            "GET" if t.ends_with("/networkInterfaces") => Response::json(200, json!({"value": [{
                "name": NAME,
                "id": format!("/subscriptions/s/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachineScaleSets/{NAME}/virtualMachines/0/networkInterfaces/{NAME}"),
                "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {"primary": true, "privateIPAddress": "10.224.0.4"}}]}
            }]})),
            "GET" if t.ends_with(NAME) => {
                let etag = v["etag"].as_str().unwrap().to_string();
                Response::json(200, v.clone()).header("etag", &etag)
            }
            "PATCH" => {
                assert_eq!(req.header("if-match"), Some("\"7\""));
                let body: Value = serde_json::from_str(&req.body).unwrap();
                v["properties"]["virtualMachineProfile"]["networkProfile"]["networkInterfaceConfigurations"] =
                    nic_configs(&body);
                v["etag"] = json!("\"8\"");
                Response::json(200, v.clone()).header("etag", "\"8\"")
            }
            "POST" => Response::json(200, json!({})),
            _ => Response::json(400, json!({"error": {"code": "Unexpected", "message": t}})),
        }
    })
    .await;
    let mut settings = ClientSettings::new(&server.base, "00000000-0000-0000-0000-000000000001");
    settings.poll_interval = Duration::from_millis(5);
    let client = ArmClient::new(settings, ArmCredential::static_token("t")).unwrap();
    let cloud = ArmCloud::new(
        client,
        Placement {
            location: "westeurope".into(),
            resource_group: RG.into(),
            lb_resource_group: RG.into(),
            lb_name: "kubeegressgateway-ilb".into(),
        },
    );
    let pool = cloud
        .get_pool(&PoolSelector::Vmss {
            resource_group: RG.into(),
            name: NAME.into(),
            prefix_len: 0,
        })
        .await
        .unwrap();
    assert_eq!(pool.uid, "5b4e0c5e-1c2f-4e5a-9d7e-0123456789ab");
    assert_eq!(pool.prefix_len_tag, Some(30));
    let PoolKind::Vmss {
        model,
        etag,
        instances,
        ..
    } = &pool.kind
    else {
        panic!("a VMSS pool");
    };
    assert_eq!(etag.as_deref(), Some("\"7\""));
    assert_eq!(instances[0].computer_name, "aks-gwpool-31415926-vmss000000");
    assert_eq!(
        instances[0].nics[0].ip_configs[0].private_ip,
        Some("10.224.0.4".parse().unwrap())
    );
    // Core's plan: drop the old configuration, add a new one.
    let demands = [IpConfigDemand::want(
        "egressgateway-new1".into(),
        Some(PREFIX.into()),
    )];
    let plan = plan_vmss(NAME, model, instances, &demands, &pool.uid).unwrap();
    let nics = plan.model.unwrap();
    cloud
        .put_vmss_model(RG, NAME, &nics, etag.as_deref())
        .await
        .unwrap();

    let patch = server
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .unwrap();
    let body: Value = serde_json::from_str(&patch.body).unwrap();
    let props = body["properties"].as_object().unwrap();
    assert_eq!(props.len(), 1, "only the virtual machine profile");
    assert_eq!(
        body["properties"]["virtualMachineProfile"]["networkProfile"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["networkInterfaceConfigurations"]
    );
    assert!(body.get("identity").is_none() && body.get("sku").is_none());
    let nic = &nic_configs(&body)[0]["properties"];
    for kept in [
        "auxiliaryMode",
        "enableAcceleratedNetworking",
        "networkSecurityGroup",
        "disableTcpStateTracking",
    ] {
        assert!(nic.get(kept).is_some(), "{kept} kept");
    }
    assert_eq!(nic["dnsSettings"]["dnsServers"], json!([]));
    let primary = &nic["ipConfigurations"][0];
    assert_eq!(
        primary["properties"]["applicationSecurityGroups"],
        json!([])
    );
    let pools: Vec<&str> = primary["properties"]["loadBalancerBackendAddressPools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(pools.len(), 2, "AKS's pool kept, ours added: {pools:?}");
    assert!(pools[1].ends_with(
        "/loadBalancers/kubeegressgateway-ilb/backendAddressPools/5b4e0c5e-1c2f-4e5a-9d7e-0123456789ab"
    ));
    let names: Vec<&str> = nic["ipConfigurations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ipconfig1", "egressgateway-new1"]);
    assert_eq!(
        nic["ipConfigurations"][1]["properties"]["publicIPAddressConfiguration"]["properties"]["publicIPPrefix"]
            ["id"],
        PREFIX
    );

    // Every instance gets exactly the model and ran the latest model: one
    // upgrade call instead of a PUT per instance.
    let updates: Vec<InstanceUpdate> = plan_vmss(NAME, model, instances, &demands, &pool.uid)
        .unwrap()
        .instances
        .into_iter()
        .map(|(id, nics)| InstanceUpdate {
            id,
            nics,
            etag: Some("\"3\"".into()),
        })
        .collect();
    assert_eq!(updates.len(), 1);
    cloud
        .update_vmss_instances(RG, NAME, &updates)
        .await
        .unwrap();
    let m = cloud.client().metrics().snapshot();
    assert_eq!(m[op::VMSS_UPDATE_INSTANCES].calls, 1);
    assert!(!m.contains_key(op::VMSS_VM_UPDATE), "no instance PUT");
    let post = server
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&post.body).unwrap(),
        json!({"instanceIds": ["0"]})
    );
}
