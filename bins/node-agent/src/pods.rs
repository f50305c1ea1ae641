//! The pods this agent serves: what each one should have, what it was last
//! seen to have, and the wiring that lets `egress_core::agent` take the steps
//! between them (over `egress_net::pod::PodDevices` and
//! `egress_k8s::agent::PodEndpoints`).
//!
//! A pod is on the tunnel when both the kernel and the API say so: the core
//! writes its PodEndpoint before its routes go into the tunnel, and every
//! step that fails is retried by the next resync, which re-reads the kernel
//! and the API before planning again.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use egress_cni::sandbox::{SandboxRecord, SandboxStore};
use egress_core::agent::{EndpointSpec, Have, PodRef, Sandbox, Want, converge};
use egress_k8s::agent::{AgentApi, Gateway, PodEndpoints};
use egress_net::netns::{NsRef, NsWorker};
use egress_net::pod::{self as podnet, PodDevices};
use egress_net::wireguard::KeyPair;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use tokio::sync::Mutex;

use crate::metrics::Metrics;

/// A pod key: namespace and name.
pub type PodKey = (String, String);

/// How long what the kernel holds for a pod is trusted before it is read
/// again (a removed `wg0`, a stopped wireguard-go). Reading it costs a
/// thread entering the pod's namespace, so not every pass.
const KERNEL_RECHECK: Duration = Duration::from_secs(30);

/// One opted-in pod and its sandbox.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The sandbox its tunnel is bound to.
    pub sandbox: Sandbox,
    /// The pod's UID when the sandbox was bound (empty: not known).
    pub uid: String,
    /// The configuration it uses.
    pub gateway: String,
    /// Its address, as written on the PodEndpoint.
    pub pod_ip: IpAddr,
    /// Its primary gateway.
    pub primary_gateway: IpAddr,
    /// The primary interface's MTU.
    pub mtu: u32,
    /// The pod's tunnel key.
    pub key: KeyPair,
    /// What the pod was last seen to have.
    pub have: Have,
    /// Whether the kernel must be read before the next plan (a step failed
    /// or was interrupted).
    pub stale: bool,
    /// When the kernel was last read.
    pub observed: Instant,
}

/// The agent's pods and what it needs to plumb them.
pub struct Pods {
    pub api: AgentApi,
    pub devices: PodDevices,
    pub records: SandboxStore,
    pub exceptions: Vec<IpNet>,
    pub metrics: Arc<Metrics>,
    pub state: Mutex<HashMap<PodKey, Entry>>,
    /// One lock per pod, held for a whole ADD, DEL, resync or recovery of
    /// it: two plumbings of one namespace at once would each remove the
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
    /// Recovery of a pod from its sandbox record: it yields to anything
    /// already plumbed.
    Recovery,
}

impl std::fmt::Debug for Pods {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pods").finish_non_exhaustive()
    }
}

/// Whether the pod has finished: its containers are done, its sandbox is
/// gone or going. (A pod being deleted still runs until its DEL.)
pub fn terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn pod_ref(key: &PodKey) -> PodRef {
    PodRef {
        namespace: key.0.clone(),
        name: key.1.clone(),
    }
}

fn shown(key: &PodKey) -> String {
    format!("{}/{}", key.0, key.1)
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

    /// Records the sandbox an ADD named, so a restarted agent, or a later
    /// opt-in, binds the pod's tunnel to exactly this sandbox.
    pub fn record(&self, record: &SandboxRecord) {
        if let Err(e) = self.records.put(record) {
            self.metrics.failure("sandbox_record");
            tracing::warn!(sandbox = %record.container_id, error = %e, "recording the sandbox failed");
        }
    }

    /// Binds an opted-in pod to a sandbox and puts it on the tunnel of
    /// `gateway` if that is ready. Returns whether it is on the tunnel.
    pub async fn adopt(
        &self,
        origin: Origin,
        pod: &Pod,
        gateway: &str,
        sandbox: Sandbox,
    ) -> anyhow::Result<bool> {
        let key = (pod.namespace().unwrap_or_default(), pod.name_any());
        let _held = self.lock_pod(&key).await;
        // An ADD that finished while recovery waited for the lock wins.
        if origin == Origin::Recovery && self.state.lock().await.contains_key(&key) {
            return Ok(false);
        }
        let netns = PathBuf::from(&sandbox.netns);
        let worker = NsWorker::start(NsRef::Path(netns.clone()))
            .await
            .with_context(|| format!("cannot enter {}", netns.display()))?;
        let primary = podnet::primary(&worker, &sandbox.ifname).await?;
        drop(worker);
        let ip = primary
            .ip
            .ok_or_else(|| anyhow!("{} in {} has no address", sandbox.ifname, netns.display()))?;
        let primary_gateway = primary.gateway.ok_or_else(|| {
            anyhow!(
                "{} in {} has no default route",
                sandbox.ifname,
                netns.display()
            )
        })?;
        let previous = self.state.lock().await.remove(&key);
        if let Some(old) = previous
            && old.sandbox != sandbox
        {
            // The pod's earlier sandbox: its tunnel goes; the PodEndpoint
            // is rewritten for the new one below.
            if let Err(e) = egress_core::agent::PodDataplane::remove(
                &self.devices,
                &old.sandbox,
                old.have.routes.as_ref(),
            )
            .await
            {
                tracing::warn!(pod = %shown(&key), error = %e, "removing the earlier sandbox's tunnel failed");
            }
        }
        let entry = Entry {
            sandbox,
            uid: pod.uid().unwrap_or_default(),
            gateway: gateway.to_string(),
            pod_ip: ip,
            primary_gateway,
            mtu: primary.mtu,
            key: KeyPair::generate(),
            have: Have::default(),
            stale: true,
            observed: Instant::now(),
        };
        self.state.lock().await.insert(key.clone(), entry);
        self.step(&key, Some(pod), Some(gateway.to_string())).await
    }

    /// What the pod should have: on `gw`'s tunnel while it opts in and the
    /// configuration is published, else nothing of ours.
    fn want(&self, e: &Entry, opted: bool, gw: Option<&Gateway>) -> anyhow::Result<Want> {
        let Some(gw) = gw.filter(|_| opted) else {
            return Ok(Want::Off);
        };
        let primary = egress_k8s::agent::PrimaryLink {
            iface: e.sandbox.ifname.clone(),
            gateway: e.primary_gateway,
            mtu: e.mtu,
        };
        // The same function `egressctl explain pod` uses, so what is shown
        // is what is plumbed.
        let Some(inputs) = egress_k8s::agent::pod_inputs(gw, &self.exceptions, &primary) else {
            return Ok(Want::Off);
        };
        let len = if e.pod_ip.is_ipv4() { 32 } else { 128 };
        Ok(Want::On {
            tunnel: egress_core::pod::plan(&inputs),
            endpoint: EndpointSpec {
                gateway: e.gateway.clone(),
                pod_ip: IpNet::new(e.pod_ip, len)?,
                public_key: e.key.public.clone(),
            },
            status: egress_k8s::agent::status_of(gw),
        })
    }

    /// Brings one known pod (its lock held) to what the API says now:
    /// `choice` is the configuration it opts into (`None`: it does not, or
    /// it is gone). Returns whether the pod is on the tunnel.
    async fn step(
        &self,
        key: &PodKey,
        pod: Option<&Pod>,
        choice: Option<String>,
    ) -> anyhow::Result<bool> {
        let Some(mut e) = self.state.lock().await.get(key).cloned() else {
            return Ok(false);
        };
        let opted = choice.is_some();
        if let Some(name) = choice {
            e.gateway = name;
        }
        let gw = if opted {
            self.api.gateway(&key.0, &e.gateway).await?
        } else {
            None
        };
        let want = self.want(&e, opted, gw.as_ref())?;
        let (endpoint, status) = self
            .api
            .endpoint(&key.0, &key.1)
            .await?
            .as_ref()
            .map_or((None, None), egress_k8s::agent::observed);
        e.have.endpoint = endpoint;
        e.have.status = status;
        if e.stale || e.observed.elapsed() > KERNEL_RECHECK {
            e.have.device =
                egress_core::agent::PodDataplane::device(&self.devices, &e.sandbox).await?;
            if e.have.device.is_none() {
                e.have.routes = None;
            }
            e.stale = false;
            e.observed = Instant::now();
        }
        if e.have.satisfies(&want) {
            let on = e.have.on_tunnel();
            self.settle(key, e, opted).await;
            return Ok(on);
        }
        // Should this pass be cut short, the next one reads the kernel again.
        if let Some(s) = self.state.lock().await.get_mut(key) {
            s.stale = true;
        }
        let was_on = e.have.on_tunnel();
        let endpoints = PodEndpoints::new(&self.api, pod, &e.uid);
        let done = converge(
            &self.devices,
            &endpoints,
            &pod_ref(key),
            &e.sandbox,
            &e.key.private,
            &want,
            &mut e.have,
        )
        .await;
        e.stale = done.is_err();
        let on = e.have.on_tunnel();
        if was_on && done.as_ref().is_ok_and(|steps| !steps.is_empty()) {
            self.metrics.replumb();
        }
        self.settle(key, e, opted).await;
        done.with_context(|| format!("putting {} in line with its configuration", shown(key)))?;
        Ok(on)
    }

    /// Keeps the entry of a pod that opts in; forgets one that does not
    /// once nothing of ours is left.
    async fn settle(&self, key: &PodKey, e: Entry, opted: bool) {
        let mut state = self.state.lock().await;
        if !opted && e.have == Have::default() {
            state.remove(key);
        } else if state.contains_key(key) {
            state.insert(key.clone(), e);
        }
    }

    /// DEL of a sandbox: its tunnel and the pod's PodEndpoint go if that
    /// sandbox is the one bound. Returns whether anything was bound.
    pub async fn release(&self, key: &PodKey, container_id: &str) -> bool {
        if let Err(e) = self.records.remove(container_id) {
            tracing::warn!(sandbox = %container_id, error = %e, "removing the sandbox record failed");
        }
        let _held = self.lock_pod(key).await;
        let taken = {
            let mut state = self.state.lock().await;
            if state
                .get(key)
                .is_some_and(|p| p.sandbox.container_id == container_id)
            {
                state.remove(key)
            } else {
                None
            }
        };
        let Some(e) = taken else { return false };
        if let Err(err) = egress_core::agent::PodDataplane::remove(
            &self.devices,
            &e.sandbox,
            e.have.routes.as_ref(),
        )
        .await
        {
            tracing::warn!(pod = %shown(key), error = %err, "removing the tunnel failed");
        }
        // A PodEndpoint that cannot be deleted now is collected by the
        // resync once its pod is gone.
        let endpoints = PodEndpoints::new(&self.api, None, &e.uid);
        if let Err(err) =
            egress_core::agent::EndpointStore::delete_endpoint(&endpoints, &pod_ref(key)).await
        {
            self.metrics.failure("delete_endpoint");
            tracing::warn!(pod = %shown(key), error = %err, "deleting the PodEndpoint failed");
        }
        true
    }

    /// GC: forgets every pod whose sandbox is not in `valid`, and the
    /// records of sandboxes not in it.
    pub async fn collect(&self, valid: &[String]) -> usize {
        let stale: Vec<(PodKey, String)> = self
            .state
            .lock()
            .await
            .iter()
            .filter(|(_, e)| !valid.contains(&e.sandbox.container_id))
            .map(|(k, e)| (k.clone(), e.sandbox.container_id.clone()))
            .collect();
        let mut n = 0;
        for (key, id) in stale {
            if self.release(&key, &id).await {
                n += 1;
            }
        }
        if let Ok((records, _)) = self.records.list() {
            for r in records.iter().filter(|r| !valid.contains(&r.container_id)) {
                let _ = self.records.remove(&r.container_id);
            }
        }
        n
    }

    /// Whether the pod's sandbox still has its tunnel (CHECK).
    pub async fn check(&self, key: &PodKey, container_id: &str) -> anyhow::Result<()> {
        let Some(e) = self
            .state
            .lock()
            .await
            .get(key)
            .filter(|e| e.sandbox.container_id == container_id)
            .cloned()
        else {
            return Ok(());
        };
        if !e.have.on_tunnel() {
            return Ok(());
        }
        let device = egress_core::agent::PodDataplane::device(&self.devices, &e.sandbox).await?;
        if device.is_none() {
            if let Some(s) = self.state.lock().await.get_mut(key) {
                s.stale = true;
            }
            return Err(anyhow!(
                "{} has lost its wg0 (or its device has stopped)",
                shown(key)
            ));
        }
        Ok(())
    }

    /// Brings every known pod in line with the API: called every few
    /// seconds, this is what makes running pods follow a new gateway address,
    /// port, key, route mode or exclusion list, and an annotation change,
    /// and what retries every step that failed.
    pub async fn resync(&self) {
        let keys: Vec<PodKey> = self.state.lock().await.keys().cloned().collect();
        for key in keys {
            let _held = self.lock_pod(&key).await;
            let Some(uid) = self.state.lock().await.get(&key).map(|e| e.uid.clone()) else {
                continue;
            };
            let pod = match self.api.pod(&key.0, &key.1).await {
                // A pod of the same name but another UID is a new pod: the
                // bound one is gone.
                Ok(p) => p.filter(|p| uid.is_empty() || p.uid().as_deref() == Some(&uid)),
                Err(e) => {
                    tracing::warn!(error = %e, "resync: reading the pod failed");
                    continue;
                }
            };
            let choice = match pod.as_ref().filter(|p| !terminal(p)) {
                Some(p) => match self.api.choice(p).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "resync: reading the opt-in failed");
                        continue;
                    }
                },
                None => None,
            };
            if let Err(e) = self.step(&key, pod.as_ref(), choice).await {
                self.metrics.failure("replumb");
                tracing::warn!(pod = %shown(&key), error = %format!("{e:#}"), "re-plumbing failed; retrying next pass");
            }
        }
        let on = self
            .state
            .lock()
            .await
            .values()
            .filter(|e| e.have.on_tunnel())
            .count();
        self.metrics.set_on_tunnel(on);
        self.prune_locks();
    }
}
