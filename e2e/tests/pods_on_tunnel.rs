//! Pods on the tunnel, end to end, on a local cluster of real parts: the
//! node agent and CNI plugin on a worker (its kubelet and containerd run the
//! real chain: bridge, host-local, portmap, then ours), the gateway daemon
//! on a gateway node, and an "internet" echo host that answers with the
//! source address it sees. The SGCs' status and VM configurations stand for
//! what the controller writes (its own tests cover that); everything else is
//! the real binaries.
//!
//! Checked by traffic: an annotated pod leaves with its configuration's
//! egress address, a pod in a namespace with a default leaves with that
//! namespace's, an unannotated pod with its own; a port and key change
//! reaches running pods without a restart; forged PodEndpoints never become
//! peers; deleting a configuration returns its pods to their own path.
//! Needs root and `scripts/setup.sh`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::too_many_lines
)]

mod support;

use std::time::Duration;

use egress_k8s::crd::{
    GatewayServerProfile, GatewayStatus, GatewayVMConfiguration, GatewayVMConfigurationSpec,
    GatewayVMConfigurationStatus, GatewayVMProfile, PodEndpoint, PodEndpointSpec, RouteMode,
    StaticGatewayConfiguration, StaticGatewayConfigurationSpec, StaticGatewayConfigurationStatus,
};
use egress_net::wireguard::KeyPair;
use egress_testkit::cluster::{Cluster, Role};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, ObjectReference, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use support::{eventually, node_log, start_on_node, workspace_binary};

const SYSTEM: &str = "kube-egress-gateway-system";
use egress_e2e::tenants::ANNOTATION;
/// The internal load balancer's frontend: the daemon puts it on the
/// gateway node's interface, so the node answers for it on the node subnet.
const FRONTEND: &str = "10.77.0.200";
/// The "internet" host, in the control plane's namespace (the nodes'
/// default router).
const ECHO_IP: &str = "198.51.100.1";
const ECHO_PORT: u16 = 8080;
const WAIT: Duration = Duration::from_mins(1);

/// One configuration: its namespace, port, key and egress address.
struct Config {
    namespace: &'static str,
    port: u16,
    key: KeyPair,
    egress: &'static str,
}

impl Config {
    fn secret_name(&self) -> String {
        format!("sgw-{}-egress", self.namespace)
    }
}

async fn install_crds(client: &Client) {
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
}

async fn namespace(client: &Client, name: &str, default_sgc: Option<&str>) {
    let mut ns = Namespace::default();
    ns.metadata.name = Some(name.into());
    if let Some(sgc) = default_sgc {
        ns.metadata.annotations = Some([(ANNOTATION.to_string(), sgc.to_string())].into());
    }
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

async fn put_key_secret(client: &Client, c: &Config) {
    let mut secret = Secret::default();
    secret.metadata.name = Some(c.secret_name());
    secret.data = Some(
        [
            (
                "PrivateKey".to_string(),
                ByteString(c.key.private.clone().into_bytes()),
            ),
            (
                "PublicKey".to_string(),
                ByteString(c.key.public.clone().into_bytes()),
            ),
        ]
        .into(),
    );
    Api::<Secret>::namespaced(client.clone(), SYSTEM)
        .patch(
            &c.secret_name(),
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(&secret),
        )
        .await
        .unwrap();
}

fn sgc_status(c: &Config) -> StaticGatewayConfigurationStatus {
    StaticGatewayConfigurationStatus {
        egress_ip_prefix: Some(format!("{}/32", c.egress)),
        gateway_server_profile: Some(GatewayServerProfile {
            ip: Some(FRONTEND.into()),
            port: Some(i32::from(c.port)),
            public_key: Some(c.key.public.clone()),
            private_key_secret_ref: Some(ObjectReference {
                namespace: Some(SYSTEM.into()),
                name: Some(c.secret_name()),
                ..ObjectReference::default()
            }),
        }),
        ..StaticGatewayConfigurationStatus::default()
    }
}

/// The SGC with the status and VM configuration the controller would
/// write: the gateway node serves `c.egress` as its egress address.
async fn install_config(client: &Client, c: &Config, gateway_node: &str, gateway_ip: &str) {
    put_key_secret(client, c).await;
    let sgcs: Api<StaticGatewayConfiguration> = Api::namespaced(client.clone(), c.namespace);
    let sgc = StaticGatewayConfiguration::new(
        "egress",
        StaticGatewayConfigurationSpec {
            gateway_nodepool_name: Some("gwpool".into()),
            gateway_vmss_profile: None,
            default_route: RouteMode::StaticEgressGateway,
            provision_public_ips: true,
            public_ip_prefix_id: None,
            exclude_cidrs: Some(vec!["10.96.0.0/12".into()]),
        },
    );
    sgcs.create(&PostParams::default(), &sgc).await.unwrap();
    sgcs.patch_status(
        "egress",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": sgc_status(c) })),
    )
    .await
    .unwrap();
    let vms: Api<GatewayVMConfiguration> = Api::namespaced(client.clone(), c.namespace);
    let vm = GatewayVMConfiguration::new(
        "egress",
        GatewayVMConfigurationSpec {
            gateway_nodepool_name: Some("gwpool".into()),
            gateway_vmss_profile: None,
            provision_public_ips: true,
            public_ip_prefix_id: None,
        },
    );
    vms.create(&PostParams::default(), &vm).await.unwrap();
    let status = GatewayVMConfigurationStatus {
        egress_ip_prefix: Some(format!("{}/32", c.egress)),
        gateway_vm_profiles: Some(vec![GatewayVMProfile {
            node_name: Some(gateway_node.into()),
            primary_ip: Some(gateway_ip.into()),
            secondary_ip: Some(c.egress.into()),
        }]),
    };
    vms.patch_status(
        "egress",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap();
}

/// What the echo host sees as the source of a connection from the pod.
async fn egress_of(cluster: &Cluster, namespace: &str, pod: &str) -> Result<String, String> {
    let echo = std::net::SocketAddr::new(ECHO_IP.parse().unwrap(), ECHO_PORT);
    egress_e2e::traffic::egress_of(cluster, namespace, pod, echo).await
}

/// Waits until the pod's traffic is seen from `want`.
async fn wait_egress(cluster: &Cluster, namespace: &str, pod: &str, want: &str) -> Duration {
    let what = format!("{namespace}/{pod} to leave as {want}");
    eventually(&what, WAIT, || async {
        let seen = egress_of(cluster, namespace, pod).await?;
        if seen == want {
            Ok(())
        } else {
            Err(format!("seen as {seen}"))
        }
    })
    .await
    .1
}

async fn pod_ip(client: &Client, namespace: &str, name: &str) -> String {
    egress_e2e::tenants::pod_ip(client, namespace, name)
        .await
        .unwrap()
}

async fn restarts(client: &Client, namespace: &str, name: &str) -> (String, i32) {
    egress_e2e::tenants::pod_identity(client, namespace, name)
        .await
        .unwrap()
}

/// The public keys the gateway reports as served peers.
async fn served_keys(client: &Client, node: &str) -> Vec<String> {
    Api::<GatewayStatus>::namespaced(client.clone(), SYSTEM)
        .get_opt(node)
        .await
        .unwrap()
        .and_then(|s| s.spec.ready_peer_configurations)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.public_key)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_leave_with_their_configurations_address_and_follow_changes_live() {
    let cluster = Cluster::builder()
        .workers(1)
        .gateways(1)
        .start()
        .await
        .unwrap();
    let client = cluster.client();
    let worker = cluster.nodes_with_role(Role::Worker)[0].clone();
    let gateway = cluster.nodes_with_role(Role::Gateway)[0].clone();
    let gateway_ip = cluster.node_ip(&gateway).unwrap();

    // The "internet": an echo host behind the nodes' default router, which
    // routes the egress addresses back to the gateway node as a cloud's
    // edge routes a public address to its NIC.
    let cp = cluster.control_plane_netns();
    cp.ip(&["addr", "add", &format!("{ECHO_IP}/32"), "dev", "lo"])
        .unwrap();
    cp.route(&["203.0.113.0/24", "via", &gateway_ip]).unwrap();
    support::echo_host(cp, &format!("{ECHO_IP}:{ECHO_PORT}"));

    install_crds(&client).await;
    namespace(&client, SYSTEM, None).await;
    namespace(&client, "apps", None).await;
    namespace(&client, "team", Some("egress")).await;
    let mut apps = Config {
        namespace: "apps",
        port: 6000,
        key: KeyPair::generate(),
        egress: "203.0.113.10",
    };
    let team = Config {
        namespace: "team",
        port: 6001,
        key: KeyPair::generate(),
        egress: "203.0.113.11",
    };
    install_config(&client, &apps, &gateway, &gateway_ip).await;
    install_config(&client, &team, &gateway, &gateway_ip).await;

    // The gateway daemon on the gateway node, checking every PodEndpoint
    // against its pod (the default).
    let wg = std::env::var("EGRESS_WIREGUARD_GO").unwrap_or_default();
    let gnd = cluster.node_dir(&gateway).unwrap().display().to_string();
    let kubeconfig = format!("{gnd}/kubeconfig");
    let daemon = workspace_binary("egress-gateway-daemon", "egress-gateway-daemon");
    start_on_node(
        &cluster,
        &gateway,
        "daemon",
        &format!(
            "EGRESS_WIREGUARD_GO={wg} KUBECONFIG={kubeconfig} MY_POD_NAMESPACE={SYSTEM} RUST_LOG=warn"
        ),
        &format!(
            "{} --node-name {gateway} --pool-name gwpool --node-interface eth0 \
             --gateway-netns {gnd}/gateway.netns --resync-seconds 5 --log-format text",
            daemon.display()
        ),
    );

    // The plugin in the worker's CNI binary directory; the agent beside it.
    let plugin = workspace_binary("egress-cni-plugin", "egress-cni");
    std::fs::copy(
        &plugin,
        cluster.cni_bin_dir(&worker).unwrap().join("egress-cni"),
    )
    .unwrap();
    let wnd = cluster.node_dir(&worker).unwrap().display().to_string();
    let agent = workspace_binary("egress-node-agent", "egress-node-agent");
    start_on_node(
        &cluster,
        &worker,
        "agent",
        &format!(
            "EGRESS_WIREGUARD_GO={wg} KUBECONFIG={wnd}/kubeconfig NODE_NAME={worker} RUST_LOG=warn"
        ),
        &format!(
            "{} --socket {wnd}/agent/agent.sock --backup-dir {wnd}/cni-backup",
            agent.display()
        ),
    );
    let installed = cluster
        .cni_conf_dir(&worker)
        .unwrap()
        .join("00-egress-gateway.conflist");
    eventually("the chained configuration", WAIT, || async {
        if installed.exists() {
            Ok(())
        } else {
            Err(node_log(&cluster, &worker, "agent"))
        }
    })
    .await;

    // Three pods: annotated, by namespace default, and not opted in.
    for (ns, name, ann) in [
        ("apps", "tunnelled", Some("egress")),
        ("team", "defaulted", None),
        ("apps", "plain", None),
    ] {
        cluster
            .apply(&egress_e2e::tenants::pod_yaml_annotated(
                ns, name, &worker, ann,
            ))
            .await
            .unwrap();
    }
    for (ns, name) in [
        ("apps", "tunnelled"),
        ("team", "defaulted"),
        ("apps", "plain"),
    ] {
        cluster.wait_pod_running(ns, name, WAIT).await.unwrap();
    }
    let took = wait_egress(&cluster, "apps", "tunnelled", apps.egress).await;
    eprintln!("annotated pod egressing through the gateway {took:?} after Running");
    wait_egress(&cluster, "team", "defaulted", team.egress).await;
    let plain_ip = pod_ip(&client, "apps", "plain").await;
    assert_eq!(
        egress_of(&cluster, "apps", "plain").await.unwrap(),
        plain_ip,
        "a pod that did not opt in keeps its own path"
    );

    // Forged PodEndpoints never become peers: one for a pod that does not
    // exist, one naming the real pod that did not opt in.
    let forged = KeyPair::generate();
    let spoof = KeyPair::generate();
    let pes: Api<PodEndpoint> = Api::namespaced(client.clone(), "apps");
    for (name, key, ip) in [
        ("ghost", &forged, "10.244.1.250/32".to_string()),
        ("plain", &spoof, format!("{plain_ip}/32")),
    ] {
        let mut pe = PodEndpoint::new(
            name,
            PodEndpointSpec {
                static_gateway_configuration: Some("egress".into()),
                pod_ip_address: Some(ip),
                pod_public_key: Some(key.public.clone()),
            },
        );
        pe.metadata.labels =
            Some([(egress_k8s::agent::NODE_LABEL.to_string(), worker.clone())].into());
        pes.create(&PostParams::default(), &pe).await.unwrap();
    }
    let tunnelled_key = pes
        .get("tunnelled")
        .await
        .unwrap()
        .spec
        .pod_public_key
        .unwrap();
    // Two resyncs after the forgeries: the real pod's key is served, the
    // forged ones are not.
    tokio::time::sleep(Duration::from_secs(11)).await;
    let served = served_keys(&client, &gateway).await;
    assert!(served.contains(&tunnelled_key), "{served:?}");
    assert!(!served.contains(&forged.public), "ghost endpoint served");
    assert!(!served.contains(&spoof.public), "spoofed endpoint served");
    assert_eq!(
        egress_of(&cluster, "apps", "plain").await.unwrap(),
        plain_ip
    );

    // A new gateway port and key reach the running pod without a restart.
    let before = restarts(&client, "apps", "tunnelled").await;
    apps.port = 6002;
    apps.key = KeyPair::generate();
    put_key_secret(&client, &apps).await;
    let changed = std::time::Instant::now();
    Api::<StaticGatewayConfiguration>::namespaced(client.clone(), "apps")
        .patch_status(
            "egress",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": sgc_status(&apps) })),
        )
        .await
        .unwrap();
    eventually("the gateway to serve the new port only", WAIT, || async {
        let links = cluster
            .exec_on_node(
                &gateway,
                "nsenter",
                &[&format!("--net={gnd}/gateway.netns"), "ip", "-o", "link"],
            )
            .map_err(|e| e.to_string())?;
        if links.contains("wg-6002") && !links.contains("wg-6000") {
            Ok(())
        } else {
            Err(links)
        }
    })
    .await;
    wait_egress(&cluster, "apps", "tunnelled", apps.egress).await;
    eprintln!(
        "running pod egressing again {:?} after the port and key change",
        changed.elapsed()
    );
    assert_eq!(restarts(&client, "apps", "tunnelled").await, before);

    // Deleting a configuration returns its pods to their own path.
    let defaulted_ip = pod_ip(&client, "team", "defaulted").await;
    Api::<StaticGatewayConfiguration>::namespaced(client.clone(), "team")
        .delete("egress", &DeleteParams::default())
        .await
        .unwrap();
    wait_egress(&cluster, "team", "defaulted", &defaulted_ip).await;
    wait_egress(&cluster, "apps", "tunnelled", apps.egress).await;
}
