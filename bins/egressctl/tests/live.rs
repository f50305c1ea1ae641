//! `egressctl status` and `egressctl explain pod` against a real
//! kube-apiserver holding real objects: configurations with status, pods
//! opted in by annotation and by their namespace's default, PodEndpoints.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines,
    clippy::needless_pass_by_value
)]

use std::process::Command;
use std::time::Duration;

use egress_testkit::apiserver::ApiServer;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const ANNOTATION: &str = "kubernetes.azure.com/static-gateway-configuration";

fn egressctl(api: &ApiServer, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_egressctl"))
        .args(args)
        .env("KUBECONFIG", api.kubeconfig_path())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn erased(kind: &str) -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "egressgateway.kubernetes.azure.com",
        "v1alpha1",
        kind,
    ))
}

async fn create(client: &Client, ns: &str, kind: &str, body: Value, status: Option<Value>) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &erased(kind));
    let obj: DynamicObject = serde_json::from_value(body).unwrap();
    let name = obj.name_any();
    api.create(&PostParams::default(), &obj).await.unwrap();
    if let Some(status) = status {
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .unwrap();
    }
}

fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": "2026-01-01T00:00:00Z"})
}

fn sgc(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "egressgateway.kubernetes.azure.com/v1alpha1",
        "kind": "StaticGatewayConfiguration", "metadata": {"name": name}, "spec": spec})
}

fn server(port: u16) -> Value {
    json!({"ip": "192.0.2.100", "port": port,
        "publicKey": "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd28=",
        "privateKeySecretRef": {"namespace": "kube-egress-gateway-system", "name": format!("sgw-{port}")}})
}

async fn pod(client: &Client, ns: &str, name: &str, annotation: Option<&str>, ip: &str) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut meta = json!({"name": name});
    if let Some(a) = annotation {
        meta["annotations"] = json!({ ANNOTATION: a });
    }
    let p: Pod = serde_json::from_value(json!({
        "metadata": meta,
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &p).await.unwrap();
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"podIP": ip, "podIPs": [{"ip": ip}]}})),
    )
    .await
    .unwrap();
}

/// The cluster of the tests: namespace `apps` defaults to `gw-a`; `db`
/// has no default.
async fn populate(client: &Client) {
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
    let nss: Api<Namespace> = Api::all(client.clone());
    for (ns, default) in [("apps", Some("gw-a")), ("db", None)] {
        let mut meta = json!({"name": ns});
        if let Some(d) = default {
            meta["annotations"] = json!({ ANNOTATION: d });
        }
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({ "metadata": meta })).unwrap(),
        )
        .await
        .unwrap();
    }
    create(
        client,
        "apps",
        "StaticGatewayConfiguration",
        sgc(
            "gw-a",
            json!({"gatewayNodepoolName": "gwpool", "excludeCidrs": ["10.0.0.0/8"]}),
        ),
        Some(
            json!({"egressIpPrefix": "203.0.113.16/28", "gatewayServerProfile": server(6000),
            "conditions": [condition("Ready", "True", "Ready", "serving")]}),
        ),
    )
    .await;
    create(
        client,
        "apps",
        "StaticGatewayConfiguration",
        sgc(
            "gw-byo",
            json!({"gatewayNodepoolName": "gwpool", "defaultRoute": "azureNetworking",
            "publicIpPrefixId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/publicIPPrefixes/mine"}),
        ),
        Some(json!({"conditions": [condition("Ready", "False", "Provisioning", "waiting for the load balancer")]})),
    )
    .await;
    create(
        client,
        "db",
        "StaticGatewayConfiguration",
        sgc(
            "gw-priv",
            json!({"gatewayVmssProfile": {"vmssResourceGroup": "rg", "vmssName": "gwvmss"},
            "provisionPublicIps": false}),
        ),
        Some(json!({"egressIpPrefix": "10.1.0.5,10.1.0.6", "gatewayServerProfile": server(6001),
            "conditions": [condition("Ready", "True", "Ready", "serving"),
                condition("Degraded", "True", "InvalidSpec", "spec.excludeCidrs[0] is not applied")]})),
    )
    .await;
    pod(client, "apps", "web", None, "10.244.0.5").await;
    pod(client, "apps", "api", Some("gw-byo"), "10.244.0.6").await;
    pod(client, "apps", "plain", Some(""), "10.244.0.7").await;
    pod(client, "db", "pg", Some("gw-priv"), "10.244.0.8").await;
    pod(client, "db", "lost", Some("gone"), "10.244.0.9").await;
    pod(client, "db", "bare", None, "10.244.0.10").await;
    create(
        client,
        "apps",
        "PodEndpoint",
        json!({"apiVersion": "egressgateway.kubernetes.azure.com/v1alpha1", "kind": "PodEndpoint",
            "metadata": {"name": "web"},
            "spec": {"staticGatewayConfiguration": "gw-a", "podIpAddress": "10.244.0.5/32",
                "podPublicKey": "cG9kIGtleSBwb2Qga2V5IHBvZCBrZXkgcG9kIGtleSA="}}),
        Some(
            json!({"egressIpPrefix": "203.0.113.16/28", "gatewayEndpoint": "192.0.2.100:6000",
            "defaultRoute": "staticEgressGateway"}),
        ),
    )
    .await;
}

fn cluster() -> (tokio::runtime::Runtime, ApiServer) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(ApiServer::start()).unwrap();
    let client = rt.block_on(api.client()).unwrap();
    rt.block_on(populate(&client));
    (rt, api)
}

#[test]
fn status_and_explain_pod_read_the_live_objects() {
    let (_rt, api) = cluster();

    // status, as a table.
    let (ok, out, err) = egressctl(&api, &["status"]);
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let squash = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        squash(lines[0]),
        "NAMESPACE NAME POOL MODE EGRESS READY PODS",
        "{out}"
    );
    assert_eq!(
        squash(lines[1]),
        "apps gw-a nodepool gwpool public (managed prefix) 203.0.113.16/28 Ready 1",
        "{out}"
    );
    assert_eq!(
        lines[2],
        "    pod apps/web (namespace default) on node-1 ip 10.244.0.5, PodEndpoint 10.244.0.5/32 egress 203.0.113.16/28 via 192.0.2.100:6000",
        "{out}"
    );
    assert_eq!(
        squash(lines[3]),
        "apps gw-byo nodepool gwpool public (BYO prefix) - NotReady (Provisioning) 1",
        "{out}"
    );
    assert_eq!(lines[4], "    waiting for the load balancer", "{out}");
    assert_eq!(
        lines[5], "    pod apps/api (annotation) on node-1 ip 10.244.0.6, no PodEndpoint yet",
        "{out}"
    );
    assert_eq!(
        squash(lines[6]),
        "db gw-priv vmss rg/gwvmss private 10.1.0.5,10.1.0.6 Degraded (InvalidSpec) 1",
        "{out}"
    );
    assert_eq!(lines[7], "    spec.excludeCidrs[0] is not applied", "{out}");
    assert_eq!(
        lines[8], "    pod db/pg (annotation) on node-1 ip 10.244.0.8, no PodEndpoint yet",
        "{out}"
    );
    assert_eq!(
        lines[9],
        "pod db/lost (annotation) on node-1 ip 10.244.0.9, no PodEndpoint yet names gone, which does not exist in db: it keeps its normal path",
        "{out}"
    );
    assert_eq!(lines.len(), 10, "{out}");
    assert!(!out.contains("plain") && !out.contains("bare"), "{out}");

    // status, as JSON.
    let (ok, out, err) = egressctl(&api, &["status", "-o", "json"]);
    assert!(ok, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let configs = v["configurations"].as_array().unwrap();
    assert_eq!(configs.len(), 3);
    assert_eq!(configs[0]["name"], "gw-a");
    assert_eq!(configs[0]["mode"], "publicManagedPrefix");
    assert_eq!(configs[0]["egress"], "203.0.113.16/28");
    assert_eq!(configs[0]["gateway"], "192.0.2.100:6000");
    assert_eq!(configs[0]["readiness"]["state"], "Ready");
    assert_eq!(configs[0]["pods"][0]["name"], "web");
    assert_eq!(
        configs[0]["pods"][0]["endpoint"]["egressIpPrefix"],
        "203.0.113.16/28"
    );
    assert_eq!(configs[1]["mode"], "publicByoPrefix");
    assert_eq!(configs[1]["readiness"]["reason"], "Provisioning");
    assert_eq!(configs[2]["mode"], "private");
    assert_eq!(configs[2]["pool"], "vmss rg/gwvmss");
    assert_eq!(v["dangling"][0][0], "gone");

    // explain pod: the namespace default's configuration, tunnelled.
    let (ok, out, err) = egressctl(&api, &["explain", "pod", "apps/web", "198.51.100.7"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("configuration apps/gw-a (by namespace default)"),
        "{out}"
    );
    assert!(
        out.contains("PodEndpoint apps/web records 10.244.0.5/32"),
        "{out}"
    );
    assert!(
        out.contains("198.51.100.7 -> tunnel (egress gateway), by the default route"),
        "{out}"
    );
    assert!(
        out.contains("egress address: 203.0.113.16/28 (the configuration's egressIpPrefix)"),
        "{out}"
    );

    // An excluded destination, with the node's exception and the pod's
    // primary gateway: the routes the agent installs.
    let (ok, out, err) = egressctl(
        &api,
        &[
            "explain",
            "pod",
            "apps/web",
            "10.1.2.3",
            "--primary-gateway",
            "10.244.0.1",
            "--node-exception",
            "169.254.169.254/32",
        ],
    );
    assert!(ok, "{err}");
    for route in [
        "  10.244.0.1/32 dev eth0 scope link",
        "  0.0.0.0/0 via fe80::1 dev wg0",
        "  10.0.0.0/8 via 10.244.0.1 dev eth0",
        "  169.254.169.254/32 via 10.244.0.1 dev eth0",
    ] {
        assert!(out.contains(&format!("{route}\n")), "{route}\n{out}");
    }
    assert!(
        out.contains("10.1.2.3 -> primary interface, by excludeCidrs entry 10.0.0.0/8"),
        "{out}"
    );
    assert!(
        out.contains("egress address: the node's own address (the pod's normal path)"),
        "{out}"
    );

    // A configuration without an endpoint yet, an opted-out pod, one naming
    // a configuration that does not exist.
    let (ok, out, _) = egressctl(&api, &["explain", "pod", "apps/api", "198.51.100.7"]);
    assert!(ok);
    assert!(out.contains("not ready"), "{out}");
    assert!(out.contains("198.51.100.7 -> primary interface"), "{out}");
    let (ok, out, _) = egressctl(&api, &["explain", "pod", "apps/plain", "198.51.100.7"]);
    assert!(ok);
    assert!(out.contains("uses no gateway"), "{out}");
    let (ok, out, _) = egressctl(&api, &["explain", "pod", "db/lost", "198.51.100.7"]);
    assert!(ok);
    assert!(
        out.contains("StaticGatewayConfiguration db/gone does not exist"),
        "{out}"
    );

    // Bad input is named.
    let (ok, _, err) = egressctl(&api, &["explain", "pod", "apps/nobody", "198.51.100.7"]);
    assert!(!ok);
    assert!(err.contains("pod apps/nobody not found"), "{err}");
    let (ok, _, err) = egressctl(&api, &["explain", "pod", "web", "198.51.100.7"]);
    assert!(!ok);
    assert!(
        err.contains("pod \"web\" is not <namespace>/<name>"),
        "{err}"
    );
    let (ok, _, err) = egressctl(&api, &["explain", "pod", "apps/web", "nowhere"]);
    assert!(!ok);
    assert!(
        err.contains("destination \"nowhere\" is not an IP address"),
        "{err}"
    );
}
