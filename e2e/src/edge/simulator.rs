//! [`Edge`]: the worker that keeps the control plane's namespace doing what
//! Azure's network would, re-reading the fake ARM every [`RESYNC`] and
//! whenever a backend's health changes or a caller asks.
//!
//! The worker is one thread that entered the control plane's namespace, so
//! the `ip` and `nft` it runs, the probe threads it starts and their sockets
//! all act there, whatever namespace the caller is in.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::mpsc::{self, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use egress_testkit::netns::Netns;

use super::command::{ip, nft, sysctl_get, sysctl_set};
use super::plan::{self, LbRule, Plan};
use super::probe::{HealthMap, Probers, Target, lock};
use super::{ArmState, EdgeError, ruleset};

/// How often the edge re-reads the fake ARM on its own.
pub const RESYNC: Duration = Duration::from_millis(200);

/// The routing table of ipConfig routes (`<private>/32 via <node>`, and
/// `<public>/32 via <node>`).
pub const ROUTES_TABLE: u32 = 3500;
/// Node `i` (in name order) has table `ROUTES_TABLE + 1 + i`, whose default
/// route goes via the node; load-balanced flows marked for it use it.
const NODE_TABLE_BASE: u32 = ROUTES_TABLE + 1;
/// Node `i` has packet mark `MARK_BASE + 1 + i`.
pub const MARK_BASE: u32 = 0x0ed6_0000;
/// `ip rule` priorities: marks first, then the ipConfig routes, both before
/// the main table.
const MARK_RULE_PRIORITY: &str = "3500";
const ROUTES_RULE_PRIORITY: &str = "3501";
/// Nodes the mark and table ranges leave room for.
pub const MAX_NODES: usize = 250;

enum Msg {
    Sync(SyncSender<Result<(), EdgeError>>),
    Wake,
    Stop,
}

/// Azure's edge, simulated in a control-plane namespace from the fake ARM's
/// state: the internal load balancers (5-tuple hash over healthy backends,
/// floating IP, HTTP probes), ipConfig routes and 1:1 public NAT. Everything
/// it set up is removed when it drops.
pub struct Edge {
    netns: String,
    tx: Sender<Msg>,
    worker: Option<JoinHandle<Result<(), egress_testkit::Error>>>,
    health: HealthMap,
    shared: Arc<Mutex<Shared>>,
}

/// What the worker publishes for readers.
#[derive(Default)]
struct Shared {
    plan: Option<Plan>,
    /// Probe health as the last pass applied it.
    applied_health: BTreeMap<Target, bool>,
    last_error: Option<String>,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge")
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

impl Edge {
    /// Starts simulating in `cp` (the nodes' default router) for `nodes`
    /// (computer name to the node's address on the shared link) and applies
    /// the first pass before returning.
    pub fn start(
        arm: Arc<dyn ArmState>,
        cp: &Netns,
        nodes: BTreeMap<String, Ipv4Addr>,
    ) -> Result<Edge, EdgeError> {
        if nodes.len() > MAX_NODES {
            return Err(EdgeError::TooManyNodes {
                count: nodes.len(),
                max: MAX_NODES,
            });
        }
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let health = HealthMap::default();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let worker = {
            let (health, shared, wake_tx) = (health.clone(), shared.clone(), tx.clone());
            cp.spawn(move || {
                let wake = Arc::new(move || {
                    let _ = wake_tx.send(Msg::Wake);
                });
                let mut w = Worker::new(arm, nodes, Probers::new(health, wake), shared);
                let started = w.setup().and_then(|()| w.pass());
                let ok = started.is_ok();
                let _ = ready_tx.send(started);
                if ok {
                    w.run(&rx);
                }
                w.teardown();
            })
        };
        let started = ready_rx.recv().map_err(|_| EdgeError::WorkerGone);
        let edge = Edge {
            netns: cp.name().to_string(),
            tx,
            worker: Some(worker),
            health,
            shared,
        };
        match started {
            Ok(Ok(())) => Ok(edge),
            // The worker tore down what it set up; dropping joins it.
            Ok(Err(e)) | Err(e) => match edge.join() {
                Err(netns) => Err(netns),
                Ok(()) => Err(e),
            },
        }
    }

    /// Re-reads the fake ARM and applies it now; returns the pass's error.
    pub fn sync(&self) -> Result<(), EdgeError> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        self.tx
            .send(Msg::Sync(reply_tx))
            .map_err(|_| EdgeError::WorkerGone)?;
        reply_rx.recv().map_err(|_| EdgeError::WorkerGone)?
    }

    /// Per backend node: true while every probe that targets it passes, as
    /// the last pass applied it. A probe result takes effect at the next
    /// pass (started at once by the change) and shows here once the kernel
    /// has it, so this never runs ahead of the traffic; it may trail it by
    /// the few milliseconds a pass takes to finish.
    pub fn health(&self) -> BTreeMap<String, bool> {
        let mut out = BTreeMap::new();
        for (target, up) in &lock(&self.shared).applied_health {
            let entry = out.entry(target.node.clone()).or_insert(true);
            *entry &= *up;
        }
        out
    }

    /// Per backend node and probe, as the probers see it this moment (may
    /// be ahead of what is applied).
    pub fn probe_health(&self) -> BTreeMap<Target, bool> {
        lock(&self.health).clone()
    }

    /// The plan of the last pass.
    pub fn plan(&self) -> Option<Plan> {
        lock(&self.shared).plan.clone()
    }

    /// The error of the last background pass, if it failed.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.shared).last_error.clone()
    }

    fn join(mut self) -> Result<(), EdgeError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), EdgeError> {
        let _ = self.tx.send(Msg::Stop);
        match self.worker.take().map(JoinHandle::join) {
            Some(Ok(Err(source))) => Err(EdgeError::Netns {
                name: self.netns.clone(),
                source,
            }),
            Some(Err(_)) => Err(EdgeError::WorkerGone),
            Some(Ok(Ok(()))) | None => Ok(()),
        }
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The worker's state: what it applied, so it changes only what changed and
/// removes exactly what it added.
struct Worker {
    arm: Arc<dyn ArmState>,
    nodes: BTreeMap<String, Ipv4Addr>,
    marks: BTreeMap<String, u32>,
    probers: Probers,
    shared: Arc<Mutex<Shared>>,
    applied_nft: Option<String>,
    applied_routes: BTreeMap<Ipv4Addr, Ipv4Addr>,
    /// `ip rule del` arguments of the rules it added.
    rules: Vec<Vec<String>>,
    /// Tables it filled.
    tables: Vec<u32>,
    /// Sysctls it changed, with their values before.
    sysctls: Vec<(String, String)>,
}

impl Worker {
    fn new(
        arm: Arc<dyn ArmState>,
        nodes: BTreeMap<String, Ipv4Addr>,
        probers: Probers,
        shared: Arc<Mutex<Shared>>,
    ) -> Self {
        let marks = nodes
            .keys()
            .zip(1u32..)
            .map(|(n, i)| (n.clone(), MARK_BASE + i))
            .collect();
        Self {
            arm,
            nodes,
            marks,
            probers,
            shared,
            applied_nft: None,
            applied_routes: BTreeMap::new(),
            rules: Vec::new(),
            tables: Vec::new(),
            sysctls: Vec::new(),
        }
    }

    /// Forwarding on and ICMP redirects off (a redirect would teach the
    /// sender a direct path to the gateway, bypassing the balancer), then one
    /// table and `fwmark` rule per node and the rule for ipConfig routes.
    fn setup(&mut self) -> Result<(), EdgeError> {
        self.set_sysctl("net/ipv4/ip_forward", "1")?;
        let interfaces = std::fs::read_dir("/proc/sys/net/ipv4/conf")
            .map_err(|source| EdgeError::Sysctl {
                path: "/proc/sys/net/ipv4/conf".into(),
                source,
            })?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect::<BTreeSet<_>>();
        // `all` and the interface's own value are OR-ed: both must be off;
        // `default` covers interfaces made later.
        for dev in &interfaces {
            self.set_sysctl(&format!("net/ipv4/conf/{dev}/send_redirects"), "0")?;
        }
        let nodes: Vec<Ipv4Addr> = self.nodes.values().copied().collect();
        for (i, addr) in (0u32..).zip(nodes) {
            // Same order as `marks`: node i has mark MARK_BASE + 1 + i.
            let table = NODE_TABLE_BASE + i;
            let mark = format!("{:#x}", MARK_BASE + 1 + i);
            self.tables.push(table);
            let table = table.to_string();
            ip(&[
                "route",
                "replace",
                "default",
                "via",
                &addr.to_string(),
                "table",
                &table,
            ])?;
            self.add_rule(&[
                "fwmark",
                &mark,
                "lookup",
                &table,
                "priority",
                MARK_RULE_PRIORITY,
            ])?;
        }
        self.tables.push(ROUTES_TABLE);
        self.add_rule(&[
            "lookup",
            &ROUTES_TABLE.to_string(),
            "priority",
            ROUTES_RULE_PRIORITY,
        ])
    }

    fn set_sysctl(&mut self, key: &str, value: &str) -> Result<(), EdgeError> {
        let before = sysctl_get(key)?;
        if before != value {
            sysctl_set(key, value)?;
            self.sysctls.push((key.to_string(), before));
        }
        Ok(())
    }

    fn add_rule(&mut self, spec: &[&str]) -> Result<(), EdgeError> {
        let mut args = vec!["rule", "add"];
        args.extend_from_slice(spec);
        ip(&args)?;
        self.rules
            .push(spec.iter().map(|s| (*s).to_string()).collect());
        Ok(())
    }

    fn run(&mut self, rx: &mpsc::Receiver<Msg>) {
        loop {
            match rx.recv_timeout(RESYNC) {
                Ok(Msg::Sync(reply)) => {
                    let result = self.pass();
                    let _ = reply.send(result);
                }
                Ok(Msg::Wake) | Err(RecvTimeoutError::Timeout) => {
                    let error = self.pass().err().map(|e| error_chain(&e));
                    lock(&self.shared).last_error = error;
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// One pass: read, probe what needs probing, apply what changed.
    fn pass(&mut self) -> Result<(), EdgeError> {
        let plan = plan::read(&self.arm.arm_state(), &self.nodes);
        let targets: BTreeSet<Target> = plan
            .rules
            .iter()
            .flat_map(|rule| self.targets(rule))
            .collect();
        self.probers.reconcile(&targets);
        // One snapshot of the probes serves the ruleset and what `health()`
        // publishes, so a reader never sees a health the kernel does not
        // apply yet.
        let probed = self.probers.snapshot();
        let healthy = |rule: &LbRule, node: &str| match (&rule.probe, self.nodes.get(node)) {
            (None, _) => true,
            (Some(probe), Some(addr)) => probed
                .get(&Target {
                    node: node.to_string(),
                    addr: *addr,
                    probe: probe.clone(),
                })
                .copied()
                .unwrap_or(false),
            (Some(_), None) => false,
        };
        let script = ruleset::render(&plan.rules, healthy, &self.marks, &plan.addresses);
        if self.applied_nft.as_deref() != Some(script.as_str()) {
            nft(&script)?;
            self.applied_nft = Some(script);
        }
        // A public address is routed to its node too: a host in this
        // namespace answering it must find a route before the output hook
        // translates the destination back to the private address.
        let routes: BTreeMap<Ipv4Addr, Ipv4Addr> = plan
            .addresses
            .iter()
            .filter_map(|a| Some((a, *self.nodes.get(&a.node)?)))
            .flat_map(|(a, via)| {
                std::iter::once((a.private, via)).chain(a.public.map(|p| (p, via)))
            })
            .collect();
        self.apply_routes(&routes)?;
        let mut shared = lock(&self.shared);
        shared.plan = Some(plan);
        shared.applied_health = probed;
        Ok(())
    }

    fn targets<'a>(&'a self, rule: &'a LbRule) -> impl Iterator<Item = Target> + 'a {
        rule.probe.iter().flat_map(move |probe| {
            rule.backends.iter().filter_map(move |node| {
                Some(Target {
                    node: node.clone(),
                    addr: *self.nodes.get(node)?,
                    probe: probe.clone(),
                })
            })
        })
    }

    fn apply_routes(&mut self, want: &BTreeMap<Ipv4Addr, Ipv4Addr>) -> Result<(), EdgeError> {
        let table = ROUTES_TABLE.to_string();
        let stale: Vec<Ipv4Addr> = self
            .applied_routes
            .keys()
            .filter(|p| !want.contains_key(*p))
            .copied()
            .collect();
        for private in stale {
            ip(&["route", "del", &format!("{private}/32"), "table", &table])?;
            self.applied_routes.remove(&private);
        }
        for (private, via) in want {
            if self.applied_routes.get(private) != Some(via) {
                ip(&[
                    "route",
                    "replace",
                    &format!("{private}/32"),
                    "via",
                    &via.to_string(),
                    "table",
                    &table,
                ])?;
                self.applied_routes.insert(*private, *via);
            }
        }
        Ok(())
    }

    /// Removes everything it added, best effort: one failure does not keep
    /// the rest in place.
    fn teardown(&mut self) {
        self.probers.stop_all();
        if self.applied_nft.take().is_some() {
            let _ = nft(&ruleset::teardown());
        }
        for spec in self.rules.drain(..).rev() {
            let mut args = vec!["rule", "del"];
            args.extend(spec.iter().map(String::as_str));
            let _ = ip(&args);
        }
        for table in self.tables.drain(..) {
            let _ = ip(&["route", "flush", "table", &table.to_string()]);
        }
        self.applied_routes.clear();
        for (key, before) in self.sysctls.drain(..).rev() {
            let _ = sysctl_set(&key, &before);
        }
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
