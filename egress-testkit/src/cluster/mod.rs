//! A local Kubernetes cluster from real parts, for end-to-end and CNI tests.
//!
//! ```text
//!  host netns: test code ──127.0.0.1:<port>──┐ (forwarded socket)
//!  ┌ control-plane netns ────────────────────▼───────────────────────────┐
//!  │ etcd, kube-apiserver (10.77.0.1:6443), controller-manager, scheduler │
//!  │ br0 10.77.0.1/24, routes 10.244.<i>.0/24 via node i                  │
//!  └──┬───────────────────────┬───────────────────────┬──────────────────┘
//!   veth                    veth                    veth
//!  ┌──┴───────────────┐   ┌───┴──────────────┐   ┌────┴─────────────┐
//!  │ worker-1 netns   │   │ worker-2 netns   │   │ gateway-1 netns  │
//!  │ eth0 10.77.0.11  │   │ eth0 10.77.0.12  │   │ eth0 10.77.0.13  │
//!  │ + PID, mount ns: │   │ ...              │   │ label and taint  │
//!  │ containerd, runc,│   │                  │   │ kubeegressgateway│
//!  │ kubelet, pods on │   │                  │   │ .azure.com/mode  │
//!  │ cni0 10.244.1/24 │   │ cni0 10.244.2/24 │   │ =true            │
//!  └──────────────────┘   └──────────────────┘   └──────────────────┘
//! ```
//!
//! Every node has its own containerd, runc root, kubelet root, cgroup root
//! (`egt<pid>-c<n>-<node>`), routed pod CIDR, and CNI directories bind-mounted
//! at `/etc/cni/net.d` and `/opt/cni/bin` inside its mount namespace; its
//! primary CNI is Debian's bridge + host-local + portmap. All addresses live
//! inside the cluster's own namespaces, so clusters can run side by side.
//!
//! [`Cluster`] tears everything down on drop (processes, mounts, cgroups,
//! namespaces, scratch files) and restores the kernel settings the kubelet
//! changes; what a killed test run left is swept when the next cluster starts.
//!
//! The helpers use kube-rs (typed objects, server-side apply, no output
//! parsing); only [`Cluster::exec_in_pod`] runs `kubectl exec`, which streams
//! through the API server, the kubelet and containerd like a user's exec.

mod control_plane;
mod forward;
mod host;
mod node;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node as K8sNode, Pod};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::Scope;
use serde::de::Deserialize as _;

use crate::Error;
use crate::netns::Netns;
use crate::process::{log_tail, run};
use crate::tools::k8s_binary;
use control_plane::{API_ADDRESS, API_PORT, ControlPlane};
use host::SysctlGuard;
pub use host::kubelet_sysctls;
use node::Node;
pub use node::{
    BUSYBOX_IMAGE, CNI_BIN_DIR, CNI_CONF_DIR, GATEWAY_LABEL, PAUSE_IMAGE, PRIMARY_CNI_CONF, Role,
};

const START_TIMEOUT: Duration = Duration::from_mins(3);
const FIELD_MANAGER: &str = "egress-testkit";

/// Chooses the shape of a [`Cluster`] before starting it.
#[derive(Debug, Clone, Default)]
pub struct ClusterBuilder {
    workers: u8,
    gateways: u8,
    gateway_names: Vec<String>,
    images: Vec<PathBuf>,
}

impl ClusterBuilder {
    /// Number of worker nodes, named `worker-1`, `worker-2`, ...
    #[must_use]
    pub fn workers(mut self, n: u8) -> Self {
        self.workers = n;
        self
    }

    /// Number of gateway nodes, named `gateway-1`, ..., labelled and tainted
    /// `kubeegressgateway.azure.com/mode=true` (taint effect `NoSchedule`).
    #[must_use]
    pub fn gateways(mut self, n: u8) -> Self {
        self.gateways = n;
        self
    }

    /// Gateway nodes with these names instead of `gateway-<n>` (one per
    /// name; replaces [`Self::gateways`]). AKS names a node after its VM's
    /// computer name (`aks-gwpool-12345678-vmss000000`), which is what a
    /// cloud's instance metadata reports, so a test that reads node identity
    /// from a fake cloud names its nodes the same way.
    #[must_use]
    pub fn gateway_names<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.gateway_names = names.into_iter().map(Into::into).collect();
        self.gateways = u8::try_from(self.gateway_names.len()).unwrap_or(u8::MAX);
        self
    }

    /// An OCI image tarball (see [`crate::image`]) every node imports at start,
    /// besides the pause and busybox images.
    #[must_use]
    pub fn image(mut self, tar: impl Into<PathBuf>) -> Self {
        self.images.push(tar.into());
        self
    }

    /// Starts the control plane and the nodes and waits until every node is
    /// `Ready` and the `default` service account exists (so pods can be made).
    ///
    /// Call it from an async task, not from `spawn_blocking`: the cluster's
    /// processes are bound to the thread that starts them (they die with it, so
    /// a killed test leaves no process behind), and tokio ends idle blocking
    /// threads.
    pub async fn start(self) -> Result<Cluster, Error> {
        let total = u16::from(self.workers) + u16::from(self.gateways);
        if total == 0 || total > 200 {
            return Err(Error::Unsupported(format!(
                "a test cluster needs between 1 and 200 nodes, not {total}"
            )));
        }
        for tar in &self.images {
            crate::tools::existing(tar.clone())?;
        }
        let started = Instant::now();
        host::sweep_leftovers();
        let id = host::next_cluster_id();
        let dir = host::base_dir().join(&id);
        std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let scratch = ScratchDir(dir.clone());
        // After the directory exists: other processes see this cluster as
        // live and leave the saved kernel settings to its last holder.
        let sysctls = SysctlGuard::acquire()?;

        let cp_netns = Netns::create("cp")?;
        cp_netns.ip(&["link", "add", "br0", "type", "bridge"])?;
        cp_netns.addr("br0", &format!("{API_ADDRESS}/24"))?;
        cp_netns.ip(&["link", "set", "br0", "up"])?;
        cp_netns.sysctl("net.ipv4.ip_forward", "1")?;
        let cp_dir = control_plane::dir_in(&dir);
        std::fs::create_dir_all(&cp_dir).map_err(|source| Error::Io {
            path: cp_dir.clone(),
            source,
        })?;
        let control_plane = ControlPlane::spawn(cp_netns.name(), &cp_dir)?;
        let forwarder = forward::Forwarder::start(
            cp_netns.name(),
            SocketAddr::from(([127, 0, 0, 1], API_PORT)),
        )?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            control_plane::kubeconfig_yaml(&format!("https://127.0.0.1:{}", forwarder.port())),
        )
        .map_err(|source| Error::Io {
            path: kubeconfig.clone(),
            source,
        })?;
        let client = crate::apiserver::client_from(&kubeconfig).await?;

        let mut cluster = Cluster {
            nodes: Vec::new(),
            client,
            forwarder,
            control_plane,
            cp_netns,
            kubeconfig,
            id,
            dir,
            started,
            _sysctls: sysctls,
            _scratch: scratch,
        };
        cluster.wait_api_ready().await?;

        let roles = std::iter::repeat_n(Role::Worker, self.workers.into())
            .chain(std::iter::repeat_n(Role::Gateway, self.gateways.into()));
        let (mut workers, mut gateways) = (0, 0);
        for (i, role) in roles.enumerate() {
            let name = match role {
                Role::Worker => {
                    workers += 1;
                    format!("worker-{workers}")
                }
                Role::Gateway => {
                    gateways += 1;
                    self.gateway_names
                        .get(gateways - 1)
                        .cloned()
                        .unwrap_or_else(|| format!("gateway-{gateways}"))
                }
            };
            let index = u8::try_from(i + 1).map_err(|_| {
                Error::Unsupported("more nodes than pod CIDRs in 10.244.0.0/16".into())
            })?;
            let node = Node::start(
                &cluster.id,
                &cluster.dir,
                &cluster.cp_netns,
                &name,
                role,
                index,
                &self.images,
            )?;
            cluster.nodes.push(node);
        }
        let names: Vec<String> = cluster.nodes.iter().map(|n| n.name.clone()).collect();
        for name in &names {
            cluster.wait_registered_and_ready(name).await?;
        }
        cluster.wait_default_service_account().await?;
        Ok(cluster)
    }
}

/// Removes the cluster's scratch directory last, after every process is gone.
#[derive(Debug)]
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        host::remove_dir(&self.0);
    }
}

/// A running test cluster. Dropping it tears everything down.
pub struct Cluster {
    // Field order is drop order (after `Drop::drop` killed every node at once).
    nodes: Vec<Node>,
    client: kube::Client,
    forwarder: forward::Forwarder,
    control_plane: ControlPlane,
    cp_netns: Netns,
    kubeconfig: PathBuf,
    id: String,
    dir: PathBuf,
    started: Instant,
    _sysctls: SysctlGuard,
    _scratch: ScratchDir,
}

impl Cluster {
    /// A builder with no nodes yet.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder::default()
    }

    /// A client with cluster-admin rights, through the forwarded socket.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A kubeconfig for code and tools outside the topology (`kubectl
    /// --kubeconfig <path>`); valid while this value lives.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// This cluster's scratch directory: logs, configuration, node state.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The name prefix of this cluster's cgroups (`egt<pid>-c<n>`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The control plane's network namespace (it holds the API server).
    pub fn control_plane_netns(&self) -> &Netns {
        &self.cp_netns
    }

    /// Node names in creation order: workers, then gateways.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// Names of the nodes with `role`.
    pub fn nodes_with_role(&self, role: Role) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.role == role)
            .map(|n| n.name.clone())
            .collect()
    }

    fn node(&self, name: &str) -> Result<&Node, Error> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| self.unknown(name))
    }

    fn node_mut(&mut self, name: &str) -> Result<&mut Node, Error> {
        let known = self.node_names().join(", ");
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .ok_or_else(|| Error::UnknownNode {
                name: name.to_string(),
                known,
            })
    }

    fn unknown(&self, name: &str) -> Error {
        Error::UnknownNode {
            name: name.to_string(),
            known: self.node_names().join(", "),
        }
    }

    /// A node's network namespace (its host network, as pods with
    /// `hostNetwork: true` see it).
    pub fn node_netns(&self, name: &str) -> Result<&Netns, Error> {
        Ok(&self.node(name)?.netns)
    }

    /// A node's address on the cluster bridge.
    pub fn node_ip(&self, name: &str) -> Result<String, Error> {
        Ok(node::node_ip(self.node(name)?.index))
    }

    /// A node's routed pod CIDR.
    pub fn pod_cidr(&self, name: &str) -> Result<String, Error> {
        Ok(node::pod_cidr(self.node(name)?.index))
    }

    /// The directory a node sees as `/etc/cni/net.d`.
    pub fn cni_conf_dir(&self, name: &str) -> Result<PathBuf, Error> {
        Ok(self.node(name)?.dir.join("net.d"))
    }

    /// The directory a node sees as `/opt/cni/bin`.
    pub fn cni_bin_dir(&self, name: &str) -> Result<PathBuf, Error> {
        Ok(self.node(name)?.dir.join("cni-bin"))
    }

    /// The node's scratch directory (configuration and logs).
    pub fn node_dir(&self, name: &str) -> Result<PathBuf, Error> {
        Ok(self.node(name)?.dir.clone())
    }

    /// The node's cgroup root, present in every cgroup hierarchy.
    pub fn node_cgroup(&self, name: &str) -> Result<String, Error> {
        Ok(self.node(name)?.cgroup.clone())
    }

    /// Host PIDs of every process of the node (daemons, shims, containers).
    pub fn node_pids(&self, name: &str) -> Result<Vec<i32>, Error> {
        Ok(self.node(name)?.pids())
    }

    /// Resident memory of all the node's processes, in bytes.
    pub fn node_rss_bytes(&self, name: &str) -> Result<u64, Error> {
        Ok(self
            .node(name)?
            .pids()
            .into_iter()
            .filter_map(|pid| rss_bytes(pid).ok())
            .sum())
    }

    /// Resident memory of etcd, the API server, the controller manager and
    /// the scheduler together, in bytes.
    pub fn control_plane_rss_bytes(&self) -> u64 {
        self.control_plane
            .pids()
            .into_iter()
            .filter_map(|pid| rss_bytes(i32::try_from(pid).ok()?).ok())
            .sum()
    }

    /// Resident memory per process name of the node, in bytes.
    pub fn node_rss_by_process(&self, name: &str) -> Result<BTreeMap<String, u64>, Error> {
        let mut out = BTreeMap::new();
        for pid in self.node(name)?.pids() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if let Ok(rss) = rss_bytes(pid) {
                *out.entry(comm.trim().to_string()).or_default() += rss;
            }
        }
        Ok(out)
    }

    /// Runs a program inside a node's network, mount and PID namespaces.
    pub fn exec_on_node(&self, name: &str, program: &str, args: &[&str]) -> Result<String, Error> {
        self.node(name)?.exec(program, args)
    }

    /// Runs a command in a pod's first (or named) container through the API
    /// server and the kubelet (`kubectl exec`), returning its standard output.
    pub async fn exec_in_pod(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        command: &[&str],
    ) -> Result<String, Error> {
        let kubectl = k8s_binary("kubectl")?;
        let kubeconfig = self.kubeconfig.display().to_string();
        let mut args = vec![
            "--kubeconfig",
            kubeconfig.as_str(),
            "exec",
            "-n",
            namespace,
            pod,
        ];
        if let Some(c) = container {
            args.extend(["-c", c]);
        }
        args.push("--");
        args.extend_from_slice(command);
        let program = kubectl.display().to_string();
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            run(&program, &refs)
        })
        .await
        .map_err(|e| Error::Unsupported(format!("exec task failed: {e}")))?
    }

    /// Applies every document of a multi-document YAML manifest with
    /// server-side apply (namespaced objects without a namespace go to
    /// `default`). Kinds from CRDs applied just before are waited for.
    pub async fn apply(&self, yaml: &str) -> Result<Vec<DynamicObject>, Error> {
        let mut applied = Vec::new();
        for (index, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
            let bad = |reason: String| Error::Manifest { index, reason };
            let value = serde_yaml::Value::deserialize(doc).map_err(|e| bad(e.to_string()))?;
            if value.is_null() {
                continue;
            }
            let obj: DynamicObject =
                serde_yaml::from_value(value).map_err(|e| bad(e.to_string()))?;
            let types = obj
                .types
                .as_ref()
                .ok_or_else(|| bad("no apiVersion and kind".into()))?;
            let gvk = GroupVersionKind::try_from(types).map_err(|e| bad(e.to_string()))?;
            let name = obj
                .metadata
                .name
                .clone()
                .ok_or_else(|| bad("no metadata.name".into()))?;
            let (resource, caps) = self.discover(&gvk).await?;
            let api: Api<DynamicObject> = if caps.scope == Scope::Namespaced {
                let ns = obj.metadata.namespace.as_deref().unwrap_or("default");
                Api::namespaced_with(self.client(), ns, &resource)
            } else {
                Api::all_with(self.client(), &resource)
            };
            let result = api
                .patch(
                    &name,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&obj),
                )
                .await
                .map_err(|source| Error::Kube {
                    what: format!("applying {} {name} (document {index})", gvk.kind),
                    source,
                })?;
            applied.push(result);
        }
        Ok(applied)
    }

    async fn discover(
        &self,
        gvk: &GroupVersionKind,
    ) -> Result<
        (
            kube::discovery::ApiResource,
            kube::discovery::ApiCapabilities,
        ),
        Error,
    > {
        // A CRD applied a moment ago takes a little while to be served.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match kube::discovery::pinned_kind(&self.client, gvk).await {
                Ok(found) => return Ok(found),
                Err(source) if Instant::now() > deadline => {
                    return Err(Error::Kube {
                        what: format!("finding the API resource for {gvk:?}"),
                        source,
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }

    /// Waits until the node's `Ready` condition is `ready`.
    pub async fn wait_node_ready(
        &self,
        name: &str,
        ready: bool,
        timeout: Duration,
    ) -> Result<K8sNode, Error> {
        let want = if ready { "True" } else { "not True" };
        wait_for(
            &Api::<K8sNode>::all(self.client()),
            name,
            &format!("node {name} Ready={want}"),
            timeout,
            |n| node_is_ready(n) == ready,
        )
        .await
    }

    /// Waits until a pod is `Running` and returns it.
    pub async fn wait_pod_running(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
    ) -> Result<Pod, Error> {
        wait_for(
            &Api::<Pod>::namespaced(self.client(), namespace),
            name,
            &format!("pod {namespace}/{name} Running"),
            timeout,
            |p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"),
        )
        .await
    }

    /// Kills a node at once (every process, pod and mount of it), like a
    /// machine losing power. Its network namespace stays until teardown.
    pub fn kill_node(&mut self, name: &str) -> Result<(), Error> {
        self.node_mut(name)?.kill();
        Ok(())
    }

    /// Stops a node's kubelet only (SIGTERM): its pods keep running and
    /// forwarding, but the control plane loses sight of the node.
    pub fn stop_kubelet(&self, name: &str) -> Result<(), Error> {
        self.node(name)?
            .signal_kubelet(nix::sys::signal::Signal::SIGTERM)
    }

    /// Whether the node's processes are running (it was not killed).
    pub fn node_running(&self, name: &str) -> Result<bool, Error> {
        Ok(self.node(name)?.is_running())
    }

    /// Fails with log tails if a control-plane component or a running node died.
    pub fn check_alive(&mut self) -> Result<(), Error> {
        self.control_plane.check_alive()?;
        for n in &mut self.nodes {
            if n.is_running() {
                n.check_alive()?;
            }
        }
        Ok(())
    }

    /// The last lines of a component's log: `kube-apiserver`, `etcd`,
    /// `kube-controller-manager`, `kube-scheduler`, or `<node>/kubelet`,
    /// `<node>/containerd`, `<node>/node`.
    pub fn log_tail(&self, component: &str, lines: usize) -> String {
        let path = match component.split_once('/') {
            Some((node, file)) => self.dir.join(node).join(format!("{file}.log")),
            None => control_plane::dir_in(&self.dir).join(format!("{component}.log")),
        };
        log_tail(&path, lines)
    }

    /// Time since the cluster began starting.
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    async fn wait_api_ready(&mut self) -> Result<(), Error> {
        let start = Instant::now();
        let mut last = String::from("no answer yet");
        while start.elapsed() < START_TIMEOUT {
            self.control_plane.check_alive()?;
            let mut req = http::Request::new(Vec::new());
            if let Ok(uri) = "/readyz".parse() {
                *req.uri_mut() = uri;
            }
            match self.client.request_text(req).await {
                Ok(body) if body.trim() == "ok" => return Ok(()),
                Ok(body) => last = body,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(Error::NotReady {
            what: "test cluster API server",
            seconds: START_TIMEOUT.as_secs(),
            last,
        })
    }

    async fn wait_registered_and_ready(&mut self, name: &str) -> Result<(), Error> {
        let api = Api::<K8sNode>::all(self.client());
        let start = Instant::now();
        let mut cidr_set = false;
        let mut last = String::from("not registered");
        while start.elapsed() < START_TIMEOUT {
            self.check_alive()?;
            match api.get_opt(name).await {
                Ok(Some(n)) => {
                    // The pod CIDR is assigned once, as a node IPAM controller would.
                    if !cidr_set && n.spec.as_ref().and_then(|s| s.pod_cidr.as_ref()).is_none() {
                        let cidr = self.pod_cidr(name)?;
                        let patch =
                            serde_json::json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
                        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                            .map_err(|source| Error::Kube {
                                what: format!("setting the pod CIDR of node {name}"),
                                source,
                            })?;
                    }
                    cidr_set = true;
                    if node_is_ready(&n) {
                        return Ok(());
                    }
                    last = describe_conditions(&n);
                }
                Ok(None) => {}
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Error::Timeout {
            what: format!("node {name} to become Ready"),
            seconds: START_TIMEOUT.as_secs(),
            last: format!(
                "{last}\nkubelet log:\n{}",
                self.log_tail(&format!("{name}/kubelet"), 20)
            ),
        })
    }

    async fn wait_default_service_account(&self) -> Result<(), Error> {
        let api =
            Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(self.client(), "default");
        wait_for(
            &api,
            "default",
            "the default ServiceAccount",
            START_TIMEOUT,
            |_| true,
        )
        .await
        .map(drop)
    }
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("id", &self.id)
            .field("dir", &self.dir)
            .field("nodes", &self.nodes)
            .field("api_port", &self.forwarder.port())
            .finish_non_exhaustive()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Every node at once, so their processes die in parallel; each node's
        // own drop then removes its cgroups, mounts and namespace.
        for n in &mut self.nodes {
            n.kill();
        }
    }
}

/// Polls `name` until `condition` holds, for at most `timeout`.
pub async fn wait_for<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    condition: impl Fn(&K) -> bool,
) -> Result<K, Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let start = Instant::now();
    loop {
        let last = match api.get_opt(name).await {
            Ok(Some(obj)) if condition(&obj) => return Ok(obj),
            Ok(Some(obj)) => describe(&obj),
            Ok(None) => String::from("not found"),
            Err(e) => e.to_string(),
        };
        if start.elapsed() > timeout {
            return Err(Error::Timeout {
                what: what.to_string(),
                seconds: timeout.as_secs(),
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An object's status (or the object, if it has none), for timeout messages.
fn describe<K: serde::Serialize>(obj: &K) -> String {
    let value = serde_json::to_value(obj).unwrap_or_default();
    let shown = value.get("status").unwrap_or(&value);
    truncate(&shown.to_string(), 1500)
}

fn truncate(text: &str, max: usize) -> String {
    text.char_indices()
        .nth(max)
        .map_or_else(|| text.to_string(), |(i, _)| format!("{}...", &text[..i]))
}

/// Whether a Node reports `Ready=True`.
pub fn node_is_ready(node: &K8sNode) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn describe_conditions(node: &K8sNode) -> String {
    let mut out = String::new();
    for c in node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
    {
        let _ = write!(
            out,
            "{}={} ({}) ",
            c.type_,
            c.status,
            c.message.as_deref().unwrap_or("")
        );
    }
    out
}

fn rss_bytes(pid: i32) -> Result<u64, Error> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024))
}
