//! The fake's whole in-memory state: resources by kind, long-running operations, the fault
//! script, the request log and the counters. Everything is mutated under one mutex by
//! synchronous handlers, so every request sees and leaves a consistent cloud.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::arm_error::ArmError;
use crate::faults::FaultRule;
use crate::log::{Counts, RequestRecord};

/// Requests the log keeps by default: enough for any test, bounded for long benches.
pub const DEFAULT_REQUEST_LOG_LIMIT: usize = 100_000;

/// The two resource providers the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `Microsoft.Compute`.
    Compute,
    /// `Microsoft.Network`.
    Network,
}

impl Provider {
    /// The namespace as written in ids.
    pub fn namespace(self) -> &'static str {
        match self {
            Provider::Compute => "Microsoft.Compute",
            Provider::Network => "Microsoft.Network",
        }
    }
}

/// Where a resource is in its life cycle, as `provisioningState` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioning {
    /// The last operation succeeded.
    Succeeded,
    /// The last operation ended `Failed`.
    Failed,
    /// An operation is running on the resource until it settles.
    Busy {
        /// The operation's id.
        op: String,
        /// True while a DELETE runs (`Deleting`), false for writes (`Updating`).
        deleting: bool,
    },
}

/// One stored resource: its body as Azure would return it, minus the fields the fake computes at
/// read time (`etag`, `provisioningState` and the read-only back-references).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The body, keeping every field a client sent that the fake does not model.
    pub body: Value,
    /// The current `ETag` (changes on every write).
    pub etag: String,
    /// Life-cycle state.
    pub provisioning: Provisioning,
    /// Made by a seed (part of the baseline, not a leftover).
    pub seeded: bool,
}

impl Entry {
    /// A settled entry.
    pub fn new(body: Value, etag: String, seeded: bool) -> Self {
        Self {
            body,
            etag,
            provisioning: Provisioning::Succeeded,
            seeded,
        }
    }

    /// The `provisioningState` string.
    pub fn provisioning_state(&self) -> &'static str {
        match &self.provisioning {
            Provisioning::Succeeded => "Succeeded",
            Provisioning::Failed => "Failed",
            Provisioning::Busy { deleting: true, .. } => "Deleting",
            Provisioning::Busy {
                deleting: false, ..
            } => "Updating",
        }
    }

    /// The running operation's id, if any.
    pub fn busy_op(&self) -> Option<&str> {
        match &self.provisioning {
            Provisioning::Busy { op, .. } => Some(op),
            _ => None,
        }
    }
}

/// A public address given to a scale-set instance's ipConfig from a prefix.
#[derive(Debug, Clone)]
pub struct InstancePublicIp {
    /// The instance public IP's id (under the instance NIC's ipConfig).
    pub id: String,
    /// The address.
    pub address: std::net::Ipv4Addr,
    /// Key of the prefix it came from.
    pub prefix_key: String,
}

/// One scale-set instance.
#[derive(Debug, Clone)]
pub struct Instance {
    /// The instance body (with `properties.networkProfileConfiguration`).
    pub entry: Entry,
    /// The realized NICs, Azure-shaped, built from the instance's network configuration.
    pub nics: Vec<Value>,
    /// Public addresses by `"{nicConfig}/{ipConfig}"` (lower-case).
    pub public_ips: BTreeMap<String, InstancePublicIp>,
}

/// One scale set: its model and its instances.
#[derive(Debug, Clone)]
pub struct Vmss {
    /// The scale-set body (the model).
    pub entry: Entry,
    /// Instances by instance id.
    pub instances: BTreeMap<u32, Instance>,
}

/// What a long-running operation acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A top-level resource, by kind and key.
    Resource(Kind, String),
    /// A scale-set instance.
    Instance(String, u32),
}

/// The resource kinds the fake stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Microsoft.Network/virtualNetworks` (subnets live inside).
    VirtualNetwork,
    /// `Microsoft.Compute/virtualMachineScaleSets`.
    Vmss,
    /// `Microsoft.Compute/virtualMachines`.
    VirtualMachine,
    /// `Microsoft.Network/networkInterfaces`.
    Nic,
    /// `Microsoft.Network/loadBalancers`.
    LoadBalancer,
    /// `Microsoft.Network/publicIPPrefixes`.
    PublicIpPrefix,
    /// `Microsoft.Network/publicIPAddresses`.
    PublicIp,
}

/// A long-running operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Its id (the last segment of the status URLs).
    pub id: String,
    /// Which provider's status URL serves it.
    pub provider: Provider,
    /// When it settles.
    pub until: Instant,
    /// `None` to succeed, or the error it ends `Failed` with.
    pub failure: Option<ArmError>,
    /// Settled already.
    pub settled: bool,
    /// What it acts on.
    pub targets: Vec<Target>,
    /// The resource URL path, for the final `Location` result.
    pub resource_path: String,
    /// A DELETE (its final result has no body).
    pub deleting: bool,
    /// Its ARM operation name (for the request log).
    pub operation: String,
}

/// The whole fake cloud.
#[derive(Debug)]
pub struct State {
    /// Region written into new resources' status URLs and seeds.
    pub location: String,
    /// Resource groups that exist (keys).
    pub resource_groups: BTreeSet<String>,
    /// Virtual networks by key.
    pub vnets: BTreeMap<String, Entry>,
    /// Scale sets by key.
    pub vmss: BTreeMap<String, Vmss>,
    /// Virtual machines by key.
    pub vms: BTreeMap<String, Entry>,
    /// Standalone NICs by key.
    pub nics: BTreeMap<String, Entry>,
    /// Load balancers by key.
    pub lbs: BTreeMap<String, Entry>,
    /// Public IP prefixes by key.
    pub prefixes: BTreeMap<String, Entry>,
    /// Public IPs by key.
    pub pips: BTreeMap<String, Entry>,
    /// Long-running operations by id.
    pub operations: BTreeMap<String, Operation>,
    /// Operation latency for writes.
    pub latency: Duration,
    /// The fault script, in match order.
    pub faults: Vec<FaultRule>,
    /// The request log, oldest first, at most `request_log_limit` entries.
    pub requests: VecDeque<RequestRecord>,
    /// How many requests the log keeps (the oldest go first); counts are never dropped.
    pub request_log_limit: usize,
    /// Calls per operation.
    pub counts: Counts,
    /// ipConfigs made by seeds (keys of their ids), so leftovers can tell them from ours.
    pub seeded_ip_configs: BTreeSet<String>,
    /// A counter feeding `ETags`, GUIDs and operation ids.
    pub seq: u64,
    /// When the fake started (request log times are relative to it).
    pub started: Instant,
}

impl State {
    /// An empty cloud.
    pub fn new(location: String, latency: Duration) -> Self {
        Self {
            location,
            resource_groups: BTreeSet::new(),
            vnets: BTreeMap::new(),
            vmss: BTreeMap::new(),
            vms: BTreeMap::new(),
            nics: BTreeMap::new(),
            lbs: BTreeMap::new(),
            prefixes: BTreeMap::new(),
            pips: BTreeMap::new(),
            operations: BTreeMap::new(),
            latency,
            faults: Vec::new(),
            requests: VecDeque::new(),
            request_log_limit: DEFAULT_REQUEST_LOG_LIMIT,
            counts: Counts::default(),
            seeded_ip_configs: BTreeSet::new(),
            seq: 0,
            started: Instant::now(),
        }
    }

    /// Appends to the request log, dropping the oldest entry when it is full.
    pub fn log_request(&mut self, record: RequestRecord) {
        if self.request_log_limit == 0 {
            return;
        }
        while self.requests.len() >= self.request_log_limit {
            self.requests.pop_front();
        }
        self.requests.push_back(record);
    }

    /// A fresh pseudo-random GUID (deterministic per fake, unique within it).
    pub fn next_guid(&mut self) -> String {
        self.seq += 1;
        let a = splitmix(self.seq);
        let b = splitmix(a ^ 0x9e37_79b9_7f4a_7c15);
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0x0fff,
            0x8000 | ((b >> 48) & 0x3fff),
            b & 0xffff_ffff_ffff
        )
    }

    /// A fresh `ETag` in the provider's style: network resources use weak GUID tags
    /// (`W/"…"`), compute resources quoted counters (`"7"`), as in Azure's examples.
    pub fn next_etag(&mut self, provider: Provider) -> String {
        match provider {
            Provider::Network => format!("W/\"{}\"", self.next_guid()),
            Provider::Compute => {
                self.seq += 1;
                format!("\"{}\"", self.seq)
            }
        }
    }

    /// The stored entry a target names.
    pub fn entry_mut(&mut self, target: &Target) -> Option<&mut Entry> {
        match target {
            Target::Resource(kind, key) => match kind {
                Kind::Vmss => self.vmss.get_mut(key).map(|v| &mut v.entry),
                _ => self.map_mut(*kind)?.get_mut(key),
            },
            Target::Instance(vmss, id) => self
                .vmss
                .get_mut(vmss)
                .and_then(|v| v.instances.get_mut(id))
                .map(|i| &mut i.entry),
        }
    }

    /// The map holding entries of a kind; `None` for scale sets, which are held apart with
    /// their instances.
    pub fn map_mut(&mut self, kind: Kind) -> Option<&mut BTreeMap<String, Entry>> {
        match kind {
            Kind::VirtualNetwork => Some(&mut self.vnets),
            Kind::VirtualMachine => Some(&mut self.vms),
            Kind::Nic => Some(&mut self.nics),
            Kind::LoadBalancer => Some(&mut self.lbs),
            Kind::PublicIpPrefix => Some(&mut self.prefixes),
            Kind::PublicIp => Some(&mut self.pips),
            Kind::Vmss => None,
        }
    }

    /// Settles every operation whose time has come: resources become `Succeeded` (or
    /// `Failed`), and resources whose DELETE succeeded disappear.
    pub fn settle(&mut self, now: Instant) {
        let due: Vec<String> = self
            .operations
            .values()
            .filter(|op| !op.settled && op.until <= now)
            .map(|op| op.id.clone())
            .collect();
        for id in due {
            let Some(op) = self.operations.get_mut(&id) else {
                continue;
            };
            op.settled = true;
            let failed = op.failure.is_some();
            let deleting = op.deleting;
            let targets = op.targets.clone();
            for target in targets {
                let mine = self
                    .entry_mut(&target)
                    .is_some_and(|e| e.busy_op() == Some(id.as_str()));
                if !mine {
                    continue;
                }
                if deleting && !failed {
                    self.remove_target(&target);
                } else if let Some(entry) = self.entry_mut(&target) {
                    entry.provisioning = if failed {
                        Provisioning::Failed
                    } else {
                        Provisioning::Succeeded
                    };
                }
            }
        }
    }

    fn remove_target(&mut self, target: &Target) {
        match target {
            Target::Resource(Kind::Vmss, key) => {
                self.vmss.remove(key);
            }
            Target::Resource(kind, key) => {
                if let Some(map) = self.map_mut(*kind) {
                    map.remove(key);
                }
            }
            Target::Instance(vmss, id) => {
                if let Some(v) = self.vmss.get_mut(vmss) {
                    v.instances.remove(id);
                }
            }
        }
    }
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
