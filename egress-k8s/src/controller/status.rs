//! Status up the chain, as upstream propagates it: the VM configuration's
//! egress addresses and gateway nodes, the LB configuration's frontend and
//! port, and the SGC's egress prefix and server profile.
//!
//! Each write is a JSON merge patch of the status subresource that carries
//! the complete value of every field it sets (absent values as `null`). That
//! is conflict-safe here: the controller is the only writer of these status
//! fields, only the leader writes, and a patch never depends on what it
//! overwrites. (Server-side apply would leave a field that an upstream
//! controller once owned in place when a value becomes absent.)

use egress_core::Error as CoreError;
use egress_core::model::{ConfigId, GatewayNode, GatewayStatus};
use kube::api::{Api, Patch};
use serde_json::{Value, json};

use super::cluster::{KubeCluster, kube_err};
use super::convert;
use crate::crd::{GatewayLBConfiguration, GatewayVMConfiguration, StaticGatewayConfiguration};

fn or_null<T: serde::Serialize>(v: Option<T>) -> Value {
    v.map_or(Value::Null, |v| json!(v))
}

impl KubeCluster {
    pub(super) async fn status_chain(
        &self,
        id: &ConfigId,
        status: &GatewayStatus,
        nodes: &[GatewayNode],
    ) -> Result<(), CoreError> {
        let op = "write_status";
        let egress = or_null(status.egress.as_ref().map(ToString::to_string));
        let vm = json!({"status": {
            "egressIpPrefix": egress,
            "gatewayVMProfiles": convert::vm_profiles(nodes),
        }});
        let lb = json!({"status": {
            "frontendIp": or_null(status.server.as_ref().map(|s| s.ip.to_string())),
            "serverPort": or_null(status.server.as_ref().map(|s| s.port)),
            "egressIpPrefix": egress,
        }});
        let server = status.server.as_ref().map(|s| {
            json!({
                "ip": s.ip.to_string(),
                "port": s.port,
                "publicKey": s.public_key,
                "privateKeySecretRef": {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "name": s.key_secret.name,
                    "namespace": s.key_secret.namespace,
                },
            })
        });
        // The UID guards against writing to a new object of the same name.
        let sgc = json!({"metadata": {"uid": id.uid}, "status": {
            "egressIpPrefix": egress,
            "gatewayServerProfile": or_null(server),
        }});
        // Bottom up, as upstream: whoever sees the SGC ready finds the
        // children's status already there.
        let params = Self::params();
        let vm_api: Api<GatewayVMConfiguration> =
            Api::namespaced(self.client.clone(), &id.namespace);
        self.count("write_status");
        vm_api
            .patch_status(&id.name, &params, &Patch::Merge(&vm))
            .await
            .map_err(kube_err(op, format!("GatewayVMConfiguration {id}")))?;
        let lb_api: Api<GatewayLBConfiguration> =
            Api::namespaced(self.client.clone(), &id.namespace);
        self.count("write_status");
        lb_api
            .patch_status(&id.name, &params, &Patch::Merge(&lb))
            .await
            .map_err(kube_err(op, format!("GatewayLBConfiguration {id}")))?;
        let sgc_api: Api<StaticGatewayConfiguration> =
            Api::namespaced(self.client.clone(), &id.namespace);
        self.count("write_status");
        sgc_api
            .patch_status(&id.name, &params, &Patch::Merge(&sgc))
            .await
            .map_err(kube_err(op, format!("StaticGatewayConfiguration {id}")))?;
        Ok(())
    }
}
