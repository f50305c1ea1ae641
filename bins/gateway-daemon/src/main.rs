//! The gateway daemon: one per gateway node. Watches the configurations
//! that select the node, applies egress-core's node plan to the kernel
//! through the Linux dataplane, repairs drift on a timer, serves the load
//! balancer's health probe and metrics, and reports GatewayStatus.

mod http;
mod imds;
mod run;
mod state;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use egress_k8s::gateway::{GatewayWatch, NodeIdentity, StatusWriter};
use egress_net::LinuxDataplane;
use egress_net::dataplane::{Config, GATEWAY_NETNS, StaticKeys};
use egress_net::netns::{self, NsRef};
use egress_net::wireguard::Backend;

/// Command-line flags; defaults follow upstream's daemon.
#[derive(Debug, Parser)]
#[command(name = "egress-gateway-daemon", version, about)]
struct Args {
    /// This node's name (names its GatewayStatus).
    #[arg(long, env = "MY_NODE_NAME")]
    node_name: String,
    /// Namespace of the key Secrets and of GatewayStatus.
    #[arg(
        long,
        env = "MY_POD_NAMESPACE",
        default_value = "kube-egress-gateway-system"
    )]
    secret_namespace: String,
    /// Azure IMDS base URL.
    #[arg(long, default_value = "http://169.254.169.254")]
    imds_url: String,
    /// Accept a PodEndpoint only when it matches a real pod: same name and
    /// namespace, on the node it records, opted into its configuration, with
    /// its address (see `egress_k8s::gateway::verify`). On by default: a
    /// forged endpoint would otherwise put any key on the gateway.
    /// `--verify-pod-endpoints=false` only where no kubelet runs the pods.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    verify_pod_endpoints: bool,
    /// Node identity without IMDS (bare metal, local clusters): the pool
    /// name that SGCs' `gatewayNodepoolName` selects.
    #[arg(long)]
    pool_name: Option<String>,
    /// Node identity without IMDS: VMSS name.
    #[arg(long)]
    vmss_name: Option<String>,
    /// Node identity without IMDS: VMSS resource group.
    #[arg(long)]
    resource_group: Option<String>,
    /// Node identity without IMDS: the name `GatewayVMConfiguration` profiles
    /// use for this node (default: --node-name).
    #[arg(long)]
    computer_name: Option<String>,
    /// The namespace that holds the node's interface and the WireGuard
    /// sockets (default: the daemon's own). For nested and test setups.
    #[arg(long)]
    host_netns: Option<PathBuf>,
    /// The gateway network namespace (created if missing).
    #[arg(long, default_value = GATEWAY_NETNS)]
    gateway_netns: PathBuf,
    /// The node interface that holds the frontend IPs.
    #[arg(long, default_value = "eth0")]
    node_interface: String,
    /// Underlay MTU; tunnels get it minus WireGuard's overhead.
    #[arg(long, default_value_t = 1500)]
    underlay_mtu: u32,
    /// Address the probe and metrics servers bind to.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: String,
    /// Load-balancer health-probe port.
    #[arg(long, default_value_t = egress_core::names::DEFAULT_PROBE_PORT)]
    gateway_lb_probe_port: u16,
    /// Metrics and /healthz port.
    #[arg(long, default_value_t = 8080)]
    metrics_bind_port: u16,
    /// Seconds the probe answers 503 after SIGTERM before the daemon exits.
    #[arg(long, default_value_t = 10)]
    lb_probe_drain_delay_seconds: u64,
    /// Seconds between drift-repair passes.
    #[arg(long, default_value_t = 10)]
    resync_seconds: u64,
    /// Seconds between read-only readiness checks.
    #[arg(long, default_value_t = 2)]
    check_seconds: u64,
    /// Log as JSON lines (default) or text.
    #[arg(long, default_value = "json")]
    log_format: String,
    /// Remove everything the daemon ever made on this node, then exit.
    #[arg(long)]
    uninstall: bool,
}

async fn identity(args: &Args) -> Result<NodeIdentity> {
    if args.pool_name.is_some() || args.vmss_name.is_some() {
        return Ok(NodeIdentity {
            computer_name: args
                .computer_name
                .clone()
                .unwrap_or_else(|| args.node_name.clone()),
            nic_name: None,
            pool_name: args.pool_name.clone(),
            vmss_name: args.vmss_name.clone(),
            resource_group: args.resource_group.clone(),
        });
    }
    imds::identity(&args.imds_url).await.context(
        "reading node identity from IMDS (use --pool-name or --vmss-name where there is none)",
    )
}

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

// One thread runs the loop, the watches and the endpoints: the work is in
// the kernel and the devices, and fewer threads keep the daemon small.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if args.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }

    if netns::ensure_named(&args.gateway_netns)? {
        tracing::info!(netns = %args.gateway_netns.display(), "created the gateway namespace");
    }
    let keys = Arc::new(StaticKeys::default());
    let backend = Backend::detect();
    tracing::info!(backend = backend.name(), "WireGuard backend");
    let dataplane = LinuxDataplane::new(
        Config {
            host_ns: args.host_netns.clone().map_or(NsRef::Current, NsRef::Path),
            gateway_ns: NsRef::Path(args.gateway_netns.clone()),
            node_interface: args.node_interface.clone(),
            backend,
        },
        keys.clone(),
    )
    .await?;

    if args.uninstall {
        dataplane.uninstall().await?;
        drop(dataplane);
        netns::remove_named(&args.gateway_netns)?;
        tracing::info!("removed everything the daemon made on this node");
        return Ok(());
    }

    let identity = identity(&args).await?;
    tracing::info!(?identity, "node identity");
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let shared = Arc::new(state::Shared::default());
    let probe =
        tokio::net::TcpListener::bind((args.bind_address.as_str(), args.gateway_lb_probe_port))
            .await
            .with_context(|| format!("binding the probe port {}", args.gateway_lb_probe_port))?;
    let admin = tokio::net::TcpListener::bind((args.bind_address.as_str(), args.metrics_bind_port))
        .await
        .with_context(|| format!("binding the metrics port {}", args.metrics_bind_port))?;
    tokio::spawn(http::serve(probe, shared.clone(), http::probe));
    tokio::spawn(http::serve(admin, shared.clone(), http::admin));

    let watch =
        GatewayWatch::start_with(&client, &args.secret_namespace, args.verify_pod_endpoints);
    tokio::select! {
        r = watch.ready() => r?,
        () = terminated() => return Ok(()),
    }
    let mut reconciler = run::Reconciler {
        dataplane,
        watch,
        keys,
        status: StatusWriter::new(client, &args.secret_namespace, &args.node_name),
        identity,
        shared: shared.clone(),
        underlay_mtu: args.underlay_mtu,
        placed: std::collections::BTreeMap::default(),
        last: None,
    };
    reconciler
        .run(
            Duration::from_secs(args.resync_seconds.max(1)),
            Duration::from_secs(args.check_seconds.max(1)),
            terminated(),
        )
        .await;

    // Drain: the load balancer stops sending new flows here; the dataplane
    // stays so established flows keep working and a restart is seamless.
    shared.drain();
    let delay = if args.lb_probe_drain_delay_seconds == 0 {
        10
    } else {
        args.lb_probe_drain_delay_seconds
    };
    tracing::info!(seconds = delay, "draining: probes answer 503");
    tokio::time::sleep(Duration::from_secs(delay)).await;
    Ok(())
}
