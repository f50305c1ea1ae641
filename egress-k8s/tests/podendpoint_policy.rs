//! The admission policy of `deploy/agent/podendpoint-policy.yaml` in a real
//! kube-apiserver: a node agent's token bound to node-1 may write
//! PodEndpoints labelled node-1 only; a spoof from node-2 is denied, and so
//! is a token bound to no node.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines
)]

use std::collections::BTreeMap;
use std::time::Duration;

use egress_k8s::agent::NODE_LABEL;
use egress_k8s::crd::{PodEndpoint, PodEndpointSpec};
use egress_testkit::apiserver::ApiServer;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};

const SYSTEM: &str = "kube-egress-gateway-system";

async fn apply_file(client: &Client, path: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap();
        if value.is_null() {
            continue;
        }
        let obj: DynamicObject = serde_json::from_value(value.clone()).unwrap();
        let types = obj.types.clone().unwrap();
        let (group, version) = types
            .api_version
            .split_once('/')
            .unwrap_or(("", types.api_version.as_str()));
        let gvk = GroupVersionKind::gvk(group, version, &types.kind);
        let plural = format!("{}s", types.kind.to_lowercase()).replace("policys", "policies");
        let ar = ApiResource::from_gvk_with_plural(&gvk, &plural);
        let api: Api<DynamicObject> = match obj.metadata.namespace.as_deref() {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        api.patch(
            &obj.name_any(),
            &PatchParams::apply("test").force(),
            &Patch::Apply(&value),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {} {}: {e}", types.kind, obj.name_any()));
    }
}

use serde::Deserialize as _;

async fn token_client(api: &ApiServer, admin: &Client, node: Option<&str>) -> Client {
    let mut spec = TokenRequestSpec {
        audiences: Vec::new(),
        expiration_seconds: Some(3600),
        ..TokenRequestSpec::default()
    };
    if let Some(node) = node {
        let n = Api::<Node>::all(admin.clone()).get(node).await.unwrap();
        spec.bound_object_ref = Some(BoundObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.into()),
            uid: n.uid(),
        });
    }
    let req = TokenRequest {
        spec,
        ..TokenRequest::default()
    };
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), SYSTEM);
    let answer: TokenRequest = sas
        .create_subresource("token", "egress-node-agent", &PostParams::default(), &req)
        .await
        .unwrap();
    let token = answer.status.unwrap().token;
    let kubeconfig = kube::config::Kubeconfig::read_from(api.kubeconfig_path()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into()),
        ..kube::config::AuthInfo::default()
    };
    Client::try_from(config).unwrap()
}

fn endpoint(name: &str, node: &str) -> PodEndpoint {
    let mut pe = PodEndpoint::new(
        name,
        PodEndpointSpec {
            static_gateway_configuration: Some("egress".into()),
            pod_ip_address: Some("10.244.1.5/32".into()),
            pod_public_key: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
        },
    );
    pe.metadata.labels = Some(BTreeMap::from([(NODE_LABEL.to_string(), node.to_string())]));
    pe
}

fn denied(r: Result<PodEndpoint, kube::Error>) -> String {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => s.message,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn agents_write_podendpoints_only_for_their_own_node() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = ApiServer::start().await.unwrap();
        let admin = api.client().await.unwrap();
        let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
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
        for ns in [SYSTEM, "apps"] {
            let mut n = Namespace::default();
            n.metadata.name = Some(ns.into());
            Api::<Namespace>::all(admin.clone())
                .create(&PostParams::default(), &n)
                .await
                .unwrap();
        }
        for node in ["node-1", "node-2"] {
            let mut n = Node::default();
            n.metadata.name = Some(node.into());
            Api::<Node>::all(admin.clone())
                .create(&PostParams::default(), &n)
                .await
                .unwrap();
        }
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/agent");
        apply_file(&admin, &format!("{dir}/rbac.yaml")).await;
        apply_file(&admin, &format!("{dir}/podendpoint-policy.yaml")).await;
        let one = token_client(&api, &admin, Some("node-1")).await;
        let two = token_client(&api, &admin, Some("node-2")).await;
        let unbound = token_client(&api, &admin, None).await;
        let as_one: Api<PodEndpoint> = Api::namespaced(one, "apps");
        let as_two: Api<PodEndpoint> = Api::namespaced(two, "apps");
        let as_unbound: Api<PodEndpoint> = Api::namespaced(unbound, "apps");

        // The policy takes effect asynchronously after creation.
        let start = std::time::Instant::now();
        loop {
            match as_two
                .create(&PostParams::default(), &endpoint("probe", "node-1"))
                .await
            {
                Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => break,
                Ok(_) => {
                    Api::<PodEndpoint>::namespaced(admin.clone(), "apps")
                        .delete("probe", &DeleteParams::default())
                        .await
                        .unwrap();
                }
                Err(e) => panic!("{e}"),
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the policy never took effect"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Its own node: allowed, create and update.
        as_one
            .create(&PostParams::default(), &endpoint("a", "node-1"))
            .await
            .unwrap();
        let mut pe = as_one.get("a").await.unwrap();
        pe.spec.pod_ip_address = Some("10.244.1.6/32".into());
        as_one
            .replace("a", &PostParams::default(), &pe)
            .await
            .unwrap();

        // Node 2 writing an endpoint for node 1's pod, or relabelling it: denied.
        let msg = denied(
            as_two
                .create(&PostParams::default(), &endpoint("b", "node-1"))
                .await,
        );
        assert!(msg.contains("node-2"), "{msg}");
        let mut stolen = as_two.get("a").await.unwrap();
        stolen.metadata.labels = Some(BTreeMap::from([(
            NODE_LABEL.to_string(),
            "node-2".to_string(),
        )]));
        stolen.spec.pod_public_key = Some("BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=".into());
        denied(as_two.replace("a", &PostParams::default(), &stolen).await);
        match as_two.delete("a", &DeleteParams::default()).await {
            Err(kube::Error::Api(s)) => assert!(s.code == 403 || s.code == 422, "{s:?}"),
            other => panic!("node-2 deleted node-1's endpoint: {other:?}"),
        }
        // Unlabelled, or from a token bound to no node: denied.
        let mut bare = endpoint("c", "node-1");
        bare.metadata.labels = None;
        denied(as_one.create(&PostParams::default(), &bare).await);
        let msg = denied(
            as_unbound
                .create(&PostParams::default(), &endpoint("d", "node-1"))
                .await,
        );
        assert!(msg.contains("not bound to a node"), "{msg}");
        // Its own node may delete its own.
        as_one.delete("a", &DeleteParams::default()).await.unwrap();
    });
}
