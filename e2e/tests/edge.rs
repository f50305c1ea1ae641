//! The edge simulator in plain namespaces, against the fake ARM with the
//! real controller pass: a router namespace (`cp`, bridge `br0`), a worker
//! and two gateway nodes of a two-instance scale set, and an "internet" echo
//! host on the router's `lo`.
//!
//! Checked by traffic: UDP flows from the worker to the load balancer's
//! frontend spread over both gateways and each sticks to one; a gateway whose
//! probe server stops loses its flows to the other within
//! `interval x (threshold + 1) + 1 s`, and takes new flows again once it
//! answers; a gateway's public-mode ipConfig reaches the echo host as its
//! public address, a private-mode one as itself; deleting the public
//! configuration in Azure removes its translation and route; the fake IMDS
//! answers what the gateway daemon reads; nothing is left in the router's
//! namespace afterwards. Needs root.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::too_many_lines
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use egress_azure::local::{LocalCloud, RESOURCE_GROUP};
use egress_core::controller::{ControllerSettings, Outcome, reconcile};
use egress_core::lb::ProbeSettings;
use egress_core::model::GatewaySpec;
use egress_core::testing::InMemoryCluster;
use egress_e2e::edge::{Edge, Imds, ROUTES_TABLE, StateFn, TABLE};
use egress_testkit::netns::Netns;

/// Probe settings the controller writes: 1 s apart, down after 2 failures.
const PROBE_PORT: u16 = 8082;
const INTERVAL_SECS: u32 = 1;
const THRESHOLD: u32 = 2;
/// The "internet" echo host: the top of a range the fake allocates from the
/// bottom up, so no public IP of the test can take it.
const ECHO: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 254);
const ECHO_PORT: u16 = 9000;
const FLOWS: usize = 48;

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A node namespace on `br0` with `eth0` at `addr` and the router as its
/// default route.
fn node(cp: &Netns, label: &str, port: &str, addr: Ipv4Addr) -> Netns {
    let ns = Netns::create(label).unwrap();
    sh(&[
        "ip",
        "link",
        "add",
        "eth0",
        "netns",
        ns.name(),
        "type",
        "veth",
        "peer",
        "name",
        port,
        "netns",
        cp.name(),
    ]);
    cp.ip(&["link", "set", port, "master", "br0", "up"])
        .unwrap();
    ns.addr("eth0", &format!("{addr}/24")).unwrap();
    ns.ip(&["link", "set", "eth0", "up"]).unwrap();
    ns.route(&["default", "via", "10.77.0.1"]).unwrap();
    ns
}

/// A thread in a namespace serving until dropped.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), egress_testkit::Error>>>,
}

impl Server {
    /// Binds on a thread in `ns`, returns once bound, then serves there.
    fn start<T: 'static>(
        ns: &Netns,
        bind: impl FnOnce() -> T + Send + 'static,
        serve: impl FnOnce(T, &AtomicBool) + Send + 'static,
    ) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let (bound_tx, bound_rx) = std::sync::mpsc::channel::<()>();
        let thread = {
            let stop = stop.clone();
            ns.spawn(move || {
                let socket = bind();
                let _ = bound_tx.send(());
                serve(socket, &stop);
            })
        };
        bound_rx.recv().expect("the server could not bind");
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The gateway daemon's probe server stand-in: 200 to any path.
fn probe_server(ns: &Netns) -> Server {
    let bind = || {
        let l = TcpListener::bind(("0.0.0.0", PROBE_PORT)).unwrap();
        l.set_nonblocking(true).unwrap();
        l
    };
    Server::start(ns, bind, |l, stop| {
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf);
                    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    })
}

/// Answers every datagram to `frontend:port` with the node's name.
fn udp_echo(ns: &Netns, frontend: Ipv4Addr, port: u16, name: &'static str) -> Server {
    let bind = move || {
        let s = UdpSocket::bind((frontend, port)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        s
    };
    Server::start(ns, bind, move |s, stop| {
        let mut buf = [0u8; 64];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((_, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(name.as_bytes(), from);
            }
        }
    })
}

/// The echo host: answers each datagram with the source address it sees.
fn echo_host(ns: &Netns) -> Server {
    let bind = || {
        let s = UdpSocket::bind((ECHO, ECHO_PORT)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        s
    };
    Server::start(ns, bind, |s, stop| {
        let mut buf = [0u8; 64];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((_, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(from.ip().to_string().as_bytes(), from);
            }
        }
    })
}

/// UDP flows from the worker: one socket per flow, kept across rounds.
struct Flows(Vec<UdpSocket>);

impl Flows {
    fn open(worker: &Netns, n: usize) -> Flows {
        Flows(
            worker
                .run(move || {
                    (0..n)
                        .map(|_| {
                            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
                            s.set_read_timeout(Some(Duration::from_millis(300)))
                                .unwrap();
                            s
                        })
                        .collect()
                })
                .unwrap(),
        )
    }

    /// Which node answers each flow now (`None`: no answer). Sockets belong
    /// to the worker's namespace whatever thread uses them.
    fn round(&self, to: SocketAddr) -> Vec<Option<String>> {
        self.0
            .iter()
            .map(|s| {
                // A datagram lost while neighbours are resolved is not a
                // change of gateway: the same flow asks once more.
                (0..2).find_map(|_| {
                    s.send_to(b"ping", to).unwrap();
                    let mut buf = [0u8; 64];
                    s.recv_from(&mut buf)
                        .ok()
                        .map(|(n, _)| String::from_utf8_lossy(&buf[..n]).into_owned())
                })
            })
            .collect()
    }
}

/// Sends from `source` inside `ns` to the echo host; the address it saw
/// (`None`: no answer within a second).
fn seen_by_echo(ns: &Netns, source: Ipv4Addr) -> Option<String> {
    ns.run(move || {
        let s = UdpSocket::bind((source, 0)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        s.send_to(b"who am i", (ECHO, ECHO_PORT)).unwrap();
        let mut buf = [0u8; 64];
        let (n, _) = s.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .unwrap()
}

async fn pass_until(
    cloud: &LocalCloud,
    cluster: &InMemoryCluster,
    settings: &ControllerSettings,
    done: impl Fn(&Outcome) -> bool,
) {
    for _ in 0..6 {
        let report = reconcile(&cloud.cloud, cluster, settings).await.unwrap();
        if report.outcomes.values().all(&done) {
            cloud.arm.wait_for_operations(Duration::from_secs(10)).await;
            return;
        }
    }
    panic!("the controller did not converge");
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_balances_fails_over_translates_and_serves_imds() {
    let test_start = Instant::now();
    // The topology.
    let cp = Netns::create("cp").unwrap();
    cp.ip(&["link", "add", "br0", "type", "bridge"]).unwrap();
    cp.addr("br0", "10.77.0.1/24").unwrap();
    cp.ip(&["link", "set", "br0", "up"]).unwrap();
    cp.addr("lo", &format!("{ECHO}/32")).unwrap();
    let worker = node(&cp, "wk", "v11", Ipv4Addr::new(10, 77, 0, 11));
    let gw0 = node(&cp, "gw0", "v13", Ipv4Addr::new(10, 77, 0, 13));
    let gw1 = node(&cp, "gw1", "v14", Ipv4Addr::new(10, 77, 0, 14));
    let redirects_before = cp
        .exec("sysctl", &["-n", "net.ipv4.conf.br0.send_redirects"])
        .unwrap();

    // Azure: a two-instance gateway scale set, a public and a private
    // configuration provisioned by the controller's own pass.
    let cloud = Arc::new(LocalCloud::start(Duration::from_millis(10)).await.unwrap());
    cloud.add_vmss_pool("gw", "gw", 30, 2).unwrap();
    let cluster = InMemoryCluster::default();
    let spec = |public| GatewaySpec {
        gateway_nodepool_name: Some("gw".into()),
        provision_public_ips: public,
        ..GatewaySpec::default()
    };
    cluster.apply("ns", "public", spec(true));
    cluster.apply("ns", "private", spec(false));
    let settings = ControllerSettings {
        subscription_id: cloud.arm.subscription().into(),
        frontend_subnet_id: cloud.frontend_subnet.clone(),
        probe: ProbeSettings {
            port: PROBE_PORT,
            interval_secs: INTERVAL_SECS,
            threshold: THRESHOLD,
        },
    };
    pass_until(&cloud, &cluster, &settings, |o| *o == Outcome::Ready).await;

    let nodes = BTreeMap::from([
        ("gw000000".to_string(), Ipv4Addr::new(10, 77, 0, 13)),
        ("gw000001".to_string(), Ipv4Addr::new(10, 77, 0, 14)),
    ]);
    let source = {
        let cloud = cloud.clone();
        Arc::new(StateFn(move || cloud.arm.state()))
    };
    let edge = Edge::start(source.clone(), &cp, nodes).unwrap();
    let plan = edge.plan().unwrap();
    assert_eq!(plan.rules.len(), 2, "{plan:#?}");
    assert!(plan.skipped.is_empty(), "{plan:#?}");
    let rule = plan.rules[0].clone();
    assert_eq!(
        rule.backends,
        BTreeSet::from(["gw000000".to_string(), "gw000001".to_string()])
    );
    let frontend = SocketAddr::from((rule.frontend, rule.port));

    // The gateways: the frontend on their own interface (floating IP), a UDP
    // service on it, the probe server, and their ipConfigs' addresses.
    let mut servers = Vec::new();
    for (ns, name) in [(&gw0, "gw000000"), (&gw1, "gw000001")] {
        ns.addr("lo", &format!("{}/32", rule.frontend)).unwrap();
        for a in plan.addresses.iter().filter(|a| a.node == name) {
            ns.addr("lo", &format!("{}/32", a.private)).unwrap();
        }
        servers.push(udp_echo(ns, rule.frontend, rule.port, name));
    }
    let mut probe0 = Some(probe_server(&gw0));
    let _probe1 = probe_server(&gw1);
    let _echo = echo_host(&cp);
    let both_up = || edge.health().values().filter(|up| **up).count() == 2;
    wait_for("both backends up", Duration::from_secs(5), both_up);

    // Many flows land on both gateways, each always on the same one.
    let flows = Flows::open(&worker, FLOWS);
    let first = flows.round(frontend);
    for _ in 0..2 {
        let again = flows.round(frontend);
        assert_eq!(
            again, first,
            "a flow changed gateway:\n{again:?}\n{first:?}"
        );
    }
    let on = |seen: &[Option<String>], name: &str| {
        seen.iter().filter(|s| s.as_deref() == Some(name)).count()
    };
    let (n0, n1) = (on(&first, "gw000000"), on(&first, "gw000001"));
    eprintln!("{FLOWS} flows: {n0} on gw000000, {n1} on gw000001");
    assert_eq!(n0 + n1, FLOWS, "{first:?}");
    assert!(n0 > 0 && n1 > 0, "{first:?}");

    // gw000000's probe server stops: its flows move to gw000001 although
    // its UDP service still answers.
    let stopped = Instant::now();
    probe0.take();
    let budget = Duration::from_secs(u64::from(INTERVAL_SECS * (THRESHOLD + 1) + 1));
    let mut after = Vec::new();
    wait_for("failover", budget, || {
        after = flows.round(frontend);
        on(&after, "gw000001") == FLOWS
    });
    let failover = stopped.elapsed();
    eprintln!(
        "failover: all {FLOWS} flows on gw000001 {:.2} s after gw000000's probe server stopped (budget {budget:?})",
        failover.as_secs_f64()
    );
    // `health()` is published just after the kernel took the ruleset, so it
    // may trail the traffic by a pass.
    wait_for("gw000000 reported down", Duration::from_secs(1), || {
        edge.health().get("gw000000") == Some(&false)
    });

    // It comes back: new flows use it again, moved flows stay where they are.
    let _probe0 = probe_server(&gw0);
    let recovery = wait_for("recovery", Duration::from_secs(3), both_up);
    eprintln!(
        "recovery: gw000000 healthy again {:.2} s after its probe server restarted",
        recovery.as_secs_f64()
    );
    assert_eq!(flows.round(frontend), after, "established flows moved back");
    let fresh = Flows::open(&worker, FLOWS).round(frontend);
    assert!(
        on(&fresh, "gw000000") > 0 && on(&fresh, "gw000001") > 0,
        "{fresh:?}"
    );

    // Outbound: the public configuration's ipConfig leaves as its public
    // address, the private one as itself.
    let mine = |config_public: bool| {
        plan.addresses
            .iter()
            .find(|a| a.node == "gw000000" && !a.primary && a.public.is_some() == config_public)
            .cloned()
            .unwrap()
    };
    let (public, private) = (mine(true), mine(false));
    let public_ip = public.public.unwrap();
    assert_eq!(
        seen_by_echo(&gw0, public.private).as_deref(),
        Some(public_ip.to_string().as_str())
    );
    assert_eq!(
        seen_by_echo(&gw0, private.private).as_deref(),
        Some(private.private.to_string().as_str())
    );

    // Deleting the public configuration in Azure removes its translation and
    // route; the private one stays.
    cluster.delete("ns", "public");
    pass_until(&cloud, &cluster, &settings, |o| {
        matches!(o, Outcome::Deleted | Outcome::Ready)
    })
    .await;
    assert!(
        !cloud
            .arm
            .state()
            .to_string()
            .contains(&public_ip.to_string()),
        "the public IP is still in the fake ARM"
    );
    edge.sync().unwrap();
    let table = cp.exec("nft", &["list", "table", "ip", TABLE]).unwrap();
    assert!(!table.contains(&public_ip.to_string()), "{table}");
    let routes = cp
        .ip(&["route", "show", "table", &ROUTES_TABLE.to_string()])
        .unwrap();
    assert!(
        !routes.contains(&format!("{} ", public.private)),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("{} ", private.private)),
        "{routes}"
    );
    assert_eq!(seen_by_echo(&gw0, public.private), None);
    assert_eq!(
        seen_by_echo(&gw0, private.private).as_deref(),
        Some(private.private.to_string().as_str())
    );

    // The fake IMDS answers what the gateway daemon reads.
    let imds = Imds::start(source.clone(), &gw0, "gw000000").unwrap();
    let get = |headers: &'static str, path: &'static str| {
        gw0.run(move || {
            let mut s = std::net::TcpStream::connect(("169.254.169.254", 80)).unwrap();
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n{headers}Connection: close\r\n\r\n"
            )
            .unwrap();
            let mut raw = String::new();
            s.read_to_string(&mut raw).unwrap();
            let (head, body) = raw.split_once("\r\n\r\n").unwrap();
            let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
            (
                status,
                serde_json::from_str::<serde_json::Value>(body).unwrap(),
            )
        })
        .unwrap()
    };
    let instance = "/metadata/instance?format=json&api-version=2021-10-01";
    assert_eq!(get("", instance).0, 400, "no Metadata header");
    assert_eq!(
        get("Metadata: true\r\n", "/metadata/instance").0,
        400,
        "no api-version"
    );
    let (status, doc) = get("Metadata: true\r\n", instance);
    assert_eq!(status, 200, "{doc}");
    let compute = &doc["compute"];
    assert_eq!(compute["osProfile"]["computerName"], "gw000000");
    assert_eq!(compute["vmScaleSetName"], "gw");
    assert_eq!(compute["resourceGroupName"], RESOURCE_GROUP);
    let tags: Vec<&str> = compute["tags"].as_str().unwrap().split(';').collect();
    assert!(tags.contains(&"aks-managed-poolName:gw"), "{tags:?}");
    let ipv4 = &doc["network"]["interface"][0]["ipv4"];
    assert_eq!(ipv4["subnet"][0]["address"], "10.0.16.0");
    assert_eq!(ipv4["subnet"][0]["prefix"], "20");
    let primary = plan
        .addresses
        .iter()
        .find(|a| a.node == "gw000000" && a.primary)
        .unwrap();
    assert_eq!(
        ipv4["ipAddress"][0]["privateIpAddress"],
        primary.private.to_string()
    );
    let (status, lb) = get(
        "Metadata: true\r\n",
        "/metadata/loadbalancer?format=json&api-version=2020-10-01",
    );
    assert_eq!(status, 200, "{lb}");
    assert!(lb["loadbalancer"].is_object(), "{lb}");

    // Teardown leaves the namespaces as they were.
    drop(imds);
    assert!(
        !gw0.ip(&["addr", "show", "dev", "lo"])
            .unwrap()
            .contains("169.254.169.254")
    );
    drop(edge);
    assert!(cp.exec("nft", &["list", "table", "ip", TABLE]).is_err());
    let rules = cp.ip(&["rule", "show"]).unwrap();
    assert!(
        !rules.contains("fwmark") && !rules.contains(&ROUTES_TABLE.to_string()),
        "{rules}"
    );
    assert_eq!(
        cp.ip(&["route", "show", "table", "all"])
            .unwrap()
            .lines()
            .filter(|l| l.contains("via"))
            .count(),
        0
    );
    assert_eq!(
        cp.exec("sysctl", &["-n", "net.ipv4.conf.br0.send_redirects"])
            .unwrap(),
        redirects_before
    );
    drop(servers);
    eprintln!("whole test: {:.1} s", test_start.elapsed().as_secs_f64());
    assert!(test_start.elapsed() < Duration::from_mins(1));
}

/// The plan and IMDS over a pool of standalone VMs (NICs and public IPs as
/// their own resources), read without a kernel: the backends are the VMs'
/// computer names, each public-mode ipConfig has its public IP's address,
/// and a VM's IMDS document has no scale set.
#[tokio::test]
async fn a_vm_pool_is_read_from_standalone_nics_and_public_ips() {
    let cloud = LocalCloud::start(Duration::from_millis(10)).await.unwrap();
    cloud.add_vm_pool("vmgw", 30, 2).unwrap();
    let prefix = cloud.add_byo_prefix("byo", 30).unwrap();
    let cluster = InMemoryCluster::default();
    cluster.apply(
        "ns",
        "byo",
        GatewaySpec {
            gateway_nodepool_name: Some("vmgw".into()),
            provision_public_ips: true,
            public_ip_prefix_id: Some(prefix),
            ..GatewaySpec::default()
        },
    );
    let settings = ControllerSettings {
        subscription_id: cloud.arm.subscription().into(),
        frontend_subnet_id: cloud.frontend_subnet.clone(),
        probe: ProbeSettings::default(),
    };
    pass_until(&cloud, &cluster, &settings, |o| *o == Outcome::Ready).await;
    let state = cloud.arm.state();
    let nodes = BTreeMap::from([
        ("aks-vmgw-0".to_string(), Ipv4Addr::new(10, 77, 0, 13)),
        ("aks-vmgw-1".to_string(), Ipv4Addr::new(10, 77, 0, 14)),
    ]);
    let plan = egress_e2e::edge::plan::read(&state, &nodes);
    assert_eq!(plan.rules.len(), 1, "{plan:#?}");
    let rule = &plan.rules[0];
    assert_eq!(
        rule.backends,
        nodes.keys().cloned().collect::<BTreeSet<_>>()
    );
    let probe = rule.probe.as_ref().unwrap();
    assert_eq!(
        (probe.port, probe.interval, probe.threshold),
        (
            ProbeSettings::default().port,
            Duration::from_secs(5),
            ProbeSettings::default().threshold
        )
    );
    let public: Vec<_> = plan
        .addresses
        .iter()
        .filter(|a| a.public.is_some())
        .collect();
    assert_eq!(public.len(), 2, "{plan:#?}");
    for a in public {
        let ip = a.public.unwrap();
        assert!(
            state
                .to_string()
                .contains(&format!("\"ipAddress\":\"{ip}\""))
        );
    }
    // A node the caller did not map is reported, not simulated.
    let one = BTreeMap::from([("aks-vmgw-0".to_string(), Ipv4Addr::new(10, 77, 0, 13))]);
    let partial = egress_e2e::edge::plan::read(&state, &one);
    assert_eq!(partial.unmapped, BTreeSet::from(["aks-vmgw-1".to_string()]));
    assert_eq!(partial.rules[0].backends.len(), 1);

    let doc = egress_e2e::edge::imds_instance(&state, "aks-vmgw-1").unwrap();
    assert_eq!(doc["compute"]["osProfile"]["computerName"], "aks-vmgw-1");
    assert_eq!(doc["compute"]["vmScaleSetName"], "");
    assert!(
        doc["compute"]["tags"]
            .as_str()
            .unwrap()
            .contains("aks-managed-poolName:vmgw"),
        "{doc}"
    );
    let addresses = doc["network"]["interface"][0]["ipv4"]["ipAddress"]
        .as_array()
        .unwrap();
    assert_eq!(addresses.len(), 2, "{doc}");
    assert!(
        addresses[1]["publicIpAddress"].as_str().unwrap().len() > 6,
        "{doc}"
    );
    assert!(egress_e2e::edge::imds_instance(&state, "nobody").is_none());
}
