//! The whole system on one machine: a local cluster of real kubelets with
//! two gateway nodes named as AKS names them, the fake Azure Resource
//! Manager in the cluster's network, Azure's edge simulated from its state
//! (internal load balancer, 1:1 public NAT, instance metadata), the echo
//! hosts of the "internet", and the Helm chart installed from this
//! repository with the project's binaries in an image.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egress_testkit::cluster::GATEWAY_LABEL;
use egress_testkit::cluster::{Cluster, Role};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::{Api, ResourceExt};

use crate::E2eError;
use crate::chart::{self, NAMESPACE};
use crate::cloud::LocalAzure;
use crate::edge::{ArmState, Edge, Imds};
use crate::traffic::{EchoHost, Sink};
use crate::wait::eventually;

/// The "internet" echo host every test and the demo ask.
pub const ECHO_IP: &str = "203.0.113.254";
/// A second echo host, for exclusions that name one destination and not
/// the other.
pub const OTHER_ECHO_IP: &str = "203.0.113.253";
/// How long the system gets to come up.
const READY: Duration = Duration::from_mins(3);

/// The shape of the local system.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Worker nodes.
    pub workers: u8,
    /// Gateway nodes (instances of the gateway pool's scale set).
    pub gateways: u8,
    /// Bring-your-own prefixes to seed, by name.
    pub byo_prefixes: Vec<String>,
    /// How long an Azure write takes in the fake.
    pub arm_latency: Duration,
    /// Length of the pool's managed prefixes (`aks-managed-gatewayIPPrefixSize`).
    pub prefix_len: u8,
    /// Extra chart values merged over the local ones.
    pub values: serde_json::Value,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            workers: 2,
            gateways: 2,
            byo_prefixes: Vec::new(),
            arm_latency: Duration::from_millis(200),
            prefix_len: 31,
            values: serde_json::Value::Null,
        }
    }
}

/// A running local system. Dropping it tears everything down.
#[allow(missing_debug_implementations)] // the cluster has no Debug
pub struct Stack {
    /// The edge (dropped before the cluster's namespaces).
    pub edge: Edge,
    /// One fake IMDS per gateway node.
    pub imds: Vec<Imds>,
    /// The cluster.
    pub cluster: Cluster,
    /// The fake Azure.
    pub azure: LocalAzure,
    /// The echo host at [`ECHO_IP`].
    pub echo: EchoHost,
    /// The echo host at [`OTHER_ECHO_IP`].
    pub other_echo: EchoHost,
    /// The throughput sink (on [`ECHO_IP`]).
    pub sink: Sink,
    /// Worker node names.
    pub workers: Vec<String>,
    /// Gateway node names (the scale set's computer names).
    pub gateways: Vec<String>,
    /// Each step's name and duration, in order.
    pub steps: Vec<(String, Duration)>,
    /// Every node's CNI configuration directory before the chart was
    /// installed: file name to bytes.
    pub cni_before: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    _images: tempfile::TempDir,
}

/// Times the steps of a start and reports each as it ends.
struct Steps<'a> {
    done: Vec<(String, Duration)>,
    at: Instant,
    report: &'a mut dyn FnMut(&str, Duration),
}

impl Steps<'_> {
    fn end(&mut self, name: &str) {
        let took = self.at.elapsed();
        (self.report)(name, took);
        self.done.push((name.to_string(), took));
        self.at = Instant::now();
    }
}

impl Stack {
    /// Builds the image, starts everything and installs the chart; calls
    /// `report` after each step with its name and duration.
    pub async fn start(
        options: StackOptions,
        report: &mut dyn FnMut(&str, Duration),
    ) -> Result<Self, E2eError> {
        let mut steps = Steps {
            done: Vec::new(),
            at: Instant::now(),
            report,
        };
        let images = tempfile::tempdir().map_err(E2eError::io("a scratch directory"))?;
        let bin_dir = crate::images::binary_dir()?;
        let image = crate::images::product_image(&images.path().join("egress.tar"), &bin_dir)?;
        steps.end("image of the four binaries built");

        // The fake listens inside the cluster's network, so the cluster
        // starts first, its gateway nodes named as the scale set's
        // instances will be (checked once the fake is seeded).
        let names: Vec<String> = (0..u32::from(options.gateways))
            .map(crate::cloud::computer_name)
            .collect();
        let cluster = Cluster::builder()
            .workers(options.workers)
            .gateway_names(names.clone())
            .image(&image)
            .start()
            .await?;
        steps.end("local cluster started (control plane, kubelets, containerd)");

        let byo: Vec<&str> = options.byo_prefixes.iter().map(String::as_str).collect();
        let azure = LocalAzure::start(
            cluster.control_plane_netns(),
            u32::from(options.gateways),
            options.prefix_len,
            &byo,
            options.arm_latency,
        )?;
        if azure.computer_names != names {
            return Err(E2eError::Unexpected(format!(
                "the fake's instances are {:?}, the gateway nodes {names:?}",
                azure.computer_names
            )));
        }
        // A gateway node holds its NIC's primary address, which the gateway
        // daemon routes its namespace's traffic through (the VM
        // configuration names it); the cluster numbers its nodes on its own
        // bridge, so the address is added beside the node's own.
        let primaries = azure.primary_addresses();
        for name in &names {
            let Some((_, ip)) = primaries.iter().find(|(n, _)| n == name) else {
                return Err(E2eError::Unexpected(format!(
                    "the fake has no primary address for {name}"
                )));
            };
            cluster
                .node_netns(name)?
                .ip(&["addr", "add", &format!("{ip}/32"), "dev", "eth0"])?;
        }
        let cp = cluster.control_plane_netns();
        let mut node_ips = BTreeMap::new();
        for name in cluster.node_names() {
            let ip: Ipv4Addr = cluster
                .node_ip(&name)?
                .parse()
                .map_err(|e| E2eError::Unexpected(format!("node {name}'s address: {e}")))?;
            node_ips.insert(name, ip);
        }
        let state: Arc<dyn ArmState> = azure.arm.clone();
        let edge = Edge::start(state.clone(), cp, node_ips)?;
        let mut imds = Vec::new();
        for name in &names {
            imds.push(Imds::start(state.clone(), cluster.node_netns(name)?, name)?);
        }
        let echo = EchoHost::start(cp, ECHO_IP)?;
        let other_echo = EchoHost::start(cp, OTHER_ECHO_IP)?;
        let sink = Sink::start(cp, ECHO_IP)?;
        steps.end("fake Azure, its edge and IMDS, echo hosts up");

        let mut cni_before = BTreeMap::new();
        for node in cluster.node_names() {
            cni_before.insert(node.clone(), read_dir(&cluster.cni_conf_dir(&node)?)?);
        }
        let mut values = chart::local_values(&azure);
        merge(&mut values, &options.values);
        chart::install(&cluster, &values)?;
        steps.end("helm install");

        let stack = Self {
            edge,
            imds,
            workers: cluster.nodes_with_role(Role::Worker),
            gateways: cluster.nodes_with_role(Role::Gateway),
            cluster,
            azure,
            echo,
            other_echo,
            sink,
            steps: Vec::new(),
            cni_before,
            _images: images,
        };
        stack.wait_ready().await?;
        steps.end("controller, gateway daemons and node agents ready");
        Ok(Self {
            steps: steps.done,
            ..stack
        })
    }

    /// Waits until the controller has a ready replica, every running node
    /// has a ready node agent, every running gateway node (by its label) a
    /// ready gateway daemon, and each running worker's CNI chain holds the
    /// plugin. Killed nodes are left out.
    pub async fn wait_ready(&self) -> Result<(), E2eError> {
        let client = self.cluster.client();
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        let daemonsets: Api<DaemonSet> = Api::namespaced(client.clone(), NAMESPACE);
        let nodes: Api<Node> = Api::all(client);
        let (key, value) = GATEWAY_LABEL;
        let mut dead = 0;
        for node in self.cluster.node_names() {
            if !self.cluster.node_running(&node)? {
                dead += 1;
            }
        }
        eventually("the chart's workloads to be ready", READY, || async {
            let d = deployments
                .get("egress-controller")
                .await
                .map_err(|e| e.to_string())?;
            if d.status.and_then(|s| s.ready_replicas).unwrap_or(0) < 1 {
                return Err("no controller replica ready".into());
            }
            // After an upgrade, a pod of the old template is still ready on
            // a node until the rollout reaches it: wait for every DaemonSet
            // to have rolled out (on running nodes; a killed node's pod
            // never updates).
            for ds in daemonsets
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
            {
                let name = ds.name_any();
                let generation = ds.metadata.generation.unwrap_or(0);
                let status = ds.status.unwrap_or_default();
                let updated = status.updated_number_scheduled.unwrap_or(0);
                if status.observed_generation.unwrap_or(0) < generation
                    || updated + dead < status.desired_number_scheduled
                {
                    return Err(format!(
                        "DaemonSet {name} rolling out: {updated} of {} updated",
                        status.desired_number_scheduled
                    ));
                }
            }
            let ready: Vec<(String, String)> = pods
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .into_iter()
                .filter(pod_ready)
                .filter_map(|p| {
                    let component = p.labels().get("app.kubernetes.io/component")?.clone();
                    Some((p.spec?.node_name?, component))
                })
                .collect();
            for node in self.cluster.node_names() {
                if !self
                    .cluster
                    .node_running(&node)
                    .map_err(|e| e.to_string())?
                {
                    continue;
                }
                let labels = nodes
                    .get(&node)
                    .await
                    .map_err(|e| e.to_string())?
                    .metadata
                    .labels
                    .unwrap_or_default();
                let mut wanted = vec!["node-agent"];
                if labels.get(key).is_some_and(|v| v == value) {
                    wanted.push("gateway-daemon");
                }
                for component in wanted {
                    if !ready.iter().any(|(n, c)| *n == node && c == component) {
                        return Err(format!("no ready {component} on {node}"));
                    }
                }
                if self.workers.contains(&node) {
                    let conf = self
                        .cluster
                        .cni_conf_dir(&node)
                        .map_err(|e| e.to_string())?
                        .join("00-egress-gateway.conflist");
                    if !conf.exists() {
                        return Err(format!("{node} has no chained CNI configuration yet"));
                    }
                }
            }
            Ok(())
        })
        .await
        .map(|_| ())
        .map_err(|e| E2eError::Unexpected(format!("{e}\n{}", self.component_logs(20))))
    }

    /// The gateway node (computer name) whose ipConfig has the public
    /// address `public`, or whose private address it is, by the edge's
    /// reading of the fake ARM's state.
    pub fn node_with_address(&self, address: &str) -> Option<String> {
        let ip: Ipv4Addr = address.parse().ok()?;
        self.edge
            .plan()?
            .addresses
            .into_iter()
            .find_map(|a| (a.public == Some(ip) || a.private == ip).then_some(a.node))
    }

    /// What an operator would look at when something is wrong: the
    /// system's pods, recent events, and the last `lines` of each pod's
    /// logs. For failure messages.
    pub fn component_logs(&self, lines: usize) -> String {
        let Ok(kubectl) = egress_testkit::tools::k8s_binary("kubectl") else {
            return "kubectl is missing".into();
        };
        let kubeconfig = self.cluster.kubeconfig_path().display().to_string();
        let run = |args: &[&str]| {
            std::process::Command::new(&kubectl)
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .args(args)
                .output()
                .map_or_else(
                    |e| e.to_string(),
                    |o| {
                        format!(
                            "{}{}",
                            String::from_utf8_lossy(&o.stdout),
                            String::from_utf8_lossy(&o.stderr)
                        )
                    },
                )
        };
        let tail = lines.to_string();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "--- pods\n{}",
            run(&["get", "pods", "-A", "-o", "wide"])
        );
        let _ = writeln!(
            out,
            "--- events\n{}",
            run(&["get", "events", "-A", "--sort-by=.lastTimestamp"])
                .lines()
                .rev()
                .take(lines)
                .collect::<Vec<_>>()
                .join("\n")
        );
        let names = run(&["get", "pods", "-n", NAMESPACE, "-o", "name"]);
        for pod in names.lines().filter(|l| l.starts_with("pod/")) {
            let _ = writeln!(
                out,
                "--- {pod}\n{}",
                run(&[
                    "logs",
                    "-n",
                    NAMESPACE,
                    pod,
                    "--all-containers",
                    "--tail",
                    &tail
                ])
            );
        }
        out
    }
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A directory's files and their bytes.
pub fn read_dir(dir: &std::path::Path) -> Result<BTreeMap<String, Vec<u8>>, E2eError> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(E2eError::io(dir))? {
        let entry = entry.map_err(E2eError::io(dir))?;
        let path = entry.path();
        if path.is_file() {
            let bytes = std::fs::read(&path).map_err(E2eError::io(&path))?;
            out.insert(entry.file_name().to_string_lossy().into_owned(), bytes);
        }
    }
    Ok(out)
}

/// Merges `extra` into `base` (objects key by key, anything else replaced).
fn merge(base: &mut serde_json::Value, extra: &serde_json::Value) {
    match (base, extra) {
        (serde_json::Value::Object(b), serde_json::Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
        (_, serde_json::Value::Null) => {}
        (b, e) => *b = e.clone(),
    }
}
