//! One node of a test cluster: containerd, runc and a kubelet in the node's
//! own network namespace, with private PID and mount namespaces so that
//! killing one process takes the whole node down, pods and mounts included.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::Error;
use crate::netns::Netns;
use crate::process::{Guarded, log_tail, run};
use crate::tools::{containerd_bin_dir, existing, images_dir, k8s_binary, runc_bin_dir};

use super::control_plane::{API_ADDRESS, API_PORT, KUBERNETES_SERVICE_IP};
use super::host;

/// Label and taint (`key=value:NoSchedule`) that mark an egress gateway node,
/// as upstream's gateway node pools carry them.
pub const GATEWAY_LABEL: (&str, &str) = ("kubeegressgateway.azure.com/mode", "true");
/// The test image every node has imported: Debian's static busybox.
pub const BUSYBOX_IMAGE: &str = "localhost/busybox:egress-testkit";
/// The pause (sandbox) image every node has imported.
pub const PAUSE_IMAGE: &str = "localhost/pause:egress-testkit";
/// Where a node's CNI plugins live, as on a real node. The node's own
/// directory is bind-mounted there inside its mount namespace.
pub const CNI_BIN_DIR: &str = "/opt/cni/bin";
/// Where a node's CNI configuration lives, as on a real node.
pub const CNI_CONF_DIR: &str = "/etc/cni/net.d";
/// The primary CNI configuration file each node starts with.
pub const PRIMARY_CNI_CONF: &str = "10-bridge.conflist";
/// Debian's reference plugins: the primary chain plus `loopback`, which
/// containerd runs itself for every sandbox.
const CNI_PLUGINS: [&str; 4] = ["bridge", "host-local", "portmap", "loopback"];
const DEBIAN_CNI_DIR: &str = "/usr/lib/cni";

/// What a node is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An ordinary node where workload pods run.
    Worker,
    /// An egress gateway node: labelled and tainted like upstream's gateway pools.
    Gateway,
}

/// Node `index` (from 1) gets `10.77.0.<10+index>` and pod CIDR `10.244.<index>.0/24`.
pub(crate) fn node_ip(index: u8) -> String {
    format!("10.77.0.{}", 10 + u16::from(index))
}

pub(crate) fn pod_cidr(index: u8) -> String {
    format!("10.244.{index}.0/24")
}

/// A running (or killed) node.
#[derive(Debug)]
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) role: Role,
    pub(crate) index: u8,
    pub(crate) dir: PathBuf,
    /// `egt<pid>-c<n>-<name>`, this node's cgroupRoot in every hierarchy.
    pub(crate) cgroup: String,
    /// `nsenter ... unshare ...`: its child is PID 1 of the node.
    init: Option<Guarded>,
    pub(crate) netns: Netns,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_atomic(path: &Path, text: &str) -> Result<(), Error> {
    // containerd watches the CNI directory and could read a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

impl Node {
    /// Creates the node's namespace, wires it to the control-plane bridge,
    /// writes its configuration and starts its process tree. Readiness is
    /// awaited by the caller through the API.
    pub(crate) fn start(
        cluster_id: &str,
        cluster_dir: &Path,
        cp: &Netns,
        name: &str,
        role: Role,
        index: u8,
        images: &[PathBuf],
    ) -> Result<Self, Error> {
        let dir = cluster_dir.join(name);
        for sub in [
            "net.d",
            "cni-bin",
            "containerd",
            "kubelet",
            "pod-logs",
            "ipam",
        ] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        let cgroup = format!("{cluster_id}-{name}");
        let netns = Netns::create(name)?;
        let mut node = Self {
            name: name.to_string(),
            role,
            index,
            dir,
            cgroup,
            init: None,
            netns,
        };
        // From here on, a failure drops `node`, which undoes what was done.
        node.wire(cp)?;
        host::create_cgroup(&node.cgroup)?;
        host::create_cgroup(&format!("{}/daemons", node.cgroup))?;
        node.write_config()?;
        node.add_images(images)?;
        node.spawn()?;
        Ok(node)
    }

    fn wire(&self, cp: &Netns) -> Result<(), Error> {
        let ip = node_ip(self.index);
        let cp_dev = format!("veth-{}", self.index);
        run(
            "ip",
            &[
                "link",
                "add",
                &cp_dev,
                "netns",
                cp.name(),
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                self.netns.name(),
            ],
        )?;
        cp.ip(&["link", "set", &cp_dev, "master", "br0", "up"])?;
        self.netns.addr("eth0", &format!("{ip}/24"))?;
        self.netns.ip(&["link", "set", "eth0", "up"])?;
        self.netns.route(&["default", "via", API_ADDRESS])?;
        // The control plane routes each node's pod CIDR to it, as a cloud's
        // route table does for a node's pod range.
        cp.route(&[&pod_cidr(self.index), "via", &ip])?;
        self.netns.sysctl("net.ipv4.ip_forward", "1")?;
        // In place of kube-proxy, for the one Service in-cluster clients need:
        // `kubernetes` (the first service address, port 443) leads to the API
        // server, from pods (prerouting) and from host-network pods (output).
        let rules = self.dir.join("services.nft");
        let dnat = format!(
            "ip daddr {KUBERNETES_SERVICE_IP} tcp dport 443 dnat to {API_ADDRESS}:{API_PORT}"
        );
        std::fs::write(
            &rules,
            format!(
                "table ip egress-testkit-services {{\n\
                 \tchain prerouting {{ type nat hook prerouting priority dstnat; {dnat}; }}\n\
                 \tchain output {{ type nat hook output priority -100; {dnat}; }}\n}}\n"
            ),
        )
        .map_err(io_err(&rules))?;
        self.netns.exec("nft", &["-f", &s(&rules)])?;
        Ok(())
    }

    fn write_config(&self) -> Result<(), Error> {
        self.write_containerd_config()?;
        self.write_kubelet_config()?;
        self.write_cni()?;
        self.write_init_script()
    }

    fn write_containerd_config(&self) -> Result<(), Error> {
        let d = &self.dir;
        let sock = s(&d.join("containerd.sock"));
        let containerd = format!(
            r#"version = 3
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.erofs"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "{PAUSE_IMAGE}"
[plugins."io.containerd.cri.v1.runtime"]
  # Pod network namespaces at /var/run/netns, as on a real node: inside the
  # node's own /run, where host-network pods (the node agent) see them.
  netns_mounts_under_state_dir = false
  # This kind of VM withholds CAP_SYS_RESOURCE: oom_score_adj cannot be lowered.
  restrict_oom_score_adj = true
  enable_cdi = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["{CNI_BIN_DIR}"]
    conf_dir = "{CNI_CONF_DIR}"
    max_conf_num = 1
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{runc_root}"
        SystemdCgroup = false
"#,
            root = s(&d.join("containerd/root")),
            state = s(&d.join("containerd/state")),
            opt = s(&d.join("containerd/opt")),
            runc = s(&existing(runc_bin_dir().join("runc"))?),
            runc_root = s(&d.join("runc")),
        );
        write_atomic(&d.join("containerd.toml"), &containerd)
    }

    fn write_kubelet_config(&self) -> Result<(), Error> {
        let d = &self.dir;
        let sock = s(&d.join("containerd.sock"));
        let ip = node_ip(self.index);
        let mut kubelet = format!(
            r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://{sock}
cgroupDriver: cgroupfs
cgroupRoot: /{cgroup}
failSwapOn: false
failCgroupV1: false
address: {ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {{enabled: true}}
  webhook: {{enabled: false}}
authorization:
  mode: AlwaysAllow
podLogsDir: {logs}
resolvConf: ""
clusterDomain: cluster.local
# Tiny thresholds: disk or memory pressure on a CI machine must never evict.
evictionHard: {{"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%"}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusUpdateFrequency: 2s
nodeLeaseDurationSeconds: 8
syncFrequency: 10s
fileCheckFrequency: 5s
"#,
            cgroup = self.cgroup,
            logs = s(&d.join("pod-logs")),
        );
        if self.role == Role::Gateway {
            let (key, value) = GATEWAY_LABEL;
            let _ = write!(
                kubelet,
                "registerWithTaints:\n- {{key: \"{key}\", value: \"{value}\", effect: NoSchedule}}\n"
            );
        }
        write_atomic(&d.join("kubelet.yaml"), &kubelet)?;
        write_atomic(
            &d.join("kubeconfig"),
            &super::control_plane::kubeconfig_yaml(&format!("https://{API_ADDRESS}:{API_PORT}")),
        )
    }

    fn write_cni(&self) -> Result<(), Error> {
        let d = &self.dir;
        // The primary CNI: Debian's bridge + host-local + portmap, with the
        // node's routed pod CIDR. No masquerade: pod addresses are routable in
        // the topology, as on a cloud network.
        let conflist = format!(
            r#"{{
  "cniVersion": "1.0.0",
  "name": "egress-testkit",
  "plugins": [
    {{"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {{"type": "host-local", "dataDir": "{ipam}",
               "ranges": [[{{"subnet": "{cidr}"}}]], "routes": [{{"dst": "0.0.0.0/0"}}]}}}},
    {{"type": "portmap", "capabilities": {{"portMappings": true}}}}
  ]
}}
"#,
            ipam = s(&d.join("ipam")),
            cidr = pod_cidr(self.index),
        );
        write_atomic(&d.join("net.d").join(PRIMARY_CNI_CONF), &conflist)?;
        for plugin in CNI_PLUGINS {
            let from = existing(Path::new(DEBIAN_CNI_DIR).join(plugin))?;
            let to = d.join("cni-bin").join(plugin);
            std::fs::copy(&from, &to).map_err(io_err(&to))?;
        }
        Ok(())
    }

    fn write_init_script(&self) -> Result<(), Error> {
        let d = &self.dir;
        let ip = node_ip(self.index);
        // The node's init script, kept on disk so a failing node can be
        // restarted by hand (see the crate documentation).
        let kubelet_bin = k8s_binary("kubelet")?;
        let ctrd = containerd_bin_dir();
        existing(ctrd.join("containerd"))?;
        existing(ctrd.join("containerd-shim-runc-v2"))?;
        let images = images_dir();
        let pause = existing(images.join("pause.tar"))?;
        let busybox = existing(images.join("busybox.tar"))?;
        let mut labels = String::new();
        if self.role == Role::Gateway {
            let (key, value) = GATEWAY_LABEL;
            labels = format!(" --node-labels={key}={value}");
        }
        let hierarchies = super::host::KUBELET_HIERARCHIES.join(" ");
        let script = format!(
            r"#!/bin/sh
# PID 1 of node {name}: runs in the node's network namespace with a private
# PID and mount namespace (nsenter --net + unshare --pid --mount).
set -eu
D={dir}
# containerd and the kubelet are accounted to the node's own cgroup.
for h in {hierarchies}; do echo 0 > /sys/fs/cgroup/$h/{cgroup}/daemons/cgroup.procs; done
# A private /run (shim sockets, runc state) and the node's own CNI directories
# at the paths a real node has them.
# The host's own /run/netns (where `ip netns` pins namespaces) came along
# when this mount namespace was made; hidden under the new /run it would
# still be found first by the runtime's propagation check, so detach it.
umount -l /run/netns 2>/dev/null || true
mount -t tmpfs -o mode=755 tmpfs /run
# Shared inside the node, as systemd makes it on a real one, so a pod's
# Bidirectional or HostToContainer mounts of /run/netns propagate.
mount --make-rshared /run
# Pod network namespaces are pinned in /run/netns, a shared mount of its own
# as `ip netns` makes it, which pods may mount with propagation.
mkdir -p /run/netns
mount --bind /run/netns /run/netns
mount --make-shared /run/netns
mkdir -p {CNI_CONF_DIR} {CNI_BIN_DIR}
mount --bind $D/net.d {CNI_CONF_DIR}
mount --bind $D/cni-bin {CNI_BIN_DIR}
export PATH={ctrd}:$PATH
containerd --config $D/containerd.toml > $D/containerd.log 2>&1 &
until {ctrd}/ctr -a $D/containerd.sock version > /dev/null 2>&1; do sleep 0.05; done
for image in {pause} {busybox} $(cat $D/images 2>/dev/null); do
    {ctrd}/ctr -a $D/containerd.sock -n k8s.io images import $image > /dev/null
done
{kubelet_bin} --config=$D/kubelet.yaml --kubeconfig=$D/kubeconfig --root-dir=$D/kubelet \
    --hostname-override={name} --node-ip={ip}{labels} --v=1 > $D/kubelet.log 2>&1 &
wait
",
            name = self.name,
            dir = s(d),
            cgroup = self.cgroup,
            ctrd = s(&ctrd),
            pause = s(&pause),
            busybox = s(&busybox),
            kubelet_bin = s(&kubelet_bin),
        );
        write_atomic(&d.join("node.sh"), &script)
    }

    /// Lists extra image tarballs for the node to import at start.
    fn add_images(&self, tars: &[PathBuf]) -> Result<(), Error> {
        let list = tars.iter().fold(String::new(), |mut out, t| {
            let _ = writeln!(out, "{}", s(t));
            out
        });
        write_atomic(&self.dir.join("images"), &list)
    }

    fn spawn(&mut self) -> Result<(), Error> {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.netns.name()))
            .args([
                "--",
                "unshare",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount",
                "--propagation",
                "private",
                "--mount-proc",
                "--",
                "/bin/sh",
            ])
            .arg(self.dir.join("node.sh"));
        self.init = Some(Guarded::spawn("node", cmd, &self.dir.join("node.log"))?);
        Ok(())
    }

    /// Fails with the node's log tails if its process tree is gone.
    pub(crate) fn check_alive(&mut self) -> Result<(), Error> {
        let Some(init) = self.init.as_mut() else {
            return Err(self.down("killed by the test".into()));
        };
        match init.check_alive() {
            Ok(()) => Ok(()),
            Err(Error::Exited { status, .. }) => Err(self.down(status.to_string())),
            Err(other) => Err(other),
        }
    }

    fn down(&self, status: String) -> Error {
        let mut log = String::new();
        for file in ["node.log", "containerd.log", "kubelet.log"] {
            let _ = write!(log, "--- {file}\n{}\n", log_tail(&self.dir.join(file), 15));
        }
        Error::NodeDown {
            node: self.name.clone(),
            status,
            log,
        }
    }

    /// Host PID of the node's PID 1 (the child of `unshare`), for `nsenter -t`.
    pub(crate) fn init_pid(&self) -> Option<u32> {
        let unshare = self.init.as_ref()?.id();
        let children =
            std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }

    /// Host PIDs of every process of the node: daemons, shims and containers.
    pub(crate) fn pids(&self) -> Vec<i32> {
        host::cgroup_pids(&self.cgroup)
    }

    /// Kills the whole node at once, like a machine losing power: no
    /// graceful shutdown, no CNI DEL. Returns once no process of it is left.
    pub(crate) fn kill(&mut self) {
        // PID 1 of the node first: the kernel then kills everything in its
        // PID namespace, and `unshare` reaps it and exits. Killing `unshare`
        // first would orphan PID 1 to the host's init, which reaps lazily.
        if let Some(pid) = self.init_pid().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(mut init) = self.init.take() {
            init.wait_exit(Duration::from_secs(10));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.pids().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the node's process tree is running.
    pub(crate) fn is_running(&self) -> bool {
        self.init.is_some()
    }

    /// Sends `signal` to the node's kubelet only (its pods keep running).
    pub(crate) fn signal_kubelet(&self, signal: nix::sys::signal::Signal) -> Result<(), Error> {
        let root_dir = format!("--root-dir={}", s(&self.dir.join("kubelet")));
        for pid in self.pids() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline
                .split(|b| *b == 0)
                .any(|arg| arg == root_dir.as_bytes())
            {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
                return Ok(());
            }
        }
        Err(self.down("kubelet not running".into()))
    }

    /// Runs a program inside the node's network, mount and PID namespaces.
    pub(crate) fn exec(&self, program: &str, args: &[&str]) -> Result<String, Error> {
        let pid = self
            .init_pid()
            .ok_or_else(|| self.down("not running".into()))?
            .to_string();
        let mut full = vec!["-t", pid.as_str(), "-n", "-m", "-p", "--", program];
        full.extend_from_slice(args);
        run("nsenter", &full)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        let _ = host::remove_cgroup(&self.cgroup);
        host::remove_dir(&self.dir);
        // The network namespace goes with `self.netns`.
    }
}
