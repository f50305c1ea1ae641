//! `egressctl doctor node`: wires the gateway daemon's planning (the watch
//! snapshot and egress-k8s's node plan) to the Linux dataplane's read-only
//! observation, and prints egress-core's named differences.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use egress_core::drift::differences;
use egress_core::node::NodeState;
use egress_core::traits::Dataplane;
use egress_k8s::gateway::plan::node_plan;
use egress_k8s::gateway::{GatewayWatch, NodeIdentity};
use egress_net::LinuxDataplane;
use egress_net::dataplane::{Config, StaticKeys};
use egress_net::netns::NsRef;
use egress_net::wireguard::Backend;
use k8s_openapi::api::core::v1::Node;
use kube::{Api, ResourceExt};

/// AKS's label naming a node's pool (the `aks-managed-poolName` tag's value).
const POOL_LABEL: &str = "kubernetes.azure.com/agentpool";

/// What `doctor node` needs, mirroring the gateway daemon's flags.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// The node's name.
    pub node: String,
    /// The node's pool, as the gateway daemon's --pool-name (default: the
    /// Node's `kubernetes.azure.com/agentpool` label).
    #[arg(long)]
    pub pool_name: Option<String>,
    /// As the gateway daemon's --vmss-name.
    #[arg(long)]
    pub vmss_name: Option<String>,
    /// As the gateway daemon's --resource-group.
    #[arg(long)]
    pub resource_group: Option<String>,
    /// As the gateway daemon's --computer-name (default: the node name).
    #[arg(long)]
    pub computer_name: Option<String>,
    /// Namespace of the key Secrets.
    #[arg(long, default_value = "kube-egress-gateway-system")]
    pub secret_namespace: String,
    /// As the gateway daemon's --verify-pod-endpoints.
    #[arg(long)]
    pub verify_pod_endpoints: bool,
    /// The node's host namespace, when not this process's (nested setups).
    #[arg(long)]
    pub host_netns: Option<PathBuf>,
    /// The gateway network namespace.
    #[arg(long, default_value = egress_net::dataplane::GATEWAY_NETNS)]
    pub gateway_netns: PathBuf,
    /// The node interface that holds the frontend IPs.
    #[arg(long, default_value = "eth0")]
    pub node_interface: String,
    /// Underlay MTU, as given to the gateway daemon.
    #[arg(long, default_value_t = 1500)]
    pub underlay_mtu: u32,
}

/// The effective user ID, from `/proc/self/status` (no unsafe call needed).
fn effective_uid() -> anyhow::Result<u32> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|uid| uid.parse().ok())
        .context("/proc/self/status has no effective Uid")
}

/// Refuses to run anywhere but as root on the node itself: the state
/// compared is the kernel's, which only that node's root can read.
fn check_where(opts: &Options) -> anyhow::Result<()> {
    if effective_uid()? != 0 {
        bail!(
            "egressctl doctor node must run as root on node {}: it reads that node's kernel state (links, routes, nftables, WireGuard devices)",
            opts.node
        );
    }
    // With --host-netns the caller names the node's namespace explicitly
    // (nested and test setups); otherwise this machine must be the node.
    if opts.host_netns.is_none() {
        let here = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .context("reading this machine's hostname")?;
        let here = here.trim();
        if !here.eq_ignore_ascii_case(&opts.node) {
            bail!(
                "egressctl doctor node {} must run on that node, but this machine is {here:?}: run it there (for example in the gateway daemon's pod)",
                opts.node
            );
        }
    }
    Ok(())
}

async fn identity(client: &kube::Client, opts: &Options) -> anyhow::Result<NodeIdentity> {
    let mut id = NodeIdentity {
        computer_name: opts
            .computer_name
            .clone()
            .unwrap_or_else(|| opts.node.clone()),
        nic_name: None,
        pool_name: opts.pool_name.clone(),
        vmss_name: opts.vmss_name.clone(),
        resource_group: opts.resource_group.clone(),
    };
    if id.pool_name.is_none() && id.vmss_name.is_none() {
        let node = Api::<Node>::all(client.clone())
            .get_opt(&opts.node)
            .await
            .with_context(|| format!("reading Node {}", opts.node))?;
        id.pool_name = node.and_then(|n| n.labels().get(POOL_LABEL).cloned());
        if id.pool_name.is_none() {
            bail!(
                "cannot tell which gateway pool node {} is in: it has no {POOL_LABEL} label; pass --pool-name or --vmss-name and --resource-group as the gateway daemon is given them",
                opts.node
            );
        }
    }
    Ok(id)
}

/// Runs the check, prints the report, and returns how many differences
/// were found.
pub async fn run(out: &mut impl Write, opts: &Options) -> anyhow::Result<usize> {
    check_where(opts)?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let id = identity(&client, opts).await?;

    let watch =
        GatewayWatch::start_with(&client, &opts.secret_namespace, opts.verify_pod_endpoints);
    tokio::time::timeout(Duration::from_secs(30), watch.ready())
        .await
        .context("the API did not list the gateway objects within 30 s")??;
    let plan = node_plan(
        watch.snapshot(&id),
        opts.underlay_mtu,
        egress_net::wireguard::valid_key,
    );
    drop(watch);

    // Observation only: the dataplane is opened on existing namespaces and
    // only `observe` is called. A missing gateway namespace is not created.
    let observed = if opts.gateway_netns.exists() {
        let dataplane = LinuxDataplane::new(
            Config {
                host_ns: opts.host_netns.clone().map_or(NsRef::Current, NsRef::Path),
                gateway_ns: NsRef::Path(opts.gateway_netns.clone()),
                node_interface: opts.node_interface.clone(),
                backend: Backend::detect(),
            },
            Arc::new(StaticKeys::default()),
        )
        .await
        .context("opening the node's namespaces")?;
        dataplane
            .observe()
            .await
            .context("reading the node's dataplane")?
    } else {
        writeln!(
            out,
            "gateway namespace {} does not exist",
            opts.gateway_netns.display()
        )?;
        NodeState::default()
    };

    let peers: usize = plan.state.interfaces.values().map(|i| i.peers.len()).sum();
    writeln!(
        out,
        "node {}: {} configuration(s), {peers} peer(s) planned",
        opts.node,
        plan.state.interfaces.len()
    )?;
    if plan.state.interfaces.is_empty() {
        writeln!(
            out,
            "no ready configuration selects node {} as a gateway: anything found is left over (worker nodes' pods are not checked)",
            opts.node
        )?;
    }
    for note in &plan.notes {
        writeln!(out, "note: {note}")?;
    }
    let found = differences(&plan.state, &observed);
    if found.is_empty() {
        writeln!(out, "no difference: the node matches its plan")?;
    } else {
        writeln!(out, "{} difference(s):", found.len())?;
        for d in &found {
            writeln!(out, "  {d}")?;
        }
    }
    Ok(found.len())
}
