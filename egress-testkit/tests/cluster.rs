//! A local cluster of real kubelets, containerd and runc in network
//! namespaces: it comes up, runs pods on a real CNI chain, schedules with the
//! real controller-manager and scheduler, loses nodes, and leaves nothing
//! behind. Needs root and `scripts/setup.sh`.
//!
//! The tests take turns (one cluster at a time): each cluster is isolated in
//! its own namespaces, but the machine has few cores and the kernel settings
//! checked on teardown are machine-wide.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use egress_testkit::cluster::{BUSYBOX_IMAGE, Cluster, GATEWAY_LABEL, Role, kubelet_sysctls};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const WAIT: Duration = Duration::from_mins(1);

fn pod_yaml(name: &str, node_selector: Option<&str>) -> String {
    let selector = node_selector
        .map(|n| format!("  nodeSelector: {{kubernetes.io/hostname: {n}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: default, labels: {{app: {name}}}}}
spec:
{selector}  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    imagePullPolicy: Never
    command: [sleep, '3600']
"
    )
}

fn ip_netns_names() -> BTreeSet<String> {
    std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_come_up_ready_with_roles_and_leave_nothing_behind() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sysctls_before = kubelet_sysctls();
    let netns_before = ip_netns_names();
    let started = Instant::now();
    let cluster = Cluster::builder().workers(2).gateways(1).start().await.unwrap();
    eprintln!("cluster Ready in {:?}", started.elapsed());

    let nodes = Api::<Node>::all(cluster.client())
        .list(&ListParams::default())
        .await
        .unwrap();
    let names: BTreeSet<_> = nodes.items.iter().filter_map(|n| n.metadata.name.clone()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["worker-1".into(), "worker-2".into(), "gateway-1".into()])
    );
    let (key, value) = GATEWAY_LABEL;
    for n in &nodes.items {
        let name = n.metadata.name.as_deref().unwrap();
        assert!(egress_testkit::cluster::node_is_ready(n), "{name} not Ready");
        let spec = n.spec.as_ref().unwrap();
        assert_eq!(spec.pod_cidr.as_deref(), Some(cluster.pod_cidr(name).unwrap().as_str()));
        let labelled = n.metadata.labels.as_ref().unwrap().get(key).map(String::as_str) == Some(value);
        let tainted = spec.taints.iter().flatten().any(|t| {
            t.key == key && t.value.as_deref() == Some(value) && t.effect == "NoSchedule"
        });
        let gateway = cluster.nodes_with_role(Role::Gateway).contains(&name.to_string());
        assert_eq!(labelled, gateway, "{name}: label {key}={value}");
        assert_eq!(tainted, gateway, "{name}: taint {key}={value}:NoSchedule");
    }
    // The kubelets changed the machine-wide settings they tune.
    assert_ne!(kubelet_sysctls(), sysctls_before);

    // What must be gone after teardown.
    let dir = cluster.dir().to_path_buf();
    let id = cluster.id().to_string();
    let mut pids = Vec::new();
    for name in cluster.node_names() {
        let node_pids = cluster.node_pids(&name).unwrap();
        assert!(node_pids.len() >= 2, "{name} runs containerd and the kubelet: {node_pids:?}");
        pids.extend(node_pids);
    }
    let netns_during: BTreeSet<_> = ip_netns_names().difference(&netns_before).cloned().collect();
    assert_eq!(netns_during.len(), 4, "control plane and 3 nodes: {netns_during:?}");
    drop(cluster);

    assert!(!dir.exists(), "{} left behind", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(dir.to_str().unwrap()), "mounts left under {}", dir.display());
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(status.is_empty(), "process {pid} left: {status}");
    }
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap() {
        for e in std::fs::read_dir(h.unwrap().path()).into_iter().flatten() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with(&id), "cgroup {name} left");
        }
    }
    let left: Vec<_> = ip_netns_names().intersection(&netns_during).cloned().collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert_eq!(kubelet_sysctls(), sysctls_before, "kernel settings restored");
}
