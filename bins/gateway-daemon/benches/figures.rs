//! Gateway-node figures (DESIGN.md section 7), printed:
//! `cargo bench -p egress-gateway-daemon --bench figures` (root, after
//! `eval "$(bash scripts/setup.sh)"`).
//!
//! 1. 10,000 peers over 100 configurations applied from empty on the
//!    backend in use (wireguard-go here): planning + kernel writes, with the
//!    userspace devices' start-up reported apart.
//! 2. A no-op pass: kernel writes (must be 0) and its time.
//! 3. Throughput from a pod through the gateway (tunnel, SNAT, veth, policy
//!    routing) beside the same backend point to point, in the same run.
//! 4. The daemon's RSS serving 10,000 peers from a real API server, with the
//!    wireguard-go processes reported apart.
//!
//! Under `cargo test` (no `--bench`) it runs the same steps small and short.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    clippy::cast_precision_loss,
    clippy::many_single_char_names,
    clippy::similar_names
)]

#[path = "../../../egress-net/tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egress_core::model::PodEndpoint;
use egress_core::node::{NodeOp, NodeState, desired, diff, tunnel_mtu};
use egress_core::traits::{Dataplane, sync_node};
use egress_net::LinuxDataplane;
use egress_net::dataplane::{Config, StaticKeys};
use egress_net::netns::NsRef;
use egress_net::wireguard::{Device, DeviceConfig, KeyPair, PeerConfig};
use egress_testkit::netns::{Netns, veth};
use support::{Topology, backend, gateways};

const SINK_PORT: u16 = 5201;

/// Pod endpoints spread over the configurations, addresses 10.244.0.0/16
/// from .2 up (the measuring pod is .1).
fn endpoints(gws: &[support::Gw], peers: usize) -> Vec<PodEndpoint> {
    (0..peers)
        .map(|i| {
            let g = &gws[i % gws.len()];
            let n = u32::try_from(i).unwrap() + 2;
            PodEndpoint {
                namespace: g.config.namespace.clone(),
                name: format!("pod-{i}"),
                config: g.config.name.clone(),
                pod_ip: Ipv4Addr::from(0x0AF4_0000 + n).into(),
                public_key: KeyPair::generate().public,
            }
        })
        .collect()
}

/// A TCP sink: reads each connection to the end, answers the byte count.
fn sink(ns: &Netns, addr: SocketAddr) {
    let listener = ns.run(move || TcpListener::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = vec![0u8; 1 << 18];
            let mut total: u64 = 0;
            while let Ok(n) = conn.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            let _ = conn.write_all(total.to_string().as_bytes());
        }
    });
}

/// Sends for `secs` from `src` to `to`; returns Gbit/s as the sink counted.
fn blast(ns: &Netns, src: Option<Ipv4Addr>, to: SocketAddr, secs: u64) -> f64 {
    ns.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            if let Some(src) = src {
                sock.bind(SocketAddr::new(src.into(), 0)).unwrap();
            }
            let mut s = tokio::time::timeout(Duration::from_secs(20), sock.connect(to))
                .await
                .unwrap()
                .unwrap();
            let buf = vec![0x5au8; 1 << 18];
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(secs) {
                s.write_all(&buf).await.unwrap();
            }
            s.shutdown().await.unwrap();
            let mut reply = String::new();
            s.read_to_string(&mut reply).await.unwrap();
            let took = start.elapsed().as_secs_f64();
            reply.trim().parse::<f64>().unwrap() * 8.0 / took / 1e9
        })
    })
    .unwrap()
}

/// Waits until a connection from `src` to `to` succeeds (handshakes first).
fn warm(ns: &Netns, src: Option<Ipv4Addr>, to: SocketAddr) {
    let start = Instant::now();
    loop {
        let ok = ns
            .run(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let sock = tokio::net::TcpSocket::new_v4().ok()?;
                    if let Some(src) = src {
                        sock.bind(SocketAddr::new(src.into(), 0)).ok()?;
                    }
                    tokio::time::timeout(Duration::from_secs(3), sock.connect(to))
                        .await
                        .ok()?
                        .ok()
                })
            })
            .unwrap()
            .is_some();
        if ok {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no path to {to}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Sum of the RSS of the wireguard-go processes started by `parent`, and
/// their count.
fn wireguard_go_rss(parent: u32) -> (u64, usize) {
    let mut total = 0;
    let mut n = 0;
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Field 4 (after the parenthesised name) is the parent's pid.
        let ppid = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .unwrap_or_default();
        if comm.trim() == "wireguard-go" && ppid == parent.to_string() {
            total += rss_kib(pid);
            n += 1;
        }
    }
    (total, n)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (configs, peers, secs) = if bench {
        (100u8, 10_000usize, 10u64)
    } else {
        (3, 30, 1)
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("backend: {}", backend().name());
    // EGRESS_FIGURES=apply,throughput,daemon picks parts (default: all).
    let parts =
        std::env::var("EGRESS_FIGURES").unwrap_or_else(|_| "apply,throughput,daemon".into());
    let part = |p: &str| parts.split(',').any(|x| x.trim() == p);
    if part("apply") || part("throughput") {
        dataplane_figures(&rt, bench, configs, peers, secs, part("throughput"));
    }
    if part("daemon") {
        daemon_rss(&rt, configs, peers);
    }
}

fn dataplane_figures(
    rt: &tokio::runtime::Runtime,
    bench: bool,
    configs: u8,
    peers: usize,
    secs: u64,
    throughput: bool,
) {
    // 1 and 2: the dataplane alone.
    let topo = Topology::build();
    let gws = gateways(6300, configs);
    let keys = Arc::new(StaticKeys::default());
    for g in &gws {
        keys.insert(&g.config.server.key_secret, &g.key.private);
    }
    let dp = rt
        .block_on(LinuxDataplane::new(
            Config {
                host_ns: NsRef::Path(format!("/var/run/netns/{}", topo.node.name()).into()),
                gateway_ns: NsRef::Path(topo.gateway_path()),
                node_interface: "eth0".into(),
                backend: backend(),
            },
            keys,
        ))
        .unwrap();
    let configs_in: Vec<_> = gws.iter().map(|g| g.config.clone()).collect();
    let mut eps = endpoints(&gws, peers - 1);
    eps.push(support::endpoint(&gws[0]));
    let t = Instant::now();
    let want = desired(&configs_in, &eps, tunnel_mtu(1500));
    let observed = rt.block_on(dp.observe()).unwrap();
    let ops = diff(&want, &observed);
    let planning = t.elapsed();
    // Device start-up first (all creates are independent of the rest), each
    // timed; then every other operation in one batch, as a pass applies them.
    let (creates_ops, rest_ops): (Vec<NodeOp>, Vec<NodeOp>) = ops
        .iter()
        .cloned()
        .partition(|o| matches!(o, NodeOp::CreateInterface { .. }));
    let (plumbing_ops, rest_ops): (Vec<NodeOp>, Vec<NodeOp>) = rest_ops
        .into_iter()
        .partition(|o| matches!(o, NodeOp::EnsurePlumbing(_) | NodeOp::AddFrontendIp(_)));
    // Each phase starts from an observe, as a pass does (the adapter plans
    // table element changes from what the last observe read); those
    // observes are counted in the phase's time.
    let phase = |ops: &[NodeOp]| {
        let t = Instant::now();
        rt.block_on(async {
            dp.observe().await.unwrap();
            dp.apply_all(ops).await.unwrap();
        });
        t.elapsed()
    };
    let w0 = dp.kernel_writes();
    let mut rest = phase(&plumbing_ops);
    let startup = phase(&creates_ops);
    // Split only to report where the time goes; one batch does the same.
    let (peer_ops, config_ops): (Vec<NodeOp>, Vec<NodeOp>) = rest_ops
        .into_iter()
        .partition(|o| matches!(o, NodeOp::UpsertPeer { .. }));
    let configure = phase(&config_ops);
    let peering = phase(&peer_ops);
    rest += configure + peering;
    let writes = dp.kernel_writes() - w0;
    let creates = ops
        .iter()
        .filter(|o| matches!(o, NodeOp::CreateInterface { .. }))
        .count();
    assert_eq!(
        rt.block_on(dp.observe()).unwrap(),
        want,
        "applied state differs from the plan"
    );
    println!(
        "apply from empty: {peers} peers over {configs} configurations: {} operations, {writes} kernel writes",
        ops.len()
    );
    println!(
        "  planning (observe + plan + diff)           {:>9.1} ms",
        planning.as_secs_f64() * 1e3
    );
    println!(
        "  kernel writes (all but device start-up)    {:>9.1} ms   target planning + writes < 1000 ms: {:.1} ms",
        rest.as_secs_f64() * 1e3,
        (planning + rest).as_secs_f64() * 1e3
    );
    println!(
        "    of which configuring {configs} interfaces {:>9.1} ms, {peers} peers in {configs} sets {:.1} ms",
        configure.as_secs_f64() * 1e3,
        peering.as_secs_f64() * 1e3
    );
    println!(
        "  userspace device start-up ({creates} devices)   {:>9.1} ms ({:.1} ms each)",
        startup.as_secs_f64() * 1e3,
        startup.as_secs_f64() * 1e3 / creates.max(1) as f64
    );
    let w1 = dp.kernel_writes();
    let t = Instant::now();
    let n = rt.block_on(sync_node(&dp, &want)).unwrap();
    let idle = t.elapsed();
    println!(
        "no-op pass: {n} operations, {} kernel writes, {:.1} ms (observe of {peers} peers)",
        dp.kernel_writes() - w1,
        idle.as_secs_f64() * 1e3
    );

    // 3: throughput, gateway path and point to point, same backend.
    if throughput {
        throughput_figures(&topo, &gws, bench, secs);
    }
    rt.block_on(async {
        for _ in 0..4 {
            if sync_node(&dp, &NodeState::default()).await.unwrap() == 0 {
                break;
            }
        }
    });
}

fn throughput_figures(topo: &Topology, gws: &[support::Gw], bench: bool, secs: u64) {
    let _pod = support::pod_tunnels(&topo.client, &gws[..1], "f");
    let echo_sink: SocketAddr = (Ipv4Addr::new(198, 51, 100, 10), SINK_PORT).into();
    sink(&topo.echo, echo_sink);
    warm(&topo.client, Some(gws[0].pod_ip), echo_sink);
    let a = Netns::create("p2p-a").unwrap();
    let b = Netns::create("p2p-b").unwrap();
    veth(&a, "eth0", "192.0.2.51/24", &b, "eth0", "192.0.2.52/24").unwrap();
    let (ka, kb) = (KeyPair::generate(), KeyPair::generate());
    let tag = std::process::id() % 10_000;
    let mk = |ns: &Netns,
              name: String,
              me: &KeyPair,
              addr: &str,
              peer: &KeyPair,
              allowed: &str,
              endpoint: Option<SocketAddr>| {
        let cfg = DeviceConfig {
            private_key: me.private.clone(),
            listen_port: 51820,
            addresses: vec![addr.parse().unwrap()],
            mtu: 1420,
            peers: vec![PeerConfig {
                public_key: peer.public.clone(),
                endpoint,
                allowed_ips: vec![allowed.parse().unwrap()],
                persistent_keepalive: None,
            }],
        };
        let backend = backend();
        ns.run(move || {
            let d = Device::create(&name, backend).unwrap();
            d.configure(&cfg).unwrap();
            d
        })
        .unwrap()
    };
    let _da = mk(
        &a,
        format!("q{tag}a"),
        &ka,
        "10.200.0.1/24",
        &kb,
        "10.200.0.2/32",
        Some("192.0.2.52:51820".parse().unwrap()),
    );
    let _db = mk(
        &b,
        format!("q{tag}b"),
        &kb,
        "10.200.0.2/24",
        &ka,
        "10.200.0.1/32",
        None,
    );
    let p2p_sink: SocketAddr = (Ipv4Addr::new(10, 200, 0, 2), SINK_PORT).into();
    sink(&b, p2p_sink);
    warm(&a, None, p2p_sink);
    let mut gw_runs = Vec::new();
    let mut p2p_runs = Vec::new();
    // Interleaved, so both paths see the same machine load.
    for _ in 0..if bench { 3 } else { 1 } {
        gw_runs.push(blast(&topo.client, Some(gws[0].pod_ip), echo_sink, secs));
        p2p_runs.push(blast(&a, None, p2p_sink, secs));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (g, p) = (med(&mut gw_runs), med(&mut p2p_runs));
    println!(
        "throughput ({secs} s TCP, median of {}): through the gateway {g:.2} Gbit/s, point to point {p:.2} Gbit/s, ratio {:.2} (target >= 0.90)",
        gw_runs.len(),
        g / p
    );
}

fn daemon_rss(rt: &tokio::runtime::Runtime, configs: u8, peers: usize) {
    use egress_k8s::crd;
    use futures_util::StreamExt;
    use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Secret};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams, PostParams};
    use kube::runtime::wait::{await_condition, conditions};
    use kube::{Api, ResourceExt};

    let api = rt
        .block_on(egress_testkit::apiserver::ApiServer::start())
        .unwrap();
    let client = rt.block_on(api.client()).unwrap();
    let topo = Topology::build();
    let gws = gateways(6500, configs);
    let eps = endpoints(&gws, peers);
    let t = Instant::now();
    rt.block_on(async {
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for c in egress_k8s::generate::crds() {
            let name = c.name_any();
            crds.create(&PostParams::default(), &c).await.unwrap();
            await_condition(crds.clone(), &name, conditions::is_crd_established()).await.unwrap();
        }
        let nss: Api<Namespace> = Api::all(client.clone());
        for ns in ["apps", "kube-egress-gateway-system"] {
            let mut n = Namespace::default();
            n.metadata.name = Some(ns.into());
            nss.create(&PostParams::default(), &n).await.unwrap();
        }
        for g in &gws {
            let c = &g.config;
            let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-egress-gateway-system");
            let mut s = Secret::default();
            s.metadata.name = Some(c.server.key_secret.name.clone());
            s.data = Some([("PrivateKey".to_string(), k8s_openapi::ByteString(g.key.private.clone().into_bytes()))].into());
            secrets.create(&PostParams::default(), &s).await.unwrap();
            let sgcs: Api<crd::StaticGatewayConfiguration> = Api::namespaced(client.clone(), "apps");
            let spec: crd::StaticGatewayConfigurationSpec = serde_json::from_value(serde_json::json!({"gatewayNodepoolName": "gwpool"})).unwrap();
            sgcs.create(&PostParams::default(), &crd::StaticGatewayConfiguration::new(&c.name, spec)).await.unwrap();
            let status = serde_json::json!({"status": {"egressIpPrefix": "203.0.113.0/25", "gatewayServerProfile": {
                "ip": c.server.ip.to_string(), "port": c.server.port, "publicKey": g.key.public,
                "privateKeySecretRef": ObjectReference { namespace: Some("kube-egress-gateway-system".into()), name: Some(c.server.key_secret.name.clone()), ..Default::default() }}}});
            sgcs.patch_status(&c.name, &PatchParams::default(), &Patch::Merge(status)).await.unwrap();
            let vms: Api<crd::GatewayVMConfiguration> = Api::namespaced(client.clone(), "apps");
            let vspec: crd::GatewayVMConfigurationSpec = serde_json::from_value(serde_json::json!({})).unwrap();
            vms.create(&PostParams::default(), &crd::GatewayVMConfiguration::new(&c.name, vspec)).await.unwrap();
            let vstatus = serde_json::json!({"status": {"gatewayVMProfiles": [{"nodeName": "gw-node-0", "primaryIP": c.node.primary_ip.to_string(), "secondaryIP": c.node.secondary_ip.to_string()}]}});
            vms.patch_status(&c.name, &PatchParams::default(), &Patch::Merge(vstatus)).await.unwrap();
        }
        let pes: Api<crd::PodEndpoint> = Api::namespaced(client.clone(), "apps");
        futures_util::stream::iter(eps.iter())
            .map(|e| {
                let pes = pes.clone();
                async move {
                    let pe = crd::PodEndpoint::new(&e.name, crd::PodEndpointSpec {
                        static_gateway_configuration: Some(e.config.clone()),
                        pod_ip_address: Some(format!("{}/32", e.pod_ip)),
                        pod_public_key: Some(e.public_key.clone()),
                    });
                    pes.create(&PostParams::default(), &pe).await.unwrap();
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
    });
    let load = t.elapsed();
    let probe = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_egress-gateway-daemon"))
        .args([
            "--node-name",
            "gw-node-0",
            "--pool-name",
            "gwpool",
            "--log-format",
            "text",
            // Endpoints of pods in bare namespaces, no kubelet.
            "--verify-pod-endpoints=false",
        ])
        .args([
            "--host-netns",
            &format!("/var/run/netns/{}", topo.node.name()),
        ])
        .args(["--gateway-netns", &topo.gateway_path().to_string_lossy()])
        .args([
            "--bind-address",
            "127.0.0.1",
            "--gateway-lb-probe-port",
            &probe.to_string(),
        ])
        .args([
            "--metrics-bind-port",
            &metrics.to_string(),
            "--lb-probe-drain-delay-seconds",
            "1",
        ])
        .env("KUBECONFIG", api.kubeconfig_path())
        .env("MY_POD_NAMESPACE", "kube-egress-gateway-system")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let start = Instant::now();
    let get = |path: &str| -> String {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", metrics)) else {
            return String::new();
        };
        let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut t = String::new();
        let _ = s.read_to_string(&mut t);
        t
    };
    let want_line = format!("egress_gateway_peers_applied {peers}");
    while !get("/metrics").contains(&want_line) {
        assert!(
            start.elapsed() < Duration::from_mins(5),
            "daemon did not reach {peers} peers"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let converge = start.elapsed();
    std::thread::sleep(Duration::from_secs(3));
    let rss = rss_kib(child.id());
    let (wg_rss, wg_n) = wireguard_go_rss(child.id());
    println!(
        "daemon at {peers} peers over {configs} configurations (objects created in {:.1} s, daemon converged in {:.1} s from start):",
        load.as_secs_f64(),
        converge.as_secs_f64()
    );
    println!(
        "  daemon RSS {:.1} MB (target < 25 MB)",
        rss as f64 / 1024.0
    );
    println!(
        "  wireguard-go: {wg_n} processes, {:.1} MB RSS together",
        wg_rss as f64 / 1024.0
    );
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let _ = std::process::Command::new(env!("CARGO_BIN_EXE_egress-gateway-daemon"))
        .args([
            "--node-name",
            "gw-node-0",
            "--uninstall",
            "--log-format",
            "text",
            // Endpoints of pods in bare namespaces, no kubelet.
            "--verify-pod-endpoints=false",
        ])
        .args([
            "--host-netns",
            &format!("/var/run/netns/{}", topo.node.name()),
        ])
        .args(["--gateway-netns", &topo.gateway_path().to_string_lossy()])
        .status();
}
