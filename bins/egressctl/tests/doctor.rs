//! `egressctl doctor node` on a gateway node in network namespaces, against
//! a real kube-apiserver: the node is brought to its plan exactly as the
//! gateway daemon plans it, then broken one thing at a time; doctor must name
//! exactly that difference, and nothing on a clean node. Also its refusals
//! away from the node or without root.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines
)]

#[path = "../../../egress-net/tests/support/mod.rs"]
mod support;

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use egress_core::node::NodeOp;
use egress_core::traits::{Dataplane, sync_node};
use egress_k8s::crd::{
    GatewayServerProfile, GatewayVMConfiguration, GatewayVMConfigurationSpec,
    GatewayVMConfigurationStatus, GatewayVMProfile, PodEndpoint, PodEndpointSpec, RouteMode,
    StaticGatewayConfiguration, StaticGatewayConfigurationSpec, StaticGatewayConfigurationStatus,
};
use egress_k8s::gateway::plan::{NodePlan, node_plan};
use egress_k8s::gateway::{GatewayWatch, NodeIdentity};
use egress_net::LinuxDataplane;
use egress_net::dataplane::{Config, StaticKeys};
use egress_net::netns::NsRef;
use egress_net::wireguard::KeyPair;
use egress_testkit::apiserver::ApiServer;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use support::{Gw, Topology, gateways};

const SYSTEM: &str = "kube-egress-gateway-system";

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
        let c = &g.config;
        let mut secret = Secret::default();
        secret.metadata.name = Some(c.server.key_secret.name.clone());
        secret.data = Some(
            [(
                "PrivateKey".to_string(),
                ByteString(g.key.private.clone().into_bytes()),
            )]
            .into(),
        );
        Api::<Secret>::namespaced(client.clone(), SYSTEM)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
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
        sgcs.create(&PostParams::default(), &sgc).await.unwrap();
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
        let pe = PodEndpoint::new(
            &format!("pod-{}", c.name),
            PodEndpointSpec {
                static_gateway_configuration: Some(c.name.clone()),
                pod_ip_address: Some(format!("{}/32", g.pod_ip)),
                pod_public_key: Some(g.pod_key.public.clone()),
            },
        );
        Api::<PodEndpoint>::namespaced(client.clone(), "apps")
            .create(&PostParams::default(), &pe)
            .await
            .unwrap();
    }
}

/// The node's plan as the daemon makes it, with its keys.
async fn plan(client: &Client) -> (NodePlan, StaticKeys) {
    let watch = GatewayWatch::start(client, SYSTEM);
    watch.ready().await.unwrap();
    let snap = watch.snapshot(&NodeIdentity {
        computer_name: "gw-node-0".into(),
        pool_name: Some("gwpool".into()),
        ..NodeIdentity::default()
    });
    let keys = StaticKeys::default();
    keys.0.lock().unwrap().extend(snap.keys.clone());
    (
        node_plan(snap, 1500, egress_net::wireguard::valid_key),
        keys,
    )
}

/// Stops the wireguard-go processes the test's dataplane started, even when
/// the test fails (the namespaces go with the topology).
struct Devices(Vec<u32>);

impl Drop for Devices {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

fn doctor(api: &ApiServer, topo: &Topology) -> (i32, String, String) {
    doctor_as(api, topo, "gw-node-0")
}

fn doctor_as(api: &ApiServer, topo: &Topology, node: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_egressctl"))
        .args(["doctor", "node", node, "--pool-name", "gwpool"])
        .args([
            "--host-netns",
            &format!("/var/run/netns/{}", topo.node.name()),
        ])
        .args(["--gateway-netns", &topo.gateway_path().to_string_lossy()])
        .args(["--node-interface", "eth0", "--secret-namespace", SYSTEM])
        .env("KUBECONFIG", api.kubeconfig_path())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The lines that name differences.
fn named(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("  "))
        .map(String::from)
        .collect()
}

#[test]
fn doctor_names_exactly_what_is_broken() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(ApiServer::start()).unwrap();
    let client = rt.block_on(api.client()).unwrap();
    let topo = Topology::build();
    let gws = gateways(6300, 2);
    rt.block_on(install(&client, &gws));
    let (plan, keys) = rt.block_on(plan(&client));
    assert_eq!(plan.state.interfaces.len(), 2, "{:?}", plan.notes);
    let dp = rt
        .block_on(LinuxDataplane::new(
            Config {
                host_ns: NsRef::Path(format!("/var/run/netns/{}", topo.node.name()).into()),
                gateway_ns: NsRef::Path(topo.gateway_path()),
                node_interface: "eth0".into(),
                backend: support::backend(),
            },
            Arc::new(keys),
        ))
        .unwrap();
    let mut devices = Devices(Vec::new());
    let converge = |dp: &LinuxDataplane| {
        for _ in 0..3 {
            if rt.block_on(sync_node(dp, &plan.state)).unwrap() == 0 {
                return;
            }
        }
        panic!("the node did not converge to its plan");
    };
    converge(&dp);
    devices.0 = dp.userspace_pids();

    // A clean node: nothing to report.
    let (code, out, err) = doctor(&api, &topo);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("node gw-node-0: 2 configuration(s), 2 peer(s) planned"),
        "{out}"
    );
    assert!(
        out.contains("no difference: the node matches its plan"),
        "{out}"
    );
    assert_eq!(named(&out), Vec::<String>::new(), "{out}");

    // A peer deleted.
    let gone = &gws[0];
    rt.block_on(dp.apply(&NodeOp::RemovePeer {
        iface: "wg-6300".into(),
        public_key: gone.pod_key.public.clone(),
    }))
    .unwrap();
    let (code, out, err) = doctor(&api, &topo);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        named(&out),
        [format!(
            "wg-6300: missing peer {} (pod {})",
            gone.pod_key.public, gone.pod_ip
        )],
        "{out}"
    );
    converge(&dp);
    assert_eq!(named(&doctor(&api, &topo).1), Vec::<String>::new());

    // An egress address deleted from the gateway side of the veth.
    topo.gateway
        .ip(&["addr", "del", "203.0.113.11/32", "dev", "host0"])
        .unwrap();
    let (code, out, err) = doctor(&api, &topo);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        named(&out),
        [
            "wg-6301: egress address 203.0.113.11 not in place (its address, host route, masquerade exemption, SNAT entry or reply route is missing)"
        ],
        "{out}"
    );
    converge(&dp);

    // A peer no PodEndpoint asks for.
    let stranger = KeyPair::generate();
    rt.block_on(dp.apply(&NodeOp::UpsertPeer {
        iface: "wg-6301".into(),
        public_key: stranger.public.clone(),
        pod_ip: "10.244.0.99".parse().unwrap(),
    }))
    .unwrap();
    let (code, out, err) = doctor(&api, &topo);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(
        named(&out),
        [format!(
            "wg-6301: extra peer {} (no PodEndpoint asks for it)",
            stranger.public
        )],
        "{out}"
    );

    // A whole device deleted.
    converge(&dp);
    topo.gateway.ip(&["link", "del", "wg-6300"]).unwrap();
    let (code, out, _) = doctor(&api, &topo);
    assert_eq!(code, 1, "{out}");
    let uid = rt
        .block_on(Api::<StaticGatewayConfiguration>::namespaced(client.clone(), "apps").get("gw0"))
        .unwrap()
        .uid()
        .unwrap();
    assert_eq!(
        named(&out),
        [format!("missing device wg-6300 (configuration {uid})")],
        "{out}"
    );

    // Doctor only read: the dataplane's own observation still sees the break.
    let observed = rt.block_on(dp.observe()).unwrap();
    assert!(!observed.interfaces.contains_key("wg-6300"));
    converge(&dp);
    devices.0 = dp.userspace_pids();
    assert_eq!(doctor(&api, &topo).0, 0);

    // Seen as another node of the pool, which no VM configuration lists:
    // everything here is left over.
    let (code, out, _) = doctor_as(&api, &topo, "gw-node-9");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no ready configuration selects node gw-node-9 as a gateway"),
        "{out}"
    );
    assert!(out.contains("note: configuration "), "{out}");
    for extra in [
        "extra plumbing: the gateway namespace is plumbed but no configuration uses this node",
        "extra frontend address 192.0.2.100 on the node interface (no configuration uses it)",
        "extra device wg-6300 (no configuration plans it)",
        "extra device wg-6301 (no configuration plans it)",
    ] {
        assert!(named(&out).contains(&extra.to_string()), "{extra}\n{out}");
    }
    drop(dp);
}

#[test]
fn doctor_refuses_away_from_the_node_or_without_root() {
    // On another machine (no --host-netns, and this host is not the node).
    let out = Command::new(env!("CARGO_BIN_EXE_egressctl"))
        .args(["doctor", "node", "surely-not-this-host-0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("egressctl doctor node surely-not-this-host-0 must run on that node"),
        "{err}"
    );

    // Without root: a copy of the binary that user `nobody` can execute.
    let dir = tempfile_dir();
    let bin = dir.0.join("egressctl");
    std::fs::copy(env!("CARGO_BIN_EXE_egressctl"), &bin).unwrap();
    set_mode(&dir.0, 0o755);
    set_mode(&bin, 0o755);
    let out = Command::new(&bin)
        .args(["doctor", "node", "gw-node-0"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("egressctl doctor node must run as root on node gw-node-0"),
        "{err}"
    );
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempfile_dir() -> TempDir {
    let dir = std::env::temp_dir().join(format!("egressctl-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
