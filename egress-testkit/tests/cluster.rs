//! A local cluster of real kubelets, containerd and runc in network
//! namespaces: it comes up, runs pods on a real CNI chain, schedules with the
//! real controller-manager and scheduler, loses nodes, and leaves nothing
//! behind. Needs root and `scripts/setup.sh`.
//!
//! The tests take turns (one cluster at a time): each cluster is isolated in
//! its own namespaces, but the machine has few cores and the kernel settings
//! checked on teardown are machine-wide.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

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

/// All three nodes are Ready with their pod CIDR; only the gateway carries
/// upstream's gateway label and taint.
async fn assert_nodes_ready_with_roles(cluster: &Cluster) {
    let nodes = Api::<Node>::all(cluster.client())
        .list(&ListParams::default())
        .await
        .unwrap();
    let names: BTreeSet<_> = nodes
        .items
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["worker-1".into(), "worker-2".into(), "gateway-1".into()])
    );
    let (key, value) = GATEWAY_LABEL;
    for n in &nodes.items {
        let name = n.metadata.name.as_deref().unwrap();
        assert!(
            egress_testkit::cluster::node_is_ready(n),
            "{name} not Ready"
        );
        let spec = n.spec.as_ref().unwrap();
        assert_eq!(
            spec.pod_cidr.as_deref(),
            Some(cluster.pod_cidr(name).unwrap().as_str())
        );
        let labelled = n
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .get(key)
            .map(String::as_str)
            == Some(value);
        let tainted =
            spec.taints.iter().flatten().any(|t| {
                t.key == key && t.value.as_deref() == Some(value) && t.effect == "NoSchedule"
            });
        let gateway = cluster
            .nodes_with_role(Role::Gateway)
            .contains(&name.to_string());
        assert_eq!(labelled, gateway, "{name}: label {key}={value}");
        assert_eq!(tainted, gateway, "{name}: taint {key}={value}:NoSchedule");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_come_up_ready_with_roles_and_leave_nothing_behind() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sysctls_before = kubelet_sysctls();
    let netns_before = ip_netns_names();
    let started = Instant::now();
    let cluster = Cluster::builder()
        .workers(2)
        .gateways(1)
        .start()
        .await
        .unwrap();
    eprintln!("cluster Ready in {:?}", started.elapsed());

    assert_nodes_ready_with_roles(&cluster).await;
    // The kubelets changed the machine-wide settings they tune.
    assert_ne!(kubelet_sysctls(), sysctls_before);

    // What must be gone after teardown.
    let dir = cluster.dir().to_path_buf();
    let id = cluster.id().to_string();
    let mut pids = Vec::new();
    for name in cluster.node_names() {
        let node_pids = cluster.node_pids(&name).unwrap();
        assert!(
            node_pids.len() >= 2,
            "{name} runs containerd and the kubelet: {node_pids:?}"
        );
        pids.extend(node_pids);
    }
    let netns_during: BTreeSet<_> = ip_netns_names()
        .difference(&netns_before)
        .cloned()
        .collect();
    assert_eq!(
        netns_during.len(),
        4,
        "control plane and 3 nodes: {netns_during:?}"
    );
    drop(cluster);

    assert!(!dir.exists(), "{} left behind", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(dir.to_str().unwrap()),
        "mounts left under {}",
        dir.display()
    );
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
    let left: Vec<_> = ip_netns_names()
        .intersection(&netns_during)
        .cloned()
        .collect();
    assert!(left.is_empty(), "namespaces left: {left:?}");
    assert_eq!(
        kubelet_sysctls(),
        sysctls_before,
        "kernel settings restored"
    );
}

fn pod_ip(pod: &Pod) -> String {
    pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap()
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    let net: ipnet::Ipv4Net = cidr.parse().unwrap();
    net.contains(&ip)
}

/// Starts pod `name` on `node` and waits until it runs.
async fn pod_on(cluster: &Cluster, name: &str, node: &str) -> Pod {
    cluster.apply(&pod_yaml(name, Some(node))).await.unwrap();
    let pod = cluster
        .wait_pod_running("default", name, WAIT)
        .await
        .unwrap();
    assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some(node));
    pod
}

async fn ping(
    cluster: &Cluster,
    from_pod: &str,
    ip: &str,
) -> Result<String, egress_testkit::Error> {
    cluster
        .exec_in_pod(
            "default",
            from_pod,
            None,
            &["ping", "-c", "1", "-W", "2", ip],
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_on_two_workers_get_primary_cni_addresses_and_reach_each_other() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::builder().workers(2).start().await.unwrap();
    let a = pod_on(&cluster, "a", "worker-1").await;
    let b = pod_on(&cluster, "b", "worker-2").await;
    let (a_ip, b_ip) = (pod_ip(&a), pod_ip(&b));
    // host-local hands out addresses from each node's own routed range.
    assert!(
        in_cidr(&a_ip, &cluster.pod_cidr("worker-1").unwrap()),
        "{a_ip}"
    );
    assert!(
        in_cidr(&b_ip, &cluster.pod_cidr("worker-2").unwrap()),
        "{b_ip}"
    );
    // The pod's interface carries that address; the bridge is its gateway.
    let addr = cluster
        .exec_in_pod("default", "a", None, &["ip", "-4", "addr", "show", "eth0"])
        .await
        .unwrap();
    assert!(addr.contains(&format!("inet {a_ip}/24")), "{addr}");
    let bridge = cluster
        .exec_on_node("worker-1", "ip", &["-4", "addr", "show", "cni0"])
        .unwrap();
    assert!(bridge.contains("inet 10.244.1.1/24"), "{bridge}");

    for (from, to) in [("a", &b_ip), ("b", &a_ip)] {
        let out = ping(&cluster, from, to).await.unwrap();
        assert!(out.contains("1 packets received"), "{from} -> {to}: {out}");
    }
    // In-cluster clients find the API server at the `kubernetes` Service.
    let version = cluster
        .exec_in_pod(
            "default",
            "a",
            None,
            &[
                "wget",
                "-q",
                "-O",
                "-",
                "--no-check-certificate",
                "https://10.96.0.1/version",
            ],
        )
        .await
        .unwrap();
    assert!(version.contains("\"gitVersion\": \"v1.34.3\""), "{version}");

    // portmap, the chain's last plugin, publishes a hostPort on the node's
    // address: another node reaches the pod through it.
    cluster
        .apply(&format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: default}}
spec:
  nodeName: worker-1
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    imagePullPolicy: Never
    command: [sh, -c, 'mkdir /www && echo hello-from-web > /www/index.html && exec httpd -f -p 8080 -h /www']
    ports: [{{containerPort: 8080, hostPort: 18080}}]
"
        ))
        .await
        .unwrap();
    cluster
        .wait_pod_running("default", "web", WAIT)
        .await
        .unwrap();
    let url = format!("http://{}:18080/", cluster.node_ip("worker-1").unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        match cluster.exec_on_node("worker-2", "busybox", &["wget", "-q", "-O", "-", &url]) {
            Ok(page) => break page,
            Err(e) if Instant::now() > deadline => panic!("{url} from worker-2: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    assert_eq!(page.trim(), "hello-from-web");
}

const SCHEDULING: &str = "
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: everywhere, namespace: default}
spec:
  selector: {matchLabels: {app: everywhere}}
  template:
    metadata: {labels: {app: everywhere}}
    spec:
      tolerations:
      - {key: kubeegressgateway.azure.com/mode, operator: Equal, value: 'true', effect: NoSchedule}
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: 'localhost/busybox:egress-testkit', imagePullPolicy: Never, command: [sleep, '3600']}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: intolerant, namespace: default}
spec:
  selector: {matchLabels: {app: intolerant}}
  template:
    metadata: {labels: {app: intolerant}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: 'localhost/busybox:egress-testkit', imagePullPolicy: Never, command: [sleep, '3600']}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ordinary, namespace: default}
spec:
  replicas: 4
  selector: {matchLabels: {app: ordinary}}
  template:
    metadata: {labels: {app: ordinary}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: main, image: 'localhost/busybox:egress-testkit', imagePullPolicy: Never, command: [sleep, '3600']}
";

async fn running_pods_by_node(cluster: &Cluster, app: &str) -> Vec<String> {
    let pods = Api::<Pod>::namespaced(cluster.client(), "default")
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    let mut nodes: Vec<String> = pods
        .items
        .iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    nodes.sort();
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonset_lands_on_every_node_and_the_gateway_taint_keeps_ordinary_pods_off() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let cluster = Cluster::builder()
        .workers(2)
        .gateways(1)
        .start()
        .await
        .unwrap();
    cluster.apply(SCHEDULING).await.unwrap();
    let (all, workers) = (
        vec!["gateway-1", "worker-1", "worker-2"],
        vec!["worker-1", "worker-2"],
    );
    let deadline = Instant::now() + WAIT;
    let mut seen = (Vec::new(), Vec::new(), Vec::new());
    while Instant::now() < deadline {
        seen = (
            running_pods_by_node(&cluster, "everywhere").await,
            running_pods_by_node(&cluster, "intolerant").await,
            running_pods_by_node(&cluster, "ordinary").await,
        );
        if seen.0 == all && seen.1 == workers && seen.2.len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (everywhere, intolerant, ordinary) = seen;
    assert_eq!(
        everywhere, all,
        "the tolerating DaemonSet runs on every node"
    );
    assert_eq!(
        intolerant, workers,
        "the gateway taint repels the other DaemonSet"
    );
    assert_eq!(ordinary.len(), 4, "all replicas scheduled: {ordinary:?}");
    assert!(
        ordinary.iter().all(|n| n.starts_with("worker-")),
        "no ordinary pod on the gateway: {ordinary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_goes_not_ready_and_its_pods_leave_the_data_plane() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut cluster = Cluster::builder().workers(2).start().await.unwrap();
    pod_on(&cluster, "a", "worker-1").await;
    let b_ip = pod_ip(&pod_on(&cluster, "b", "worker-2").await);
    assert!(
        ping(&cluster, "a", &b_ip).await.is_ok(),
        "b reachable before the kill"
    );

    cluster.kill_node("worker-2").unwrap();
    assert!(
        cluster.node_pids("worker-2").unwrap().is_empty(),
        "nothing of worker-2 runs"
    );
    let killed = Instant::now();
    cluster
        .wait_node_ready("worker-2", false, Duration::from_secs(45))
        .await
        .unwrap();
    eprintln!("worker-2 NotReady {:?} after the kill", killed.elapsed());

    // b's network namespace died with its node: no answer, from a pod or from
    // worker-1 itself.
    let err = ping(&cluster, "a", &b_ip).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("command terminated with exit code 1"),
        "{err}"
    );
    // (Debian's static busybox provides ping on the host side.)
    let node_ping = cluster.exec_on_node(
        "worker-1",
        "busybox",
        &["ping", "-c", "1", "-W", "1", &b_ip],
    );
    match node_ping {
        Err(egress_testkit::Error::Command { status, .. }) => assert_eq!(status.code(), Some(1)),
        other => panic!("b answered from worker-1 after its node died: {other:?}"),
    }
    // The surviving node is unaffected.
    cluster
        .wait_node_ready("worker-1", true, WAIT)
        .await
        .unwrap();

    // A stopped kubelet is a different failure: the node goes NotReady but
    // its pods keep running and answering.
    let a_ip = pod_ip(&pod_on(&cluster, "a2", "worker-1").await);
    cluster.stop_kubelet("worker-1").unwrap();
    cluster
        .wait_node_ready("worker-1", false, Duration::from_secs(45))
        .await
        .unwrap();
    let out = cluster
        .exec_on_node(
            "worker-1",
            "busybox",
            &["ping", "-c", "1", "-W", "2", &a_ip],
        )
        .unwrap();
    assert!(out.contains("1 packets received"), "{out}");
    Api::<Pod>::namespaced(cluster.client(), "default")
        .delete("a", &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_of_a_project_binary_runs_in_a_pod() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // This test binary is one of the project's own (dynamically linked) binaries.
    let exe = std::env::current_exe().unwrap();
    let out = tempfile::tempdir().unwrap();
    let tar = egress_testkit::image::build(
        &out.path().join("self.tar"),
        "localhost/cluster-tests:test",
        &egress_testkit::image::ImageSpec {
            files: vec![(exe, "/cluster-tests".into())],
            with_libraries: true,
            entrypoint: vec!["/cluster-tests".into()],
            dirs: vec!["/tmp".into()],
            ..egress_testkit::image::ImageSpec::default()
        },
    )
    .unwrap();
    let cluster = Cluster::builder()
        .workers(1)
        .image(&tar)
        .start()
        .await
        .unwrap();
    cluster
        .apply(
            "apiVersion: v1
kind: Pod
metadata: {name: self, namespace: default}
spec:
  restartPolicy: Never
  containers:
  - {name: main, image: 'localhost/cluster-tests:test', imagePullPolicy: Never, args: ['--list']}
",
        )
        .await
        .unwrap();
    let phase = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.clone());
    let done = egress_testkit::cluster::wait_for(
        &Api::<Pod>::namespaced(cluster.client(), "default"),
        "self",
        "pod self to finish",
        WAIT,
        |p| matches!(phase(p).as_deref(), Some("Succeeded" | "Failed")),
    )
    .await
    .unwrap();
    let logs = Api::<Pod>::namespaced(cluster.client(), "default")
        .logs("self", &kube::api::LogParams::default())
        .await
        .unwrap();
    assert_eq!(phase(&done).as_deref(), Some("Succeeded"), "{logs}");
    assert!(
        logs.contains("an_image_of_a_project_binary_runs_in_a_pod: test"),
        "{logs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leftovers_of_a_killed_run_are_swept_on_the_next_start() {
    let _turn = ONE_AT_A_TIME.lock().await;
    // A PID that no longer exists stands for the killed test process.
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let base = std::env::temp_dir().join("egress-testkit-clusters");
    let dir = base.join(format!("egt{dead}-c0"));
    let mnt = dir.join("worker-1/mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs", mnt.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(mounted.success());
    let cgroup = format!("egt{dead}-c0-worker-1");
    for h in ["memory", "pids", "cpu"] {
        std::fs::create_dir_all(format!("/sys/fs/cgroup/{h}/{cgroup}/kubepods")).unwrap();
    }
    let netns = format!("egt{dead}-0-worker-1");
    assert!(
        std::process::Command::new("ip")
            .args(["netns", "add", &netns])
            .status()
            .unwrap()
            .success()
    );

    let cluster = Cluster::builder().workers(1).start().await.unwrap();
    assert!(!dir.exists(), "scratch directory swept");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(mnt.to_str().unwrap()), "mount swept");
    for h in ["memory", "pids", "cpu"] {
        assert!(
            !std::path::Path::new(&format!("/sys/fs/cgroup/{h}/{cgroup}")).exists(),
            "{h} cgroup swept"
        );
    }
    assert!(!ip_netns_names().contains(&netns), "namespace swept");
    drop(cluster);
}
