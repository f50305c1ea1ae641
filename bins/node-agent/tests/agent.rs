//! The agent and plugin binaries against a real kube-apiserver, with pods in
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
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const ANNOTATION: &str = "kubernetes.azure.com/static-gateway-configuration";
const ECHO: &str = "203.0.113.10:8080";
const NODE: &str = "node-1";

/// The plugin binary, from its own package in the same target directory;
/// built first when a narrow `cargo test -p egress-node-agent` did not.
fn plugin_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_egress-node-agent")).with_file_name("egress-cni");
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "egress-cni-plugin"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok && path.exists(),
            "cannot build the plugin: run `cargo build -p egress-cni-plugin`"
        );
    }
    path
}

fn backend() -> Backend {
    let b = Backend::detect();
    assert!(
        !matches!(b, Backend::Boringtun),
        "no WireGuard kernel module and no wireguard-go: run `eval \"$(bash scripts/setup.sh)\"` first"
    );
    b
}

/// The test's gateway: a WireGuard device whose UDP socket listens here and
/// whose link sits in the gateway namespace, in front of the echo host.
struct Gateway {
    ns: Netns,
    device: Option<Device>,
    name: String,
    key: KeyPair,
    port: u16,
}

impl Gateway {
    fn start() -> Self {
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
    fn rekey(&mut self, port: u16) {
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
    fn sync_peers(&self, endpoints: &[PodEndpoint]) {
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

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A pod's namespace, as the primary plugin leaves it.
struct PodNs {
    ns: Netns,
    _node_side: Netns,
    ip: String,
}

impl PodNs {
    fn new(host: u8) -> Self {
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

    fn path(&self) -> String {
        format!("/var/run/netns/{}", self.ns.name())
    }

    fn has_wg0(&self) -> bool {
        self.ns.ip(&["link", "show", "wg0"]).is_ok()
    }

    fn route_dev(&self, dst: &str) -> String {
        let out = self.ns.ip(&["route", "get", dst]).unwrap();
        out.split_whitespace()
            .skip_while(|w| *w != "dev")
            .nth(1)
            .unwrap()
            .to_string()
    }

    /// What the echo host sees as our source, or an error.
    fn fetch(&self, timeout: Duration) -> std::io::Result<String> {
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

    fn fetch_eventually(&self, total: Duration) -> std::io::Result<String> {
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

struct Dirs {
    _tmp: tempfile::TempDir,
    netd: PathBuf,
    backup: PathBuf,
    socket: PathBuf,
}

const PRIMARY: &str = "{\n  \"cniVersion\": \"1.0.0\",\n  \"name\": \"k8s\",\n  \"plugins\": [{\"type\": \"bridge\", \"ipam\": {\"type\": \"host-local\"}}, {\"type\": \"portmap\"}]\n}\n";

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let netd = tmp.path().join("net.d");
    std::fs::create_dir_all(&netd).unwrap();
    std::fs::write(netd.join("10-bridge.conflist"), PRIMARY).unwrap();
    Dirs {
        netd,
        backup: tmp.path().join("backup"),
        socket: tmp.path().join("run/agent.sock"),
        _tmp: tmp,
    }
}

/// The agent process, killed on drop.
struct Agent {
    child: Child,
    metrics: u16,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent_args(d: &Dirs) -> Vec<String> {
    vec![
        "--cni-conf-dir".into(),
        d.netd.display().to_string(),
        "--backup-dir".into(),
        d.backup.display().to_string(),
        "--socket".into(),
        d.socket.display().to_string(),
    ]
}

fn start_agent(api: &ApiServer, d: &Dirs) -> Agent {
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

fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
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

fn conf(d: &Dirs, mode: &str) -> String {
    json!({
        "cniVersion": "1.1.0", "name": "k8s", "type": "egress-cni",
        "failureMode": mode, "agentSocket": d.socket,
        "prevResult": {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0"}], "ips": []}
    })
    .to_string()
}

/// Runs the plugin as the runtime would.
fn cni(
    command: &str,
    ns: &str,
    pod: &str,
    netns: &str,
    container: &str,
    conf: &str,
) -> (i32, Value) {
    cni_as(None, command, ns, pod, netns, container, conf)
}

fn cni_as(
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
    cmd.env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env(
            "CNI_ARGS",
            format!("K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod}"),
        )
        .stdin(Stdio::piped())
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

fn interfaces(result: &Value) -> Vec<String> {
    result["interfaces"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|i| i["name"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

async fn setup(client: &Client) {
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

async fn put_sgc(client: &Client, ns: &str, name: &str, gw: &Gateway) {
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
    };
    sgcs.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap();
}

async fn put_pod(client: &Client, ns: &str, name: &str, ip: &str, sgc: Option<&str>) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    if let Some(s) = sgc {
        pod.metadata.annotations = Some([(ANNOTATION.to_string(), s.to_string())].into());
    }
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"podIP": ip, "podIPs": [{"ip": ip}]}})),
    )
    .await
    .unwrap();
}

async fn endpoints(client: &Client) -> Vec<PodEndpoint> {
    Api::<PodEndpoint>::all(client.clone())
        .list(&kube::api::ListParams::default())
        .await
        .unwrap()
        .items
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
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

fn metric(agent: &Agent, name: &str) -> String {
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

#[test]
fn pods_opt_in_follow_their_gateway_and_leave_nothing_behind() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(ApiServer::start()).unwrap();
    let client = rt.block_on(api.client()).unwrap();
    rt.block_on(setup(&client));
    let mut gw = Gateway::start();
    rt.block_on(put_sgc(&client, "apps", "egress", &gw));
    rt.block_on(put_sgc(&client, "dflt", "egress", &gw));
    let d = dirs();
    let before = snapshot(&d.netd);
    let agent = start_agent(&api, &d);

    // The chained configuration sits beside the primary, whose bytes are untouched.
    wait_until("the chained configuration", Duration::from_secs(10), || {
        d.netd.join("00-egress-gateway.conflist").exists()
    });
    assert_eq!(
        std::fs::read(d.netd.join("10-bridge.conflist")).unwrap(),
        PRIMARY.as_bytes()
    );

    // The socket is root-only, and a non-root process cannot reach the agent.
    let mode = |p: &Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode(d.socket.parent().unwrap()), 0o700);
    assert_eq!(mode(&d.socket), 0o600);
    let (code, out) = cni_as(
        Some(65534),
        "STATUS",
        "apps",
        "x",
        "/x",
        "c",
        &conf(&d, "closed"),
    );
    assert_eq!((code, out["code"].as_u64()), (1, Some(11)), "{out}");

    // An annotated pod gets wg0, the planned routes and its PodEndpoint,
    // and its traffic leaves through the gateway.
    let a = PodNs::new(5);
    rt.block_on(put_pod(&client, "apps", "a", &a.ip, Some("egress")));
    let started = Instant::now();
    let (code, out) = cni(
        "ADD",
        "apps",
        "a",
        &a.path(),
        "sandbox-a",
        &conf(&d, "open"),
    );
    let add_took = started.elapsed();
    assert_eq!(code, 0, "{out}");
    assert_eq!(interfaces(&out), ["eth0", "wg0"]);
    assert!(a.has_wg0());
    assert_eq!(a.route_dev("203.0.113.10"), "wg0");
    assert_eq!(a.route_dev("169.254.169.254"), "eth0", "node exception");
    assert_eq!(a.route_dev("10.244.77.1"), "eth0", "the pod's own gateway");
    let eps = rt.block_on(endpoints(&client));
    assert_eq!(eps.len(), 1);
    let ep = &eps[0];
    assert_eq!(ep.spec.pod_ip_address.as_deref(), Some("10.244.77.5/32"));
    assert_eq!(
        ep.spec.static_gateway_configuration.as_deref(),
        Some("egress")
    );
    assert_eq!(
        ep.labels()
            .get("egressgateway.kubernetes.azure.com/node")
            .map(String::as_str),
        Some(NODE)
    );
    gw.sync_peers(&eps);
    assert_eq!(
        a.fetch_eventually(Duration::from_secs(15)).unwrap(),
        "10.244.77.5"
    );
    eprintln!("ADD with plumbing took {add_took:?}");

    // An unannotated pod is untouched.
    let p = PodNs::new(6);
    rt.block_on(put_pod(&client, "plain", "p", &p.ip, None));
    let (code, out) = cni(
        "ADD",
        "plain",
        "p",
        &p.path(),
        "sandbox-p",
        &conf(&d, "open"),
    );
    assert_eq!((code, interfaces(&out)), (0, vec!["eth0".to_string()]));
    assert!(!p.has_wg0());
    assert_eq!(p.route_dev("203.0.113.10"), "eth0");

    // A pod in a namespace with a default gets the tunnel.
    let n = PodNs::new(7);
    rt.block_on(put_pod(&client, "dflt", "n", &n.ip, None));
    let (code, out) = cni(
        "ADD",
        "dflt",
        "n",
        &n.path(),
        "sandbox-n",
        &conf(&d, "open"),
    );
    assert_eq!(
        (code, interfaces(&out)),
        (0, vec!["eth0".to_string(), "wg0".to_string()]),
        "{out}"
    );
    assert!(n.has_wg0());

    // A new gateway port and key reach the running pod without a restart.
    gw.rekey(free_udp_port());
    let changed = Instant::now();
    rt.block_on(put_sgc(&client, "apps", "egress", &gw));
    gw.sync_peers(&rt.block_on(endpoints(&client)));
    let followed = a.fetch_eventually(Duration::from_secs(20));
    let follow_took = changed.elapsed();
    assert_eq!(followed.unwrap(), "10.244.77.5");
    println!("figure: running pod followed a port and key change in {follow_took:?}");
    assert!(metric(&agent, "egress_agent_replumbs_total").ends_with(|c: char| c != '0'));

    // Deleting the configuration restores the pod's own default route.
    rt.block_on(
        Api::<StaticGatewayConfiguration>::namespaced(client.clone(), "apps")
            .delete("egress", &DeleteParams::default()),
    )
    .unwrap();
    wait_until(
        "the pod's own default route",
        Duration::from_secs(10),
        || !a.has_wg0() && a.route_dev("203.0.113.10") == "eth0",
    );
    wait_until("its PodEndpoint to go", Duration::from_secs(10), || {
        rt.block_on(Api::<PodEndpoint>::namespaced(client.clone(), "apps").get_opt("a"))
            .unwrap()
            .is_none()
    });

    // DEL leaves nothing in the pod, on the node or in the API.
    let (code, _) = cni(
        "DEL",
        "dflt",
        "n",
        &n.path(),
        "sandbox-n",
        &conf(&d, "open"),
    );
    assert_eq!(code, 0);
    assert!(!n.has_wg0());
    assert_eq!(n.route_dev("203.0.113.10"), "eth0");
    assert!(!n.ns.ip(&["rule", "show"]).unwrap().contains("0x2222"));
    assert!(
        n.ns.exec("nft", &["list", "table", "inet", "egress_pod"])
            .is_err()
    );
    assert!(
        rt.block_on(Api::<PodEndpoint>::namespaced(client.clone(), "dflt").get_opt("n"))
            .unwrap()
            .is_none()
    );
    assert!(
        !run("ip", &["-o", "link"]).contains(" eg-"),
        "no device left on the node"
    );

    // The agent away: pods start (fail-open) and get the tunnel when it is back.
    drop(agent);
    rt.block_on(put_sgc(&client, "apps", "egress", &gw));
    let late = PodNs::new(8);
    rt.block_on(put_pod(&client, "apps", "late", &late.ip, Some("egress")));
    let (code, out) = cni(
        "ADD",
        "apps",
        "late",
        &late.path(),
        "sandbox-late",
        &conf(&d, "open"),
    );
    assert_eq!(
        (code, interfaces(&out)),
        (0, vec!["eth0".to_string()]),
        "{out}"
    );
    let (code, out) = cni(
        "ADD",
        "apps",
        "late",
        &late.path(),
        "sandbox-late",
        &conf(&d, "closed"),
    );
    assert_eq!((code, out["code"].as_u64()), (1, Some(11)));
    let agent = start_agent(&api, &d);
    wait_until("the late pod's tunnel", Duration::from_secs(20), || {
        late.has_wg0()
    });
    gw.sync_peers(&rt.block_on(endpoints(&client)));
    assert_eq!(
        late.fetch_eventually(Duration::from_secs(15)).unwrap(),
        "10.244.77.8"
    );
    let (code, _) = cni(
        "DEL",
        "apps",
        "late",
        &late.path(),
        "sandbox-late",
        &conf(&d, "open"),
    );
    assert_eq!(code, 0);
    assert!(!late.has_wg0());

    // Uninstall restores the configuration directory exactly.
    drop(agent);
    let status = Command::new(env!("CARGO_BIN_EXE_egress-node-agent"))
        .args(agent_args(&d))
        .arg("uninstall")
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(snapshot(&d.netd), before);
}
