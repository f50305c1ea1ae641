//! `egressctl status`: every `StaticGatewayConfiguration` with its pool, mode,
//! egress addresses, readiness and the pods that use it.
//!
//! [`build`] is pure (objects in, rows out) so it is tested without a
//! cluster; [`gather`] lists the objects and calls it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use crate::Error;
use crate::agent::{ANNOTATION, opted_in};
use crate::crd::{PodEndpoint, StaticGatewayConfiguration};

/// How a configuration's egress addresses are provided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// Public IPs from a prefix the controller creates.
    PublicManagedPrefix,
    /// Public IPs from the user's own prefix (`publicIpPrefixId`).
    PublicByoPrefix,
    /// The gateway nodes' private secondary IPs.
    Private,
}

impl Mode {
    /// Short text for the table.
    pub fn text(self) -> &'static str {
        match self {
            Self::PublicManagedPrefix => "public (managed prefix)",
            Self::PublicByoPrefix => "public (BYO prefix)",
            Self::Private => "private",
        }
    }
}

/// The configuration's conditions, summarised.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// `Ready`, `Degraded`, `NotReady` or `Unknown` (no condition yet).
    pub state: String,
    /// The deciding condition's reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The deciding condition's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What a pod's PodEndpoint says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointInfo {
    /// `spec.podIpAddress`.
    pub pod_ip: Option<String>,
    /// `spec.staticGatewayConfiguration`.
    pub configuration: Option<String>,
    /// `status.egressIpPrefix`, as the agent last wrote it.
    pub egress_ip_prefix: Option<String>,
    /// `status.gatewayEndpoint`.
    pub gateway_endpoint: Option<String>,
}

/// A pod that opted into a configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodUse {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `annotation` or `namespace default`.
    pub via: &'static str,
    /// The node it runs on.
    pub node: Option<String>,
    /// Its address.
    pub pod_ip: Option<String>,
    /// Its PodEndpoint, once the node agent wrote one.
    pub endpoint: Option<EndpointInfo>,
}

/// One configuration's row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `nodepool <name>` or `vmss <resource group>/<name>`.
    pub pool: String,
    /// Public managed, public BYO or private.
    pub mode: Mode,
    /// `spec.defaultRoute`.
    pub default_route: &'static str,
    /// `status.egressIpPrefix`.
    pub egress: Option<String>,
    /// `status.gatewayServerProfile` as `ip:port`.
    pub gateway: Option<String>,
    /// From the conditions.
    pub readiness: Readiness,
    /// Pods that use it, by namespace and name.
    pub pods: Vec<PodUse>,
}

/// Everything `status` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Every configuration, by namespace and name.
    pub configurations: Vec<ConfigStatus>,
    /// Pods that name a configuration that does not exist in their namespace
    /// (they keep their normal path), as `(configuration, pod)`.
    pub dangling: Vec<(String, PodUse)>,
}

fn pool(sgc: &StaticGatewayConfiguration) -> String {
    match sgc
        .spec
        .gateway_vmss_profile
        .as_ref()
        .filter(|p| p.is_set())
    {
        Some(p) => format!(
            "vmss {}/{}",
            p.vmss_resource_group.as_deref().unwrap_or("?"),
            p.vmss_name.as_deref().unwrap_or("?")
        ),
        None => format!(
            "nodepool {}",
            sgc.spec.gateway_nodepool_name.as_deref().unwrap_or("?")
        ),
    }
}

fn mode(sgc: &StaticGatewayConfiguration) -> Mode {
    if !sgc.spec.provision_public_ips {
        Mode::Private
    } else if sgc
        .spec
        .public_ip_prefix_id
        .as_deref()
        .is_some_and(|id| !id.trim().is_empty())
    {
        Mode::PublicByoPrefix
    } else {
        Mode::PublicManagedPrefix
    }
}

/// Ready is True and nothing is Degraded: `Ready`; Ready True but Degraded:
/// `Degraded` (traffic flows, the latest spec is not applied); Ready False:
/// `NotReady`; no Ready condition: `Unknown`.
fn readiness(sgc: &StaticGatewayConfiguration) -> Readiness {
    let conditions = sgc
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    let find = |t: &str| conditions.iter().find(|c| c.type_ == t);
    let from =
        |state: &str, c: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition| Readiness {
            state: state.to_string(),
            reason: Some(c.reason.clone()).filter(|r| !r.is_empty()),
            message: Some(c.message.clone()).filter(|m| !m.is_empty()),
        };
    match find("Ready") {
        None => Readiness {
            state: "Unknown".into(),
            reason: None,
            message: None,
        },
        Some(r) if r.status == "True" => match find("Degraded").filter(|d| d.status == "True") {
            Some(d) => from("Degraded", d),
            None => from("Ready", r),
        },
        Some(r) => from("NotReady", r),
    }
}

fn endpoint_info(pe: &PodEndpoint) -> EndpointInfo {
    EndpointInfo {
        pod_ip: pe.spec.pod_ip_address.clone(),
        configuration: pe.spec.static_gateway_configuration.clone(),
        egress_ip_prefix: pe.status.as_ref().and_then(|s| s.egress_ip_prefix.clone()),
        gateway_endpoint: pe.status.as_ref().and_then(|s| s.gateway_endpoint.clone()),
    }
}

fn finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Builds the rows from the cluster's objects. Pods that have finished are
/// left out: they send nothing.
pub fn build(
    sgcs: &[StaticGatewayConfiguration],
    namespaces: &[Namespace],
    pods: &[Pod],
    endpoints: &[PodEndpoint],
) -> Status {
    let defaults: BTreeMap<String, String> = namespaces
        .iter()
        .filter_map(|n| Some((n.name_any(), n.annotations().get(ANNOTATION)?.clone())))
        .collect();
    let eps: BTreeMap<(String, String), &PodEndpoint> = endpoints
        .iter()
        .map(|e| ((e.namespace().unwrap_or_default(), e.name_any()), e))
        .collect();
    let mut configurations: Vec<ConfigStatus> = sgcs
        .iter()
        .map(|sgc| ConfigStatus {
            namespace: sgc.namespace().unwrap_or_default(),
            name: sgc.name_any(),
            pool: pool(sgc),
            mode: mode(sgc),
            default_route: match sgc.spec.default_route {
                crate::crd::RouteMode::StaticEgressGateway => "staticEgressGateway",
                crate::crd::RouteMode::AzureNetworking => "azureNetworking",
            },
            egress: sgc.status.as_ref().and_then(|s| s.egress_ip_prefix.clone()),
            gateway: sgc
                .status
                .as_ref()
                .and_then(|s| s.gateway_server_profile.as_ref())
                .and_then(|p| Some(format!("{}:{}", p.ip.as_deref()?, p.port?))),
            readiness: readiness(sgc),
            pods: Vec::new(),
        })
        .collect();
    configurations.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut dangling = Vec::new();
    let mut sorted: Vec<&Pod> = pods.iter().filter(|p| !finished(p)).collect();
    sorted.sort_by_key(|p| (p.namespace(), p.name_any()));
    for pod in sorted {
        let ns = pod.namespace().unwrap_or_default();
        let own = pod.annotations().contains_key(ANNOTATION);
        let Some(choice) = opted_in(pod.annotations(), defaults.get(&ns).map(String::as_str))
        else {
            continue;
        };
        let name = pod.name_any();
        let usage = PodUse {
            via: if own {
                "annotation"
            } else {
                "namespace default"
            },
            node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            pod_ip: pod.status.as_ref().and_then(|s| s.pod_ip.clone()),
            endpoint: eps
                .get(&(ns.clone(), name.clone()))
                .map(|e| endpoint_info(e)),
            namespace: ns,
            name,
        };
        match configurations
            .iter_mut()
            .find(|c| c.namespace == usage.namespace && c.name == choice)
        {
            Some(c) => c.pods.push(usage),
            None => dangling.push((choice, usage)),
        }
    }
    Status {
        configurations,
        dangling,
    }
}

/// Lists configurations, namespaces, pods and PodEndpoints and builds the rows.
pub async fn gather(client: &Client) -> Result<Status, Error> {
    let lp = ListParams::default();
    let err = |what: &str| {
        let action = format!("list {what}");
        move |source| Error::Api { action, source }
    };
    let sgcs = Api::<StaticGatewayConfiguration>::all(client.clone())
        .list(&lp)
        .await
        .map_err(err("StaticGatewayConfigurations"))?
        .items;
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&lp)
        .await
        .map_err(err("namespaces"))?
        .items;
    let pods = Api::<Pod>::all(client.clone())
        .list(&lp)
        .await
        .map_err(err("pods"))?
        .items;
    let endpoints = Api::<PodEndpoint>::all(client.clone())
        .list(&lp)
        .await
        .map_err(err("PodEndpoints"))?
        .items;
    Ok(build(&sgcs, &namespaces, &pods, &endpoints))
}

fn pod_line(p: &PodUse) -> String {
    let mut line = format!("    pod {}/{} ({})", p.namespace, p.name, p.via);
    if let Some(node) = &p.node {
        let _ = write!(line, " on {node}");
    }
    if let Some(ip) = &p.pod_ip {
        let _ = write!(line, " ip {ip}");
    }
    match &p.endpoint {
        Some(e) => {
            let _ = write!(
                line,
                ", PodEndpoint {}",
                e.pod_ip.as_deref().unwrap_or("(no address)")
            );
            if let Some(eg) = &e.egress_ip_prefix {
                let _ = write!(line, " egress {eg}");
            }
            if let Some(gw) = &e.gateway_endpoint {
                let _ = write!(line, " via {gw}");
            }
        }
        None => line.push_str(", no PodEndpoint yet"),
    }
    line
}

/// The table `egressctl status` prints: one line per configuration, each
/// followed by its pods.
pub fn render_table(status: &Status) -> String {
    let header = [
        "NAMESPACE",
        "NAME",
        "POOL",
        "MODE",
        "EGRESS",
        "READY",
        "PODS",
    ];
    let rows: Vec<[String; 7]> = status
        .configurations
        .iter()
        .map(|c| {
            let mut ready = c.readiness.state.clone();
            if let Some(r) = &c.readiness.reason
                && c.readiness.state != "Ready"
            {
                let _ = write!(ready, " ({r})");
            }
            [
                c.namespace.clone(),
                c.name.clone(),
                c.pool.clone(),
                c.mode.text().to_string(),
                c.egress.clone().unwrap_or_else(|| "-".into()),
                ready,
                c.pods.len().to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                let _ = write!(s, "{cell:<w$}  ");
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&header.map(String::from));
    for (r, c) in rows.iter().zip(&status.configurations) {
        out.push_str(&line(r));
        if let Some(m) = c
            .readiness
            .message
            .as_ref()
            .filter(|_| c.readiness.state != "Ready")
        {
            let _ = writeln!(out, "    {m}");
        }
        for p in &c.pods {
            out.push_str(&pod_line(p));
            out.push('\n');
        }
    }
    if status.configurations.is_empty() {
        out.push_str("(no StaticGatewayConfiguration)\n");
    }
    for (config, p) in &status.dangling {
        let _ = writeln!(
            out,
            "{} names {config}, which does not exist in {}: it keeps its normal path",
            pod_line(p).trim_start(),
            p.namespace
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{GatewayVmssProfile, StaticGatewayConfigurationSpec};

    fn sgc(
        ns: &str,
        name: &str,
        spec: StaticGatewayConfigurationSpec,
    ) -> StaticGatewayConfiguration {
        let mut s = StaticGatewayConfiguration::new(name, spec);
        s.metadata.namespace = Some(ns.into());
        s
    }

    fn spec() -> StaticGatewayConfigurationSpec {
        StaticGatewayConfigurationSpec {
            gateway_nodepool_name: Some("gwpool".into()),
            gateway_vmss_profile: None,
            default_route: crate::crd::RouteMode::StaticEgressGateway,
            provision_public_ips: true,
            public_ip_prefix_id: None,
            exclude_cidrs: None,
        }
    }

    fn pod(ns: &str, name: &str, ann: Option<&str>, phase: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": ns, "name": name,
                "annotations": ann.map(|a| serde_json::json!({ANNOTATION: a})).unwrap_or_default()},
            "spec": {"containers": [], "nodeName": "n1"},
            "status": {"phase": phase, "podIP": "10.244.0.9"},
        }))
        .unwrap_or_default()
    }

    #[test]
    fn pods_are_placed_by_annotation_then_namespace_default() {
        let mut byo = spec();
        byo.public_ip_prefix_id = Some(
            "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/publicIPPrefixes/p"
                .into(),
        );
        let mut private = spec();
        private.provision_public_ips = false;
        private.gateway_nodepool_name = None;
        private.gateway_vmss_profile = Some(GatewayVmssProfile {
            vmss_resource_group: Some("rg".into()),
            vmss_name: Some("gwvmss".into()),
            public_ip_prefix_size: None,
        });
        let sgcs = [
            sgc("b", "priv", private),
            sgc("a", "managed", spec()),
            sgc("a", "byo", byo),
        ];
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "a", "annotations": {ANNOTATION: "managed"}}
        }))
        .unwrap_or_default();
        let pods = [
            pod("a", "web", None, "Running"),
            pod("a", "api", Some("byo"), "Running"),
            pod("a", "out", Some(""), "Running"),
            pod("a", "done", Some("byo"), "Succeeded"),
            pod("b", "db", Some("priv"), "Running"),
            pod("b", "lost", Some("nope"), "Running"),
        ];
        let st = build(&sgcs, &[ns], &pods, &[]);
        let summary: Vec<(String, String, Mode, Vec<String>)> = st
            .configurations
            .iter()
            .map(|c| {
                (
                    format!("{}/{}", c.namespace, c.name),
                    c.pool.clone(),
                    c.mode,
                    c.pods
                        .iter()
                        .map(|p| format!("{} {}", p.name, p.via))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "a/byo".into(),
                    "nodepool gwpool".into(),
                    Mode::PublicByoPrefix,
                    vec!["api annotation".into()]
                ),
                (
                    "a/managed".into(),
                    "nodepool gwpool".into(),
                    Mode::PublicManagedPrefix,
                    vec!["web namespace default".into()]
                ),
                (
                    "b/priv".into(),
                    "vmss rg/gwvmss".into(),
                    Mode::Private,
                    vec!["db annotation".into()]
                ),
            ]
        );
        assert_eq!(st.dangling.len(), 1);
        assert_eq!(st.dangling[0].0, "nope");
        let table = render_table(&st);
        assert!(
            table.starts_with("NAMESPACE  NAME     POOL             MODE"),
            "{table}"
        );
        assert!(table.contains("b/lost (annotation) on n1 ip 10.244.0.9, no PodEndpoint yet names nope, which does not exist in b"), "{table}");
        assert!(table.contains("Unknown"), "{table}");
    }
}
