//! [`egress_core::agent::EndpointStore`] over the API: a pod's PodEndpoint,
//! and the translation between the CRD and the core's view of it.

use async_trait::async_trait;
use egress_core::agent::{EndpointSpec, EndpointStatus, EndpointStore, PodRef};
use egress_core::routes::RouteMode;
use egress_core::{FailureKind, Layer};
use k8s_openapi::api::core::v1::Pod;

use super::{AgentApi, Gateway};
use crate::Error;
use crate::crd::PodEndpoint;

/// The CRD's name of a route mode.
pub(super) fn route_name(mode: RouteMode) -> &'static str {
    match mode {
        RouteMode::Gateway => "staticEgressGateway",
        RouteMode::Primary => "azureNetworking",
    }
}

/// The status a pod on `gateway`'s tunnel should carry.
pub fn status_of(gateway: &Gateway) -> EndpointStatus {
    EndpointStatus {
        gateway_endpoint: gateway
            .server
            .as_ref()
            .map(|s| std::net::SocketAddr::new(s.ip, s.port)),
        egress_ip_prefix: gateway.egress_ip_prefix.clone(),
        mode: gateway.mode,
    }
}

/// A PodEndpoint as the core sees it: its spec (when all three fields are
/// set and valid) and its status (when it has one).
pub fn observed(ep: &PodEndpoint) -> (Option<EndpointSpec>, Option<EndpointStatus>) {
    let spec = (|| {
        Some(EndpointSpec {
            gateway: ep.spec.static_gateway_configuration.clone()?,
            pod_ip: ep.spec.pod_ip_address.as_deref()?.parse().ok()?,
            public_key: ep.spec.pod_public_key.clone()?,
        })
    })();
    let status = ep.status.as_ref().map(|s| EndpointStatus {
        gateway_endpoint: s.gateway_endpoint.as_deref().and_then(|e| e.parse().ok()),
        egress_ip_prefix: s.egress_ip_prefix.clone(),
        mode: match s.default_route.as_deref() {
            Some("azureNetworking") => RouteMode::Primary,
            _ => RouteMode::Gateway,
        },
    });
    (spec, status)
}

/// One pod's PodEndpoint. The pod is kept so the endpoint is written with
/// the pod as its owner (the API's garbage collector then removes it with
/// the pod, even when no agent is running); its UID so that only the
/// endpoint of that pod, written by this node, is ever deleted (a pod of the
/// same name may run elsewhere by then).
#[derive(Debug)]
pub struct PodEndpoints<'a> {
    api: &'a AgentApi,
    pod: Option<&'a Pod>,
    uid: &'a str,
}

impl<'a> PodEndpoints<'a> {
    /// The endpoint of the pod of UID `uid` (empty: not known); `pod` is
    /// needed to write one.
    pub fn new(api: &'a AgentApi, pod: Option<&'a Pod>, uid: &'a str) -> Self {
        Self { api, pod, uid }
    }
}

/// Whether `ep` was written by `node`'s agent for the pod of UID `uid`.
pub fn written_for(ep: &PodEndpoint, node: &str, uid: &str) -> bool {
    use kube::ResourceExt;
    let by_node = ep.labels().get(super::NODE_LABEL).map(String::as_str) == Some(node);
    let owner = ep
        .owner_references()
        .iter()
        .find(|o| o.kind == "Pod")
        .map(|o| o.uid.as_str());
    by_node && (uid.is_empty() || owner.is_none_or(|o| o == uid))
}

fn core(op: &'static str, e: Error) -> egress_core::Error {
    let kind = match &e {
        Error::Api { source, .. } => crate::error::failure_kind(source),
        _ => FailureKind::Transient,
    };
    egress_core::Error::adapter(Layer::Cluster, op, kind, e)
}

#[async_trait]
impl EndpointStore for PodEndpoints<'_> {
    async fn write_endpoint(
        &self,
        pod: &PodRef,
        spec: &EndpointSpec,
    ) -> Result<(), egress_core::Error> {
        let Some(owner) = self.pod else {
            return Err(core(
                "write_endpoint",
                Error::NotFound(format!("pod {pod}")),
            ));
        };
        self.api
            .write_endpoint(owner, &spec.gateway, spec.pod_ip, &spec.public_key)
            .await
            .map_err(|e| core("write_endpoint", e))
    }

    async fn write_status(
        &self,
        pod: &PodRef,
        status: &EndpointStatus,
    ) -> Result<(), egress_core::Error> {
        self.api
            .write_status(&pod.namespace, &pod.name, status)
            .await
            .map_err(|e| core("write_status", e))
    }

    async fn delete_endpoint(&self, pod: &PodRef) -> Result<(), egress_core::Error> {
        let found = self
            .api
            .endpoint_now(&pod.namespace, &pod.name)
            .await
            .map_err(|e| core("delete_endpoint", e))?;
        match found {
            Some(ep) if written_for(&ep, self.api.node(), self.uid) => self
                .api
                .delete_endpoint_seen(&ep)
                .await
                .map_err(|e| core("delete_endpoint", e)),
            // Gone already, or another pod's (or node's): not ours to delete.
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{PodEndpointSpec, PodEndpointStatus};

    #[test]
    fn a_written_endpoint_reads_back_as_what_was_written() {
        let gw = Gateway {
            name: "egress".into(),
            server: None,
            mode: RouteMode::Primary,
            exclude_cidrs: vec![],
            bad_cidrs: vec![],
            egress_ip_prefix: Some("203.0.113.0/28".into()),
        };
        let want = status_of(&gw);
        let mut ep = PodEndpoint::new(
            "web",
            PodEndpointSpec {
                static_gateway_configuration: Some("egress".into()),
                pod_ip_address: Some("10.244.1.5/32".into()),
                pod_public_key: Some("pk".into()),
            },
        );
        ep.status = Some(PodEndpointStatus {
            gateway_endpoint: want.gateway_endpoint.map(|s| s.to_string()),
            egress_ip_prefix: want.egress_ip_prefix.clone(),
            default_route: Some(route_name(want.mode).into()),
        });
        let (spec, status) = observed(&ep);
        assert_eq!(
            spec,
            Some(EndpointSpec {
                gateway: "egress".into(),
                pod_ip: "10.244.1.5/32".parse().unwrap(),
                public_key: "pk".into(),
            })
        );
        assert_eq!(status, Some(want));
        // A spec missing a field, or with an address that does not parse,
        // is no endpoint of the pod: the agent writes it again.
        ep.spec.pod_ip_address = Some("10.244.1.5".into());
        assert_eq!(observed(&ep).0, None);
    }
}
