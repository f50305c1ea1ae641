//! The node's GatewayStatus: the configurations and peers it really serves.
//!
//! Upstream appends to this object on every reconcile and it grows past
//! etcd's request limit in busy clusters. Here it is rewritten whole by
//! server-side apply, only when it changes, and the peer list is capped at
//! [`MAX_PEERS`] entries (sorted, so the cap is stable).

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use tokio::sync::Mutex;

use crate::Error;
use crate::crd::{GatewayConfiguration, GatewayStatus, GatewayStatusSpec, PeerConfiguration};

/// At most this many peers are listed (about 150 bytes each).
pub const MAX_PEERS: usize = 1000;
const MANAGER: &str = "egress-gateway-daemon";

/// Writes one node's GatewayStatus.
#[derive(Debug)]
pub struct StatusWriter {
    api: Api<GatewayStatus>,
    nodes: Api<Node>,
    name: String,
    last: Mutex<Option<GatewayStatusSpec>>,
}

impl StatusWriter {
    /// The GatewayStatus `<node>` in `namespace`.
    pub fn new(client: Client, namespace: &str, node: &str) -> Self {
        Self {
            api: Api::namespaced(client.clone(), namespace),
            nodes: Api::all(client),
            name: node.to_string(),
            last: Mutex::new(None),
        }
    }

    /// Writes the report if it differs from the last one written. Returns
    /// whether a write happened.
    pub async fn write(
        &self,
        mut gateways: Vec<GatewayConfiguration>,
        mut peers: Vec<PeerConfiguration>,
    ) -> Result<bool, Error> {
        gateways.sort_by(|a, b| a.interface_name.cmp(&b.interface_name));
        peers.sort_by(|a, b| {
            (&a.interface_name, &a.public_key).cmp(&(&b.interface_name, &b.public_key))
        });
        peers.truncate(MAX_PEERS);
        let spec = GatewayStatusSpec {
            ready_gateway_configurations: Some(gateways),
            ready_peer_configurations: Some(peers),
        };
        let mut last = self.last.lock().await;
        if last.as_ref() == Some(&spec) {
            return Ok(false);
        }
        let mut object = GatewayStatus::new(&self.name, spec.clone());
        // Owned by the Node so it goes with it; a node unknown to the API
        // (bare metal, tests) just gets no owner.
        if let Ok(node) = self.nodes.get(&self.name).await {
            object.metadata.owner_references = Some(vec![OwnerReference {
                api_version: Node::api_version(&()).into_owned(),
                kind: Node::kind(&()).into_owned(),
                name: node.name_any(),
                uid: node.uid().unwrap_or_default(),
                ..OwnerReference::default()
            }]);
        }
        let mut body = serde_json::to_value(&object).map_err(|e| Error::Api {
            action: "encode GatewayStatus".into(),
            source: kube::Error::SerdeError(e),
        })?;
        if let Some(m) = body.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            m.remove("creationTimestamp");
        }
        self.api
            .patch(
                &self.name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(body),
            )
            .await
            .map_err(|source| Error::Api {
                action: format!("apply GatewayStatus {}", self.name),
                source,
            })?;
        *last = Some(spec);
        Ok(true)
    }
}
