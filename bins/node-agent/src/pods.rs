//! The pods this agent has put on the tunnel, and the operations on them:
//! plumb, re-plumb when the gateway or the opt-in changes, unplumb.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use egress_core::pod::{self, PodInputs, PodTunnel};
use egress_k8s::agent::{AgentApi, Gateway};
use egress_net::netns::{NsRef, NsWorker};
use egress_net::pod::{self as podnet, PodLink};
use egress_net::wireguard::{Backend, KeyPair};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Pod;
use tokio::sync::Mutex;

use crate::metrics::Metrics;

/// A pod key: namespace and name.
pub type PodKey = (String, String);

/// One pod on the tunnel (or waiting for its gateway).
pub struct Plumbed {
    /// The sandbox.
    pub container_id: String,
    /// The pod's network namespace.
    pub netns: PathBuf,
    /// The pod's primary interface.
    pub ifname: String,
    /// The configuration it uses.
    pub gateway: String,
    /// The pod's address, as written on the PodEndpoint.
    pub pod_ip: IpAddr,
    /// The pod's primary gateway.
    pub primary_gateway: IpAddr,
    /// The primary interface's MTU.
    pub mtu: u32,
    /// The pod's key.
    pub key: KeyPair,
    /// The device and what is installed, once plumbed.
    pub installed: Option<(PodLink, PodTunnel)>,
}

/// The agent's pods and what it needs to plumb them.
pub struct Pods {
    pub api: AgentApi,
    pub node: NsWorker,
    pub backend: Backend,
    pub exceptions: Vec<IpNet>,
    pub metrics: Arc<Metrics>,
    pub state: Mutex<HashMap<PodKey, Plumbed>>,
    /// One lock per pod, held for a whole ADD, DEL, re-plumb or recovery
    /// of it: two plumbings of one namespace at once would each remove the
    /// other's device. The state lock is not held while plumbing, so
    /// different pods still proceed concurrently.
    pub locks: std::sync::Mutex<HashMap<PodKey, Arc<Mutex<()>>>>,
}

/// Who asks to plumb a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The runtime's CNI ADD: the sandbox is new, whatever was plumbed
    /// before for the pod is replaced.
    Add,
    /// Recovery of a pod that started while the agent was away: it yields
    /// to anything already plumbed.
    Recovery,
}

impl std::fmt::Debug for Pods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pods").finish_non_exhaustive()
    }
}

/// Sandbox id of a pod found after a restart: the API does not carry the
/// sandbox id, so any DEL for the pod matches it.
pub const RECOVERED: &str = "recovered-";

/// The node-side name of a pod's device: unique per sandbox (a hash of its
/// id), at most 15 bytes.
fn node_name(container_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("eg-{:011x}", h & 0xfff_ffff_ffff)
}

fn same_sandbox(plumbed: &str, asked: &str) -> bool {
    plumbed == asked || plumbed.starts_with(RECOVERED)
}

impl Pods {
    /// Waits for the pod's lock.
    pub async fn lock_pod(&self, key: &PodKey) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            locks.entry(key.clone()).or_default().clone()
        };
        lock.lock_owned().await
    }

    /// Forgets the locks nobody holds or waits for.
    fn prune_locks(&self) {
        self.locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, lock| Arc::strong_count(lock) > 1);
    }

    /// The pod's tunnel inputs: the same function `egressctl explain pod`
    /// uses, so what is shown is what is plumbed.
    fn inputs(&self, p: &Plumbed, gw: &Gateway) -> Option<PodInputs> {
        let primary = egress_k8s::agent::PrimaryLink {
            iface: p.ifname.clone(),
            gateway: p.primary_gateway,
            mtu: p.mtu,
        };
        egress_k8s::agent::pod_inputs(gw, &self.exceptions, &primary)
    }

    /// Whether the agent knows the pod or is working on it.
    pub async fn knows(&self, key: &PodKey) -> bool {
        let busy = self
            .locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .is_some_and(|l| l.try_lock().is_err());
        busy || self.state.lock().await.contains_key(key)
    }

    /// Reads the pod's primary interface and records the pod as opted in
    /// to `gateway`; plumbs it if the gateway is ready.
    pub async fn adopt(
        &self,
        origin: Origin,
        pod: &Pod,
        gateway: &str,
        container_id: &str,
        netns: PathBuf,
        ifname: &str,
    ) -> anyhow::Result<bool> {
        let key = (pod_ns(pod), pod_name(pod));
        let _held = self.lock_pod(&key).await;
        // An ADD that finished while recovery waited for the lock wins.
        if origin == Origin::Recovery && self.state.lock().await.contains_key(&key) {
            return Ok(false);
        }
        let worker = NsWorker::start(NsRef::Path(netns.clone()))
            .await
            .with_context(|| format!("cannot enter {}", netns.display()))?;
        let primary = podnet::primary(&worker, ifname).await?;
        let ip = primary
            .ip
            .ok_or_else(|| anyhow!("{ifname} in {} has no address", netns.display()))?;
        let primary_gateway = primary
            .gateway
            .ok_or_else(|| anyhow!("{ifname} in {} has no default route", netns.display()))?;
        // The lock is not held while plumbing, so ADDs of different pods run
        // concurrently.
        let previous = self.state.lock().await.remove(&key);
        if let Some(old) = previous {
            self.unplumb_entry(&key, old, false).await;
        }
        let mut entry = Plumbed {
            container_id: container_id.to_string(),
            netns,
            ifname: ifname.to_string(),
            gateway: gateway.to_string(),
            pod_ip: ip,
            primary_gateway,
            mtu: primary.mtu,
            key: KeyPair::generate(),
            installed: None,
        };
        let done = self.converge(&key, &mut entry, Some(pod)).await;
        self.state.lock().await.insert(key, entry);
        done
    }

    /// Brings one pod to what the API says now: plumbed with the current
    /// gateway, re-plumbed after a change, or unplumbed. Returns whether the
    /// pod is on the tunnel.
    async fn converge(
        &self,
        key: &PodKey,
        p: &mut Plumbed,
        pod: Option<&Pod>,
    ) -> anyhow::Result<bool> {
        let gw = self.api.gateway(&key.0, &p.gateway).await?;
        let Some(inputs) = gw.as_ref().and_then(|g| self.inputs(p, g)) else {
            // No such configuration, or not ready: the pod keeps (or gets
            // back) its own default route.
            if let Some((link, tunnel)) = p.installed.take() {
                let worker = NsWorker::start(NsRef::Path(p.netns.clone())).await?;
                podnet::remove(&worker, Some(link), Some(&tunnel)).await?;
                self.api.delete_endpoint(&key.0, &key.1).await?;
                self.metrics.replumb();
            }
            return Ok(false);
        };
        let tunnel = pod::plan(&inputs);
        if p.installed.as_ref().is_some_and(|(_, t)| *t == tunnel) {
            return Ok(true);
        }
        let worker = NsWorker::start(NsRef::Path(p.netns.clone())).await?;
        let fresh = p.installed.is_none();
        match p.installed.take() {
            None => {
                let link = podnet::create(
                    &self.node,
                    &worker,
                    self.backend.clone(),
                    &node_name(&p.container_id),
                    &tunnel,
                    &p.key.private,
                )
                .await?;
                p.installed = Some((link, tunnel.clone()));
                podnet::apply_routes(&worker, None, &tunnel).await?;
            }
            Some((link, old)) => {
                if old.peer != tunnel.peer {
                    podnet::set_peer(&link, &worker, &tunnel, &p.key.private).await?;
                }
                podnet::apply_routes(&worker, Some(&old), &tunnel).await?;
                p.installed = Some((link, tunnel.clone()));
                self.metrics.replumb();
            }
        }
        let owned;
        let pod = if let Some(pod) = pod {
            pod
        } else {
            owned = self
                .api
                .pod(&key.0, &key.1)
                .await?
                .ok_or_else(|| anyhow!("pod {}/{} is gone", key.0, key.1))?;
            &owned
        };
        if fresh || gw.is_some() {
            let len = if p.pod_ip.is_ipv4() { 32 } else { 128 };
            let ip = IpNet::new(p.pod_ip, len)?;
            self.api
                .write_endpoint(pod, &p.gateway, ip, &p.key.public)
                .await?;
            if let Some(g) = &gw {
                self.api.write_endpoint_status(&key.0, &key.1, g).await?;
            }
        }
        Ok(true)
    }

    /// Removes the pod's tunnel (if its namespace is still there) and its
    /// PodEndpoint.
    async fn unplumb_entry(&self, key: &PodKey, mut p: Plumbed, delete_endpoint: bool) {
        let installed = p.installed.take();
        if p.netns.exists() {
            match NsWorker::start(NsRef::Path(p.netns.clone())).await {
                Ok(worker) => {
                    let (link, tunnel) =
                        installed.map_or((None, None), |(l, t)| (Some(l), Some(t)));
                    if let Err(e) = podnet::remove(&worker, link, tunnel.as_ref()).await {
                        tracing::warn!(pod = %format!("{}/{}", key.0, key.1), error = %e, "removing the tunnel failed");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "pod namespace already gone"),
            }
        }
        if delete_endpoint && let Err(e) = self.api.delete_endpoint(&key.0, &key.1).await {
            self.metrics.failure("delete_endpoint");
            tracing::warn!(error = %e, "deleting the PodEndpoint failed");
        }
    }

    /// DEL of a sandbox: forgets the pod if that sandbox is the one
    /// plumbed. Returns whether anything was removed.
    pub async fn release(&self, key: &PodKey, container_id: &str) -> bool {
        let _held = self.lock_pod(key).await;
        let mut state = self.state.lock().await;
        if state
            .get(key)
            .is_some_and(|p| same_sandbox(&p.container_id, container_id))
            && let Some(p) = state.remove(key)
        {
            drop(state);
            self.unplumb_entry(key, p, true).await;
            return true;
        }
        false
    }

    /// GC: forgets every pod whose sandbox is not in `valid`.
    pub async fn collect(&self, valid: &[String]) -> usize {
        let is_stale = |p: &Plumbed| {
            !p.container_id.starts_with(RECOVERED) && !valid.contains(&p.container_id)
        };
        let keys: Vec<PodKey> = self
            .state
            .lock()
            .await
            .iter()
            .filter(|(_, p)| is_stale(p))
            .map(|(k, _)| k.clone())
            .collect();
        let mut n = 0;
        for k in keys {
            let _held = self.lock_pod(&k).await;
            // An ADD may have replaced the sandbox meanwhile.
            let taken = {
                let mut state = self.state.lock().await;
                if state.get(&k).is_some_and(is_stale) {
                    state.remove(&k)
                } else {
                    None
                }
            };
            if let Some(p) = taken {
                self.unplumb_entry(&k, p, true).await;
                n += 1;
            }
        }
        n
    }

    /// Whether the pod's sandbox still has its tunnel (CHECK).
    pub async fn check(&self, key: &PodKey, container_id: &str) -> anyhow::Result<()> {
        let state = self.state.lock().await;
        let Some(p) = state
            .get(key)
            .filter(|p| same_sandbox(&p.container_id, container_id))
        else {
            return Ok(());
        };
        if p.installed.is_none() {
            return Ok(());
        }
        let worker = NsWorker::start(NsRef::Path(p.netns.clone())).await?;
        let rtnl = egress_net::rtnl::Rtnl::new(worker.rtnl().clone(), Arc::default());
        if rtnl.link(egress_core::pod::POD_INTERFACE).await?.is_none() {
            return Err(anyhow!("{}/{} has lost its wg0", key.0, key.1));
        }
        let pid_alive = p
            .installed
            .as_ref()
            .and_then(|(l, _)| l.pid())
            .is_none_or(|pid| PathBuf::from(format!("/proc/{pid}")).exists());
        if !pid_alive {
            return Err(anyhow!(
                "the tunnel device of {}/{} has stopped",
                key.0,
                key.1
            ));
        }
        Ok(())
    }

    /// Brings every known pod in line with the API: called every few
    /// seconds, this is what makes running pods follow a new gateway address,
    /// port, key, route mode or exclusion list, and an annotation change.
    pub async fn resync(&self) {
        let keys: Vec<PodKey> = self.state.lock().await.keys().cloned().collect();
        for key in keys {
            let _held = self.lock_pod(&key).await;
            let pod = match self.api.pod(&key.0, &key.1).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "resync: reading the pod failed");
                    continue;
                }
            };
            let choice = match &pod {
                Some(pod) => match self.api.choice(pod).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "resync: reading the opt-in failed");
                        continue;
                    }
                },
                None => None,
            };
            let taken = self.state.lock().await.remove(&key);
            let Some(mut p) = taken else {
                continue;
            };
            match choice {
                None => {
                    self.unplumb_entry(&key, p, true).await;
                    self.metrics.replumb();
                }
                Some(name) => {
                    if name != p.gateway {
                        if let Some((link, tunnel)) = p.installed.take()
                            && let Ok(w) = NsWorker::start(NsRef::Path(p.netns.clone())).await
                        {
                            let _ = podnet::remove(&w, Some(link), Some(&tunnel)).await;
                        }
                        p.gateway = name;
                    }
                    if let Err(e) = self.converge(&key, &mut p, pod.as_ref()).await {
                        self.metrics.failure("replumb");
                        tracing::warn!(pod = %format!("{}/{}", key.0, key.1), error = %format!("{e:#}"), "re-plumbing failed");
                    }
                    self.state.lock().await.insert(key, p);
                }
            }
        }
        let on = self
            .state
            .lock()
            .await
            .values()
            .filter(|p| p.installed.is_some())
            .count();
        self.metrics.set_on_tunnel(on);
        self.prune_locks();
    }
}

/// The pod's namespace.
pub fn pod_ns(pod: &Pod) -> String {
    pod.metadata.namespace.clone().unwrap_or_default()
}

/// The pod's name.
pub fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap_or_default()
}
