//! Node-local views the agent answers most ADDs from: the pods scheduled on
//! this node (a field-selected watch, never the whole cluster) and the
//! namespaces' metadata. A pod the watch has not delivered yet is read
//! directly, so a just-created pod never fails an ADD.

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use tokio::task::JoinHandle;

/// The stores and the tasks feeding them (stopped on drop).
#[derive(Debug)]
pub struct AgentCache {
    pods: Store<Pod>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
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
        Self {
            pods,
            namespaces,
            tasks: vec![drive(pod_stream, "Pod"), drive(ns_stream, "Namespace")],
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
        let ready = futures_util::FutureExt::now_or_never(self.pods.wait_until_ready())
            .is_some_and(|r| r.is_ok());
        ready.then(|| self.pods.state().iter().map(|p| (**p).clone()).collect())
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
