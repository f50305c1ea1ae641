//! The egress gateway controller: one composition root that wires the Azure
//! adapter and the Kubernetes adapter to core's reconcile pass.
//!
//! Configuration comes from flags, their environment variables and
//! upstream's `azure.json`. The process refuses to start, naming what is
//! missing or malformed, before it touches any API.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgAction, Parser};
use egress_azure::config::CloudConfig;
use egress_azure::{ArmClient, ArmCloud, ArmCredential, ClientSettings, Placement};
use egress_core::backoff::Backoff;
use egress_core::controller::ControllerSettings;
use egress_core::controller::schedule::Debounce;
use egress_core::lb::ProbeSettings;
use egress_k8s::controller::{ControllerOptions, LeaseSettings, RunnerSettings};

mod arm_metrics;

/// Flags, each with its environment variable. Names and defaults follow
/// upstream's controller where it has the flag.
#[derive(Debug, Parser)]
#[command(name = "egress-controller", version, about)]
struct Args {
    /// Upstream's cloud configuration file (`azure.json`).
    #[arg(
        long,
        env = "EGRESS_CLOUD_CONFIG",
        default_value = "/etc/kubernetes/kube-egress-gateway/azure.json"
    )]
    cloud_config: PathBuf,
    /// Namespace of the key Secrets (the controller's own namespace).
    #[arg(long, env = "MY_POD_NAMESPACE")]
    secret_namespace: Option<String>,
    /// Elect a leader among replicas on a Lease.
    #[arg(long, env = "EGRESS_LEADER_ELECT", default_value_t = true, action = ArgAction::Set)]
    leader_elect: bool,
    /// Namespace of the Lease (default: the Secret namespace).
    #[arg(long, env = "EGRESS_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the Lease; upstream's, so the two exclude each other.
    #[arg(long, default_value = "0a299682.microsoft.com")]
    leader_election_id: String,
    /// This replica's identity in the Lease and in events (default: host name and process ID).
    #[arg(long, env = "MY_POD_NAME")]
    identity: Option<String>,
    /// How long a Lease stays valid without renewal.
    #[arg(long, default_value = "15s", value_parser = duration)]
    lease_duration: Duration,
    /// How long the leader tries to renew before it stops leading.
    #[arg(long, default_value = "10s", value_parser = duration)]
    renew_deadline: Duration,
    /// Time between Lease tries.
    #[arg(long, default_value = "2s", value_parser = duration)]
    retry_period: Duration,
    /// Address the metrics and health endpoints listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: IpAddr,
    /// Port of `/metrics`.
    #[arg(long, default_value_t = 8080)]
    metrics_bind_port: u16,
    /// Port of `/healthz` and `/readyz`.
    #[arg(long, default_value_t = 8081)]
    health_probe_bind_port: u16,
    /// Port of the gateway daemons' health probe, written into the load balancer's probes.
    #[arg(long, default_value_t = egress_core::names::DEFAULT_PROBE_PORT)]
    gateway_lb_probe_port: u16,
    /// Resource Manager endpoint, overriding `azure.json` (a fake ARM, for example).
    #[arg(long, env = "EGRESS_ARM_ENDPOINT")]
    arm_endpoint: Option<String>,
    /// A fixed ARM bearer token instead of the credential `azure.json` names:
    /// for a fake ARM only. Prefer the environment variable.
    #[arg(long, env = "EGRESS_ARM_STATIC_TOKEN", hide_env_values = true)]
    arm_static_token: Option<String>,
    /// Delay between polls of a long-running ARM operation.
    #[arg(long, default_value = "1s", value_parser = duration)]
    arm_poll_interval: Duration,
    /// Longest delay between polls, whatever `Retry-After` the server suggests.
    #[arg(long, default_value = "10s", value_parser = duration)]
    arm_max_poll_interval: Duration,
    /// Quiet time after the last change before a pass.
    #[arg(long, default_value = "200ms", value_parser = duration)]
    debounce_quiet: Duration,
    /// Longest a change waits for a pass.
    #[arg(long, default_value = "1s", value_parser = duration)]
    debounce_max_wait: Duration,
    /// Pass interval when everything is healthy (drift repair).
    #[arg(long, default_value = "5m", value_parser = duration)]
    resync: Duration,
    /// How long a running pass may go on after SIGTERM.
    #[arg(long, default_value = "20s", value_parser = duration)]
    shutdown_grace: Duration,
    /// Kubeconfig (default: `KUBECONFIG`, then the in-cluster service account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Log filter, e.g. `info` or `egress_k8s=debug,info`.
    #[arg(long, env = "EGRESS_LOG", default_value = "info")]
    log: String,
}

/// `250ms`, `2s`, `5m`, `1h`.
fn duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 500ms, 10s, 5m or 1h"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_mins(n)),
        "h" => Ok(Duration::from_hours(n)),
        _ => Err(format!(
            "{text:?} has no unit: write a duration such as 500ms, 10s, 5m or 1h"
        )),
    }
}

/// Everything the controller is started with, checked.
struct Setup {
    client: kube::Client,
    cloud: Arc<ArmCloud>,
    options: ControllerOptions,
}

#[allow(clippy::too_many_lines)] // one check after another, in the order a reader meets them
async fn setup(args: Args) -> anyhow::Result<Setup> {
    let Some(secret_namespace) = args.secret_namespace.filter(|s| !s.trim().is_empty()) else {
        bail!(
            "--secret-namespace (or MY_POD_NAMESPACE) is required: the namespace where the key Secrets are kept"
        );
    };
    let text = std::fs::read_to_string(&args.cloud_config).with_context(|| {
        format!(
            "cannot read the cloud configuration {} (--cloud-config, EGRESS_CLOUD_CONFIG)",
            args.cloud_config.display()
        )
    })?;
    let config = CloudConfig::from_json(&text)
        .with_context(|| format!("cloud configuration {}", args.cloud_config.display()))?;
    let endpoint = args
        .arm_endpoint
        .clone()
        .unwrap_or_else(|| config.resource_manager_endpoint.clone());
    let credential = match &args.arm_static_token {
        Some(token) if token.trim().is_empty() => {
            bail!("--arm-static-token (EGRESS_ARM_STATIC_TOKEN) is set but empty")
        }
        Some(token) => {
            tracing::warn!(endpoint, "using a static ARM token: for a fake ARM only");
            ArmCredential::static_token(token.trim())
        }
        None => ArmCredential::from_config(&config)
            .context("Azure credential from the cloud configuration")?,
    };
    let mut settings = ClientSettings::new(endpoint.clone(), config.subscription_id.clone());
    settings.user_agent.clone_from(&config.user_agent);
    settings.poll_interval = args.arm_poll_interval;
    settings.max_poll_interval = args.arm_max_poll_interval.max(args.arm_poll_interval);
    let client = ArmClient::new(settings, credential).with_context(|| {
        format!(
            "Resource Manager endpoint {endpoint:?} (--arm-endpoint or resourceManagerEndpoint)"
        )
    })?;
    let cloud = Arc::new(ArmCloud::new(client, Placement::from_config(&config)));

    let identity = args.identity.filter(|s| !s.is_empty()).unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let lease = if args.leader_elect {
        let lease = LeaseSettings {
            namespace: args
                .leader_election_namespace
                .unwrap_or_else(|| secret_namespace.clone()),
            name: args.leader_election_id,
            identity: identity.clone(),
            duration: args.lease_duration,
            renew_deadline: args.renew_deadline,
            retry_period: args.retry_period,
        };
        lease
            .check()
            .map_err(|e| anyhow::anyhow!("leader election: {e}"))?;
        Some(lease)
    } else {
        None
    };
    let kube_config = match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer().await.context(
            "no Kubernetes configuration: set --kubeconfig or KUBECONFIG, or run in a pod",
        )?,
    };
    let client = kube::Client::try_from(kube_config).context("Kubernetes client")?;
    let options = ControllerOptions {
        secret_namespace,
        identity,
        lease,
        runner: RunnerSettings {
            controller: ControllerSettings {
                subscription_id: config.subscription_id.clone(),
                frontend_subnet_id: config.frontend_subnet_id(),
                probe: ProbeSettings {
                    port: args.gateway_lb_probe_port,
                    ..ProbeSettings::default()
                },
            },
            debounce: Debounce {
                quiet: args.debounce_quiet,
                max_wait: args.debounce_max_wait,
            },
            backoff: Backoff {
                resync: args.resync,
                ..Backoff::default()
            },
            grace: args.shutdown_grace,
        },
        metrics_addr: SocketAddr::new(args.bind_address, args.metrics_bind_port),
        health_addr: SocketAddr::new(args.bind_address, args.health_probe_bind_port),
    };
    Ok(Setup {
        client,
        cloud,
        options,
    })
}

/// Gives freed heap memory back to the system every few seconds. A pass at
/// 1,000 configurations briefly holds large ARM bodies (a scale-set model,
/// the load balancer); glibc keeps such freed pages mapped, so without this
/// the process's RSS reflects its largest pass rather than what it holds.
async fn trim_memory() {
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        #[allow(unsafe_code)]
        // SAFETY: malloc_trim only releases free heap pages; it takes no
        // pointer and is safe to call from any thread at any time.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still stops on SIGTERM, only
        // not gracefully.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let Setup {
        client,
        cloud,
        options,
    } = setup(args).await?;
    tracing::info!(
        identity = %options.identity,
        secret_namespace = %options.secret_namespace,
        leader_election = options.lease.is_some(),
        "starting"
    );
    tokio::spawn(trim_memory());
    let metrics_cloud = Arc::clone(&cloud);
    egress_k8s::controller::run(
        client,
        cloud,
        options,
        move || arm_metrics::render(&metrics_cloud.client().metrics().snapshot()),
        terminated(),
    )
    .await?;
    Ok(())
}

#[allow(clippy::print_stderr)] // the one place a failure to start is reported
fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log);
    let filter = match filter {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "error: --log (EGRESS_LOG) {:?} is not a log filter: {e}",
                args.log
            );
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run(args)),
        Err(e) => Err(anyhow::Error::new(e).context("tokio runtime")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "controller failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
