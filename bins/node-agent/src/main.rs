//! `egress-node-agent`: runs on every node. It installs the chained CNI
//! configuration, serves the `egress-cni` plugin on a root-only unix socket,
//! puts opted-in pods on the WireGuard tunnel and keeps them in step with
//! their gateway. `egress-node-agent uninstall` restores the node's CNI
//! configuration.
//!
//! This file is the composition root: it wires the Kubernetes adapter
//! (`egress_k8s::agent`), the Linux dataplane (`egress_net::pod`) and the
//! CNI layer (`egress_cni`) to the plan in `egress_core::pod`.

mod handler;
mod liveness;
mod metrics;
mod pods;
mod recover;
mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use egress_cni::conflist::{self, Layout};
use egress_cni::sandbox::SandboxStore;
use egress_k8s::agent::AgentApi;
use egress_net::netns::{NsRef, NsWorker};
use egress_net::pod::PodDevices;
use egress_net::wireguard::Backend;
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// This node's name.
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// The CNI configuration directory.
    #[arg(long, default_value = "/etc/cni/net.d")]
    cni_conf_dir: PathBuf,
    /// The chained configuration's file name (sorts before the primary's).
    #[arg(long, default_value = "00-egress-gateway.conflist")]
    cni_conf_file: String,
    /// Where a replaced configuration file is kept until uninstall.
    #[arg(long, default_value = "/var/lib/egress-gateway/cni-backup")]
    backup_dir: PathBuf,
    /// The plugin's socket.
    #[arg(long, default_value = egress_cni::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// What the plugin does without the agent: open or closed.
    #[arg(long, default_value = "open")]
    failure_mode: String,
    /// Destinations that always use the pod's primary interface
    /// (metadata service, node-local DNS, cluster CIDRs), comma-separated.
    #[arg(
        long,
        default_value = "169.254.169.254/32,169.254.10.11/32",
        value_delimiter = ','
    )]
    exception_cidrs: Vec<String>,
    /// Address of `/metrics`.
    #[arg(long, default_value = "127.0.0.1:9464")]
    metrics_addr: String,
    /// Where each CNI ADD's sandbox is recorded (by the agent, or by the
    /// plugin while the agent is away): a pod's tunnel is bound to the
    /// sandbox recorded for it, never to an address.
    #[arg(long, default_value = egress_cni::sandbox::DEFAULT_DIR)]
    sandbox_dir: PathBuf,
    /// Seconds between checks of running pods against the API.
    #[arg(long, default_value_t = 2)]
    resync_seconds: u64,
    /// Milliseconds a pod's tunnel may leave data unanswered before its
    /// session is dropped for a new handshake (through the load balancer,
    /// to a healthy gateway node); 0 leaves it to WireGuard (15 s).
    #[arg(long, default_value_t = 2000)]
    tunnel_silence_ms: u64,
    /// Only callers in this process's mount namespace may use the socket:
    /// 1 is the node's init when the agent runs with the node's PID
    /// namespace, so callers must be where the container runtime is.
    #[arg(long, default_value_t = 1)]
    callers_like_pid: u32,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Remove the chained configuration, restoring what it replaced.
    Uninstall,
}

fn layout(args: &Args) -> Layout {
    Layout {
        dir: args.cni_conf_dir.clone(),
        file: args.cni_conf_file.clone(),
        backup_dir: args.backup_dir.clone(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let marker = uninstall_marker(&args);
    if matches!(args.command, Some(Cmd::Uninstall)) {
        // The marker first: a running agent (this command runs as its
        // container's preStop hook) then stops re-installing the chain.
        std::fs::create_dir_all(&args.backup_dir)
            .and_then(|()| std::fs::write(&marker, b"uninstalled\n"))
            .with_context(|| format!("cannot write {}", marker.display()))?;
        conflist::uninstall(&layout(&args)).context("uninstalling the CNI configuration")?;
        tracing::info!("CNI configuration restored");
        return Ok(());
    }
    let node = args
        .node_name
        .clone()
        .context("--node-name (or NODE_NAME) is required")?;
    let mut exceptions = Vec::new();
    for c in args.exception_cidrs.iter().filter(|c| !c.trim().is_empty()) {
        exceptions.push(
            c.trim()
                .parse::<IpNet>()
                .with_context(|| format!("--exception-cidrs: {c:?} is not a CIDR"))?,
        );
    }
    if !matches!(args.failure_mode.as_str(), "open" | "closed") {
        anyhow::bail!(
            "--failure-mode must be open or closed, not {:?}",
            args.failure_mode
        );
    }
    let client = kube::Client::try_default()
        .await
        .context("connecting to the API server")?;
    let metrics = Arc::new(metrics::Metrics::default());
    let records = SandboxStore::new(&args.sandbox_dir);
    // A directory that cannot be read fails the start, not every ADD.
    records
        .list()
        .with_context(|| format!("--sandbox-dir {}", args.sandbox_dir.display()))?;
    let pods = Arc::new(pods::Pods {
        api: AgentApi::new(client, node).with_cache(),
        devices: PodDevices::new(NsWorker::start(NsRef::Current).await?, Backend::detect()),
        records,
        exceptions,
        metrics: metrics.clone(),
        state: tokio::sync::Mutex::default(),
        locks: std::sync::Mutex::default(),
    });
    let node_mounts = server::MountNs::node(args.callers_like_pid)?;
    let listener = server::bind(&args.socket)?;
    let handler = Arc::new(handler::Handler {
        pods: pods.clone(),
        metrics: metrics.clone(),
    });
    let serving = tokio::spawn(server::serve(listener, handler, node_mounts));
    // Install only once the socket answers, so the plugin never waits on a
    // configuration the agent cannot serve yet.
    let plugin = serde_json::json!({
        "type": "egress-cni",
        "failureMode": args.failure_mode,
        "agentSocket": args.socket,
        "sandboxDir": args.sandbox_dir,
    });
    // A new agent installs again, whatever an earlier one uninstalled.
    match std::fs::remove_file(&marker) {
        Ok(()) => tracing::info!("installing again after an uninstall"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot remove {}: {e}", marker.display()),
    }
    let installing = install_loop(layout(&args), plugin, metrics.clone(), marker.clone());
    match Box::pin(recover::recover(&pods)).await {
        Ok(n) => tracing::info!(
            pods = n,
            "pods started while the agent was away are plumbed"
        ),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "recovering pods failed"),
    }
    let resync = spawn_resync(
        pods.clone(),
        Duration::from_secs(args.resync_seconds.max(1)),
    );
    let watch = liveness::spawn(pods.clone(), args.tunnel_silence_ms);
    let metrics_task = tokio::spawn(serve_metrics(args.metrics_addr.clone(), metrics));
    tokio::select! {
        r = serving => r.context("socket server")??,
        r = metrics_task => r.context("metrics server")??,
        () = terminated() => tracing::info!("stopping; the CNI configuration stays (the plugin fails open)"),
    }
    resync.abort();
    if let Some(w) = watch {
        w.abort();
    }
    uninstall_if_asked(installing, &marker, &layout(&args)).await
}

/// Every `every`: brings known pods in line with the API, binds pods that
/// opt in now to their recorded sandboxes, and collects PodEndpoints of pods
/// that went while the agent did not see their DEL. All from the node's
/// watches, so a pass costs the API nothing unless something changed.
fn spawn_resync(pods: Arc<pods::Pods>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            pods.resync().await;
            if let Err(e) = Box::pin(recover::recover(&pods)).await {
                tracing::warn!(error = %format!("{e:#}"), "finding newly opted-in pods failed");
            }
            if let Err(e) = recover::collect_endpoints(&pods).await {
                tracing::warn!(error = %format!("{e:#}"), "collecting PodEndpoints of gone pods failed");
            }
        }
    })
}

/// The preStop hook's uninstall may have raced a pass of the install loop
/// that had checked the marker just before: with the loop stopped, an
/// uninstall asked for is done again (it is idempotent).
async fn uninstall_if_asked(
    installing: tokio::task::JoinHandle<()>,
    marker: &std::path::Path,
    layout: &Layout,
) -> anyhow::Result<()> {
    installing.abort();
    let _ = installing.await;
    if marker.exists() {
        conflist::uninstall(layout).context("uninstalling the CNI configuration")?;
        tracing::info!("CNI configuration restored (uninstall asked for)");
    }
    Ok(())
}

/// Installs the chained configuration, and again whenever the primary
/// changes (checked every few seconds). A missing or broken primary is
/// reported and left alone.
/// Where `uninstall` leaves word for a running agent to stop installing.
fn uninstall_marker(args: &Args) -> std::path::PathBuf {
    args.backup_dir.join("uninstalled")
}

fn install_loop(
    layout: Layout,
    plugin: serde_json::Value,
    metrics: Arc<metrics::Metrics>,
    marker: std::path::PathBuf,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last_error = String::new();
        loop {
            if marker.exists() {
                tracing::info!("uninstalled: no longer installing the chained CNI configuration");
                return;
            }
            match conflist::install(&layout, &plugin) {
                Ok(done) => {
                    if !last_error.is_empty() || done.backed_up {
                        tracing::info!(primary = %done.primary.display(), "chained CNI configuration installed");
                    }
                    last_error.clear();
                }
                Err(e) => {
                    let text = e.to_string();
                    if text != last_error {
                        metrics.failure("cni_config");
                        tracing::error!(error = %text, "cannot install the chained CNI configuration");
                        last_error = text;
                    }
                }
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
    })
}

async fn serve_metrics(addr: String, metrics: Arc<metrics::Metrics>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot bind metrics on {addr}"))?;
    loop {
        let (mut s, _) = listener.accept().await?;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let body = metrics.render();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(body.as_bytes()).await;
        });
    }
}

/// SIGTERM (the kubelet stopping the container) or SIGINT.
async fn terminated() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
