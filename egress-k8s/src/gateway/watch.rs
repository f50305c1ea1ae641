//! Reflectors over the objects that shape a gateway node.
//!
//! Each kind is listed and watched by its own watcher; a failed watch is
//! retried with backoff while the store keeps the last known objects, so a
//! transient API error never empties the plan and tears down live state.
//! The few configuration objects are kept whole (reflectors); PodEndpoints,
//! which number in the tens of thousands, are kept only as the plan's compact
//! [`PodEndpoint`](egress_core::model::PodEndpoint) values.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::translate::{NodeIdentity, Snapshot, pod_endpoint, snapshot};
use crate::Error;
use crate::crd::{GatewayVMConfiguration, PodEndpoint, StaticGatewayConfiguration};

/// Live views of SGCs, VM configurations, key Secrets and PodEndpoints.
#[derive(Debug)]
pub struct GatewayWatch {
    sgcs: Store<StaticGatewayConfiguration>,
    vms: Store<GatewayVMConfiguration>,
    secrets: Store<Secret>,
    endpoints: Compact,
    changed: Arc<Notify>,
    tasks: Vec<JoinHandle<()>>,
}

fn reflect<K>(api: Api<K>, what: &'static str, changed: Arc<Notify>) -> (Store<K>, JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (store, writer) = reflector::store();
    // Managed fields are most of a small object's size and never read here;
    // 10,000 PodEndpoints are kept without them.
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|o: &mut K| o.meta_mut().managed_fields = None),
    );
    let task = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => changed.notify_one(),
                Err(e) => {
                    tracing::warn!(kind = what, error = %e, "watch failed; retrying, keeping the last known objects");
                }
            }
        }
    });
    (store, task)
}

impl GatewayWatch {
    /// Starts watching. Secrets are watched only in `secret_namespace`.
    pub fn start(client: &Client, secret_namespace: &str) -> Self {
        Self::start_with(client, secret_namespace, false)
    }

    /// Like [`GatewayWatch::start`]; with `verify`, a PodEndpoint is accepted
    /// only when it matches a real pod ([`super::verify::verify_endpoint`]):
    /// the others are reported as rejected.
    pub fn start_with(client: &Client, secret_namespace: &str, verify: bool) -> Self {
        let changed = Arc::new(Notify::new());
        let (sgcs, t1) = reflect(
            Api::all(client.clone()),
            "StaticGatewayConfiguration",
            changed.clone(),
        );
        let (vms, t2) = reflect(
            Api::all(client.clone()),
            "GatewayVMConfiguration",
            changed.clone(),
        );
        let (secrets, t3) = reflect(
            Api::namespaced(client.clone(), secret_namespace),
            "Secret",
            changed.clone(),
        );
        let endpoints = Compact::default();
        let verifier = verify.then(|| client.clone());
        let t4 = endpoints.follow(Api::all(client.clone()), verifier, changed.clone());
        Self {
            sgcs,
            vms,
            secrets,
            endpoints,
            changed,
            tasks: vec![t1, t2, t3, t4],
        }
    }

    /// Waits until every kind has been listed once. Until then a snapshot
    /// would be partial, and applying it could remove live state.
    pub async fn ready(&self) -> Result<(), Error> {
        self.sgcs
            .wait_until_ready()
            .await
            .map_err(|_| Error::WatchStopped("StaticGatewayConfiguration"))?;
        self.vms
            .wait_until_ready()
            .await
            .map_err(|_| Error::WatchStopped("GatewayVMConfiguration"))?;
        self.secrets
            .wait_until_ready()
            .await
            .map_err(|_| Error::WatchStopped("Secret"))?;
        self.endpoints.ready().await;
        Ok(())
    }

    /// Waits for the next change of any watched object.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// What the cluster currently says this node should serve.
    pub fn snapshot(&self, node: &NodeIdentity) -> Snapshot {
        let (sgcs, vms, secrets) = (self.sgcs.state(), self.vms.state(), self.secrets.state());
        let mut snap = snapshot(
            sgcs.iter().map(AsRef::as_ref),
            vms.iter().map(AsRef::as_ref),
            secrets.iter().map(AsRef::as_ref),
            std::iter::empty(),
            node,
        );
        let map = self.endpoints.lock();
        for e in map.values() {
            match e {
                Ok(e) => snap.endpoints.push(e.clone()),
                Err(reason) => snap.rejected.push(reason.clone()),
            }
        }
        drop(map);
        snap.endpoints.sort();
        snap
    }
}

type EndpointMap = BTreeMap<(String, String), Result<egress_core::model::PodEndpoint, String>>;

/// PodEndpoints as the plan's values, by (namespace, name). A relist builds
/// a new map and swaps it in only when complete.
#[derive(Debug, Default, Clone)]
struct Compact {
    map: Arc<Mutex<EndpointMap>>,
    ready: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Compact {
    fn lock(&self) -> std::sync::MutexGuard<'_, EndpointMap> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn ready(&self) {
        let mut rx = self.ready.subscribe();
        let _ = rx.wait_for(|r| *r).await;
    }

    fn follow(
        &self,
        api: Api<PodEndpoint>,
        verifier: Option<Client>,
        changed: Arc<Notify>,
    ) -> JoinHandle<()> {
        let this = self.clone();
        let key = |pe: &PodEndpoint| (pe.namespace().unwrap_or_default(), pe.name_any());
        tokio::spawn(async move {
            let stream = watcher(api, watcher::Config::default()).default_backoff();
            let mut stream = std::pin::pin!(stream);
            let mut relist: Option<EndpointMap> = None;
            while let Some(event) = stream.next().await {
                match event {
                    Ok(watcher::Event::Init) => relist = Some(BTreeMap::new()),
                    Ok(watcher::Event::InitApply(pe)) => {
                        relist
                            .get_or_insert_with(BTreeMap::new)
                            .insert(key(&pe), checked(verifier.as_ref(), &pe).await);
                    }
                    Ok(watcher::Event::InitDone) => {
                        *this.lock() = relist.take().unwrap_or_default();
                        this.ready.send_replace(true);
                        changed.notify_one();
                    }
                    Ok(watcher::Event::Apply(pe)) => {
                        let value = checked(verifier.as_ref(), &pe).await;
                        this.lock().insert(key(&pe), value);
                        changed.notify_one();
                    }
                    Ok(watcher::Event::Delete(pe)) => {
                        this.lock().remove(&key(&pe));
                        changed.notify_one();
                    }
                    Err(e) => {
                        tracing::warn!(kind = "PodEndpoint", error = %e, "watch failed; retrying, keeping the last known objects");
                    }
                }
            }
        })
    }
}

/// The endpoint as the plan takes it, after the pod check when `verifier`
/// is set. An API error while checking rejects the endpoint for now; the
/// watch's next event or relist checks it again.
async fn checked(
    verifier: Option<&Client>,
    pe: &PodEndpoint,
) -> Result<egress_core::model::PodEndpoint, String> {
    use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
    let endpoint = pod_endpoint(pe)?;
    let Some(client) = verifier else {
        return Ok(endpoint);
    };
    let ns = pe.namespace().unwrap_or_default();
    let failed = |what: &str, e: kube::Error| {
        format!(
            "PodEndpoint {ns}/{}: cannot check it against its pod ({what}: {e})",
            pe.name_any()
        )
    };
    let pod = Api::<Pod>::namespaced(client.clone(), &ns)
        .get_opt(&pe.name_any())
        .await
        .map_err(|e| failed("pod", e))?;
    let node = match pe.labels().get(crate::agent::NODE_LABEL) {
        Some(n) => Api::<Node>::all(client.clone())
            .get_opt(n)
            .await
            .map_err(|e| failed("node", e))?,
        None => None,
    };
    let default = if pod
        .as_ref()
        .is_some_and(|p| !p.annotations().contains_key(crate::agent::ANNOTATION))
    {
        Api::<Namespace>::all(client.clone())
            .get_opt(&ns)
            .await
            .map_err(|e| failed("namespace", e))?
            .and_then(|n| n.annotations().get(crate::agent::ANNOTATION).cloned())
    } else {
        None
    };
    super::verify::verify_endpoint(pe, pod.as_ref(), node.as_ref(), default.as_deref())?;
    Ok(endpoint)
}

impl Drop for GatewayWatch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
