//! Internal load-balancer planning.
//!
//! Given the observed ILB and every configuration per gateway pool, compute
//! the desired ILB: one frontend and one backend pool per gateway pool (named
//! after the pool's unique ID), and one UDP floating-IP rule plus one HTTP
//! probe on `/gw/<sgc uid>` per configuration (named after the LB
//! configuration's UID), as upstream names them.
//!
//! Ports come from `[6000, 7000)` per pool and are sticky: a rule that is still
//! valid keeps its port even if other configurations come and go. Otherwise the
//! lowest free port is taken. Planning is full-state and minimal: the ILB is
//! dedicated to the gateway, objects nobody asks for are removed, existing
//! objects keep their order, and when nothing differs no write is planned.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::names::{PORT_END, PORT_MIN, probe_path, same_name as eq};

/// Transport protocol of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// UDP, what WireGuard uses.
    Udp,
    /// TCP.
    Tcp,
    /// Anything else Azure reports.
    Other,
}

/// A frontend IP configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frontend {
    /// Name (the pool's unique ID).
    pub name: String,
    /// The private IPv4 address once Azure assigned it.
    pub private_ip: Option<IpAddr>,
    /// Subnet the address comes from (ARM ID).
    pub subnet_id: Option<String>,
}

/// A load-balancing rule; references are by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Name (the LB configuration's UID).
    pub name: String,
    /// Frontend name.
    pub frontend: String,
    /// Backend pool name.
    pub backend: String,
    /// Probe name.
    pub probe: String,
    /// Protocol.
    pub protocol: Protocol,
    /// Frontend port.
    pub frontend_port: u16,
    /// Backend port.
    pub backend_port: u16,
    /// Floating IP (direct server return).
    pub floating_ip: bool,
}

/// An HTTP health probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// Name (the LB configuration's UID).
    pub name: String,
    /// Port probed on each node.
    pub port: u16,
    /// Request path.
    pub path: String,
    /// Seconds between probes.
    pub interval_secs: u32,
    /// Failures before a node is taken out.
    pub threshold: u32,
}

/// The parts of an internal load balancer this system manages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadBalancer {
    /// The `ETag` when read: a write sends it as `If-Match`.
    pub etag: Option<String>,
    /// Backend pools (lower-case names) that ipConfigs still reference, as
    /// observed. Azure refuses to remove those; never planned.
    pub backends_in_use: BTreeSet<String>,
    /// Frontends.
    pub frontends: Vec<Frontend>,
    /// Backend pool names.
    pub backends: Vec<String>,
    /// Rules.
    pub rules: Vec<Rule>,
    /// Probes.
    pub probes: Vec<Probe>,
}

/// Probe settings shared by every rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Port of the gateway daemon's probe server.
    pub port: u16,
    /// Seconds between probes.
    pub interval_secs: u32,
    /// Failures before a node is taken out.
    pub threshold: u32,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            port: crate::names::DEFAULT_PROBE_PORT,
            interval_secs: 5,
            threshold: 1,
        }
    }
}

/// One configuration that needs a rule.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RuleDemand {
    /// UID of the LB configuration: names the rule and the probe.
    pub lb_uid: String,
    /// UID of the SGC: the probe path.
    pub sgc_uid: String,
}

/// One gateway pool and the configurations that target it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolDemand {
    /// The pool's unique ID: names its frontend and backend pool.
    pub pool_uid: String,
    /// Subnet for a new frontend's private IP (ARM ID).
    pub subnet_id: String,
    /// The configurations.
    pub rules: Vec<RuleDemand>,
}

/// What to do with the ILB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LbChange {
    /// Already as desired: no write.
    None,
    /// Create or update the ILB with this content.
    Put(LoadBalancer),
    /// Nothing is needed any more: delete the ILB.
    Delete,
}

/// The outcome of [`plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LbPlan {
    /// The write to make.
    pub change: LbChange,
    /// Port per LB configuration UID, for every configuration that got one.
    pub ports: BTreeMap<String, u16>,
    /// Per-pool failures: the configurations of these pools got no rule.
    pub errors: Vec<LbError>,
}

/// A pool the planner could not serve in full.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LbError {
    /// Every port of the pool's range is taken.
    #[error("gateway pool {pool_uid}: all {} ports in [{PORT_MIN}, {PORT_END}) are in use; configuration {lb_uid} gets no rule", PORT_END - PORT_MIN)]
    PortsExhausted {
        /// The pool.
        pool_uid: String,
        /// The configuration left without a port.
        lb_uid: String,
    },
    /// A frontend of the right name exists but is not a private IPv4 frontend.
    #[error(
        "frontend {name} exists but has no private IPv4 address; it is left as it is: remove it or fix it by hand"
    )]
    UnexpectedFrontend {
        /// The frontend's name.
        name: String,
        /// The pool it is named after; its configurations get no rule.
        pool_uid: String,
    },
}

fn desired_probe(d: &RuleDemand, settings: ProbeSettings) -> Probe {
    Probe {
        name: d.lb_uid.clone(),
        port: settings.port,
        path: probe_path(&d.sgc_uid),
        interval_secs: settings.interval_secs,
        threshold: settings.threshold,
    }
}

fn rule_shape_ok(rule: &Rule, pool: &str, lb_uid: &str) -> bool {
    eq(&rule.frontend, pool)
        && eq(&rule.backend, pool)
        && eq(&rule.probe, lb_uid)
        && rule.protocol == Protocol::Udp
        && rule.floating_ip
        && rule.frontend_port == rule.backend_port
        && (PORT_MIN..PORT_END).contains(&rule.frontend_port)
}

/// Plans the ILB for `pools` against what `observed` holds (`None`: no ILB):
/// everything nobody asks for goes, except what Azure would refuse to remove
/// (a backend pool that ipConfigs still reference, with its frontend) and a
/// pool's objects left alone because its frontend is not ours to fix.
pub fn plan(
    observed: Option<&LoadBalancer>,
    pools: &[PoolDemand],
    settings: ProbeSettings,
) -> LbPlan {
    plan_with(observed, pools, settings, false)
}

/// Like [`plan`], but removes nothing: what `pools` need is added or fixed
/// and every other observed object stays. Written before the pools' ipConfigs
/// so that they never reference a backend pool Azure does not have yet.
pub fn plan_additions(
    observed: Option<&LoadBalancer>,
    pools: &[PoolDemand],
    settings: ProbeSettings,
) -> LbPlan {
    plan_with(observed, pools, settings, true)
}

fn plan_with(
    observed: Option<&LoadBalancer>,
    pools: &[PoolDemand],
    settings: ProbeSettings,
    additive: bool,
) -> LbPlan {
    let empty = LoadBalancer::default();
    let current = observed.unwrap_or(&empty);
    let mut ports = BTreeMap::new();
    let mut errors = Vec::new();
    let mut want = LoadBalancer::default();
    // Pools whose frontend is not ours to fix (we only ever make private IPv4
    // frontends): their objects stay as observed, demanded or not.
    let mut frozen: BTreeSet<String> = current
        .frontends
        .iter()
        .filter(|f| f.private_ip.is_some_and(|ip| !ip.is_ipv4()))
        .map(|f| f.name.to_ascii_lowercase())
        .collect();
    // Azure names are case-insensitive; index the observed rules once.
    let observed_rules: BTreeMap<String, &Rule> = current
        .rules
        .iter()
        .map(|r| (r.name.to_ascii_lowercase(), r))
        .collect();

    // A pool without configurations needs no frontend, as upstream decides.
    for pool in pools.iter().filter(|p| !p.rules.is_empty()) {
        let frontend = match current
            .frontends
            .iter()
            .find(|f| eq(&f.name, &pool.pool_uid))
        {
            Some(f) if f.private_ip.is_none_or(|ip| ip.is_ipv4()) => f.clone(),
            Some(f) => {
                errors.push(LbError::UnexpectedFrontend {
                    name: f.name.clone(),
                    pool_uid: pool.pool_uid.clone(),
                });
                frozen.insert(pool.pool_uid.to_ascii_lowercase());
                continue;
            }
            None => Frontend {
                name: pool.pool_uid.clone(),
                private_ip: None,
                subnet_id: Some(pool.subnet_id.clone()),
            },
        };
        want.frontends.push(frontend);
        want.backends.push(pool.pool_uid.clone());

        plan_rules(
            current,
            &observed_rules,
            pool,
            settings,
            additive,
            &mut want,
            &mut ports,
            &mut errors,
        );
    }

    retain_observed(current, &mut want, additive, &frozen);
    let change = if want.frontends.is_empty() && want.backends.is_empty() && !additive {
        if observed.is_some() {
            LbChange::Delete
        } else {
            LbChange::None
        }
    } else {
        let mut ordered = keep_observed_order(current, want);
        ordered.etag.clone_from(&current.etag);
        if observed.is_some_and(|o| same(o, &ordered)) {
            LbChange::None
        } else {
            LbChange::Put(ordered)
        }
    };
    LbPlan {
        change,
        ports,
        errors,
    }
}

/// The rules and probes of one pool's configurations, with sticky ports.
#[allow(clippy::too_many_arguments)] // one planning step's inputs and outputs
fn plan_rules(
    current: &LoadBalancer,
    observed_rules: &BTreeMap<String, &Rule>,
    pool: &PoolDemand,
    settings: ProbeSettings,
    additive: bool,
    want: &mut LoadBalancer,
    ports: &mut BTreeMap<String, u16>,
    errors: &mut Vec<LbError>,
) {
    // Sticky ports: valid existing rules keep theirs, first come first
    // served by name if two somehow share one.
    let mut demands: Vec<&RuleDemand> = pool.rules.iter().collect();
    demands.sort();
    demands.dedup_by(|a, b| eq(&a.lb_uid, &b.lb_uid));
    let mut used = BTreeSet::new();
    if additive {
        // Rules that stay although nobody asks for them keep their ports.
        used.extend(
            current
                .rules
                .iter()
                .filter(|r| eq(&r.frontend, &pool.pool_uid))
                .filter(|r| !demands.iter().any(|d| eq(&d.lb_uid, &r.name)))
                .map(|r| r.frontend_port),
        );
    }
    let mut kept: BTreeMap<&str, u16> = BTreeMap::new();
    for d in &demands {
        let existing = observed_rules
            .get(&d.lb_uid.to_ascii_lowercase())
            .filter(|r| rule_shape_ok(r, &pool.pool_uid, &d.lb_uid));
        if let Some(r) = existing
            && used.insert(r.frontend_port)
        {
            kept.insert(d.lb_uid.as_str(), r.frontend_port);
        }
    }
    let mut next = PORT_MIN;
    for d in &demands {
        let port = if let Some(&p) = kept.get(d.lb_uid.as_str()) {
            p
        } else {
            while next < PORT_END && used.contains(&next) {
                next += 1;
            }
            if next >= PORT_END {
                errors.push(LbError::PortsExhausted {
                    pool_uid: pool.pool_uid.clone(),
                    lb_uid: d.lb_uid.clone(),
                });
                continue;
            }
            used.insert(next);
            next
        };
        ports.insert(d.lb_uid.clone(), port);
        want.rules.push(Rule {
            name: d.lb_uid.clone(),
            frontend: pool.pool_uid.clone(),
            backend: pool.pool_uid.clone(),
            probe: d.lb_uid.clone(),
            protocol: Protocol::Udp,
            frontend_port: port,
            backend_port: port,
            floating_ip: true,
        });
        want.probes.push(desired_probe(d, settings));
    }
}

/// Adds back the observed objects that must survive this plan: in additive
/// mode everything not replaced; otherwise frozen pools' objects, and backend
/// pools still in use with their frontends (Azure refuses to remove them, and
/// the ipConfigs that use them are removed first, by the pool writes).
fn retain_observed(
    current: &LoadBalancer,
    want: &mut LoadBalancer,
    additive: bool,
    frozen: &BTreeSet<String>,
) {
    let lower = |s: &str| s.to_ascii_lowercase();
    let pool_kept = |name: &str| {
        let n = lower(name);
        additive || frozen.contains(&n) || current.backends_in_use.contains(&n)
    };
    for f in &current.frontends {
        if pool_kept(&f.name) && !want.frontends.iter().any(|x| eq(&x.name, &f.name)) {
            want.frontends.push(f.clone());
        }
    }
    for b in &current.backends {
        if pool_kept(b) && !want.backends.iter().any(|x| eq(x, b)) {
            want.backends.push(b.clone());
        }
    }
    let mut kept_probes = BTreeSet::new();
    for r in &current.rules {
        let keep =
            additive || frozen.contains(&lower(&r.frontend)) || frozen.contains(&lower(&r.backend));
        if keep && !want.rules.iter().any(|x| eq(&x.name, &r.name)) {
            want.rules.push(r.clone());
            kept_probes.insert(lower(&r.probe));
        }
    }
    for p in &current.probes {
        let keep = additive || kept_probes.contains(&lower(&p.name));
        if keep && !want.probes.iter().any(|x| eq(&x.name, &p.name)) {
            want.probes.push(p.clone());
        }
    }
}

/// Puts surviving objects in their observed order, new ones after, so the
/// written body differs from the observed one only where it must.
fn keep_observed_order(current: &LoadBalancer, mut want: LoadBalancer) -> LoadBalancer {
    fn order<'a, T>(
        items: &mut [T],
        observed: impl Iterator<Item = &'a String>,
        name: impl Fn(&T) -> &str,
    ) {
        let position: BTreeMap<String, usize> = observed
            .enumerate()
            .map(|(i, o)| (o.to_ascii_lowercase(), i))
            .collect();
        items.sort_by_cached_key(|item| {
            position
                .get(&name(item).to_ascii_lowercase())
                .copied()
                .unwrap_or(usize::MAX)
        });
    }
    order(
        &mut want.frontends,
        current.frontends.iter().map(|x| &x.name),
        |x| &x.name,
    );
    order(&mut want.backends, current.backends.iter(), |x| x);
    order(
        &mut want.rules,
        current.rules.iter().map(|x| &x.name),
        |x| &x.name,
    );
    order(
        &mut want.probes,
        current.probes.iter().map(|x| &x.name),
        |x| &x.name,
    );
    want
}

/// Equal up to name case.
fn same(a: &LoadBalancer, b: &LoadBalancer) -> bool {
    let lower = |lb: &LoadBalancer| {
        let mut lb = lb.clone();
        lb.etag = None;
        lb.backends_in_use.clear();
        for f in &mut lb.frontends {
            f.name.make_ascii_lowercase();
            // The subnet of an existing frontend is not ours to change.
            f.subnet_id = None;
        }
        for b in &mut lb.backends {
            b.make_ascii_lowercase();
        }
        for r in &mut lb.rules {
            for s in [&mut r.name, &mut r.frontend, &mut r.backend, &mut r.probe] {
                s.make_ascii_lowercase();
            }
        }
        for p in &mut lb.probes {
            p.name.make_ascii_lowercase();
        }
        lb
    };
    lower(a) == lower(b)
}

#[cfg(test)]
mod tests;
