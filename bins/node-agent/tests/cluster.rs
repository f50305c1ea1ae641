//! The agent and plugin on a node of a local cluster of real parts: the
//! node's containerd and kubelet run the real CNI chain (bridge, host-local,
//! portmap, then ours) from the node's `/etc/cni/net.d` and `/opt/cni/bin`.
//! An annotated pod gets `wg0` and the planned routes, an unannotated one is
//! untouched, and uninstalling restores the configuration exactly, after
//! which pods still start. Needs root and `scripts/setup.sh`.

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
    GatewayServerProfile, PodEndpoint, RouteMode, StaticGatewayConfiguration,
    StaticGatewayConfigurationSpec, StaticGatewayConfigurationStatus,
};
use egress_net::wireguard::KeyPair;
use egress_testkit::cluster::{BUSYBOX_IMAGE, Cluster};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, ResourceExt};
use serde_json::json;

const NODE: &str = "worker-1";
const WAIT: Duration = Duration::from_mins(1);

fn pod_yaml(name: &str, annotation: Option<&str>) -> String {
    let ann = annotation
        .map(|a| {
            format!("  annotations: {{kubernetes.azure.com/static-gateway-configuration: {a}}}\n")
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: default
{ann}spec:
  nodeSelector: {{kubernetes.io/hostname: {NODE}}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    imagePullPolicy: Never
    command: [sleep, '3600']
"
    )
}

async fn install_sgc(cluster: &Cluster) {
    let client = cluster.client();
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
    let sgcs: Api<StaticGatewayConfiguration> = Api::namespaced(client, "default");
    let sgc = StaticGatewayConfiguration::new(
        "egress",
        StaticGatewayConfigurationSpec {
            gateway_nodepool_name: Some("gwpool".into()),
            gateway_vmss_profile: None,
            default_route: RouteMode::StaticEgressGateway,
            provision_public_ips: true,
            public_ip_prefix_id: None,
            exclude_cidrs: Some(vec!["10.77.0.0/24".into()]),
        },
    );
    sgcs.create(&PostParams::default(), &sgc).await.unwrap();
    let status = StaticGatewayConfigurationStatus {
        egress_ip_prefix: Some("203.0.113.0/28".into()),
        gateway_server_profile: Some(GatewayServerProfile {
            ip: Some("192.0.2.100".into()),
            port: Some(6000),
            public_key: Some(KeyPair::generate().public),
            private_key_secret_ref: Some(ObjectReference {
                namespace: Some("kube-egress-gateway-system".into()),
                name: Some("sgw-egress".into()),
                ..ObjectReference::default()
            }),
        }),
        ..StaticGatewayConfigurationStatus::default()
    };
    sgcs.patch_status(
        "egress",
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await
    .unwrap();
}

/// Starts the agent inside the node (its network, mount and PID
/// namespaces), detached, as the process of a `DaemonSet` would run.
fn start_agent(cluster: &Cluster, nd: &str, args: &str) {
    let wg = std::env::var("EGRESS_WIREGUARD_GO").unwrap_or_default();
    let agent = env!("CARGO_BIN_EXE_egress-node-agent");
    cluster
        .exec_on_node(
            NODE,
            "sh",
            &[
                "-c",
                &format!(
                    "EGRESS_WIREGUARD_GO={wg} KUBECONFIG={nd}/kubeconfig NODE_NAME={NODE} RUST_LOG=warn \
                     setsid {agent} {args} </dev/null >>{nd}/agent.log 2>&1 & echo $! >{nd}/agent.pid"
                ),
            ],
        )
        .unwrap();
}

/// Runs a future to completion from a synchronous closure.
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_on_a_real_kubelet_plumbs_opted_in_pods_and_uninstalls_cleanly() {
    let cluster = Cluster::builder().workers(1).start().await.unwrap();
    install_sgc(&cluster).await;
    let conf_dir = cluster.cni_conf_dir(NODE).unwrap();
    let before = support::snapshot(&conf_dir);
    std::fs::copy(
        support::plugin_binary(),
        cluster.cni_bin_dir(NODE).unwrap().join("egress-cni"),
    )
    .unwrap();
    let nd = cluster.node_dir(NODE).unwrap().display().to_string();
    // Pods that start while the agent is away are found through the
    // namespaces of running processes, wherever the runtime pins them.
    let args = format!("--socket {nd}/agent/agent.sock --backup-dir {nd}/cni-backup");
    let agent = env!("CARGO_BIN_EXE_egress-node-agent");
    start_agent(&cluster, &nd, &args);
    let installed = conf_dir.join("00-egress-gateway.conflist");
    support::wait_until("the chained configuration", WAIT, || installed.exists());

    // An annotated pod: wg0, the tunnel default, the excluded node network
    // on eth0, and a PodEndpoint recording the node.
    cluster
        .apply(&pod_yaml("tunnelled", Some("egress")))
        .await
        .unwrap();
    cluster
        .wait_pod_running("default", "tunnelled", WAIT)
        .await
        .unwrap();
    let links = cluster
        .exec_in_pod("default", "tunnelled", None, &["ip", "link"])
        .await
        .unwrap();
    assert!(links.contains("wg0"), "{links}");
    let via = |dst: &'static str| {
        let c = &cluster;
        async move {
            c.exec_in_pod("default", "tunnelled", None, &["ip", "route", "get", dst])
                .await
                .unwrap()
        }
    };
    assert!(via("198.51.100.7").await.contains("dev wg0"));
    assert!(via("10.77.0.1").await.contains("dev eth0"), "excludeCidrs");
    assert!(
        via("169.254.169.254").await.contains("dev eth0"),
        "node exception"
    );
    let ep = Api::<PodEndpoint>::namespaced(cluster.client(), "default")
        .get("tunnelled")
        .await
        .unwrap();
    assert_eq!(
        ep.labels()
            .get(egress_k8s::agent::NODE_LABEL)
            .map(String::as_str),
        Some(NODE)
    );
    assert!(ep.spec.pod_ip_address.unwrap().starts_with("10.244."));

    // An unannotated pod is untouched.
    cluster.apply(&pod_yaml("plain", None)).await.unwrap();
    cluster
        .wait_pod_running("default", "plain", WAIT)
        .await
        .unwrap();
    let links = cluster
        .exec_in_pod("default", "plain", None, &["ip", "link"])
        .await
        .unwrap();
    assert!(!links.contains("wg0"), "{links}");

    // Deleting the pod (the kubelet's DEL) removes its PodEndpoint and
    // leaves no device behind on the node.
    Api::<k8s_openapi::api::core::v1::Pod>::namespaced(cluster.client(), "default")
        .delete("tunnelled", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    support::wait_until("the PodEndpoint to go", WAIT, || {
        futures_block(
            Api::<PodEndpoint>::namespaced(cluster.client(), "default").get_opt("tunnelled"),
        )
        .unwrap()
        .is_none()
    });
    let node_links = cluster.exec_on_node(NODE, "ip", &["-o", "link"]).unwrap();
    assert!(!node_links.contains(" eg-"), "{node_links}");

    // The agent away: a pod starts without the tunnel (fail-open) and gets
    // it once the agent is back.
    let pid = std::fs::read_to_string(format!("{nd}/agent.pid")).unwrap();
    cluster.exec_on_node(NODE, "kill", &[pid.trim()]).unwrap();
    cluster
        .apply(&pod_yaml("late", Some("egress")))
        .await
        .unwrap();
    cluster
        .wait_pod_running("default", "late", WAIT)
        .await
        .unwrap();
    let links = cluster
        .exec_in_pod("default", "late", None, &["ip", "link"])
        .await
        .unwrap();
    assert!(!links.contains("wg0"), "{links}");
    start_agent(&cluster, &nd, &args);
    let start = std::time::Instant::now();
    loop {
        let links = cluster
            .exec_in_pod("default", "late", None, &["ip", "link"])
            .await
            .unwrap();
        if links.contains("wg0") {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "the late pod never got its tunnel: {links}\nagent log:\n{}\nnetns: {:?}",
            std::fs::read_to_string(format!("{nd}/agent.log")).unwrap_or_default(),
            cluster.exec_on_node(
                NODE,
                "ls",
                &["-la", &format!("{nd}/containerd/state/netns")]
            )
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Uninstall: the configuration directory is as it was, and pods start.
    let pid = std::fs::read_to_string(format!("{nd}/agent.pid")).unwrap();
    cluster.exec_on_node(NODE, "kill", &[pid.trim()]).unwrap();
    cluster
        .exec_on_node(
            NODE,
            "sh",
            &[
                "-c",
                &format!("{agent} {args} uninstall >>{nd}/agent.log 2>&1"),
            ],
        )
        .unwrap();
    assert_eq!(support::snapshot(&conf_dir), before);
    cluster
        .apply(&pod_yaml("after", Some("egress")))
        .await
        .unwrap();
    cluster
        .wait_pod_running("default", "after", WAIT)
        .await
        .unwrap();
    let links = cluster
        .exec_in_pod("default", "after", None, &["ip", "link"])
        .await
        .unwrap();
    assert!(!links.contains("wg0"), "{links}");
}
