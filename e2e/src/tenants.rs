//! The demo's scenario, shared with the figures: five namespaces, each
//! with its own gateway configuration on the one gateway pool and an
//! opted-in pod, plus a pod that did not opt in.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use egress_testkit::cluster::BUSYBOX_IMAGE;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ApiResource, DynamicObject};

use crate::E2eError;
use crate::stack::Stack;
use crate::traffic::egress_of;
use crate::wait::eventually;

/// The annotation that opts a pod (or, on a namespace, its pods) in.
pub const ANNOTATION: &str = "kubernetes.azure.com/static-gateway-configuration";
/// The configuration's name in every namespace.
pub const SGC: &str = "egress";
const WAIT: Duration = Duration::from_mins(2);

/// How a configuration gets its egress address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// A public IP prefix the controller creates.
    Managed,
    /// A bring-your-own public IP prefix (its ARM ID).
    Byo(String),
    /// No public address: the gateway's private address.
    Private,
}

/// One namespace of the scenario and what was seen.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Namespace.
    pub namespace: String,
    /// Mode.
    pub mode: Mode,
    /// The configuration's `status.egressIpPrefix`.
    pub status: String,
    /// The source address the echo host saw.
    pub seen: String,
    /// From applying the configuration to the first answer from that address.
    pub took: Duration,
}

/// The API resource of `StaticGatewayConfiguration`.
pub fn sgc_resource() -> ApiResource {
    ApiResource {
        group: "egressgateway.kubernetes.azure.com".into(),
        version: "v1alpha1".into(),
        api_version: "egressgateway.kubernetes.azure.com/v1alpha1".into(),
        kind: "StaticGatewayConfiguration".into(),
        plural: "staticgatewayconfigurations".into(),
    }
}

/// A namespace with one configuration.
pub fn namespace_yaml(ns: &str, mode: &Mode) -> String {
    let spec = match mode {
        Mode::Managed => "provisionPublicIps: true".to_string(),
        Mode::Byo(id) => format!("provisionPublicIps: true\n  publicIpPrefixId: {id}"),
        Mode::Private => "provisionPublicIps: false".to_string(),
    };
    format!(
        "apiVersion: v1
kind: Namespace
metadata: {{name: {ns}}}
---
apiVersion: egressgateway.kubernetes.azure.com/v1alpha1
kind: StaticGatewayConfiguration
metadata: {{name: {SGC}, namespace: {ns}}}
spec:
  gatewayNodepoolName: {pool}
  {spec}
",
        pool = crate::cloud::POOL
    )
}

/// A busybox pod on `node`, opted in to this scenario's configuration or not.
pub fn pod_yaml(ns: &str, name: &str, node: &str, opted_in: bool) -> String {
    pod_yaml_annotated(ns, name, node, opted_in.then_some(SGC))
}

/// A busybox pod on `node`, its opt-in annotation naming `annotation`
/// (none: the pod or its namespace decides).
pub fn pod_yaml_annotated(ns: &str, name: &str, node: &str, annotation: Option<&str>) -> String {
    let ann = annotation
        .map(|a| format!("  annotations: {{{ANNOTATION}: {a}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: {ns}
{ann}spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {BUSYBOX_IMAGE}
    imagePullPolicy: Never
    command: [sleep, '36000']
"
    )
}

/// The configuration's `status.egressIpPrefix`, once set.
pub async fn status_prefix(stack: &Stack, ns: &str) -> Result<String, String> {
    let api: Api<DynamicObject> = Api::namespaced_with(stack.cluster.client(), ns, &sgc_resource());
    let sgc = api.get(SGC).await.map_err(|e| e.to_string())?;
    sgc.data["status"]["egressIpPrefix"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("no egressIpPrefix yet: {}", sgc.data["status"]))
}

/// Whether `ip` is in a CIDR or a comma-separated list of CIDRs/addresses.
pub fn within(prefix_or_list: &str, ip: &str) -> bool {
    prefix_or_list.split(',').any(|p| {
        let p = p.trim();
        match p.parse::<ipnet::Ipv4Net>() {
            Ok(net) => ip
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|a| net.contains(&a)),
            Err(_) => p == ip,
        }
    })
}

/// The pod's IP.
pub async fn pod_ip(client: &kube::Client, ns: &str, name: &str) -> Result<String, E2eError> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(E2eError::kube(format!("reading pod {ns}/{name}")))?
        .status
        .and_then(|s| s.pod_ip)
        .ok_or_else(|| E2eError::Unexpected(format!("pod {ns}/{name} has no IP")))
}

/// The pod's UID and its containers' restarts: unchanged means the pod
/// was neither recreated nor restarted.
pub async fn pod_identity(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<(String, i32), E2eError> {
    let pod = Api::<Pod>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(E2eError::kube(format!("reading pod {ns}/{name}")))?;
    let restarts = pod
        .status
        .and_then(|s| s.container_statuses)
        .map_or(0, |c| c.iter().map(|c| c.restart_count).sum());
    Ok((pod.metadata.uid.unwrap_or_default(), restarts))
}

/// Waits until the pod's connections to `echo` are seen from an address
/// `ok` accepts; returns that address and the wait.
pub async fn wait_seen(
    stack: &Stack,
    ns: &str,
    pod: &str,
    echo: SocketAddr,
    ok: impl Fn(&str) -> bool,
) -> Result<(String, Duration), E2eError> {
    eventually(
        &format!("{ns}/{pod} to reach {echo} as expected"),
        WAIT,
        || async {
            let seen = egress_of(&stack.cluster, ns, pod, echo).await?;
            if ok(&seen) {
                Ok(seen)
            } else {
                Err(format!("seen as {seen}"))
            }
        },
    )
    .await
}

/// Creates the namespaces, configurations and opted-in pods `app` (on
/// `node`), then waits until each pod is seen from its configuration's
/// address.
pub async fn create(
    stack: &Stack,
    tenants: &[(&str, Mode)],
    node: &str,
) -> Result<Vec<Tenant>, E2eError> {
    let start = Instant::now();
    for (ns, mode) in tenants {
        stack.cluster.apply(&namespace_yaml(ns, mode)).await?;
        stack
            .cluster
            .apply(&pod_yaml(ns, "app", node, true))
            .await?;
    }
    let mut out = Vec::new();
    for (ns, mode) in tenants {
        stack.cluster.wait_pod_running(ns, "app", WAIT).await?;
        let (status, _) = eventually(&format!("{ns}'s egress status"), WAIT, || {
            status_prefix(stack, ns)
        })
        .await?;
        let (seen, _) =
            wait_seen(stack, ns, "app", stack.echo.addr, |s| within(&status, s)).await?;
        out.push(Tenant {
            namespace: (*ns).to_string(),
            mode: mode.clone(),
            status,
            seen,
            took: start.elapsed(),
        });
    }
    Ok(out)
}
