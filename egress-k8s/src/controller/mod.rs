//! The controller's Kubernetes side: core's `ClusterApi` over kube-rs and
//! everything a controller process runs around core's reconcile pass.
//!
//! - [`stores`]: watches and reflector stores (a pass reads memory, never
//!   lists), and the change signal that drives the debounced pass loop.
//! - [`KubeCluster`]: the `ClusterApi` — the key Secret, the children, status
//!   up the chain, finalizers — with upstream's names, labels, finalizers
//!   and owner references, plus conditions and events on transitions.
//! - [`lease`]: leader election on a `coordination.k8s.io` Lease.
//! - [`runner`]: the pass loop under leadership, with graceful shutdown.
//! - [`metrics`] and [`http`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`run`]: all of it wired together, for the controller binary.

mod cluster;
mod convert;
pub mod http;
mod keys;
pub mod lease;
pub mod metrics;
mod report;
pub mod runner;
mod secret;
mod status;
pub mod stores;

use std::net::SocketAddr;
use std::sync::Arc;

use egress_core::traits::CloudProvider;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use cluster::{FIELD_MANAGER, KubeCluster};
pub use lease::{Elector, LeaseSettings};
pub use metrics::Metrics;
pub use runner::RunnerSettings;
pub use secret::{PRIVATE_KEY, PUBLIC_KEY};
pub use stores::Stores;

use crate::Error;

/// Everything [`run`] needs besides the clients.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Namespace of the key Secrets (the controller's own).
    pub secret_namespace: String,
    /// This replica's identity: events and the Lease name it.
    pub identity: String,
    /// Leader election; `None` runs as the only replica.
    pub lease: Option<LeaseSettings>,
    /// The pass loop.
    pub runner: RunnerSettings,
    /// Where `/metrics` is served (with `/healthz` and `/readyz`).
    pub metrics_addr: SocketAddr,
    /// Where `/healthz` and `/readyz` are served (with `/metrics`).
    pub health_addr: SocketAddr,
}

impl KubeCluster {
    /// Drops what this replica remembers of conditions: another leader may
    /// have written since.
    pub fn forget_verdicts(&self) {
        self.verdicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Serve {
            what,
            addr: addr.to_string(),
            source,
        })
}

/// Runs the controller until `shutdown` resolves: watches, endpoints, leader
/// election and the pass loop. `extra_metrics` renders the cloud adapter's
/// metrics. On shutdown a running pass finishes (or is abandoned after the
/// grace period) before the Lease is released.
pub async fn run<C>(
    client: kube::Client,
    cloud: Arc<C>,
    options: ControllerOptions,
    extra_metrics: impl Fn() -> String + Send + Sync + 'static,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error>
where
    C: CloudProvider + ?Sized + 'static,
{
    let metrics_listener = bind("metrics", options.metrics_addr).await?;
    let health_listener = if options.health_addr == options.metrics_addr {
        None
    } else {
        Some(bind("health probes", options.health_addr).await?)
    };
    let (stores, watches) = Stores::start(&client, &options.secret_namespace);
    let cluster = Arc::new(KubeCluster::new(
        client.clone(),
        stores,
        &options.secret_namespace,
        &options.identity,
    ));
    let metrics = Arc::new(Metrics::default());
    let handler: http::Handler = {
        let cluster = Arc::clone(&cluster);
        let metrics = Arc::clone(&metrics);
        Arc::new(move |path: &str| match path {
            "/metrics" => (
                ::http::StatusCode::OK,
                metrics.render(&cluster.writes(), &extra_metrics()),
            ),
            "/healthz" => (::http::StatusCode::OK, "ok\n".into()),
            "/readyz" if cluster.stores().synced() => (::http::StatusCode::OK, "ok\n".into()),
            "/readyz" => (
                ::http::StatusCode::SERVICE_UNAVAILABLE,
                "watches not synced yet\n".into(),
            ),
            _ => (::http::StatusCode::NOT_FOUND, "not found\n".into()),
        })
    };
    let mut servers = vec![http::serve(metrics_listener, Arc::clone(&handler))];
    if let Some(l) = health_listener {
        servers.push(http::serve(l, handler));
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        shutdown_tx.send_replace(true);
    });
    let (leading_tx, leading_rx) = watch::channel(options.lease.is_none());
    let (stop_tx, stop_rx) = watch::channel(false);
    // Without election the sender stays here, so the loop always leads.
    let mut single = None;
    let elector = if let Some(settings) = options.lease.clone() {
        Some(tokio::spawn(
            Elector::new(client.clone(), settings).run(leading_tx, stop_rx),
        ))
    } else {
        single = Some(leading_tx);
        None
    };
    runner::run_passes(
        cloud.as_ref(),
        &cluster,
        &options.runner,
        &metrics,
        leading_rx,
        shutdown_rx,
    )
    .await;
    stop_tx.send_replace(true);
    if let Some(e) = elector {
        let _ = e.await;
    }
    drop(single);
    watches.abort();
    for s in servers {
        s.abort();
    }
    tracing::info!("controller stopped");
    Ok(())
}
