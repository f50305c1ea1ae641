//! The fake's own admin API under `/_admin` (JSON, no auth): seed, state, request log, counts,
//! fault script, latency, leftovers.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use crate::exchange::{Reply, Req};
use crate::faults::FaultRule;
use crate::leftovers::Leftovers;
use crate::pipeline::{Shared, lock};
use crate::providers::{lb, nic, pip, prefix, vm, vmss, vmss_vm, vnet};
use crate::state::State;

fn bad(message: impl Into<String>) -> Reply {
    Reply {
        status: 400,
        headers: Vec::new(),
        body: Some(json!({"error": {"code": "InvalidAdminRequest", "message": message.into()}})),
    }
}

/// The latency payload of `PUT /_admin/latency`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LatencyBody {
    latency_ms: u64,
}

/// Either one fault rule or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FaultBody {
    Many(Vec<FaultRule>),
    One(FaultRule),
}

/// Answers one admin request.
pub fn handle(shared: &Shared, default_sub: &str, req: &Req) -> Reply {
    let path = req.path.trim_end_matches('/');
    let mut state = lock(shared);
    state.settle(Instant::now());
    match (req.method.as_str(), path) {
        ("POST", "/_admin/seed") => match crate::seed::parse(&req.body)
            .and_then(|s| crate::seed::apply(&mut state, default_sub, &s))
        {
            Ok(report) => Reply::ok(serde_json::to_value(report).unwrap_or(Value::Null)),
            Err(e) => bad(error_chain(&e)),
        },
        ("GET", "/_admin/state") => Reply::ok(snapshot(&state)),
        ("GET", "/_admin/requests") => {
            Reply::ok(serde_json::to_value(&state.requests).unwrap_or(Value::Null))
        }
        ("GET", "/_admin/counts") => {
            Reply::ok(serde_json::to_value(&state.counts).unwrap_or(Value::Null))
        }
        ("GET", "/_admin/leftovers") => {
            Reply::ok(serde_json::to_value(Leftovers::of(&state)).unwrap_or(Value::Null))
        }
        ("GET", "/_admin/faults") => {
            Reply::ok(serde_json::to_value(&state.faults).unwrap_or(Value::Null))
        }
        ("POST", "/_admin/faults") => match serde_json::from_slice::<FaultBody>(&req.body) {
            Ok(body) => {
                let rules = match body {
                    FaultBody::Many(rules) => rules,
                    FaultBody::One(rule) => vec![rule],
                };
                if let Some(msg) = rules.iter().find_map(invalid_rule) {
                    return bad(msg);
                }
                state.faults.extend(rules);
                Reply::ok(serde_json::to_value(&state.faults).unwrap_or(Value::Null))
            }
            Err(e) => bad(format!(
                "a fault rule (or a list of them) was expected: {e}"
            )),
        },
        ("DELETE", "/_admin/faults") => {
            state.faults.clear();
            Reply::empty(204)
        }
        ("PUT", "/_admin/latency") => match serde_json::from_slice::<LatencyBody>(&req.body) {
            Ok(b) => {
                state.latency = Duration::from_millis(b.latency_ms);
                Reply::ok(json!({"latencyMs": b.latency_ms}))
            }
            Err(e) => bad(format!(
                "{{\"latencyMs\": <milliseconds>}} was expected: {e}"
            )),
        },
        ("POST", "/_admin/reset-counts") => {
            state.counts = crate::log::Counts::default();
            state.requests.clear();
            Reply::empty(204)
        }
        _ => Reply {
            status: 404,
            headers: Vec::new(),
            body: Some(
                json!({"error": {"code": "NotFound", "message": format!("No admin endpoint {} {path}.", req.method)}}),
            ),
        },
    }
}

/// Why a fault rule cannot be used, if it cannot.
fn invalid_rule(rule: &FaultRule) -> Option<String> {
    if rule.operation.is_empty() {
        return Some("a fault rule needs an operation name (or \"*\")".into());
    }
    match &rule.fault {
        crate::faults::Fault::ServerError { status, .. } if !(500..=599).contains(status) => {
            Some(format!("serverError status {status} is not a 5xx status"))
        }
        crate::faults::Fault::Conflict { code }
        | crate::faults::Fault::FailOperation { code, .. }
            if code.is_empty() =>
        {
            Some("conflict and failOperation faults need an error code".into())
        }
        _ => None,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        cur = s.source();
    }
    msg
}

/// The whole state as JSON, each resource as its GET would answer.
pub fn snapshot(state: &State) -> Value {
    let keys = |m: &std::collections::BTreeMap<String, crate::state::Entry>| {
        m.keys().cloned().collect::<Vec<_>>()
    };
    let scale_sets: Vec<Value> = state
        .vmss
        .iter()
        .map(|(k, v)| {
            let instances: Vec<Value> = v.instances.keys().filter_map(|i| vmss_vm::view(state, k, *i)).collect();
            let nics: Vec<Value> = v.instances.keys().flat_map(|i| vmss_vm::nic_views(state, k, *i)).collect();
            let pips: Vec<Value> = v
                .instances
                .values()
                .flat_map(|i| i.public_ips.values())
                .map(|p| json!({"id": p.id, "ipAddress": p.address.to_string(), "publicIPPrefix": p.prefix_key}))
                .collect();
            json!({"scaleSet": vmss::view(state, k), "instances": instances, "networkInterfaces": nics, "publicIPAddresses": pips})
        })
        .collect();
    let operations: Vec<Value> = state
        .operations
        .values()
        .map(|o| {
            let status = match (o.settled, &o.failure) {
                (false, _) => "InProgress",
                (true, None) => "Succeeded",
                (true, Some(_)) => "Failed",
            };
            json!({"id": o.id, "operation": o.operation, "resource": o.resource_path, "status": status})
        })
        .collect();
    json!({
        "latencyMs": u64::try_from(state.latency.as_millis()).unwrap_or(u64::MAX),
        "resourceGroups": state.resource_groups,
        "virtualNetworks": keys(&state.vnets).iter().filter_map(|k| vnet::view(state, k)).collect::<Vec<_>>(),
        "virtualMachineScaleSets": scale_sets,
        "virtualMachines": keys(&state.vms).iter().filter_map(|k| vm::view(state, k)).collect::<Vec<_>>(),
        "networkInterfaces": keys(&state.nics).iter().filter_map(|k| nic::view(state, k)).collect::<Vec<_>>(),
        "loadBalancers": keys(&state.lbs).iter().filter_map(|k| lb::view(state, k)).collect::<Vec<_>>(),
        "publicIPPrefixes": keys(&state.prefixes).iter().filter_map(|k| prefix::view(state, k)).collect::<Vec<_>>(),
        "publicIPAddresses": keys(&state.pips).iter().filter_map(|k| pip::view(state, k)).collect::<Vec<_>>(),
        "operations": operations,
        "faults": state.faults,
    })
}
