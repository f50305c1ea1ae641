//! The control plane of a test cluster: etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler, all in the control-plane
//! network namespace, which also holds the bridge the nodes join.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::process::{Guarded, run};
use crate::tools::k8s_binary;

/// The API server's address on the control-plane bridge.
pub(crate) const API_ADDRESS: &str = "10.77.0.1";
pub(crate) const API_PORT: u16 = 6443;
/// Service addresses; the `kubernetes` Service takes the first one.
pub(crate) const SERVICE_CIDR: &str = "10.96.0.0/16";
/// The `kubernetes` Service's address, the first of [`SERVICE_CIDR`].
pub(crate) const KUBERNETES_SERVICE_IP: &str = "10.96.0.1";
pub(crate) const TOKEN: &str = "egress-testkit-admin-token";

/// The control-plane processes. Field order is drop order: clients of the API
/// server stop first, etcd last.
#[derive(Debug)]
pub(crate) struct ControlPlane {
    scheduler: Guarded,
    controller_manager: Guarded,
    apiserver: Guarded,
    etcd: Guarded,
}

fn in_netns(netns: &str, binary: &Path) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{netns}"))
        .arg("--")
        .arg(binary);
    cmd
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// A kubeconfig granting cluster-admin through the static token.
pub(crate) fn kubeconfig_yaml(server: &str) -> String {
    // The API server signs its own serving certificate at start-up, so clients
    // skip verification; everything stays inside the test topology.
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: egress-testkit
  cluster:
    server: {server}
    insecure-skip-tls-verify: true
users:
- name: egress-admin
  user:
    token: {TOKEN}
contexts:
- name: egress-testkit
  context:
    cluster: egress-testkit
    user: egress-admin
current-context: egress-testkit
"
    )
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

impl ControlPlane {
    /// Starts all four components in `netns`, with their data and logs in
    /// `dir`. Returns once they are spawned; readiness is checked by the caller
    /// through the API.
    pub(crate) fn spawn(netns: &str, dir: &Path) -> Result<Self, Error> {
        let apiserver_bin = k8s_binary("kube-apiserver")?;
        let etcd_bin = k8s_binary("etcd")?;
        let cm_bin = k8s_binary("kube-controller-manager")?;
        let scheduler_bin = k8s_binary("kube-scheduler")?;

        let mut etcd_cmd = in_netns(netns, &etcd_bin);
        etcd_cmd.args([
            "--name=default",
            &format!("--data-dir={}", path_str(&dir.join("etcd"))),
            "--listen-client-urls=http://127.0.0.1:2379",
            "--advertise-client-urls=http://127.0.0.1:2379",
            "--listen-peer-urls=http://127.0.0.1:2380",
            "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster=default=http://127.0.0.1:2380",
            // Test data is throwaway; fsync only slows start-up.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]);
        let etcd = Guarded::spawn("etcd", etcd_cmd, &dir.join("etcd.log"))?;

        let sa_key = path_str(&dir.join("sa.key"));
        let sa_pub = path_str(&dir.join("sa.pub"));
        run("openssl", &["genrsa", "-out", &sa_key, "2048"])?;
        run(
            "openssl",
            &["rsa", "-in", &sa_key, "-pubout", "-out", &sa_pub],
        )?;
        let tokens = dir.join("tokens.csv");
        write(
            &tokens,
            &format!("{TOKEN},egress-admin,egress-admin-uid,\"system:masters\"\n"),
        )?;
        let certs = dir.join("certs");
        let mut api_cmd = in_netns(netns, &apiserver_bin);
        api_cmd.args([
            "--etcd-servers=http://127.0.0.1:2379",
            &format!("--secure-port={API_PORT}"),
            "--bind-address=0.0.0.0",
            &format!("--advertise-address={API_ADDRESS}"),
            &format!("--cert-dir={}", path_str(&certs)),
            &format!("--token-auth-file={}", path_str(&tokens)),
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            &format!("--service-account-key-file={sa_pub}"),
            &format!("--service-account-signing-key-file={sa_key}"),
            &format!("--service-cluster-ip-range={SERVICE_CIDR}"),
            "--allow-privileged=true",
            // Nodes are reached at the address they registered on the bridge.
            "--kubelet-preferred-address-types=InternalIP",
            "--v=1",
        ]);
        let apiserver = Guarded::spawn("kube-apiserver", api_cmd, &dir.join("kube-apiserver.log"))?;

        // The controller manager and scheduler talk to the API server on the
        // namespace's loopback.
        let kubeconfig = dir.join("kubeconfig-local");
        write(
            &kubeconfig,
            &kubeconfig_yaml(&format!("https://127.0.0.1:{API_PORT}")),
        )?;
        let kc = format!("--kubeconfig={}", path_str(&kubeconfig));
        let mut cm_cmd = in_netns(netns, &cm_bin);
        cm_cmd.args([
            kc.as_str(),
            "--leader-elect=false",
            // Service-account tokens and the kube-root-ca.crt ConfigMap, so pods
            // get working in-cluster credentials as on a real cluster.
            &format!("--service-account-private-key-file={sa_key}"),
            &format!("--root-ca-file={}", path_str(&certs.join("apiserver.crt"))),
            "--use-service-account-credentials=false",
            // Pod CIDRs are assigned by the harness, routed on the bridge.
            "--allocate-node-cidrs=false",
            // Failover tests want a dead node noticed in seconds, not the
            // default 50 s; kubelets report every 2 s.
            "--node-monitor-grace-period=12s",
            "--node-monitor-period=1s",
            "--v=1",
        ]);
        let controller_manager = Guarded::spawn(
            "kube-controller-manager",
            cm_cmd,
            &dir.join("kube-controller-manager.log"),
        )?;
        let mut sched_cmd = in_netns(netns, &scheduler_bin);
        sched_cmd.args([kc.as_str(), "--leader-elect=false", "--v=1"]);
        let scheduler =
            Guarded::spawn("kube-scheduler", sched_cmd, &dir.join("kube-scheduler.log"))?;
        Ok(Self {
            scheduler,
            controller_manager,
            apiserver,
            etcd,
        })
    }

    /// Host PIDs of the four components.
    pub(crate) fn pids(&self) -> [u32; 4] {
        [
            self.etcd.id(),
            self.apiserver.id(),
            self.controller_manager.id(),
            self.scheduler.id(),
        ]
    }

    /// Fails with the log tail of the first component that exited.
    pub(crate) fn check_alive(&mut self) -> Result<(), Error> {
        self.etcd.check_alive()?;
        self.apiserver.check_alive()?;
        self.controller_manager.check_alive()?;
        self.scheduler.check_alive()
    }
}

/// Where the control plane keeps its files inside a cluster directory.
pub(crate) fn dir_in(cluster_dir: &Path) -> PathBuf {
    cluster_dir.join("control-plane")
}
