//! A gateway node in network namespaces, for dataplane and daemon tests.
//!
//! ```text
//!  client (pods) eth0 192.0.2.2/24 ── eth0 192.0.2.1/24  node  eth1 198.51.100.1/24 ── eth0 198.51.100.10/24 echo
//!                                     (frontend 192.0.2.100/32)
//!                                      └─ host-gateway ── host0 gateway namespace (egress IPs 203.0.113.x/32)
//! ```
//!
//! The node also masquerades everything leaving `eth1`, as kube-proxy or
//! ip-masq-agent would, so the gateway's exemption is exercised. The echo
//! host answers every TCP connection with the source address it sees.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use egress_core::model::{GatewayNode, PodEndpoint, SecretRef, ServerProfile};
use egress_core::node::ActiveConfig;
use egress_net::wireguard::{Backend, Device, DeviceConfig, KeyPair, PeerConfig};
use egress_testkit::netns::{Netns, veth};

pub const FRONTEND: &str = "192.0.2.100";
pub const PRIMARY: &str = "192.0.2.1";
pub const ECHO: &str = "198.51.100.10:8080";

/// The namespaces of one gateway node and its neighbours.
#[derive(Debug)]
pub struct Topology {
    pub node: Netns,
    pub gateway: Netns,
    pub client: Netns,
    pub echo: Netns,
}

impl Topology {
    pub fn build() -> Topology {
        let node = Netns::create("node").unwrap();
        let gateway = Netns::create("gw").unwrap();
        let client = Netns::create("client").unwrap();
        let echo = Netns::create("echo").unwrap();
        veth(
            &client,
            "eth0",
            "192.0.2.2/24",
            &node,
            "eth0",
            "192.0.2.1/24",
        )
        .unwrap();
        veth(
            &node,
            "eth1",
            "198.51.100.1/24",
            &echo,
            "eth0",
            "198.51.100.10/24",
        )
        .unwrap();
        node.sysctl("net.ipv4.ip_forward", "1").unwrap();
        echo.route(&["203.0.113.0/24", "via", "198.51.100.1"])
            .unwrap();
        echo.route(&["192.0.2.0/24", "via", "198.51.100.1"])
            .unwrap();
        let masq = "table ip fake_kube_proxy {\n chain post {\n  type nat hook postrouting priority srcnat; policy accept;\n  oifname \"eth1\" masquerade\n }\n}\n";
        let file = std::env::temp_dir().join(format!("{}-masq.nft", node.name()));
        std::fs::write(&file, masq).unwrap();
        let applied = node.exec("nft", &["-f", &file.to_string_lossy()]);
        let _ = std::fs::remove_file(&file);
        applied.unwrap();
        let listener = echo.run(|| TcpListener::bind(ECHO)).unwrap().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                if let Ok(peer) = conn.peer_addr() {
                    let _ = conn.write_all(peer.ip().to_string().as_bytes());
                }
            }
        });
        Topology {
            node,
            gateway,
            client,
            echo,
        }
    }

    /// The gateway namespace's file.
    pub fn gateway_path(&self) -> std::path::PathBuf {
        format!("/var/run/netns/{}", self.gateway.name()).into()
    }
}

/// The backend under test: the kernel module if loaded, else wireguard-go.
pub fn backend() -> Backend {
    let b = Backend::detect();
    assert!(
        !matches!(b, Backend::Boringtun),
        "no WireGuard kernel module and no wireguard-go: run `eval \"$(bash scripts/setup.sh)\"` first"
    );
    b
}

/// One configuration of the test node and its pod.
#[derive(Debug)]
pub struct Gw {
    pub config: ActiveConfig,
    pub key: KeyPair,
    pub pod_key: KeyPair,
    pub pod_ip: Ipv4Addr,
}

/// `n` configurations on ports `base..`, egress IPs 203.0.113.(10+i), pods
/// 10.244.0.(1+i).
pub fn gateways(base: u16, n: u8) -> Vec<Gw> {
    (0..n)
        .map(|i| {
            let key = KeyPair::generate();
            Gw {
                config: ActiveConfig {
                    namespace: "apps".into(),
                    name: format!("gw{i}"),
                    uid: format!("uid-{base}-{i}"),
                    server: ServerProfile {
                        ip: FRONTEND.parse().unwrap(),
                        port: base + u16::from(i),
                        public_key: key.public.clone(),
                        key_secret: SecretRef {
                            namespace: "kube-egress-gateway-system".into(),
                            name: format!("sgw-uid-{base}-{i}"),
                        },
                    },
                    node: GatewayNode {
                        node_name: "gw-node-0".into(),
                        primary_ip: PRIMARY.parse().unwrap(),
                        secondary_ip: IpAddr::from([203, 0, 113, 10 + i]),
                    },
                },
                key,
                pod_key: KeyPair::generate(),
                pod_ip: Ipv4Addr::new(10, 244, 0, 1 + i),
            }
        })
        .collect()
}

pub fn endpoint(g: &Gw) -> PodEndpoint {
    PodEndpoint {
        namespace: g.config.namespace.clone(),
        name: format!("pod-{}", g.config.name),
        config: g.config.name.clone(),
        pod_ip: g.pod_ip.into(),
        public_key: g.pod_key.public.clone(),
    }
}

/// The pods' side: one tunnel per configuration in the client namespace,
/// each used by traffic from its pod address (source-based policy routing).
pub fn pod_tunnels(client: &Netns, gws: &[Gw], tag: &str) -> Vec<Device> {
    gws.iter()
        .enumerate()
        .map(|(i, g)| {
            let name = format!("p{}{tag}{i}", std::process::id() % 10_000);
            let cfg = DeviceConfig {
                private_key: g.pod_key.private.clone(),
                listen_port: 0,
                addresses: vec![format!("{}/32", g.pod_ip).parse().unwrap()],
                mtu: 1420,
                peers: vec![PeerConfig {
                    public_key: g.config.server.public_key.clone(),
                    endpoint: Some(SocketAddr::new(
                        FRONTEND.parse().unwrap(),
                        g.config.server.port,
                    )),
                    allowed_ips: vec!["0.0.0.0/0".parse().unwrap()],
                    persistent_keepalive: None,
                }],
            };
            let backend = backend();
            let n = name.clone();
            let dev = client
                .run(move || -> Result<Device, egress_net::Error> {
                    let dev = Device::create(&n, backend)?;
                    dev.configure(&cfg)?;
                    Ok(dev)
                })
                .unwrap()
                .unwrap();
            let table = (100 + i).to_string();
            client
                .ip(&[
                    "rule",
                    "add",
                    "from",
                    &g.pod_ip.to_string(),
                    "table",
                    &table,
                ])
                .unwrap();
            client
                .ip(&["route", "add", "default", "dev", &name, "table", &table])
                .unwrap();
            dev
        })
        .collect()
}

/// Connects from `src` to `to` inside `ns` and returns what the server wrote.
pub fn fetch_from(
    ns: &Netns,
    src: Ipv4Addr,
    to: &str,
    timeout: Duration,
) -> std::io::Result<String> {
    let to: SocketAddr = to.parse().unwrap();
    ns.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(SocketAddr::new(src.into(), 0))?;
            let mut stream = tokio::time::timeout(timeout, sock.connect(to))
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
            let mut text = String::new();
            let stream_std = {
                use tokio::io::AsyncReadExt;
                let mut buf = Vec::new();
                tokio::time::timeout(timeout, stream.read_to_end(&mut buf))
                    .await
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
                buf
            };
            text.push_str(&String::from_utf8_lossy(&stream_std));
            Ok(text)
        })
    })
    .unwrap()
}

/// Retries `fetch_from` until it succeeds or `total` passes: the first
/// packets wait for WireGuard handshakes (retried every 5 s).
pub fn fetch_eventually(
    ns: &Netns,
    src: Ipv4Addr,
    to: &str,
    total: Duration,
) -> std::io::Result<String> {
    let start = std::time::Instant::now();
    loop {
        match fetch_from(ns, src, to, Duration::from_secs(3)) {
            Ok(t) => return Ok(t),
            Err(e) if start.elapsed() > total => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Reads everything a TCP connection sends; used for unsolicited probes.
pub fn read_all(mut s: std::net::TcpStream) -> std::io::Result<String> {
    let mut t = String::new();
    s.read_to_string(&mut t)?;
    Ok(t)
}
