//! What is in the cloud beyond the seeds: the objects and references a controller made and
//! has not removed. A converged delete leaves this empty.

use serde::{Deserialize, Serialize};

use crate::ids::key;
use crate::json::str_at;
use crate::refs;
use crate::state::State;

/// Everything not seeded, by kind (ids).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Leftovers {
    /// Load balancers (none is seeded).
    pub load_balancers: Vec<String>,
    /// Public IP prefixes that were not seeded.
    pub public_ip_prefixes: Vec<String>,
    /// Public IPs (none is seeded).
    pub public_ips: Vec<String>,
    /// NICs that were not seeded.
    pub network_interfaces: Vec<String>,
    /// ipConfigs that were not seeded: on scale-set models, instances and NICs.
    pub ip_configurations: Vec<String>,
    /// Backend pool memberships, as `ipConfig -> pool`.
    pub backend_pool_references: Vec<String>,
    /// Public IP or prefix references on seeded ipConfigs, as `ipConfig -> target`.
    pub public_references: Vec<String>,
    /// Instance public addresses taken from prefixes, as `id (address)`.
    pub instance_public_ips: Vec<String>,
}

impl Leftovers {
    /// True when nothing is left.
    pub fn is_empty(&self) -> bool {
        self == &Leftovers::default()
    }

    /// Everything in `state` that a seed did not make.
    pub fn of(state: &State) -> Self {
        let id = |v: &serde_json::Value| str_at(v, &["id"]).unwrap_or_default().to_owned();
        let mut out = Leftovers {
            load_balancers: state.lbs.values().map(|e| id(&e.body)).collect(),
            public_ip_prefixes: state
                .prefixes
                .values()
                .filter(|e| !e.seeded)
                .map(|e| id(&e.body))
                .collect(),
            public_ips: state.pips.values().map(|e| id(&e.body)).collect(),
            network_interfaces: state
                .nics
                .values()
                .filter(|e| !e.seeded)
                .map(|e| id(&e.body))
                .collect(),
            ..Leftovers::default()
        };
        for r in refs::all(state) {
            let seeded = state.seeded_ip_configs.contains(&key(&r.id));
            if !seeded {
                out.ip_configurations.push(r.id.clone());
            }
            for pool in &r.backend_pools {
                out.backend_pool_references
                    .push(format!("{} -> {pool}", r.id));
            }
            if seeded {
                if let Some(p) = r.public_ip.as_ref().or(r.public_prefix.as_ref()) {
                    out.public_references.push(format!("{} -> {p}", r.id));
                } else if r.has_public_config {
                    out.public_references
                        .push(format!("{} -> public IP configuration", r.id));
                }
            }
        }
        for vmss in state.vmss.values() {
            for inst in vmss.instances.values() {
                out.instance_public_ips.extend(
                    inst.public_ips
                        .values()
                        .map(|p| format!("{} ({})", p.id, p.address)),
                );
            }
        }
        out
    }
}
