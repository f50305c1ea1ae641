//! Node-local views the agent answers its reads from: the pods scheduled on
//! this node (a field-selected watch, never the whole cluster), the
//! namespaces' metadata, the gateway configurations and the PodEndpoints this
//! node wrote (label-selected). With them a steady node costs the API nothing
//! but the watches. What a watch has not delivered yet is read directly, so a
//! just-created pod never fails an ADD.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use tokio::task::JoinHandle;

use crate::crd::{PodEndpoint, StaticGatewayConfiguration};

/// The stores and the tasks feeding them (stopped on drop).
#[derive(Debug)]
pub struct AgentCache {
    pods: Store<Pod>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    gateways: Store<StaticGatewayConfiguration>,
    endpoints: Store<PodEndpoint>,
    tasks: Vec<JoinHandle<()>>,
}

fn drive<S, T>(stream: S, what: &'static str) -> JoinHandle<()>
where
    S: futures_util::Stream<Item = Result<T, watcher::Error>> + Send + 'static,
    T: Send,
{
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                tracing::warn!(kind = what, error = %e, "watch failed; retrying");
            }
        }
    })
}

/// Whether the store has had its first full listing.
fn ready<K>(store: &Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    futures_util::FutureExt::now_or_never(store.wait_until_ready()).is_some_and(|r| r.is_ok())
}

impl AgentCache {
    /// Starts the watches for `node`.
    pub fn start(client: &Client, node: &str) -> Self {
        let (pods, pod_writer) = reflector::store();
        let pod_stream = reflector::reflector(
            pod_writer,
            watcher(
                Api::<Pod>::all(client.clone()),
                watcher::Config::default().fields(&format!("spec.nodeName={node}")),
            )
            .default_backoff()
            .modify(|p: &mut Pod| p.meta_mut().managed_fields = None),
        );
        let (namespaces, ns_writer) = reflector::store();
        let ns_stream = reflector::reflector(
            ns_writer,
            watcher(
                Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .modify(|n: &mut PartialObjectMeta<Namespace>| n.metadata.managed_fields = None),
        );
        let (gateways, gw_writer) = reflector::store();
        let gw_stream = reflector::reflector(
            gw_writer,
            watcher(
                Api::<StaticGatewayConfiguration>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .modify(|g: &mut StaticGatewayConfiguration| g.meta_mut().managed_fields = None),
        );
        let (endpoints, ep_writer) = reflector::store();
        let ep_stream = reflector::reflector(
            ep_writer,
            watcher(
                Api::<PodEndpoint>::all(client.clone()),
                watcher::Config::default().labels(&format!("{}={node}", super::NODE_LABEL)),
            )
            .default_backoff()
            .modify(|e: &mut PodEndpoint| e.meta_mut().managed_fields = None),
        );
        Self {
            pods,
            namespaces,
            gateways,
            endpoints,
            tasks: vec![
                drive(pod_stream, "Pod"),
                drive(ns_stream, "Namespace"),
                drive(gw_stream, "StaticGatewayConfiguration"),
                drive(ep_stream, "PodEndpoint"),
            ],
        }
    }

    /// The pod, if the watch has it.
    pub fn pod(&self, ns: &str, name: &str) -> Option<Pod> {
        self.pods
            .get(&ObjectRef::new(name).within(ns))
            .map(|p| (*p).clone())
    }

    /// Every pod of this node, once the watch has listed them (`None`
    /// before that, so a caller reads the API instead of trusting an empty
    /// store).
    pub fn pods(&self) -> Option<Vec<Pod>> {
        ready(&self.pods).then(|| self.pods.state().iter().map(|p| (**p).clone()).collect())
    }

    /// The configuration, once the watch has listed them (`Some(None)`:
    /// listed, and there is no such configuration).
    pub fn gateway(&self, ns: &str, name: &str) -> Option<Option<StaticGatewayConfiguration>> {
        ready(&self.gateways).then(|| {
            self.gateways
                .get(&ObjectRef::new(name).within(ns))
                .map(|g| (*g).clone())
        })
    }

    /// The PodEndpoint of a pod of this node, once the watch has listed
    /// them (`Some(None)`: listed, and there is none).
    pub fn endpoint(&self, ns: &str, name: &str) -> Option<Option<PodEndpoint>> {
        ready(&self.endpoints).then(|| {
            self.endpoints
                .get(&ObjectRef::new(name).within(ns))
                .map(|e| (*e).clone())
        })
    }

    /// Every PodEndpoint this node wrote, once listed.
    pub fn endpoints(&self) -> Option<Vec<PodEndpoint>> {
        ready(&self.endpoints).then(|| {
            self.endpoints
                .state()
                .iter()
                .map(|e| (**e).clone())
                .collect()
        })
    }

    /// The namespace's annotations, if the watch has it.
    pub fn namespace_annotation(&self, ns: &str, key: &str) -> Option<Option<String>> {
        self.namespaces.get(&ObjectRef::new(ns)).map(|n| {
            n.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(key).cloned())
        })
    }
}

impl Drop for AgentCache {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
