//! The node agent's view of the API: which gateway a pod opted into, that
//! gateway's endpoint, and the pod's PodEndpoint.
//!
//! Reads come from node-local watches ([`AgentCache`]) once they have
//! listed, else from direct GETs; every direct call has a deadline
//! ([`REQUEST_TIMEOUT`]), so a stalled connection fails a call instead of
//! holding a pod's lock. The PodEndpoint records the node that wrote it in
//! [`NODE_LABEL`], which the admission policy compares with the writer's
//! node-bound identity.

mod cache;
mod endpoints;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use egress_core::model::ServerProfile;
use egress_core::pod::{DEFAULT_KEEPALIVE, PodInputs};
use egress_core::routes::{RouteInputs, RouteMode, RoutePlan};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};

use crate::Error;
use crate::crd::{PodEndpoint, PodEndpointSpec, StaticGatewayConfiguration};

/// The pod (or namespace default) annotation naming the gateway configuration.
pub const ANNOTATION: &str = "kubernetes.azure.com/static-gateway-configuration";
/// Label recording which node's agent wrote a PodEndpoint.
pub const NODE_LABEL: &str = "egressgateway.kubernetes.azure.com/node";
/// Field manager of the agent's writes.
pub const FIELD_MANAGER: &str = "egress-node-agent";

pub use cache::AgentCache;
pub use endpoints::{PodEndpoints, observed, status_of, written_for};

/// How long one direct API call may take.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs one API call with [`REQUEST_TIMEOUT`].
async fn timed<T>(
    action: impl FnOnce() -> String,
    call: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(REQUEST_TIMEOUT, call).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(Error::Api {
            action: action(),
            source,
        }),
        Err(_) => Err(Error::Timeout {
            action: action(),
            seconds: REQUEST_TIMEOUT.as_secs(),
        }),
    }
}

/// Which configuration a pod uses: its own annotation, else its namespace's
/// default. An empty annotation opts out, even of a namespace default.
pub fn opted_in(
    pod_annotations: &BTreeMap<String, String>,
    namespace_default: Option<&str>,
) -> Option<String> {
    match pod_annotations.get(ANNOTATION) {
        Some(name) if name.trim().is_empty() => None,
        Some(name) => Some(name.trim().to_string()),
        None => namespace_default
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from),
    }
}

/// What the agent needs of a configuration to plumb a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gateway {
    /// The configuration's name.
    pub name: String,
    /// The endpoint, once the controller has published it.
    pub server: Option<ServerProfile>,
    /// `defaultRoute`.
    pub mode: RouteMode,
    /// `excludeCidrs` that parse; the others are in `bad_cidrs`.
    pub exclude_cidrs: Vec<IpNet>,
    /// `excludeCidrs` entries that are not CIDRs.
    pub bad_cidrs: Vec<String>,
    /// The configuration's egress addresses, from its status.
    pub egress_ip_prefix: Option<String>,
}

/// Translates a configuration.
pub fn gateway_of(sgc: &StaticGatewayConfiguration) -> Gateway {
    let mut exclude_cidrs = Vec::new();
    let mut bad_cidrs = Vec::new();
    for c in sgc.spec.exclude_cidrs.iter().flatten() {
        match c.trim().parse::<IpNet>() {
            Ok(n) => exclude_cidrs.push(n),
            Err(_) => bad_cidrs.push(c.clone()),
        }
    }
    Gateway {
        name: sgc.name_any(),
        server: crate::gateway::translate::server_profile(sgc),
        mode: match sgc.spec.default_route {
            crate::crd::RouteMode::AzureNetworking => RouteMode::Primary,
            crate::crd::RouteMode::StaticEgressGateway => RouteMode::Gateway,
        },
        exclude_cidrs,
        bad_cidrs,
        egress_ip_prefix: sgc.status.as_ref().and_then(|s| s.egress_ip_prefix.clone()),
    }
}

/// A pod's primary interface as the agent reads it in the pod's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimaryLink {
    /// Interface name, e.g. `eth0`.
    pub iface: String,
    /// Its default gateway.
    pub gateway: IpAddr,
    /// Its MTU (the tunnel's underlay).
    pub mtu: u32,
}

/// The route inputs of a pod that uses `gw`: the configuration's mode and
/// `excludeCidrs`, the node's exceptions and the pod's primary gateway
/// (`None` when it is not known, as for an operator away from the node).
pub fn route_inputs(
    gw: &Gateway,
    node_exceptions: &[IpNet],
    primary_gateway: Option<IpAddr>,
) -> RouteInputs {
    RouteInputs {
        mode: gw.mode,
        exclude_cidrs: gw.exclude_cidrs.clone(),
        node_exceptions: node_exceptions.to_vec(),
        primary_gateway,
    }
}

/// The inputs of egress-core's pod tunnel plan for a pod that uses `gw`;
/// `None` while the configuration has no published endpoint (the pod then
/// keeps its own routes). This is what the node agent plumbs and what
/// `egressctl explain pod` shows.
pub fn pod_inputs(
    gw: &Gateway,
    node_exceptions: &[IpNet],
    primary: &PrimaryLink,
) -> Option<PodInputs> {
    let server = gw.server.clone()?;
    Some(PodInputs {
        server,
        routes: RoutePlan::new(&route_inputs(gw, node_exceptions, Some(primary.gateway))),
        primary_iface: primary.iface.clone(),
        primary_gateway: primary.gateway,
        underlay_mtu: primary.mtu,
        // The configuration does not say whether the gateway egresses
        // IPv6, so IPv6 stays on the pod's own routes.
        ipv6_egress: false,
        keepalive: Some(DEFAULT_KEEPALIVE),
    })
}

/// The agent's API access.
#[derive(Clone)]
pub struct AgentApi {
    client: Client,
    node: String,
    cache: Option<Arc<AgentCache>>,
}

impl std::fmt::Debug for AgentApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentApi")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl AgentApi {
    /// An agent for `node`.
    pub fn new(client: Client, node: impl Into<String>) -> Self {
        Self {
            client,
            node: node.into(),
            cache: None,
        }
    }

    /// Answers pod and namespace reads from node-local watches, falling
    /// back to the API for what they do not hold yet.
    #[must_use]
    pub fn with_cache(mut self) -> Self {
        self.cache = Some(Arc::new(AgentCache::start(&self.client, &self.node)));
        self
    }

    /// The node this agent serves.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The pod, if it exists.
    pub async fn pod(&self, ns: &str, name: &str) -> Result<Option<Pod>, Error> {
        if let Some(pod) = self.cache.as_ref().and_then(|c| c.pod(ns, name)) {
            return Ok(Some(pod));
        }
        timed(
            || format!("get pod {ns}/{name}"),
            Api::<Pod>::namespaced(self.client.clone(), ns).get_opt(name),
        )
        .await
    }

    /// Pods scheduled on this node: from the node's watch once it has
    /// listed them, so calling this every few seconds costs the API nothing.
    pub async fn pods_on_node(&self) -> Result<Vec<Pod>, Error> {
        if let Some(pods) = self.cache.as_ref().and_then(|c| c.pods()) {
            return Ok(pods);
        }
        let lp = kube::api::ListParams::default().fields(&format!("spec.nodeName={}", self.node));
        Ok(timed(
            || format!("list pods on node {}", self.node),
            Api::<Pod>::all(self.client.clone()).list(&lp),
        )
        .await?
        .items)
    }

    /// The namespace's default configuration, if it names one.
    pub async fn namespace_default(&self, ns: &str) -> Result<Option<String>, Error> {
        if let Some(found) = self
            .cache
            .as_ref()
            .and_then(|c| c.namespace_annotation(ns, ANNOTATION))
        {
            return Ok(found);
        }
        let namespace = timed(
            || format!("get namespace {ns}"),
            Api::<Namespace>::all(self.client.clone()).get_opt(ns),
        )
        .await?;
        Ok(namespace.and_then(|n| n.annotations().get(ANNOTATION).cloned()))
    }

    /// Which configuration the pod uses, if any.
    pub async fn choice(&self, pod: &Pod) -> Result<Option<String>, Error> {
        let ns = pod.namespace().unwrap_or_default();
        let default = if pod.annotations().contains_key(ANNOTATION) {
            None
        } else {
            self.namespace_default(&ns).await?
        };
        Ok(opted_in(pod.annotations(), default.as_deref()))
    }

    /// The configuration `name` in `ns`, if it exists.
    pub async fn gateway(&self, ns: &str, name: &str) -> Result<Option<Gateway>, Error> {
        if let Some(found) = self.cache.as_ref().and_then(|c| c.gateway(ns, name)) {
            return Ok(found.as_ref().map(gateway_of));
        }
        Ok(timed(
            || format!("get StaticGatewayConfiguration {ns}/{name}"),
            Api::<StaticGatewayConfiguration>::namespaced(self.client.clone(), ns).get_opt(name),
        )
        .await?
        .as_ref()
        .map(gateway_of))
    }

    /// The pod's PodEndpoint, if it exists.
    pub async fn endpoint(&self, ns: &str, name: &str) -> Result<Option<PodEndpoint>, Error> {
        if let Some(found) = self.cache.as_ref().and_then(|c| c.endpoint(ns, name)) {
            return Ok(found);
        }
        timed(
            || format!("get PodEndpoint {ns}/{name}"),
            Api::<PodEndpoint>::namespaced(self.client.clone(), ns).get_opt(name),
        )
        .await
    }

    /// The pod's PodEndpoint as the API holds it now (never from the watch:
    /// for a delete that must see the latest resourceVersion).
    pub async fn endpoint_now(&self, ns: &str, name: &str) -> Result<Option<PodEndpoint>, Error> {
        timed(
            || format!("get PodEndpoint {ns}/{name}"),
            Api::<PodEndpoint>::namespaced(self.client.clone(), ns).get_opt(name),
        )
        .await
    }

    /// The PodEndpoints this node's agent wrote.
    pub async fn endpoints_on_node(&self) -> Result<Vec<PodEndpoint>, Error> {
        if let Some(found) = self.cache.as_ref().and_then(|c| c.endpoints()) {
            return Ok(found);
        }
        let lp = kube::api::ListParams::default().labels(&format!("{NODE_LABEL}={}", self.node));
        Ok(timed(
            || format!("list PodEndpoints of node {}", self.node),
            Api::<PodEndpoint>::all(self.client.clone()).list(&lp),
        )
        .await?
        .items)
    }

    /// Deletes a PodEndpoint only if it is still the object `seen` (same
    /// UID and resourceVersion): a collector acting on a cached copy never
    /// removes an endpoint rewritten meanwhile. Absent or changed is success.
    pub async fn delete_endpoint_seen(&self, seen: &PodEndpoint) -> Result<(), Error> {
        let ns = seen.namespace().unwrap_or_default();
        let name = seen.name_any();
        let dp = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: seen.uid(),
                resource_version: seen.resource_version(),
            }),
            ..DeleteParams::default()
        };
        let api = Api::<PodEndpoint>::namespaced(self.client.clone(), &ns);
        match timed(
            || format!("delete PodEndpoint {ns}/{name}"),
            api.delete(&name, &dp),
        )
        .await
        {
            Ok(_) => Ok(()),
            // Gone, or changed since it was seen: nothing of `seen` is left.
            Err(Error::Api {
                source: kube::Error::Api(s),
                ..
            }) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Creates or updates the pod's PodEndpoint (upstream's spec, owned by
    /// the pod, labelled with this node).
    pub async fn write_endpoint(
        &self,
        pod: &Pod,
        gateway: &str,
        pod_ip: IpNet,
        public_key: &str,
    ) -> Result<(), Error> {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let mut ep = PodEndpoint::new(
            &name,
            PodEndpointSpec {
                static_gateway_configuration: Some(gateway.to_string()),
                pod_ip_address: Some(pod_ip.to_string()),
                pod_public_key: Some(public_key.to_string()),
            },
        );
        ep.meta_mut().namespace = Some(ns.clone());
        ep.meta_mut().labels = Some(BTreeMap::from([(
            NODE_LABEL.to_string(),
            self.node.clone(),
        )]));
        ep.meta_mut().owner_references = pod.controller_owner_ref(&()).map(|mut r| {
            r.controller = Some(true);
            vec![r]
        });
        let api = Api::<PodEndpoint>::namespaced(self.client.clone(), &ns);
        timed(
            || format!("apply PodEndpoint {ns}/{name}"),
            api.patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&ep),
            ),
        )
        .await
        .map(drop)
    }

    /// Records the pod's effective egress on its PodEndpoint's status.
    pub async fn write_status(
        &self,
        ns: &str,
        name: &str,
        status: &egress_core::agent::EndpointStatus,
    ) -> Result<(), Error> {
        let status = crate::crd::PodEndpointStatus {
            gateway_endpoint: status.gateway_endpoint.map(|s| s.to_string()),
            egress_ip_prefix: status.egress_ip_prefix.clone(),
            default_route: Some(endpoints::route_name(status.mode).to_string()),
        };
        let api = Api::<PodEndpoint>::namespaced(self.client.clone(), ns);
        timed(
            || format!("write the status of PodEndpoint {ns}/{name}"),
            api.patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({ "status": status })),
            ),
        )
        .await
        .map(drop)
    }

    /// Deletes the pod's PodEndpoint; absent is success.
    pub async fn delete_endpoint(&self, ns: &str, name: &str) -> Result<(), Error> {
        let api = Api::<PodEndpoint>::namespaced(self.client.clone(), ns);
        match timed(
            || format!("delete PodEndpoint {ns}/{name}"),
            api.delete(name, &DeleteParams::default()),
        )
        .await
        {
            Ok(_) => Ok(()),
            Err(Error::Api {
                source: kube::Error::Api(s),
                ..
            }) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(v: Option<&str>) -> BTreeMap<String, String> {
        v.map(|v| BTreeMap::from([(ANNOTATION.to_string(), v.to_string())]))
            .unwrap_or_default()
    }

    #[test]
    fn the_pod_annotation_wins_over_the_namespace_default() {
        assert_eq!(opted_in(&ann(Some("a")), Some("b")), Some("a".into()));
        assert_eq!(opted_in(&ann(None), Some("b")), Some("b".into()));
        assert_eq!(opted_in(&ann(Some(" ")), Some("b")), None);
        assert_eq!(opted_in(&ann(None), None), None);
        assert_eq!(opted_in(&ann(None), Some("")), None);
    }
}
