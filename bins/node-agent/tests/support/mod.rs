//! Shared by the agent's tests and figures: the agent and plugin binaries against a real kube-apiserver, with pods in
//! network namespaces and a WireGuard gateway of the test's own (peers taken
//! from the PodEndpoints, as the gateway daemon does) in front of an echo
//! host that answers with the source address it sees.
//!
//! ```text
//!  pod ns: eth0 10.244.77.x/24 ── podnode ns 10.244.77.1
//!          wg0 (UDP socket in the test's namespace) ─ 127.0.0.1:<port> ─ gateway device (UDP here, link in gw ns)
//!  gw ns:  203.0.113.10 echo on :8080, routes back to 10.244.77.0/24 through the gateway device
//! ```

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::print_stdout,
    clippy::too_many_lines
)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use egress_k8s::crd::{
    GatewayServerProfile, PodEndpoint, RouteMode, StaticGatewayConfiguration,
    StaticGatewayConfigurationSpec, StaticGatewayConfigurationStatus,
};
use egress_net::wgctl::{self, Control};
use egress_net::wireguard::{Backend, Device, DeviceConfig, KeyPair};
use egress_testkit::apiserver::ApiServer;
use egress_testkit::netns::{Netns, veth};
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

pub const ANNOTATION: &str = "kubernetes.azure.com/static-gateway-configuration";
pub const ECHO: &str = "203.0.113.10:8080";
pub const NODE: &str = "node-1";

/// The plugin binary, from its own package in the same target directory;
/// built first when a narrow `cargo test -p egress-node-agent` did not.
pub fn plugin_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // The statically linked build that nodes get
            // (`scripts/build-cni-plugin.sh`), where given.
            if let Some(p) = std::env::var_os("EGRESS_CNI_PLUGIN") {
                return PathBuf::from(p);
            }
            let path =
                Path::new(env!("CARGO_BIN_EXE_egress-node-agent")).with_file_name("egress-cni");
            if !path.exists() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let mut cmd = Command::new(cargo);
                cmd.args(["build", "-p", "egress-cni-plugin"]);
                if path.components().any(|c| c.as_os_str() == "release") {
                    cmd.arg("--release");
                }
                let ok = cmd.status().is_ok_and(|s| s.success());
                assert!(
                    ok && path.exists(),
                    "cannot build the plugin: run `cargo build -p egress-cni-plugin`"
                );
            }
            path
        })
        .clone()
}

pub fn backend() -> Backend {
    let b = Backend::detect();
    assert!(
        !matches!(b, Backend::Boringtun),
        "no WireGuard kernel module and no wireguard-go: run `eval \"$(bash scripts/setup.sh)\"` first"
    );
    b
}

/// The test's gateway: a WireGuard device whose UDP socket listens here and
/// whose link sits in the gateway namespace, in front of the echo host.
pub struct Gateway {
    pub ns: Netns,
    pub device: Option<Device>,
    pub name: String,
    pub key: KeyPair,
    pub port: u16,
}

impl Gateway {
    pub fn start() -> Self {
        let ns = Netns::create("gw").unwrap();
        ns.ip(&["addr", "add", "203.0.113.10/32", "dev", "lo"])
            .unwrap();
        let listener = ns.run(|| TcpListener::bind(ECHO)).unwrap().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                if let Ok(peer) = conn.peer_addr() {
                    let _ = conn.write_all(peer.ip().to_string().as_bytes());
                }
            }
        });
        let mut g = Self {
            ns,
            device: None,
            name: format!("egw{}", std::process::id()),
            key: KeyPair::generate(),
            port: 0,
        };
        g.rekey(free_udp_port());
        g
    }

    /// A new device with a new key on `port`, as after a gateway rebuild.
    pub fn rekey(&mut self, port: u16) {
        self.device = None;
        let _ = self.ns.ip(&["link", "del", &self.name]);
        self.key = KeyPair::generate();
        self.port = port;
        let device = Device::create(&self.name, backend()).unwrap();
        device
            .configure(&DeviceConfig {
                private_key: self.key.private.clone(),
                listen_port: port,
                addresses: Vec::new(),
                mtu: 1420,
                peers: Vec::new(),
            })
            .unwrap();
        let ns = self.ns.name().to_string();
        run("ip", &["link", "set", &self.name, "netns", &ns]);
        self.ns.ip(&["link", "set", &self.name, "up"]).unwrap();
        self.ns
            .ip(&["route", "replace", "10.244.77.0/24", "dev", &self.name])
            .unwrap();
        self.device = Some(device);
    }

    /// Accepts the pods' keys from the PodEndpoints, as the daemon does.
    pub fn sync_peers(&self, endpoints: &[PodEndpoint]) {
        let control = backend().control();
        for ep in endpoints {
            let (Some(key), Some(ip)) = (&ep.spec.pod_public_key, &ep.spec.pod_ip_address) else {
                continue;
            };
            let ip: ipnet::IpNet = ip.parse().unwrap();
            let device = if control == Control::Kernel {
                ""
            } else {
                &self.name
            };
            wgctl::upsert_peer(control, device, key, ip.addr()).unwrap();
        }
    }
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A pod's namespace, as the primary plugin leaves it.
pub struct PodNs {
    pub ns: Netns,
    pub _node_side: Netns,
    pub ip: String,
}

impl PodNs {
    pub fn new(host: u8) -> Self {
        let ns = Netns::create("pod").unwrap();
        let node_side = Netns::create("podnode").unwrap();
        let ip = format!("10.244.77.{host}");
        veth(
            &ns,
            "eth0",
            &format!("{ip}/24"),
            &node_side,
            "veth0",
            "10.244.77.1/24",
        )
        .unwrap();
        ns.ip(&[
            "route",
            "replace",
            "default",
            "via",
            "10.244.77.1",
            "dev",
            "eth0",
        ])
        .unwrap();
        Self {
            ns,
            _node_side: node_side,
            ip,
        }
    }

    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.ns.name())
    }

    pub fn has_wg0(&self) -> bool {
        self.ns.ip(&["link", "show", "wg0"]).is_ok()
    }

    /// The device the pod's route to `dst` uses (`unreachable` if none).
    pub fn route_dev(&self, dst: &str) -> String {
        let Ok(out) = self.ns.ip(&["route", "get", dst]) else {
            return "unreachable".into();
        };
        out.split_whitespace()
            .skip_while(|w| *w != "dev")
            .nth(1)
            .unwrap_or("none")
            .to_string()
    }

    /// What the echo host sees as our source, or an error.
    pub fn fetch(&self, timeout: Duration) -> std::io::Result<String> {
        let to: SocketAddr = ECHO.parse().unwrap();
        self.ns
            .run(move || {
                let mut s = std::net::TcpStream::connect_timeout(&to, timeout)?;
                s.set_read_timeout(Some(timeout))?;
                let mut text = String::new();
                s.read_to_string(&mut text)?;
                Ok(text)
            })
            .unwrap()
    }

    pub fn fetch_eventually(&self, total: Duration) -> std::io::Result<String> {
        let start = Instant::now();
        loop {
            match self.fetch(Duration::from_secs(1)) {
                Ok(t) => return Ok(t),
                Err(e) if start.elapsed() > total => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }
}

pub struct Dirs {
    pub _tmp: tempfile::TempDir,
    pub netd: PathBuf,
    pub backup: PathBuf,
    pub socket: PathBuf,
    pub sandboxes: PathBuf,
}

pub const PRIMARY: &str = "{\n  \"cniVersion\": \"1.0.0\",\n  \"name\": \"k8s\",\n  \"plugins\": [{\"type\": \"bridge\", \"ipam\": {\"type\": \"host-local\"}}, {\"type\": \"portmap\"}]\n}\n";

pub fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let netd = tmp.path().join("net.d");
    std::fs::create_dir_all(&netd).unwrap();
    std::fs::write(netd.join("10-bridge.conflist"), PRIMARY).unwrap();
    Dirs {
        netd,
        backup: tmp.path().join("backup"),
        socket: tmp.path().join("run/agent.sock"),
        sandboxes: tmp.path().join("run/sandboxes"),
        _tmp: tmp,
    }
}

/// The agent process, killed on drop.
pub struct Agent {
    pub child: Child,
    pub metrics: u16,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn agent_args(d: &Dirs) -> Vec<String> {
    vec![
        "--cni-conf-dir".into(),
        d.netd.display().to_string(),
        "--backup-dir".into(),
        d.backup.display().to_string(),
        "--socket".into(),
        d.socket.display().to_string(),
        "--sandbox-dir".into(),
        d.sandboxes.display().to_string(),
        // The node's mount namespace is the test's own (PID 1 of this
        // machine may not be readable).
        "--callers-like-pid".into(),
        std::process::id().to_string(),
    ]
}

pub fn start_agent(api: &ApiServer, d: &Dirs) -> Agent {
    let metrics = free_tcp_port();
    let child = Command::new(env!("CARGO_BIN_EXE_egress-node-agent"))
        .args(agent_args(d))
        .args(["--node-name", NODE, "--resync-seconds", "1"])
        .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
        .env("KUBECONFIG", api.kubeconfig_path())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let a = Agent { child, metrics };
    wait_until("the agent's socket", Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(&d.socket).is_ok()
    });
    a
}

pub fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

pub fn conf(d: &Dirs, mode: &str) -> String {
    json!({
        "cniVersion": "1.1.0", "name": "k8s", "type": "egress-cni",
        "failureMode": mode, "agentSocket": d.socket, "sandboxDir": d.sandboxes,
        "prevResult": {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}], "ips": []}
    })
    .to_string()
}

/// Runs the plugin as the runtime would.
pub fn cni(
    command: &str,
    ns: &str,
    pod: &str,
    netns: &str,
    container: &str,
    conf: &str,
) -> (i32, Value) {
    cni_as(None, command, ns, pod, netns, container, conf)
}

pub fn cni_as(
    uid: Option<u32>,
    command: &str,
    ns: &str,
    pod: &str,
    netns: &str,
    container: &str,
    conf: &str,
) -> (i32, Value) {
    // A non-root user cannot reach the build directory under /root: run a
    // copy from a world-readable directory.
    let copy = tempfile::Builder::new()
        .prefix("egress-cni-")
        .tempdir()
        .unwrap();
    let program = if uid.is_some() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(copy.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let p = copy.path().join("egress-cni");
        std::fs::copy(plugin_binary(), &p).unwrap();
        p
    } else {
        plugin_binary()
    };
    let mut cmd = Command::new(program);
    cmd.env_clear().env("CNI_COMMAND", command);
    // GC and STATUS carry no sandbox.
    if !container.is_empty() {
        cmd.env("CNI_CONTAINERID", container)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env(
                "CNI_ARGS",
                match uid_of(ns, pod) {
                    Some(uid) => {
                        format!("K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod};K8S_POD_UID={uid}")
                    }
                    None => format!("K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod}"),
                },
            );
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(conf.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
    )
}

pub fn interfaces(result: &Value) -> Vec<String> {
    result["interfaces"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|i| i["name"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub async fn setup(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in egress_k8s::generate::crds() {
        let name = crd.name_any();
        crds.create(&PostParams::default(), &crd).await.unwrap();
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap()
        .unwrap();
    }
    let nss: Api<Namespace> = Api::all(client.clone());
    for (ns, default) in [("apps", None), ("plain", None), ("dflt", Some("egress"))] {
        let mut n = Namespace::default();
        n.metadata.name = Some(ns.into());
        if let Some(d) = default {
            n.metadata.annotations = Some([(ANNOTATION.to_string(), d.to_string())].into());
        }
        nss.create(&PostParams::default(), &n).await.unwrap();
    }
}

pub async fn put_sgc(client: &Client, ns: &str, name: &str, gw: &Gateway) {
    let sgcs: Api<StaticGatewayConfiguration> = Api::namespaced(client.clone(), ns);
    if sgcs.get_opt(name).await.unwrap().is_none() {
        let sgc = StaticGatewayConfiguration::new(
            name,
            StaticGatewayConfigurationSpec {
                gateway_nodepool_name: Some("gwpool".into()),
                gateway_vmss_profile: None,
                default_route: RouteMode::StaticEgressGateway,
                provision_public_ips: true,
                public_ip_prefix_id: None,
                exclude_cidrs: None,
            },
        );
        sgcs.create(&PostParams::default(), &sgc).await.unwrap();
    }
    let status = StaticGatewayConfigurationStatus {
        egress_ip_prefix: Some("203.0.113.0/28".into()),
        gateway_server_profile: Some(GatewayServerProfile {
            ip: Some("127.0.0.1".into()),
            port: Some(i32::from(gw.port)),
            public_key: Some(gw.key.public.clone()),
            private_key_secret_ref: Some(ObjectReference {
                namespace: Some("kube-egress-gateway-system".into()),
                name: Some(format!("sgw-{name}")),
                ..ObjectReference::default()
            }),
        }),
        ..StaticGatewayConfigurationStatus::default()
    };
    sgcs.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap();
}

pub async fn put_pod(client: &Client, ns: &str, name: &str, ip: &str, sgc: Option<&str>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    if let Some(s) = sgc {
        pod.metadata.annotations = Some([(ANNOTATION.to_string(), s.to_string())].into());
    }
    let made = pods.create(&PostParams::default(), &pod).await.unwrap();
    UIDS.lock().unwrap().insert(
        (ns.to_string(), name.to_string()),
        made.metadata.uid.unwrap(),
    );
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"podIP": ip, "podIPs": [{"ip": ip}]}})),
    )
    .await
    .unwrap();
}

/// The UIDs of the pods the test made, passed to the plugin as the runtime
/// does (`K8S_POD_UID`).
static UIDS: std::sync::Mutex<std::collections::BTreeMap<(String, String), String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

pub fn uid_of(ns: &str, name: &str) -> Option<String> {
    UIDS.lock()
        .unwrap()
        .get(&(ns.to_string(), name.to_string()))
        .cloned()
}

pub async fn endpoints(client: &Client) -> Vec<PodEndpoint> {
    Api::<PodEndpoint>::all(client.clone())
        .list(&kube::api::ListParams::default())
        .await
        .unwrap()
        .items
}

pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

pub fn metric(agent: &Agent, name: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", agent.metrics)) else {
        return String::new();
    };
    let _ = write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_default()
        .to_string()
}
