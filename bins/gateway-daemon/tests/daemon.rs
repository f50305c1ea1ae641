//! The daemon binary on a gateway node in network namespaces, against a real
//! kube-apiserver: configurations applied and serving traffic, the probe
//! honest about observed state and draining, drift repaired within one timer
//! period, no writes when idle, a deleted configuration removed exactly, live
//! state kept through an API outage, and `--uninstall`.

// One scenario, read top to bottom: the namespaces and the API server are
// costly to build.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::too_many_lines,
    clippy::float_cmp
)]

#[path = "../../../egress-net/tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use egress_k8s::crd::{
    GatewayServerProfile, GatewayVMConfiguration, GatewayVMConfigurationSpec,
    GatewayVMConfigurationStatus, GatewayVMProfile, PodEndpoint, PodEndpointSpec, RouteMode,
    StaticGatewayConfiguration, StaticGatewayConfigurationSpec, StaticGatewayConfigurationStatus,
};
use egress_testkit::apiserver::ApiServer;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use support::{ECHO, Gw, Topology, fetch_eventually, gateways};

const SYSTEM: &str = "kube-egress-gateway-system";
const RESYNC: u64 = 5;

/// The daemon process, killed on drop.
struct Daemon {
    child: Child,
    probe: u16,
    metrics: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        code,
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    )
}

fn metric(d: &Daemon, name: &str) -> f64 {
    let (_, body) = get(d.metrics, "/metrics");
    body.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|v| v.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(f64::NAN)
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

fn daemon(api: &ApiServer, topo: &Topology, extra: &[&str]) -> Daemon {
    let (probe, metrics) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_egress-gateway-daemon"))
        .args([
            "--node-name",
            "gw-node-0",
            "--pool-name",
            "gwpool",
            "--node-interface",
            "eth0",
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
        .args(["--metrics-bind-port", &metrics.to_string()])
        .args([
            "--resync-seconds",
            &RESYNC.to_string(),
            "--check-seconds",
            "1",
        ])
        .args([
            "--lb-probe-drain-delay-seconds",
            "3",
            "--log-format",
            "text",
        ])
        // The PodEndpoints here stand for pods in bare namespaces, with no
        // kubelet: the check against real pods is tested in egress-k8s
        // (verified_endpoints) and on real kubelets (egress-e2e).
        .arg("--verify-pod-endpoints=false")
        .args(extra)
        .env("KUBECONFIG", api.kubeconfig_path())
        .env("MY_POD_NAMESPACE", SYSTEM)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    Daemon {
        child,
        probe,
        metrics,
    }
}

async fn install(client: &Client, gws: &[Gw]) {
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
    for ns in ["apps", SYSTEM] {
        let mut n = Namespace::default();
        n.metadata.name = Some(ns.into());
        nss.create(&PostParams::default(), &n).await.unwrap();
    }
    for g in gws {
        add_configuration(client, g).await;
    }
}

async fn add_configuration(client: &Client, g: &Gw) {
    add_key_secret(client, g).await;
    add_configuration_objects(client, g).await;
}

async fn add_key_secret(client: &Client, g: &Gw) {
    let c = &g.config;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), SYSTEM);
    let mut secret = Secret::default();
    secret.metadata.name = Some(c.server.key_secret.name.clone());
    secret.data = Some(
        [
            (
                "PrivateKey".to_string(),
                ByteString(g.key.private.clone().into_bytes()),
            ),
            (
                "PublicKey".to_string(),
                ByteString(g.key.public.clone().into_bytes()),
            ),
        ]
        .into(),
    );
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

async fn add_configuration_objects(client: &Client, g: &Gw) {
    let c = &g.config;
    let sgcs: Api<StaticGatewayConfiguration> = Api::namespaced(client.clone(), "apps");
    let sgc = StaticGatewayConfiguration::new(
        &c.name,
        StaticGatewayConfigurationSpec {
            gateway_nodepool_name: Some("gwpool".into()),
            gateway_vmss_profile: None,
            default_route: RouteMode::StaticEgressGateway,
            provision_public_ips: true,
            public_ip_prefix_id: None,
            exclude_cidrs: None,
        },
    );
    let created = sgcs.create(&PostParams::default(), &sgc).await.unwrap();
    let status = StaticGatewayConfigurationStatus {
        egress_ip_prefix: Some("203.0.113.0/28".into()),
        gateway_server_profile: Some(GatewayServerProfile {
            ip: Some(c.server.ip.to_string()),
            port: Some(i32::from(c.server.port)),
            public_key: Some(g.key.public.clone()),
            private_key_secret_ref: Some(ObjectReference {
                namespace: Some(SYSTEM.into()),
                name: Some(c.server.key_secret.name.clone()),
                ..ObjectReference::default()
            }),
        }),
        ..StaticGatewayConfigurationStatus::default()
    };
    sgcs.patch_status(
        &c.name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": status })),
    )
    .await
    .unwrap();

    let vms: Api<GatewayVMConfiguration> = Api::namespaced(client.clone(), "apps");
    let vm = GatewayVMConfiguration::new(
        &c.name,
        GatewayVMConfigurationSpec {
            gateway_nodepool_name: Some("gwpool".into()),
            gateway_vmss_profile: None,
            provision_public_ips: true,
            public_ip_prefix_id: None,
        },
    );
    vms.create(&PostParams::default(), &vm).await.unwrap();
    let vm_status = GatewayVMConfigurationStatus {
        egress_ip_prefix: Some("203.0.113.0/28".into()),
        gateway_vm_profiles: Some(vec![GatewayVMProfile {
            node_name: Some("gw-node-0".into()),
            primary_ip: Some(c.node.primary_ip.to_string()),
            secondary_ip: Some(c.node.secondary_ip.to_string()),
        }]),
    };
    vms.patch_status(
        &c.name,
        &PatchParams::default(),
        &Patch::Merge(serde_json::json!({ "status": vm_status })),
    )
    .await
    .unwrap();

    let pes: Api<PodEndpoint> = Api::namespaced(client.clone(), "apps");
    let pe = PodEndpoint::new(
        &format!("pod-{}", c.name),
        PodEndpointSpec {
            static_gateway_configuration: Some(c.name.clone()),
            pod_ip_address: Some(format!("{}/32", g.pod_ip)),
            pod_public_key: Some(g.pod_key.public.clone()),
        },
    );
    pes.create(&PostParams::default(), &pe).await.unwrap();
    let _ = created.uid();
}

#[test]
fn daemon_serves_repairs_reports_drains_and_uninstalls() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(ApiServer::start()).unwrap();
    let client = rt.block_on(api.client()).unwrap();
    let topo = Topology::build();
    let gws = gateways(6200, 3);
    rt.block_on(install(&client, &gws));
    let sgcs: Api<StaticGatewayConfiguration> = Api::namespaced(client.clone(), "apps");
    let uids: Vec<String> = gws
        .iter()
        .map(|g| {
            rt.block_on(sgcs.get(&g.config.name))
                .unwrap()
                .uid()
                .unwrap()
        })
        .collect();

    let d = daemon(&api, &topo, &[]);
    for uid in &uids {
        wait_until(
            "every configuration serving",
            Duration::from_mins(1),
            || get(d.probe, &format!("/gw/{uid}")).0 == 200,
        );
    }
    assert_eq!(get(d.probe, "/gw/unknown-uid").0, 503);

    // A configuration whose key Secret is missing fails alone, and serves
    // once the Secret appears.
    let late = gateways(6200, 4).pop().unwrap();
    rt.block_on(add_configuration_objects(&client, &late));
    let late_uid = rt
        .block_on(sgcs.get(&late.config.name))
        .unwrap()
        .uid()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(get(d.probe, &format!("/gw/{late_uid}")).0, 503);
    for uid in &uids {
        assert_eq!(get(d.probe, &format!("/gw/{uid}")).0, 200);
    }
    rt.block_on(add_key_secret(&client, &late));
    wait_until(
        "the late configuration serving",
        Duration::from_secs(30),
        || get(d.probe, &format!("/gw/{late_uid}")).0 == 200,
    );
    rt.block_on(sgcs.delete(&late.config.name, &DeleteParams::default()))
        .unwrap();
    wait_until(
        "the late configuration gone",
        Duration::from_secs(30),
        || {
            !topo
                .gateway
                .ip(&["link", "show"])
                .unwrap()
                .contains("wg-6203")
        },
    );
    assert_eq!(get(d.probe, "/gw/a/b").0, 400);

    // Pods' traffic leaves with each configuration's egress IP.
    let _pods = support::pod_tunnels(&topo.client, &gws, "d");
    for (i, g) in gws.iter().enumerate() {
        let src = fetch_eventually(&topo.client, g.pod_ip, ECHO, Duration::from_secs(20)).unwrap();
        assert_eq!(src, format!("203.0.113.{}", 10 + i));
    }

    // GatewayStatus lists what is really served. The report is written after
    // the pass that removed the late configuration's interface, so it may
    // trail the kernel by a moment: wait for it to settle at three.
    let statuses: Api<egress_k8s::crd::GatewayStatus> = Api::namespaced(client.clone(), SYSTEM);
    wait_until(
        "the status to list the three configurations",
        Duration::from_secs(30),
        || {
            rt.block_on(statuses.get("gw-node-0"))
                .ok()
                .and_then(|s| s.spec.ready_gateway_configurations)
                .map(|v| v.len())
                == Some(3)
        },
    );
    let status = rt.block_on(statuses.get("gw-node-0")).unwrap();
    assert_eq!(
        status
            .spec
            .ready_gateway_configurations
            .as_ref()
            .map(Vec::len),
        Some(3)
    );
    assert_eq!(
        status.spec.ready_peer_configurations.as_ref().map(Vec::len),
        Some(3)
    );

    // Idle: timer passes make no kernel writes.
    let passes = metric(&d, "egress_gateway_apply_seconds_count");
    wait_until("a timer pass", Duration::from_secs(2 * RESYNC + 5), || {
        metric(&d, "egress_gateway_apply_seconds_count") >= passes + 1.0
    });
    let writes = metric(&d, "egress_gateway_kernel_writes_total");
    let passes = metric(&d, "egress_gateway_apply_seconds_count");
    wait_until(
        "two more timer passes",
        Duration::from_secs(3 * RESYNC + 5),
        || metric(&d, "egress_gateway_apply_seconds_count") >= passes + 2.0,
    );
    assert_eq!(
        metric(&d, "egress_gateway_kernel_writes_total"),
        writes,
        "idle passes wrote to the kernel"
    );

    // Drift, right after a timer pass so the next one is a full period away:
    // a host route, a peer and an nftables rule removed by hand.
    let passes = metric(&d, "egress_gateway_apply_seconds_count");
    wait_until("a timer pass", Duration::from_secs(2 * RESYNC + 5), || {
        metric(&d, "egress_gateway_apply_seconds_count") > passes
    });
    topo.node
        .ip(&["route", "del", "203.0.113.10/32", "dev", "host-gateway"])
        .unwrap();
    let wg1 = format!("wg-{}", gws[1].config.server.port);
    egress_net::wgctl::remove_peer(support::backend().control(), &wg1, &gws[1].pod_key.public)
        .unwrap();
    let listing = topo
        .gateway
        .exec(
            "nft",
            &["-a", "list", "chain", "inet", "egress_gateway", "input"],
        )
        .unwrap();
    let handle = listing
        .lines()
        .find(|l| l.contains("drop unsolicited from the host"))
        .and_then(|l| l.rsplit("handle ").next())
        .unwrap()
        .trim()
        .to_string();
    topo.gateway
        .exec(
            "nft",
            &[
                "delete",
                "rule",
                "inet",
                "egress_gateway",
                "input",
                "handle",
                &handle,
            ],
        )
        .unwrap();
    let broke = Instant::now();
    // The probe notices within a readiness check, before any repair.
    wait_until(
        "probe 503 after a hand-made break",
        Duration::from_secs(3),
        || get(d.probe, &format!("/gw/{}", uids[0])).0 == 503,
    );
    assert!(
        broke.elapsed() < Duration::from_secs(RESYNC - 1),
        "503 seen only after a repair could have run"
    );
    let repaired = wait_until(
        "probe 200 after repair",
        Duration::from_secs(RESYNC + 5),
        || {
            uids.iter()
                .all(|u| get(d.probe, &format!("/gw/{u}")).0 == 200)
        },
    );
    eprintln!(
        "drift repaired {:?} after the break (timer period {RESYNC} s)",
        broke.elapsed()
    );
    assert!(
        broke.elapsed() <= Duration::from_secs(RESYNC + 2),
        "repair took {repaired:?}"
    );
    assert!(
        topo.node
            .ip(&["route", "show"])
            .unwrap()
            .contains("203.0.113.10 dev host-gateway")
    );
    assert!(metric(&d, "egress_gateway_drift_repairs_total") >= 1.0);
    let src = fetch_eventually(&topo.client, gws[1].pod_ip, ECHO, Duration::from_secs(20)).unwrap();
    assert_eq!(src, "203.0.113.11");

    // Deleting one configuration removes exactly its state.
    rt.block_on(sgcs.delete(&gws[1].config.name, &DeleteParams::default()))
        .unwrap();
    wait_until("wg link removed", Duration::from_secs(20), || {
        !topo.gateway.ip(&["link", "show"]).unwrap().contains(&wg1)
    });
    assert_eq!(get(d.probe, &format!("/gw/{}", uids[1])).0, 503);
    wait_until("egress IP removed", Duration::from_secs(10), || {
        !topo
            .gateway
            .ip(&["addr", "show", "host0"])
            .unwrap()
            .contains("203.0.113.11")
    });
    for i in [0usize, 2] {
        assert_eq!(get(d.probe, &format!("/gw/{}", uids[i])).0, 200);
        let src =
            fetch_eventually(&topo.client, gws[i].pod_ip, ECHO, Duration::from_secs(20)).unwrap();
        assert_eq!(src, format!("203.0.113.{}", 10 + i));
    }
    wait_until("GatewayStatus updated", Duration::from_secs(10), || {
        rt.block_on(statuses.get("gw-node-0"))
            .unwrap()
            .spec
            .ready_gateway_configurations
            .map(|v| v.len())
            == Some(2)
    });

    // The API server goes away: live state stays and keeps serving.
    drop(client);
    drop(api);
    std::thread::sleep(Duration::from_secs(2 * RESYNC));
    assert_eq!(
        get(d.probe, &format!("/gw/{}", uids[0])).0,
        200,
        "an API outage must not tear down"
    );
    let src = fetch_eventually(&topo.client, gws[2].pod_ip, ECHO, Duration::from_secs(10)).unwrap();
    assert_eq!(src, "203.0.113.12");

    // SIGTERM: 503 while draining, then exit; the dataplane stays.
    let mut d = d;
    nix_kill(d.child.id());
    wait_until("probe 503 while draining", Duration::from_secs(2), || {
        get(d.probe, &format!("/gw/{}", uids[0])).0 == 503
    });
    let status = d.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        topo.gateway
            .ip(&["link", "show"])
            .unwrap()
            .contains("wg-6200")
    );

    // --uninstall removes everything the daemon made.
    let out = Command::new(env!("CARGO_BIN_EXE_egress-gateway-daemon"))
        .args([
            "--node-name",
            "gw-node-0",
            "--uninstall",
            "--node-interface",
            "eth0",
            "--log-format",
            "text",
        ])
        .args([
            "--host-netns",
            &format!("/var/run/netns/{}", topo.node.name()),
        ])
        .args(["--gateway-netns", &topo.gateway_path().to_string_lossy()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!topo.gateway_path().exists(), "gateway namespace removed");
    let node_links = topo.node.ip(&["link", "show"]).unwrap();
    assert!(!node_links.contains("host-gateway"), "{node_links}");
    assert!(
        !topo
            .node
            .ip(&["addr", "show", "eth0"])
            .unwrap()
            .contains("192.0.2.100")
    );
    assert!(
        topo.node
            .exec("nft", &["list", "table", "inet", "egress_gateway_host"])
            .is_err()
    );
}

fn nix_kill(pid: u32) {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
}
