//! What Azure's network would do, read from the fake ARM's state
//! (`FakeArm::state()`, every resource as its GET answers): the internal
//! load balancers' rules with their backends and probes, and every NIC
//! ipConfig's private address with its node and public address.
//!
//! Pure: no IO, so the reading of Azure's JSON shapes is unit-tested apart
//! from the kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;

/// The transport protocol of a load-balancing rule the edge simulates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// `Udp`.
    Udp,
    /// `Tcp`.
    Tcp,
}

impl Protocol {
    /// The nftables keyword.
    pub fn nft(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        }
    }
}

/// How a probe checks a backend.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProbeCheck {
    /// An HTTP GET of this path; healthy on a 2xx answer.
    Http {
        /// The request path.
        path: String,
    },
    /// A TCP connect; healthy when it is accepted.
    Tcp,
}

/// A health probe as the load balancer stores it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProbeSpec {
    /// What the probe does.
    pub check: ProbeCheck,
    /// The port probed on each backend.
    pub port: u16,
    /// Time between probes.
    pub interval: Duration,
    /// Consecutive failures before a backend is taken out.
    pub threshold: u32,
}

/// One load-balancing rule the edge simulates (floating IP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbRule {
    /// `<load balancer>/<rule>`, for messages.
    pub name: String,
    /// The frontend's private address (it stays the destination).
    pub frontend: Ipv4Addr,
    /// The protocol.
    pub protocol: Protocol,
    /// The frontend port.
    pub port: u16,
    /// The nodes whose ipConfigs are in the rule's backend pool.
    pub backends: BTreeSet<String>,
    /// The rule's probe; without one every backend counts as healthy.
    pub probe: Option<ProbeSpec>,
}

/// One NIC ipConfig on a known node.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NodeAddress {
    /// The node (computer name) whose NIC holds it.
    pub node: String,
    /// The ipConfig's name.
    pub ip_config: String,
    /// Whether it is its NIC's primary ipConfig (the node's own address).
    pub primary: bool,
    /// The private address.
    pub private: Ipv4Addr,
    /// The public address translated 1:1 to and from it, if any.
    pub public: Option<Ipv4Addr>,
}

/// Everything the edge does, as read from one state snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Load-balancing rules, in state order.
    pub rules: Vec<LbRule>,
    /// ipConfig addresses of nodes in the node map.
    pub addresses: Vec<NodeAddress>,
    /// Computer names that own NICs but are not in the node map (not simulated).
    pub unmapped: BTreeSet<String>,
    /// Rules the edge does not simulate, with the reason (e.g. no floating IP).
    pub skipped: Vec<String>,
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    at(v, path).as_str()
}

fn list<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).as_array().map_or(&[], Vec::as_slice)
}

fn number(v: &Value, path: &[&str]) -> Option<u64> {
    at(v, path).as_u64()
}

/// ARM ids compare case-insensitively; the fake keeps the client's spelling.
fn id_key(id: &str) -> String {
    id.to_ascii_lowercase()
}

fn ref_key(v: &Value, path: &[&str]) -> Option<String> {
    text(v, path).map(id_key)
}

/// One ipConfig as the load balancer sees it.
struct IpConfig {
    node: String,
    name: String,
    primary: bool,
    private: Option<Ipv4Addr>,
    public: Option<Ipv4Addr>,
    pools: Vec<String>,
}

/// Reads a plan from `FakeArm::state()` for the nodes of `nodes`
/// (computer name to node address).
pub fn read(state: &Value, nodes: &BTreeMap<String, Ipv4Addr>) -> Plan {
    let public = public_addresses(state);
    let computers = computer_names(state);
    let mut plan = Plan::default();
    let mut ip_configs = Vec::new();
    for nic in all_nics(state) {
        let Some(node) =
            ref_key(nic, &["properties", "virtualMachine", "id"]).and_then(|vm| computers.get(&vm))
        else {
            continue; // a NIC on no machine carries no traffic
        };
        if !nodes.contains_key(node) {
            plan.unmapped.insert(node.clone());
            continue;
        }
        for ipc in list(nic, &["properties", "ipConfigurations"]) {
            ip_configs.push(IpConfig {
                node: node.clone(),
                name: text(ipc, &["name"]).unwrap_or_default().to_string(),
                primary: at(ipc, &["properties", "primary"]).as_bool() == Some(true),
                private: text(ipc, &["properties", "privateIPAddress"])
                    .and_then(|a| a.parse().ok()),
                public: ref_key(ipc, &["properties", "publicIPAddress", "id"])
                    .and_then(|id| public.get(&id).copied()),
                pools: list(ipc, &["properties", "loadBalancerBackendAddressPools"])
                    .iter()
                    .filter_map(|p| ref_key(p, &["id"]))
                    .collect(),
            });
        }
    }
    plan.addresses = ip_configs
        .iter()
        .filter_map(|c| {
            Some(NodeAddress {
                node: c.node.clone(),
                ip_config: c.name.clone(),
                primary: c.primary,
                private: c.private?,
                public: c.public,
            })
        })
        .collect();
    for lb in list(state, &["loadBalancers"]) {
        read_lb(lb, &ip_configs, &mut plan);
    }
    plan
}

/// Public IP resource id to its address: standalone public IPs and the ones
/// scale-set instances get from a prefix (listed beside their scale set).
pub(crate) fn public_addresses(state: &Value) -> BTreeMap<String, Ipv4Addr> {
    let standalone = list(state, &["publicIPAddresses"]).iter().filter_map(|p| {
        Some((
            ref_key(p, &["id"])?,
            text(p, &["properties", "ipAddress"])?.parse().ok()?,
        ))
    });
    let instance = list(state, &["virtualMachineScaleSets"])
        .iter()
        .flat_map(|s| list(s, &["publicIPAddresses"]))
        .filter_map(|p| Some((ref_key(p, &["id"])?, text(p, &["ipAddress"])?.parse().ok()?)));
    standalone.chain(instance).collect()
}

/// Machine id (VM or scale-set instance) to its computer name.
fn computer_names(state: &Value) -> BTreeMap<String, String> {
    let instances = list(state, &["virtualMachineScaleSets"])
        .iter()
        .flat_map(|s| list(s, &["instances"]));
    list(state, &["virtualMachines"])
        .iter()
        .chain(instances)
        .filter_map(|m| {
            Some((
                ref_key(m, &["id"])?,
                text(m, &["properties", "osProfile", "computerName"])?.to_string(),
            ))
        })
        .collect()
}

/// Standalone NICs and scale-set instances' NICs.
fn all_nics(state: &Value) -> impl Iterator<Item = &Value> {
    list(state, &["networkInterfaces"]).iter().chain(
        list(state, &["virtualMachineScaleSets"])
            .iter()
            .flat_map(|s| list(s, &["networkInterfaces"])),
    )
}

fn read_lb(lb: &Value, ip_configs: &[IpConfig], plan: &mut Plan) {
    let lb_name = text(lb, &["name"]).unwrap_or("?");
    let frontends: BTreeMap<String, Ipv4Addr> =
        list(lb, &["properties", "frontendIPConfigurations"])
            .iter()
            .filter_map(|f| {
                Some((
                    ref_key(f, &["id"])?,
                    text(f, &["properties", "privateIPAddress"])?.parse().ok()?,
                ))
            })
            .collect();
    let probes: BTreeMap<String, ProbeSpec> = list(lb, &["properties", "probes"])
        .iter()
        .filter_map(|p| Some((ref_key(p, &["id"])?, probe_spec(p)?)))
        .collect();
    for rule in list(lb, &["properties", "loadBalancingRules"]) {
        let name = format!("{lb_name}/{}", text(rule, &["name"]).unwrap_or("?"));
        match read_rule(rule, &frontends, &probes, ip_configs, name.clone()) {
            Ok(r) => plan.rules.push(r),
            Err(why) => plan.skipped.push(format!("{name}: {why}")),
        }
    }
}

fn read_rule(
    rule: &Value,
    frontends: &BTreeMap<String, Ipv4Addr>,
    probes: &BTreeMap<String, ProbeSpec>,
    ip_configs: &[IpConfig],
    name: String,
) -> Result<LbRule, &'static str> {
    let p = |k: &str| at(rule, &["properties", k]);
    if p("enableFloatingIP").as_bool() != Some(true) {
        // Without floating IP Azure rewrites the destination to the
        // backend's own address; nothing here needs that.
        return Err("no floating IP");
    }
    let protocol = match p("protocol").as_str() {
        Some(s) if s.eq_ignore_ascii_case("udp") => Protocol::Udp,
        Some(s) if s.eq_ignore_ascii_case("tcp") => Protocol::Tcp,
        _ => return Err("protocol is neither Udp nor Tcp"),
    };
    let frontend = ref_key(rule, &["properties", "frontendIPConfiguration", "id"])
        .and_then(|id| frontends.get(&id).copied())
        .ok_or("frontend has no private IPv4 address")?;
    let port = number(rule, &["properties", "frontendPort"])
        .and_then(|n| u16::try_from(n).ok())
        .ok_or("no frontend port")?;
    let pool = ref_key(rule, &["properties", "backendAddressPool", "id"]).ok_or("no pool")?;
    let probe = match ref_key(rule, &["properties", "probe", "id"]) {
        Some(id) => Some(probes.get(&id).cloned().ok_or("probe unreadable")?),
        None => None,
    };
    Ok(LbRule {
        name,
        frontend,
        protocol,
        port,
        backends: ip_configs
            .iter()
            .filter(|c| c.pools.contains(&pool))
            .map(|c| c.node.clone())
            .collect(),
        probe,
    })
}

/// A probe as stored: `protocol`, `port`, `requestPath`, `intervalInSeconds`
/// and the failure count, `probeThreshold` or the older `numberOfProbes`
/// (Azure's defaults where absent: 15 s, 1 failure).
fn probe_spec(p: &Value) -> Option<ProbeSpec> {
    let props = &p["properties"];
    let port = u16::try_from(props["port"].as_u64()?).ok()?;
    let check = match props["protocol"].as_str()? {
        s if s.eq_ignore_ascii_case("http") => ProbeCheck::Http {
            path: props["requestPath"].as_str().unwrap_or("/").to_string(),
        },
        // Tcp, and Https too: the simulator speaks no TLS, so an accepted
        // connection is as far as it checks.
        _ => ProbeCheck::Tcp,
    };
    let interval = props["intervalInSeconds"].as_u64().unwrap_or(15);
    let threshold = props["probeThreshold"]
        .as_u64()
        .or_else(|| props["numberOfProbes"].as_u64())
        .unwrap_or(1);
    Some(ProbeSpec {
        check,
        port,
        interval: Duration::from_secs(interval.max(1)),
        threshold: u32::try_from(threshold.max(1)).unwrap_or(u32::MAX),
    })
}
