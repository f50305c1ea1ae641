//! Pods the agent does not know yet that should be on the tunnel: pods that
//! started while it was away (the plugin fails open), pods known before a
//! restart, and running pods that opt in later. Each is bound to the sandbox
//! its record names (written at ADD by the agent, or by the plugin when the
//! agent was away), never to a namespace that merely holds its address: an
//! address is reused by other pods, a sandbox is not.
//!
//! And the other way round: PodEndpoints this node wrote whose pod is gone,
//! finished, replaced or no longer opted in are deleted, whether or not the
//! agent saw the pod's DEL.

use std::path::Path;

use egress_cni::sandbox::SandboxRecord;
use egress_core::agent::Sandbox;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::pods::{Origin, Pods, terminal};

/// The record of the pod's sandbox, if exactly one live sandbox of this pod
/// is recorded: same namespace and name, the same UID where the record has
/// one, and a network namespace that still exists.
fn sandbox_of<'a>(
    pod: &Pod,
    records: &'a [SandboxRecord],
) -> Result<Option<&'a SandboxRecord>, usize> {
    let uid = pod.uid().unwrap_or_default();
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let live: Vec<&SandboxRecord> = records
        .iter()
        .filter(|r| r.pod_namespace == ns && r.pod_name == name)
        .filter(|r| r.pod_uid.as_deref().is_none_or(|u| u == uid))
        .filter(|r| Path::new(&r.netns).exists())
        .collect();
    match live.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(many.len()),
    }
}

/// Plumbs every opted-in, running pod of this node that the agent does not
/// know and whose sandbox is recorded. Returns how many are on the tunnel.
pub async fn recover(pods: &Pods) -> anyhow::Result<usize> {
    let (records, malformed) = pods.records.list()?;
    for path in malformed {
        tracing::warn!(path = %path.display(), "ignoring a sandbox record that is not valid JSON");
    }
    // Records of sandboxes whose namespace is gone are of no use: the
    // runtime removes the namespace when it tears the sandbox down.
    for r in records.iter().filter(|r| !Path::new(&r.netns).exists()) {
        let _ = pods.records.remove(&r.container_id);
    }
    let mut n = 0;
    for pod in pods.api.pods_on_node().await? {
        let key = (pod.namespace().unwrap_or_default(), pod.name_any());
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if host_network || terminal(&pod) || pods.knows(&key).await {
            continue;
        }
        let Some(gw) = pods.api.choice(&pod).await? else {
            continue;
        };
        let record = match sandbox_of(&pod, &records) {
            Ok(Some(r)) => r,
            Ok(None) => {
                tracing::debug!(pod = %format!("{}/{}", key.0, key.1), "an opted-in pod has no recorded sandbox on this node");
                continue;
            }
            Err(count) => {
                tracing::warn!(pod = %format!("{}/{}", key.0, key.1), sandboxes = count, "several live sandboxes are recorded for the pod; waiting for the runtime to remove the old ones");
                continue;
            }
        };
        let sandbox = Sandbox {
            container_id: record.container_id.clone(),
            netns: record.netns.clone(),
            ifname: record.ifname.clone(),
        };
        match pods.adopt(Origin::Recovery, &pod, &gw, sandbox).await {
            Ok(true) => {
                tracing::info!(pod = %format!("{}/{}", key.0, key.1), gateway = %gw, sandbox = %record.container_id, "opted-in pod bound to its recorded sandbox and plumbed");
                n += 1;
            }
            Ok(false) => {
                tracing::info!(pod = %format!("{}/{}", key.0, key.1), gateway = %gw, "opted-in pod bound to its recorded sandbox; not on the tunnel yet");
            }
            Err(e) => {
                tracing::warn!(pod = %format!("{}/{}", key.0, key.1), error = %format!("{e:#}"), "recovering the pod failed");
            }
        }
    }
    Ok(n)
}

/// Deletes the PodEndpoints of this node whose pod the agent does not serve
/// and that no pod should have: the pod is gone, finished, replaced by one
/// of another UID, or does not opt in. An endpoint of a live, opted-in pod
/// the agent has not bound yet stays (its recovery rewrites it). Returns how
/// many were deleted.
pub async fn collect_endpoints(pods: &Pods) -> anyhow::Result<usize> {
    let mut n = 0;
    for ep in pods.api.endpoints_on_node().await? {
        let key = (ep.namespace().unwrap_or_default(), ep.name_any());
        if pods.knows(&key).await {
            continue;
        }
        let owner = ep
            .owner_references()
            .iter()
            .find(|o| o.kind == "Pod")
            .map(|o| o.uid.clone());
        let pod = pods.api.pod(&key.0, &key.1).await?;
        let orphan = match &pod {
            None => true,
            Some(p) => {
                terminal(p)
                    || owner.is_some_and(|o| p.uid().as_deref() != Some(o.as_str()))
                    || p.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(pods.api.node())
                    || pods.api.choice(p).await?.is_none()
            }
        };
        if orphan {
            pods.api.delete_endpoint_seen(&ep).await?;
            tracing::info!(pod = %format!("{}/{}", key.0, key.1), "deleted the PodEndpoint of a pod that is gone, finished or no longer opted in");
            n += 1;
        }
    }
    Ok(n)
}
