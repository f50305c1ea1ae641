//! The gateway watch with pod checks, against a real kube-apiserver: an
//! endpoint matching its pod is taken; a forged one (no pod, another node,
//! another address) is rejected.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines
)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use egress_k8s::agent::{ANNOTATION, NODE_LABEL};
use egress_k8s::crd::{PodEndpoint, PodEndpointSpec};
use egress_k8s::gateway::{GatewayWatch, NodeIdentity};
use egress_testkit::apiserver::ApiServer;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, ResourceExt};
use serde_json::json;

fn endpoint(name: &str, node: &str, ip: &str) -> PodEndpoint {
    let mut pe = PodEndpoint::new(
        name,
        PodEndpointSpec {
            static_gateway_configuration: Some("egress".into()),
            pod_ip_address: Some(format!("{ip}/32")),
            pod_public_key: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
        },
    );
    pe.metadata.labels = Some(BTreeMap::from([(NODE_LABEL.to_string(), node.to_string())]));
    pe
}

#[test]
fn only_endpoints_of_real_opted_in_pods_are_taken() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = ApiServer::start().await.unwrap();
        let client = api.client().await.unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        for crd in egress_k8s::generate::crds() {
            let name = crd.name_any();
            crds.create(&PostParams::default(), &crd).await.unwrap();
            tokio::time::timeout(
                Duration::from_secs(30),
                await_condition(crds.clone(), &name, conditions::is_crd_established()),
            )
            .await
            .unwrap()
            .unwrap();
        }
        for ns in ["apps", "sys"] {
            let mut n = Namespace::default();
            n.metadata.name = Some(ns.into());
            Api::<Namespace>::all(client.clone())
                .create(&PostParams::default(), &n)
                .await
                .unwrap();
        }
        for (node, cidr) in [("node-1", "10.244.1.0/24"), ("node-2", "10.244.2.0/24")] {
            let n: Node = serde_json::from_value(json!({
                "metadata": {"name": node}, "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}
            }))
            .unwrap();
            Api::<Node>::all(client.clone())
                .create(&PostParams::default(), &n)
                .await
                .unwrap();
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), "apps");
        for (name, ip, annotated) in [("web", "10.244.1.5", true), ("plain", "10.244.1.6", false)] {
            let mut p: Pod = serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]}
            }))
            .unwrap();
            if annotated {
                p.metadata.annotations = Some(BTreeMap::from([(
                    ANNOTATION.to_string(),
                    "egress".to_string(),
                )]));
            }
            pods.create(&PostParams::default(), &p).await.unwrap();
            pods.patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"podIP": ip, "podIPs": [{"ip": ip}]}})),
            )
            .await
            .unwrap();
        }
        let eps: Api<PodEndpoint> = Api::namespaced(client.clone(), "apps");
        for pe in [
            endpoint("web", "node-1", "10.244.1.5"),
            endpoint("ghost", "node-1", "10.244.1.7"),
            endpoint("plain", "node-1", "10.244.1.6"),
        ] {
            eps.create(&PostParams::default(), &pe).await.unwrap();
        }
        let watch = GatewayWatch::start_with(&client, "sys", true);
        watch.ready().await.unwrap();
        let node = NodeIdentity::default();
        let start = Instant::now();
        let snap = loop {
            let snap = watch.snapshot(&node);
            if snap.endpoints.len() + snap.rejected.len() >= 3 {
                break snap;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{snap:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let taken: Vec<&str> = snap.endpoints.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(taken, ["web"], "{:?}", snap.rejected);
        let rejected = snap.rejected.join("\n");
        assert!(rejected.contains("apps/ghost: no such pod"), "{rejected}");
        assert!(
            rejected.contains("apps/plain: the pod did not opt in"),
            "{rejected}"
        );

        // Forged: the real pod's endpoint rewritten from another node, or
        // with another address.
        eps.replace("web", &PostParams::default(), &{
            let mut pe = eps.get("web").await.unwrap();
            pe.metadata.labels = Some(BTreeMap::from([(
                NODE_LABEL.to_string(),
                "node-2".to_string(),
            )]));
            pe
        })
        .await
        .unwrap();
        let start = Instant::now();
        loop {
            let snap = watch.snapshot(&node);
            if snap.endpoints.is_empty()
                && snap
                    .rejected
                    .iter()
                    .any(|r| r.contains("apps/web: written for node node-2"))
            {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{snap:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        eps.replace("web", &PostParams::default(), &{
            let mut pe = eps.get("web").await.unwrap();
            pe.metadata.labels = Some(BTreeMap::from([(
                NODE_LABEL.to_string(),
                "node-1".to_string(),
            )]));
            pe.spec.pod_ip_address = Some("10.244.1.99/32".into());
            pe
        })
        .await
        .unwrap();
        let start = Instant::now();
        loop {
            let snap = watch.snapshot(&node);
            if snap.endpoints.is_empty()
                && snap
                    .rejected
                    .iter()
                    .any(|r| r.contains("is not the pod's address"))
            {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{snap:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}
