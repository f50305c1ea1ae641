//! Reflectors over the objects that shape a gateway node.
//!
//! Each kind is listed and watched by its own reflector; a failed watch is
//! retried with backoff while the store keeps the last known objects, so a
//! transient API error never empties the plan and tears down live state.

use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::translate::{NodeIdentity, Snapshot, snapshot};
use crate::Error;
use crate::crd::{GatewayVMConfiguration, PodEndpoint, StaticGatewayConfiguration};

/// Live views of SGCs, VM configurations, key Secrets and PodEndpoints.
#[derive(Debug)]
pub struct GatewayWatch {
    sgcs: Store<StaticGatewayConfiguration>,
    vms: Store<GatewayVMConfiguration>,
    secrets: Store<Secret>,
    endpoints: Store<PodEndpoint>,
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
        let (endpoints, t4) = reflect(Api::all(client.clone()), "PodEndpoint", changed.clone());
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
        self.endpoints
            .wait_until_ready()
            .await
            .map_err(|_| Error::WatchStopped("PodEndpoint"))
    }

    /// Waits for the next change of any watched object.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// What the cluster currently says this node should serve.
    pub fn snapshot(&self, node: &NodeIdentity) -> Snapshot {
        let (sgcs, vms, secrets, eps) = (
            self.sgcs.state(),
            self.vms.state(),
            self.secrets.state(),
            self.endpoints.state(),
        );
        snapshot(
            sgcs.iter().map(AsRef::as_ref),
            vms.iter().map(AsRef::as_ref),
            secrets.iter().map(AsRef::as_ref),
            eps.iter().map(AsRef::as_ref),
            node,
        )
    }
}

impl Drop for GatewayWatch {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
