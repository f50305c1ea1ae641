//! What the controller reads: reflector stores fed by watches, so a pass
//! reads memory instead of listing the API server.
//!
//! Every watch also says when something the pass looks at changed. Status
//! writes (the controller's own, mostly) are not changes: a configuration
//! counts as changed when its generation, deletion, finalizers or owners
//! change, a Secret on any change, a gateway node when it appears or goes.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::crd::{GatewayLBConfiguration, GatewayVMConfiguration, StaticGatewayConfiguration};

/// Label naming the namespace of a key Secret's configuration.
pub const LABEL_OWNER_NAMESPACE: &str =
    "egressgateway.kubernetes.azure.com/owning-gateway-config-namespace";
/// Label naming a key Secret's configuration.
pub const LABEL_OWNER_NAME: &str = "egressgateway.kubernetes.azure.com/owning-gateway-config-name";
/// Label of gateway nodes (value `true`).
pub const GATEWAY_NODE_LABEL: &str = "kubeegressgateway.azure.com/mode";

/// The number of watches [`Stores::start`] runs.
const WATCHES: usize = 5;

/// Reflector stores of everything the pass reads.
#[derive(Clone)]
pub struct Stores {
    /// Static gateway configurations, every namespace.
    pub sgc: Store<StaticGatewayConfiguration>,
    /// LB configurations, every namespace.
    pub lb: Store<GatewayLBConfiguration>,
    /// VM configurations, every namespace.
    pub vm: Store<GatewayVMConfiguration>,
    /// Key Secrets in the controller's namespace.
    pub secrets: Store<Secret>,
    /// Gateway nodes (metadata only).
    pub nodes: Store<PartialObjectMeta<Node>>,
    /// Signalled on every change that matters to a pass.
    pub changes: Arc<Notify>,
    synced: Arc<AtomicUsize>,
}

impl Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("sgc", &self.sgc.len())
            .field("lb", &self.lb.len())
            .field("vm", &self.vm.len())
            .field("secrets", &self.secrets.len())
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

/// The watch tasks; dropping this handle does not stop them, [`Watches::abort`] does.
#[derive(Debug)]
pub struct Watches(Vec<JoinHandle<()>>);

impl Watches {
    /// Stops every watch.
    pub fn abort(&self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Stores {
    /// Starts the watches: configurations and children cluster-wide, key
    /// Secrets in `secret_namespace` (by upstream's owner labels), gateway
    /// nodes by upstream's label. Watches reconnect with backoff on their own.
    pub fn start(client: &Client, secret_namespace: &str) -> (Self, Watches) {
        let changes = Arc::new(Notify::new());
        let synced = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::with_capacity(WATCHES);
        let (sgc, t) = watch(
            Api::<StaticGatewayConfiguration>::all(client.clone()),
            watcher::Config::default(),
            spec_fingerprint,
            &changes,
            &synced,
        );
        tasks.push(t);
        let (lb, t) = watch(
            Api::<GatewayLBConfiguration>::all(client.clone()),
            watcher::Config::default(),
            spec_fingerprint,
            &changes,
            &synced,
        );
        tasks.push(t);
        let (vm, t) = watch(
            Api::<GatewayVMConfiguration>::all(client.clone()),
            watcher::Config::default(),
            spec_fingerprint,
            &changes,
            &synced,
        );
        tasks.push(t);
        let (secrets, t) = watch(
            Api::<Secret>::namespaced(client.clone(), secret_namespace),
            watcher::Config::default()
                .labels(&format!("{LABEL_OWNER_NAMESPACE},{LABEL_OWNER_NAME}")),
            |s: &Secret| s.resource_version().unwrap_or_default(),
            &changes,
            &synced,
        );
        tasks.push(t);
        let (nodes, t) = watch_metadata(
            Api::<PartialObjectMeta<Node>>::all(client.clone()),
            watcher::Config::default().labels(&format!("{GATEWAY_NODE_LABEL}=true")),
            &changes,
            &synced,
        );
        tasks.push(t);
        (
            Self {
                sgc,
                lb,
                vm,
                secrets,
                nodes,
                changes,
                synced,
            },
            Watches(tasks),
        )
    }

    /// Whether every watch has completed its first list.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::Relaxed) >= WATCHES
    }

    /// Waits until every watch has completed its first list.
    pub async fn wait_synced(&self) {
        // A store's readiness is permanent once reached; waiting on each in
        // turn is enough. An error means its writer is gone (shutdown).
        let _ = self.sgc.wait_until_ready().await;
        let _ = self.lb.wait_until_ready().await;
        let _ = self.vm.wait_until_ready().await;
        let _ = self.secrets.wait_until_ready().await;
        let _ = self.nodes.wait_until_ready().await;
    }
}

/// What makes a configuration or child object "changed" for the pass.
fn spec_fingerprint<K: Resource>(o: &K) -> String {
    let m = o.meta();
    let mut h = DefaultHasher::new();
    m.generation.hash(&mut h);
    m.deletion_timestamp.is_some().hash(&mut h);
    m.finalizers.hash(&mut h);
    if let Some(owners) = &m.owner_references {
        for o in owners {
            o.uid.hash(&mut h);
        }
    }
    format!("{:x}", h.finish())
}

/// Managed fields are bulky and never read: dropping them keeps the stores
/// small (controller memory is a target).
fn slim<K: Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
    if let Some(a) = o.meta_mut().annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    fingerprint: fn(&K) -> String,
    changes: &Arc<Notify>,
    synced: &Arc<AtomicUsize>,
) -> (Store<K>, JoinHandle<()>)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (store, writer) = reflector::store();
    let changes = Arc::clone(changes);
    let synced = Arc::clone(synced);
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let task = tokio::spawn(async move {
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut first_sync = true;
        let stream = watcher(api, config)
            .default_backoff()
            .modify(slim::<K>)
            .reflect(writer);
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    let uid = o.uid().unwrap_or_default();
                    let fp = fingerprint(&o);
                    if seen.insert(uid, fp.clone()).as_ref() != Some(&fp) {
                        changes.notify_one();
                    }
                }
                Ok(watcher::Event::Delete(o)) => {
                    seen.remove(&o.uid().unwrap_or_default());
                    changes.notify_one();
                }
                Ok(watcher::Event::Init) => {}
                Ok(watcher::Event::InitDone) => {
                    if first_sync {
                        first_sync = false;
                        synced.fetch_add(1, Ordering::Relaxed);
                    }
                    changes.notify_one();
                }
                Err(e) => tracing::warn!(kind, error = %e, "watch failed; retrying with backoff"),
            }
        }
    });
    (store, task)
}

fn watch_metadata(
    api: Api<PartialObjectMeta<Node>>,
    config: watcher::Config,
    changes: &Arc<Notify>,
    synced: &Arc<AtomicUsize>,
) -> (Store<PartialObjectMeta<Node>>, JoinHandle<()>) {
    let (store, writer) = reflector::store();
    let changes = Arc::clone(changes);
    let synced = Arc::clone(synced);
    let task = tokio::spawn(async move {
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut first_sync = true;
        let stream = watcher(api, config)
            .default_backoff()
            .modify(slim::<PartialObjectMeta<Node>>)
            .reflect(writer);
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                    if seen.insert(o.uid().unwrap_or_default()) {
                        changes.notify_one();
                    }
                }
                Ok(watcher::Event::Delete(o)) => {
                    seen.remove(&o.uid().unwrap_or_default());
                    changes.notify_one();
                }
                Ok(watcher::Event::Init) => {}
                Ok(watcher::Event::InitDone) => {
                    if first_sync {
                        first_sync = false;
                        synced.fetch_add(1, Ordering::Relaxed);
                    }
                    changes.notify_one();
                }
                Err(e) => {
                    tracing::warn!(kind = "Node", error = %e, "watch failed; retrying with backoff");
                }
            }
        }
    });
    (store, task)
}
