//! What the agent does for each CNI command.

use std::sync::Arc;

use egress_cni::sandbox::SandboxRecord;
use egress_cni::wire::{Answer, Request, pass_on, with_interface};
use egress_cni::{Command, ErrorObject, FailureMode};

use egress_core::agent::Sandbox;

use crate::metrics::Metrics;
use crate::pods::Pods;

/// How long an ADD may take on the agent's side; the plugin's own deadline
/// (10 s) is longer, so the agent's answer, not the plugin's timeout, decides.
const ADD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(6);

/// Answers the plugin's requests.
#[derive(Debug)]
pub struct Handler {
    pub pods: Arc<Pods>,
    pub metrics: Arc<Metrics>,
}

fn error(req: &Request, code: u32, msg: &str, e: &anyhow::Error) -> Answer {
    Answer::Error(ErrorObject {
        cni_version: req.cni_version.clone(),
        code,
        msg: msg.to_string(),
        details: format!("{e:#}"),
    })
}

impl Handler {
    /// Handles one request.
    pub async fn handle(&self, req: Request) -> Answer {
        let key = match (&req.pod_namespace, &req.pod_name) {
            (Some(ns), Some(name)) => Some((ns.clone(), name.clone())),
            _ => None,
        };
        match req.command {
            Command::Add => {
                let pass = Answer::Ok(Some(pass_on(req.prev_result.as_ref(), &req.cni_version)));
                let Some(key) = key else { return pass };
                // One deadline for the whole ADD: a stalled API call must not
                // hold the sandbox (and the pod's lock, so its DEL) forever.
                let added = tokio::time::timeout(ADD_DEADLINE, self.add(&req, &key))
                    .await
                    .unwrap_or_else(|_| {
                        Err(anyhow::anyhow!(
                            "not done within {} s",
                            ADD_DEADLINE.as_secs()
                        ))
                    });
                match added {
                    Ok(true) => Answer::Ok(Some(with_interface(
                        req.prev_result.as_ref(),
                        &req.cni_version,
                        req.netns.as_deref().unwrap_or_default(),
                    ))),
                    Ok(false) => pass,
                    Err(e) if req.failure_mode == FailureMode::Open => {
                        // Fail open means open: whatever went wrong on our
                        // side (API errors, timeouts, a refused PodEndpoint
                        // write), the sandbox starts on its own path, and the
                        // resync plumbs an opted-in pod once it can.
                        self.metrics.failure("add");
                        tracing::warn!(
                            pod = %format!("{}/{}", key.0, key.1),
                            error = %format!("{e:#}"),
                            "ADD failed on the agent's side; failure mode open, the pod starts without the tunnel for now"
                        );
                        pass
                    }
                    Err(e) => {
                        self.metrics.failure("add");
                        error(&req, 11, "putting the pod on the egress tunnel failed", &e)
                    }
                }
            }
            Command::Del => {
                if let (Some(key), Some(id)) = (key, &req.container_id) {
                    self.pods.release(&key, id).await;
                }
                Answer::Ok(None)
            }
            Command::Check => match (key, &req.container_id) {
                (Some(key), Some(id)) => match self.pods.check(&key, id).await {
                    Ok(()) => Answer::Ok(None),
                    Err(e) => error(&req, 5, "the pod's egress tunnel is not in place", &e),
                },
                _ => Answer::Ok(None),
            },
            Command::Gc => {
                // The spec: without `cni.dev/valid-attachments` nothing is
                // known to be invalid, so nothing is collected (taking the
                // absent list as empty would tear down every tunnel of the
                // node).
                let Some(list) = &req.valid_attachments else {
                    return Answer::Ok(None);
                };
                let valid: Vec<String> = list.iter().map(|a| a.container_id.clone()).collect();
                self.pods.collect(&valid).await;
                Answer::Ok(None)
            }
            Command::Status | Command::Version => Answer::Ok(None),
        }
    }

    /// ADD: whether the pod was put on the tunnel. A pod that did not opt in
    /// is left alone; one whose gateway is not ready starts without the
    /// tunnel and gets it from the resync once the gateway is published.
    /// Every ADD's sandbox is recorded first, so that a pod that opts in
    /// later, or one the agent must find again after a restart, is bound to
    /// this sandbox and no other.
    async fn add(&self, req: &Request, key: &(String, String)) -> anyhow::Result<bool> {
        let container_id = req.container_id.clone().unwrap_or_default();
        let sandbox = Sandbox {
            container_id: container_id.clone(),
            netns: req.netns.clone().unwrap_or_default(),
            ifname: req.ifname.clone().unwrap_or_else(|| "eth0".into()),
        };
        if !container_id.is_empty() && !sandbox.netns.is_empty() {
            self.pods.record(&SandboxRecord {
                container_id,
                netns: sandbox.netns.clone(),
                ifname: sandbox.ifname.clone(),
                pod_namespace: key.0.clone(),
                pod_name: key.1.clone(),
                pod_uid: req.pod_uid.clone(),
            });
        }
        let api = &self.pods.api;
        let Some(pod) = api.pod(&key.0, &key.1).await? else {
            return Ok(false);
        };
        // The runtime names the pod's UID: a pod of the same name with
        // another UID is not the one this sandbox is for.
        if let (Some(asked), Some(found)) = (&req.pod_uid, &pod.metadata.uid)
            && asked != found
        {
            return Err(anyhow::anyhow!(
                "pod {}/{} has UID {found}, the runtime asked for {asked}",
                key.0,
                key.1
            ));
        }
        let Some(gateway) = api.choice(&pod).await? else {
            return Ok(false);
        };
        self.pods
            .adopt(crate::pods::Origin::Add, &pod, &gateway, sandbox)
            .await
    }
}
