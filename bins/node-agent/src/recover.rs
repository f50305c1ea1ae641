//! Pods that started while the agent was away (the plugin fails open): found
//! by listing this node's opted-in pods and matching each pod's IP with the
//! addresses in the node's pinned pod namespaces.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use egress_net::netns::{NsRef, NsWorker};
use egress_net::rtnl::Rtnl;

use crate::pods::{Pods, RECOVERED, pod_name, pod_ns};

/// Where the runtime pins pod namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";

async fn addresses(path: &Path) -> Option<(Vec<IpAddr>, Vec<(u32, String)>)> {
    let w = NsWorker::start(NsRef::Path(path.to_path_buf()))
        .await
        .ok()?;
    let r = Rtnl::new(w.rtnl().clone(), Arc::default());
    let addrs = r.addresses().await.ok()?;
    let links = r.links().await.ok()?;
    Some((
        addrs.iter().map(|a| a.ip).collect(),
        links.into_iter().map(|l| (l.index, l.name)).collect(),
    ))
}

/// Network namespaces that may hold pods: those pinned in `netns_dir`, and
/// those of running processes (one path per namespace), which finds pods
/// whatever directory the runtime pins them in.
fn candidates(netns_dir: &Path) -> Vec<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let own = std::fs::metadata("/proc/self/ns/net").map(|m| m.ino()).ok();
    let pinned = std::fs::read_dir(netns_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path());
    let procs = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .map(|e| e.path().join("ns/net"));
    pinned
        .chain(procs)
        .filter(|p| {
            std::fs::metadata(p)
                .is_ok_and(|m| Some(m.ino()) != own && seen.insert((m.dev(), m.ino())))
        })
        .collect()
}

/// Plumbs every opted-in pod of this node that the agent does not know yet.
pub async fn recover(pods: &Pods, netns_dir: &Path) -> anyhow::Result<usize> {
    let mut wanted = Vec::new();
    for pod in pods.api.pods_on_node().await? {
        let key = (pod_ns(&pod), pod_name(&pod));
        if pods.knows(&key).await {
            continue;
        }
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok());
        if host_network || ip.is_none() {
            continue;
        }
        if let Some(gw) = pods.api.choice(&pod).await? {
            wanted.push((pod, gw, ip));
        }
    }
    if wanted.is_empty() {
        return Ok(0);
    }
    // Which namespace holds which address.
    let mut by_ip: HashMap<IpAddr, PathBuf> = HashMap::new();
    for path in candidates(netns_dir) {
        if let Some((ips, _)) = addresses(&path).await {
            for ip in ips {
                by_ip.entry(ip).or_insert_with(|| path.clone());
            }
        }
    }
    let mut n = 0;
    for (pod, gw, ip) in wanted {
        let Some(path) = ip.and_then(|ip| by_ip.get(&ip)) else {
            // Running and opted in, yet no namespace holds its address: the
            // pod stays off the tunnel until one does, so say so each pass.
            tracing::warn!(pod = %format!("{}/{}", pod_ns(&pod), pod_name(&pod)), ip = ?ip, "an opted-in pod's network namespace was not found");
            continue;
        };
        let container = format!(
            "{RECOVERED}{}",
            pod.metadata.uid.clone().unwrap_or_else(|| pod_name(&pod))
        );
        match pods
            .adopt(
                crate::pods::Origin::Recovery,
                &pod,
                &gw,
                &container,
                path.clone(),
                "eth0",
            )
            .await
        {
            Ok(true) => {
                tracing::info!(pod = %format!("{}/{}", pod_ns(&pod), pod_name(&pod)), gateway = %gw, netns = %path.display(), "opted-in pod found by the resync and plumbed");
                n += 1;
            }
            Ok(false) => {
                tracing::info!(pod = %format!("{}/{}", pod_ns(&pod), pod_name(&pod)), gateway = %gw, "opted-in pod found by the resync; not on the tunnel yet");
            }
            Err(e) => {
                tracing::warn!(pod = %pod_name(&pod), error = %format!("{e:#}"), "recovering the pod failed");
            }
        }
    }
    Ok(n)
}
