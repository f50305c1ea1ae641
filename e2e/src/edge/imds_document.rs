//! The documents Azure's instance metadata service serves, built from the
//! fake ARM's state for one machine (a scale-set instance or a VM) found by
//! its computer name. Only the fields a node agent reads are filled in, with
//! IMDS's spellings (`privateIpAddress`, `tags` as `k:v;k:v`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::plan::public_addresses;

fn text<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_str()
        .unwrap_or_default()
}

fn list<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_array()
        .map_or(&[], Vec::as_slice)
}

fn same_id(a: &str, b: &str) -> bool {
    !a.is_empty() && a.eq_ignore_ascii_case(b)
}

/// The segment after `name` in an ARM id (`resourceGroups` → the group).
fn id_part<'a>(id: &'a str, name: &str) -> &'a str {
    let mut parts = id.split('/');
    while let Some(p) = parts.next() {
        if p.eq_ignore_ascii_case(name) {
            return parts.next().unwrap_or_default();
        }
    }
    ""
}

/// One machine, wherever it lives in the state.
struct Machine<'a> {
    body: &'a Value,
    /// The scale set, for an instance.
    scale_set: Option<&'a Value>,
    nics: Vec<&'a Value>,
}

fn find<'a>(state: &'a Value, computer_name: &str) -> Option<Machine<'a>> {
    let is_it = |m: &Value| text(m, &["properties", "osProfile", "computerName"]) == computer_name;
    for set in list(state, &["virtualMachineScaleSets"]) {
        if let Some(inst) = list(set, &["instances"]).iter().find(|m| is_it(m)) {
            let id = text(inst, &["id"]);
            let nics = list(set, &["networkInterfaces"])
                .iter()
                .filter(|n| same_id(text(n, &["properties", "virtualMachine", "id"]), id))
                .collect();
            return Some(Machine {
                body: inst,
                scale_set: Some(&set["scaleSet"]),
                nics,
            });
        }
    }
    let vm = list(state, &["virtualMachines"])
        .iter()
        .find(|m| is_it(m))?;
    let nics = list(vm, &["properties", "networkProfile", "networkInterfaces"])
        .iter()
        .filter_map(|r| {
            list(state, &["networkInterfaces"])
                .iter()
                .find(|n| same_id(text(n, &["id"]), text(r, &["id"])))
        })
        .collect();
    Some(Machine {
        body: vm,
        scale_set: None,
        nics,
    })
}

/// `/metadata/instance` for the machine named `computer_name`, or `None`
/// when the state has no such machine.
pub fn instance(state: &Value, computer_name: &str) -> Option<Value> {
    let m = find(state, computer_name)?;
    let id = text(m.body, &["id"]);
    // A scale-set instance carries its scale set's tags.
    let tags_of = m.scale_set.unwrap_or(m.body);
    let tags: BTreeMap<&str, &str> = tags_of["tags"]
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let compute = json!({
        "azEnvironment": "AzurePublicCloud",
        "location": text(m.body, &["location"]),
        "name": text(m.body, &["name"]),
        "osType": "Linux",
        "osProfile": {
            "adminUsername": "azureuser",
            "computerName": computer_name,
            "disablePasswordAuthentication": "true",
        },
        "resourceGroupName": id_part(id, "resourceGroups"),
        "resourceId": id,
        "subscriptionId": id_part(id, "subscriptions"),
        "tags": tags.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(";"),
        "tagsList": tags.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
        "vmId": text(m.body, &["properties", "vmId"]),
        "vmScaleSetName": m.scale_set.map(|s| text(s, &["name"])).unwrap_or_default(),
        "vmSize": m.scale_set.map_or_else(
            || text(m.body, &["properties", "hardwareProfile", "vmSize"]),
            |s| text(s, &["sku", "name"]),
        ),
    });
    let publics = public_addresses(state);
    let subnets = subnet_prefixes(state);
    let mut nics = m.nics;
    // The primary NIC is interface 0, its primary ipConfig address 0.
    nics.sort_by_key(|n| !n["properties"]["primary"].as_bool().unwrap_or(false));
    let interfaces: Vec<Value> = nics
        .iter()
        .map(|nic| interface(nic, &publics, &subnets))
        .collect();
    Some(json!({"compute": compute, "network": {"interface": interfaces}}))
}

fn interface(
    nic: &Value,
    publics: &BTreeMap<String, std::net::Ipv4Addr>,
    subnets: &BTreeMap<String, String>,
) -> Value {
    let mut ipcs: Vec<&Value> = list(nic, &["properties", "ipConfigurations"])
        .iter()
        .collect();
    ipcs.sort_by_key(|c| !c["properties"]["primary"].as_bool().unwrap_or(false));
    let addresses: Vec<Value> = ipcs
        .iter()
        .map(|c| {
            let public = publics
                .get(&text(c, &["properties", "publicIPAddress", "id"]).to_ascii_lowercase())
                .map(ToString::to_string)
                .unwrap_or_default();
            json!({
                "privateIpAddress": text(c, &["properties", "privateIPAddress"]),
                "publicIpAddress": public,
            })
        })
        .collect();
    // IMDS lists the subnet of the primary ipConfig as address and length.
    let subnet: Vec<Value> = ipcs
        .first()
        .and_then(|c| subnets.get(&text(c, &["properties", "subnet", "id"]).to_ascii_lowercase()))
        .and_then(|cidr| cidr.split_once('/'))
        .map(|(address, prefix)| json!({"address": address, "prefix": prefix}))
        .into_iter()
        .collect();
    json!({
        "ipv4": {"ipAddress": addresses, "subnet": subnet},
        "ipv6": {"ipAddress": []},
        "macAddress": text(nic, &["properties", "macAddress"]).replace('-', ""),
    })
}

/// Subnet id (lower-case) to its `addressPrefix`.
fn subnet_prefixes(state: &Value) -> BTreeMap<String, String> {
    list(state, &["virtualNetworks"])
        .iter()
        .flat_map(|v| list(v, &["properties", "subnets"]))
        .map(|s| {
            (
                text(s, &["id"]).to_ascii_lowercase(),
                text(s, &["properties", "addressPrefix"]).to_string(),
            )
        })
        .collect()
}

/// `/metadata/loadbalancer`: the internal load balancer is not listed there
/// (IMDS shows only a Standard public load balancer's addresses), so empty.
pub fn loadbalancer() -> Value {
    json!({"loadbalancer": {"publicIpAddresses": [], "inboundRules": [], "outboundRules": []}})
}
