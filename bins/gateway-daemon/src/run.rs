//! The daemon's loop: on every change of the watched objects, and on a
//! timer, bring the node to its plan, then publish what is observed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egress_core::model::PodEndpoint;
use egress_core::node::{ActiveConfig, NodeState, ready};
use egress_core::traits::{Dataplane, sync_node};
use egress_k8s::crd::{GatewayConfiguration, PeerConfiguration};
use egress_k8s::gateway::plan::node_plan;
use egress_k8s::gateway::{GatewayWatch, NodeIdentity, StatusWriter};
use egress_net::LinuxDataplane;
use egress_net::dataplane::StaticKeys;

use crate::state::Shared;

/// Why a pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// A watched object changed (or the daemon started).
    Change,
    /// The drift-repair timer.
    Timer,
}

/// The loop's inputs and memory.
#[derive(Debug)]
pub struct Reconciler {
    /// The kernel.
    pub dataplane: LinuxDataplane,
    /// The cluster.
    pub watch: GatewayWatch,
    /// Private keys, refreshed from the watched Secrets.
    pub keys: Arc<StaticKeys>,
    /// This node.
    pub identity: NodeIdentity,
    /// GatewayStatus.
    pub status: StatusWriter,
    /// Probe and metrics.
    pub shared: Arc<Shared>,
    /// The underlay MTU.
    pub underlay_mtu: u32,
    /// Configurations placed on this node before, kept while their VM
    /// configuration briefly lacks the node (upstream tears them down).
    pub placed: BTreeMap<String, ActiveConfig>,
    /// The last plan, for readiness checks between passes.
    pub last: Option<NodeState>,
}

impl Reconciler {
    fn plan(&mut self) -> (NodeState, Vec<PodEndpoint>) {
        let mut snap = self.watch.snapshot(&self.identity);
        let mut placed: BTreeMap<String, ActiveConfig> = snap
            .configs
            .iter()
            .map(|c| (c.uid.clone(), c.clone()))
            .collect();
        for uid in &snap.unplaced {
            if let Some(prev) = self.placed.get(uid) {
                tracing::info!(sgc_uid = %uid, "VM configuration lacks this node; keeping its live state");
                placed.insert(uid.clone(), prev.clone());
            }
        }
        {
            let mut keys = self
                .keys
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let old = std::mem::take(&mut *keys);
            keys.extend(snap.keys.iter().map(|(k, v)| (k.clone(), v.clone())));
            // A key whose Secret cannot be read now stays as it was; a
            // configuration with no key at all is still planned (its live
            // state is not torn down), and only its own setup fails.
            for c in placed.values() {
                let id = (
                    c.server.key_secret.namespace.clone(),
                    c.server.key_secret.name.clone(),
                );
                if keys.contains_key(&id) {
                    continue;
                }
                if let Some(k) = old.get(&id) {
                    keys.insert(id, k.clone());
                } else {
                    tracing::warn!(sgc_uid = %c.uid, secret = %format!("{}/{}", id.0, id.1), "key Secret not readable");
                }
            }
        }
        self.placed = placed;
        // The same planning as `egressctl doctor`, with this daemon's memory
        // of placed configurations in place of the snapshot's (the kept ones
        // are logged above).
        snap.configs = self.placed.values().cloned().collect();
        snap.unplaced.clear();
        let plan = node_plan(snap, self.underlay_mtu, egress_net::wireguard::valid_key);
        for reason in &plan.notes {
            tracing::warn!(%reason, "ignoring object");
        }
        (plan.state, plan.endpoints)
    }

    /// One pass: plan, apply until nothing is left to do (at most three
    /// rounds), observe, publish.
    pub async fn pass(&mut self, trigger: Trigger) {
        let start = Instant::now();
        // The previous plan is not needed while the next is built.
        self.last = None;
        let (want, endpoints) = self.plan();
        let planned: BTreeSet<String> = want
            .interfaces
            .values()
            .map(|i| i.sgc_uid.clone())
            .collect();
        self.shared.retain_serving(&planned);
        let mut applied = 0;
        let mut failed = false;
        for _ in 0..3 {
            match sync_node(&self.dataplane, &want).await {
                Ok(0) => break,
                Ok(n) => applied += n,
                Err(e) => {
                    tracing::error!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "applying the node plan failed; retrying on the next pass");
                    failed = true;
                    break;
                }
            }
        }
        let took = start.elapsed().as_secs_f64();
        let Some(serving) = self.check(&want).await else {
            return;
        };
        if applied > 0 {
            tracing::info!(
                operations = applied,
                seconds = took,
                ?trigger,
                "node brought to plan"
            );
        }
        let stats = self.dataplane.interface_stats();
        self.shared.metrics(|m| {
            m.passes += 1;
            m.apply_seconds_sum += took;
            m.apply_seconds_last = took;
            m.errors += u64::from(failed);
            m.drift_repairs += u64::from(trigger == Trigger::Timer && applied > 0);
            m.kernel_writes = self.dataplane.kernel_writes();
            m.configurations = serving.len();
            m.interfaces = want
                .interfaces
                .iter()
                .filter(|(_, i)| serving.contains(&i.sgc_uid))
                .map(|(name, i)| {
                    (
                        name.clone(),
                        (
                            i.sgc_uid.clone(),
                            stats.get(name).cloned().unwrap_or_default(),
                        ),
                    )
                })
                .collect();
            m.peers = m.interfaces.values().map(|(_, s)| s.peers).sum();
        });
        self.report(&want, &endpoints, &serving).await;
        self.last = Some(want);
    }

    /// Observes the node and publishes which configurations are in place.
    async fn check(&self, want: &NodeState) -> Option<BTreeSet<String>> {
        match self.dataplane.observe().await {
            Ok(observed) => {
                let serving = ready(want, &observed);
                self.shared.set_serving(serving.clone());
                Some(serving)
            }
            Err(e) => {
                tracing::error!(error = %e, "observing the node failed");
                self.shared.set_serving(BTreeSet::new());
                self.shared.metrics(|m| m.errors += 1);
                None
            }
        }
    }

    async fn report(
        &self,
        want: &NodeState,
        endpoints: &[PodEndpoint],
        serving: &BTreeSet<String>,
    ) {
        let by_uid: HashMap<&str, &ActiveConfig> =
            self.placed.values().map(|c| (c.uid.as_str(), c)).collect();
        let mut gateways = Vec::new();
        // Serving interfaces by the configuration they serve.
        let mut by_config = HashMap::new();
        for (name, iface) in &want.interfaces {
            let Some(c) = by_uid
                .get(iface.sgc_uid.as_str())
                .filter(|_| serving.contains(&iface.sgc_uid))
            else {
                continue;
            };
            gateways.push(GatewayConfiguration {
                static_gateway_configuration: Some(format!("{}/{}", c.namespace, c.name)),
                interface_name: Some(name.clone()),
            });
            by_config.insert((c.namespace.as_str(), c.name.as_str()), (name, iface));
        }
        // Only the listed peers are materialised: the list is capped.
        let mut chosen: Vec<(&String, &PodEndpoint)> = endpoints
            .iter()
            .filter_map(|e| {
                let (name, iface) = by_config.get(&(e.namespace.as_str(), e.config.as_str()))?;
                iface
                    .peers
                    .contains_key(&e.public_key)
                    .then_some((*name, e))
            })
            .collect();
        chosen.sort_by(|a, b| (a.0, &a.1.public_key).cmp(&(b.0, &b.1.public_key)));
        chosen.truncate(egress_k8s::gateway::status::MAX_PEERS);
        let peers = chosen
            .into_iter()
            .map(|(name, e)| PeerConfiguration {
                pod_endpoint: Some(format!("{}/{}", e.namespace, e.name)),
                interface_name: Some(name.clone()),
                public_key: Some(e.public_key.clone()),
            })
            .collect();
        if let Err(e) = self.status.write(gateways, peers).await {
            tracing::warn!(error = %e, cause = ?std::error::Error::source(&e).map(ToString::to_string), "writing GatewayStatus failed; retrying on the next pass");
        }
    }

    /// Runs passes until `stop` resolves: on changes, on the `resync` timer,
    /// and between them read-only checks every `check` so the probe notices
    /// a break before the next repair.
    pub async fn run(
        &mut self,
        resync: Duration,
        check: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut stop = std::pin::pin!(stop);
        self.pass(Trigger::Change).await;
        let mut next_pass = tokio::time::Instant::now() + resync;
        loop {
            let trigger = tokio::select! {
                () = &mut stop => return,
                () = self.watch.changed() => Trigger::Change,
                () = tokio::time::sleep_until(next_pass) => Trigger::Timer,
                () = tokio::time::sleep(check) => {
                    if let Some(want) = self.last.take() {
                        self.check(&want).await;
                        self.last = Some(want);
                    }
                    continue;
                }
            };
            next_pass = tokio::time::Instant::now() + resync;
            // Coalesce a burst of changes into one pass.
            if trigger == Trigger::Change {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.pass(trigger).await;
        }
    }
}
