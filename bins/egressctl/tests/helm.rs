//! The Helm chart `deploy/helm/egress-gateway`: `helm lint --strict`, and
//! `helm template` with the default values and with a non-default set
//! (`ci/private-closed-values.yaml`) sent to a real `kube-apiserver`. The CRDs
//! are installed for real first, then every other document is applied with
//! a server-side dry run and must be accepted. The non-default set is then
//! applied for real and checked: each component's service account may do
//! what its binary does and no more (a `SubjectAccessReview`), the admission
//! policy keeps a node agent to its own node's PodEndpoints, and the
//! controller's Secret holds a cloud configuration the controller accepts.
//! `deploy/agent` must equal the chart's agent RBAC and policy.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use egress_testkit::apiserver::ApiServer;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Node, Secret, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use kube::discovery::ApiResource;
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use serde::Deserialize as _;
use serde_json::{Value, json};

/// account, verb, (group, resource[/subresource]), namespace, name, allowed.
type Row<'a> = (
    &'a str,
    &'a str,
    (&'a str, &'a str),
    Option<&'a str>,
    Option<&'a str>,
    bool,
);

const GROUP: &str = "egressgateway.kubernetes.azure.com";
const NODE_LABEL: &str = "egressgateway.kubernetes.azure.com/node";

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/egress-gateway")
}

fn helm(args: &[&str]) -> (bool, String, String) {
    let bin = egress_testkit::tools::helm();
    let out = Command::new(&bin).args(args).output().unwrap_or_else(|e| {
        panic!(
            "running {} (scripts/setup.sh builds it): {e}",
            bin.display()
        )
    });
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The documents of a YAML stream, as JSON, without empty ones.
fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| serde_json::to_value(serde_yaml::Value::deserialize(doc).unwrap()).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// `helm template` of the chart in `namespace`, with an optional values file.
fn render(namespace: &str, values: Option<&str>) -> Vec<Value> {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let mut args = vec!["template", "egress", chart, "--namespace", namespace];
    if let Some(v) = values {
        args.extend(["--values", v]);
    }
    let (ok, out, err) = helm(&args);
    assert!(ok, "helm template failed: {err}");
    documents(&out)
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap()
}

fn find<'a>(docs: &'a [Value], k: &str, n: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind(d) == k && name(d) == n)
        .unwrap_or_else(|| panic!("the chart renders no {k} {n}"))
}

fn resource(doc: &Value) -> ApiResource {
    let api_version = doc["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let k = kind(doc);
    let plural = match k {
        "ValidatingAdmissionPolicy" => "validatingadmissionpolicies".to_string(),
        other => format!("{}s", other.to_lowercase()),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, k), &plural)
}

/// Server-side applies `doc`; with `dry_run` the API server validates and
/// admits it without storing it.
async fn apply(client: &Client, doc: &Value, dry_run: bool) -> Result<DynamicObject, kube::Error> {
    let ar = resource(doc);
    let api: Api<DynamicObject> = match doc["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    let mut params = PatchParams::apply("helm-chart-test").force();
    params.dry_run = dry_run;
    api.patch(name(doc), &params, &Patch::Apply(doc)).await
}

async fn create_namespace(client: &Client, ns: &str) {
    let mut n = Namespace::default();
    n.metadata.name = Some(ns.into());
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &n)
        .await
        .unwrap();
}

/// Whether `account` in `ns` may `verb` the resource, per the API server's
/// own authorizer.
async fn may(
    client: &Client,
    ns: &str,
    account: &str,
    verb: &str,
    resource: (&str, &str),
    namespace: Option<&str>,
    name: Option<&str>,
) -> bool {
    let (group, res) = resource;
    let (res, sub) = res
        .split_once('/')
        .map_or((res, None), |(r, s)| (r, Some(s)));
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(format!("system:serviceaccount:{ns}:{account}")),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                group: Some(group.into()),
                resource: Some(res.into()),
                subresource: sub.map(Into::into),
                verb: Some(verb.into()),
                namespace: namespace.map(Into::into),
                name: name.map(Into::into),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    answer.status.unwrap().allowed
}

/// A client holding `account`'s token bound to `node`, as a pod's projected
/// token on that node is: the API server adds the node's name to the user
/// info the admission policy reads.
async fn node_bound_client(
    api: &ApiServer,
    admin: &Client,
    ns: &str,
    account: &str,
    node: &str,
) -> Client {
    let n = Api::<Node>::all(admin.clone()).get(node).await.unwrap();
    let req = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(3600),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.into()),
                uid: n.uid(),
            }),
        },
        ..TokenRequest::default()
    };
    let answer: TokenRequest = Api::<ServiceAccount>::namespaced(admin.clone(), ns)
        .create_subresource("token", account, &PostParams::default(), &req)
        .await
        .unwrap();
    let kubeconfig = kube::config::Kubeconfig::read_from(api.kubeconfig_path()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.auth_info = kube::config::AuthInfo {
        token: Some(answer.status.unwrap().token.into()),
        ..kube::config::AuthInfo::default()
    };
    Client::try_from(config).unwrap()
}

fn endpoint(name: &str, node: &str) -> Value {
    json!({
        "apiVersion": format!("{GROUP}/v1alpha1"),
        "kind": "PodEndpoint",
        "metadata": {"name": name, "namespace": "apps", "labels": {NODE_LABEL: node}},
        "spec": {
            "staticGatewayConfiguration": "egress",
            "podIpAddress": "10.244.1.5/32",
            "podPublicKey": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        },
    })
}

fn is_denied(r: &Result<DynamicObject, kube::Error>) -> bool {
    matches!(r, Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422)
}

fn container<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let spec = &doc["spec"]["template"]["spec"];
    spec["containers"]
        .as_array()
        .into_iter()
        .chain(spec["initContainers"].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn args(c: &Value) -> Vec<&str> {
    c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect()
}

#[test]
fn chart_lints_strictly_with_both_value_sets() {
    let chart = chart();
    let values = chart.join("ci/private-closed-values.yaml");
    for extra in [vec![], vec!["--values", values.to_str().unwrap()]] {
        let mut a = vec!["lint", "--strict", chart.to_str().unwrap()];
        a.extend(extra);
        let (ok, out, err) = helm(&a);
        assert!(ok, "helm lint: {out}{err}");
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
}

#[test]
fn bad_values_are_refused_by_name() {
    let chart = chart();
    let chart = chart.to_str().unwrap();
    let (ok, _, err) = helm(&[
        "template",
        "x",
        chart,
        "--set",
        "gatewayCNIManager.failureMode=ajar",
    ]);
    assert!(!ok);
    assert!(
        err.contains("gatewayCNIManager.failureMode must be open or closed, not \"ajar\""),
        "{err}"
    );
    let (ok, _, err) = helm(&[
        "template",
        "x",
        chart,
        "--set",
        "gatewayDaemonManager.terminationGracePeriodSeconds=5",
    ]);
    assert!(!ok);
    assert!(
        err.contains(
            "terminationGracePeriodSeconds (5) must be longer than lbProbeDrainDelaySeconds (10)"
        ),
        "{err}"
    );
}

/// deploy/agent (applied on its own by the agent's tests and by users who do
/// not use Helm) is the chart's agent RBAC and policy, rendered in the
/// upstream namespace, without the chart's labels.
#[test]
fn deploy_agent_equals_the_chart() {
    let docs = render("kube-egress-gateway-system", None);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/agent");
    let mut compared = 0;
    for file in ["rbac.yaml", "podendpoint-policy.yaml"] {
        for expected in documents(&std::fs::read_to_string(dir.join(file)).unwrap()) {
            let mut rendered = find(&docs, kind(&expected), name(&expected)).clone();
            rendered["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("labels");
            assert_eq!(
                rendered,
                expected,
                "deploy/agent/{file}: {} {} differs from the chart's",
                kind(&expected),
                name(&expected)
            );
            compared += 1;
        }
    }
    assert_eq!(
        compared, 5,
        "ServiceAccount, ClusterRole, binding, policy, policy binding"
    );
}

#[test]
fn chart_is_accepted_by_a_real_api_server_and_grants_least_privilege() {
    let values = chart().join("ci/private-closed-values.yaml");
    let values = values.to_str().unwrap();
    let default_docs = render("kube-egress-gateway-system", None);
    let private_docs = render("egress-system", Some(values));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let api = ApiServer::start().await.unwrap();
        let admin = api.client().await.unwrap();

        // The chart's CRDs, for real (Helm installs crds/ before templates).
        let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
        let mut installed = 0;
        for entry in std::fs::read_dir(chart().join("crds")).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            for doc in documents(&text) {
                apply(&admin, &doc, false).await.unwrap();
                tokio::time::timeout(
                    Duration::from_secs(30),
                    await_condition(crds.clone(), name(&doc), conditions::is_crd_established()),
                )
                .await
                .unwrap()
                .unwrap();
                installed += 1;
            }
        }
        assert_eq!(installed, 5);

        // Every other document, both value sets: a server-side dry run.
        for ns in ["kube-egress-gateway-system", "egress-system", "apps"] {
            create_namespace(&admin, ns).await;
        }
        for (set, docs) in [
            ("default", &default_docs),
            ("private-closed", &private_docs),
        ] {
            let mut kinds = BTreeMap::<String, usize>::new();
            for doc in docs {
                if let Err(e) = apply(&admin, doc, true).await {
                    panic!(
                        "{set} values: the API server refused {} {}: {e}",
                        kind(doc),
                        name(doc)
                    );
                }
                *kinds.entry(kind(doc).to_string()).or_default() += 1;
            }
            let expected: BTreeMap<String, usize> = [
                ("ClusterRole", 3),
                ("ClusterRoleBinding", 3),
                ("DaemonSet", 2),
                ("Deployment", 1),
                ("Role", 2),
                ("RoleBinding", 2),
                ("Secret", 1),
                ("ServiceAccount", 3),
                ("ValidatingAdmissionPolicy", 1),
                ("ValidatingAdmissionPolicyBinding", 1),
            ]
            .into_iter()
            .map(|(k, n)| (k.to_string(), n))
            .collect();
            assert_eq!(kinds, expected, "{set} values render these kinds");
        }

        // The non-default set, for real.
        for doc in &private_docs {
            apply(&admin, doc, false).await.unwrap();
        }
        let ns = "egress-system";

        // Each workload's pod template, as a Pod, passes pod admission
        // (priority class, pod security, schema), for both value sets.
        let mut pods = 0;
        for (docs, pod_ns) in [
            (&default_docs, "kube-egress-gateway-system"),
            (&private_docs, ns),
        ] {
            for doc in docs
                .iter()
                .filter(|d| matches!(kind(d), "Deployment" | "DaemonSet"))
            {
                let pod = json!({
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": {
                        "name": format!("{}-pod", name(doc)),
                        "namespace": pod_ns,
                        "labels": doc["spec"]["template"]["metadata"]["labels"],
                    },
                    "spec": doc["spec"]["template"]["spec"],
                });
                if let Err(e) = apply(&admin, &pod, true).await {
                    panic!("a pod of {} {} is refused: {e}", kind(doc), name(doc));
                }
                pods += 1;
            }
        }
        assert_eq!(pods, 6);

        // What the objects say.
        let agent = find(&private_docs, "DaemonSet", "egress-node-agent");
        let agent_args = args(container(agent, "node-agent"));
        assert!(
            agent_args.contains(&"--failure-mode=closed"),
            "{agent_args:?}"
        );
        assert!(
            agent_args.contains(&"--exception-cidrs=169.254.169.254/32,10.244.0.0/16,10.96.0.0/12"),
            "{agent_args:?}"
        );
        assert_eq!(
            container(agent, "node-agent")["lifecycle"]["preStop"]["exec"]["command"],
            json!([
                "/egress-node-agent",
                "--cni-conf-dir=/etc/cni/net.d",
                "--cni-conf-file=00-egress-gateway.conflist",
                "--backup-dir=/var/lib/egress-gateway/cni-backup",
                "uninstall"
            ])
        );
        assert_eq!(
            container(agent, "install-cni-plugin")["image"],
            "registry.example/cni/egress-cni:v9.9.9"
        );
        assert_eq!(
            container(agent, "node-agent")["image"],
            "registry.example/egress/egress-node-agent:v9.9.9"
        );
        assert_eq!(
            agent["spec"]["template"]["spec"]["imagePullSecrets"],
            json!([{"name": "registry-example"}])
        );
        let volumes: Vec<&str> = agent["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["hostPath"]["path"].as_str().unwrap())
            .collect();
        for path in [
            "/opt/cni/bin",
            "/etc/cni/net.d",
            "/run/egress-gateway/cni",
            "/var/lib/egress-gateway/cni-backup",
            "/var/run/netns",
        ] {
            assert!(
                volumes.contains(&path),
                "{path} is not mounted: {volumes:?}"
            );
        }
        let default_agent = find(&default_docs, "DaemonSet", "egress-node-agent");
        assert!(args(container(default_agent, "node-agent")).contains(&"--failure-mode=open"));
        assert!(
            container(default_agent, "node-agent")
                .get("lifecycle")
                .is_none(),
            "by default a rolling update keeps the CNI chain"
        );

        let daemon = find(&private_docs, "DaemonSet", "egress-gateway-daemon");
        let pod = &daemon["spec"]["template"]["spec"];
        assert_eq!(pod["hostNetwork"], true);
        assert_eq!(
            pod["nodeSelector"],
            json!({"kubeegressgateway.azure.com/mode": "true"})
        );
        assert_eq!(
            pod["tolerations"],
            json!([{"key": "kubeegressgateway.azure.com/mode",
            "operator": "Equal", "value": "true", "effect": "NoSchedule"}])
        );
        let d = container(daemon, "gateway-daemon");
        assert_eq!(d["securityContext"]["privileged"], true);
        assert_eq!(
            d["image"],
            "registry.example/egress/egress-gateway-daemon:v9.9.10"
        );
        assert!(args(d).contains(&"--gateway-lb-probe-port=8090"));
        assert!(args(d).contains(&"--verify-pod-endpoints=false"));
        assert!(
            args(container(
                find(&default_docs, "DaemonSet", "egress-gateway-daemon"),
                "gateway-daemon"
            ))
            .contains(&"--verify-pod-endpoints=true")
        );

        let controller = find(&private_docs, "Deployment", "egress-controller");
        assert_eq!(controller["spec"]["replicas"], 2);
        let c = args(container(controller, "controller"));
        for flag in [
            "--leader-elect=true",
            "--gateway-lb-probe-port=8090",
            "--arm-endpoint=https://arm.internal.example",
            "--cloud-config=/azure/config/azure-cloud-config.json",
        ] {
            assert!(c.contains(&flag), "{flag} not in {c:?}");
        }

        // The Secret holds what the controller reads, spelled as upstream's.
        let secret = Api::<Secret>::namespaced(admin.clone(), ns)
            .get("kube-egress-gateway-azure-cloud-config")
            .await
            .unwrap();
        let text = secret.data.unwrap()["azure-cloud-config.json"].0.clone();
        let config: Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(
            config["subscriptionId"],
            "00000000-0000-0000-0000-000000000002"
        );
        assert_eq!(config["useManagedIdentityExtension"], true);
        assert_eq!(config["loadBalancerResourceGroup"], "rg-egress");
        assert!(
            config.get("aadClientSecret").is_none(),
            "empty fields are left out: {config}"
        );
        let parsed =
            egress_azure::config::CloudConfig::from_json(std::str::from_utf8(&text).unwrap())
                .unwrap_or_else(|e| {
                    panic!("the controller would refuse its cloud configuration: {e}")
                });
        assert_eq!(
            parsed.subscription_id,
            "00000000-0000-0000-0000-000000000002"
        );

        // Least privilege, asked of the API server's authorizer. Each row:
        // account, verb, (group, resource[/subresource]), namespace, name, allowed.
        let lease = "0a299682.microsoft.com";
        let table: &[Row<'_>] = &[
            // The controller: its own namespace's Secrets and Lease, the
            // configuration chain, status, events.
            (
                "egress-controller",
                "create",
                ("", "secrets"),
                Some(ns),
                None,
                true,
            ),
            (
                "egress-controller",
                "delete",
                ("", "secrets"),
                Some(ns),
                None,
                true,
            ),
            (
                "egress-controller",
                "get",
                ("", "secrets"),
                Some("default"),
                None,
                false,
            ),
            (
                "egress-controller",
                "list",
                ("", "secrets"),
                None,
                None,
                false,
            ),
            (
                "egress-controller",
                "update",
                ("coordination.k8s.io", "leases"),
                Some(ns),
                Some(lease),
                true,
            ),
            (
                "egress-controller",
                "update",
                ("coordination.k8s.io", "leases"),
                Some(ns),
                Some("other"),
                false,
            ),
            (
                "egress-controller",
                "patch",
                (GROUP, "staticgatewayconfigurations"),
                Some("apps"),
                None,
                true,
            ),
            (
                "egress-controller",
                "patch",
                (GROUP, "staticgatewayconfigurations/status"),
                Some("apps"),
                None,
                true,
            ),
            (
                "egress-controller",
                "delete",
                (GROUP, "staticgatewayconfigurations"),
                Some("apps"),
                None,
                false,
            ),
            (
                "egress-controller",
                "create",
                (GROUP, "gatewaylbconfigurations"),
                Some("apps"),
                None,
                true,
            ),
            (
                "egress-controller",
                "delete",
                (GROUP, "gatewayvmconfigurations"),
                Some("apps"),
                None,
                true,
            ),
            (
                "egress-controller",
                "create",
                (GROUP, "podendpoints"),
                Some("apps"),
                None,
                false,
            ),
            (
                "egress-controller",
                "watch",
                ("", "nodes"),
                None,
                None,
                true,
            ),
            (
                "egress-controller",
                "patch",
                ("", "nodes"),
                None,
                None,
                false,
            ),
            (
                "egress-controller",
                "create",
                ("events.k8s.io", "events"),
                Some("apps"),
                None,
                true,
            ),
            // The gateway daemon: watches, and its own GatewayStatus.
            (
                "egress-gateway-daemon",
                "watch",
                ("", "secrets"),
                Some(ns),
                None,
                true,
            ),
            (
                "egress-gateway-daemon",
                "get",
                ("", "secrets"),
                Some(ns),
                None,
                false,
            ),
            (
                "egress-gateway-daemon",
                "watch",
                (GROUP, "podendpoints"),
                None,
                None,
                true,
            ),
            (
                "egress-gateway-daemon",
                "create",
                (GROUP, "podendpoints"),
                Some("apps"),
                None,
                false,
            ),
            (
                "egress-gateway-daemon",
                "patch",
                (GROUP, "gatewaystatuses"),
                Some(ns),
                None,
                true,
            ),
            (
                "egress-gateway-daemon",
                "patch",
                (GROUP, "gatewaystatuses"),
                Some("apps"),
                None,
                false,
            ),
            (
                "egress-gateway-daemon",
                "patch",
                (GROUP, "staticgatewayconfigurations/status"),
                Some("apps"),
                None,
                false,
            ),
            (
                "egress-gateway-daemon",
                "get",
                ("", "pods"),
                Some("apps"),
                None,
                false,
            ),
            // The node agent: pods and PodEndpoints, never Secrets.
            (
                "egress-node-agent",
                "create",
                (GROUP, "podendpoints"),
                Some("apps"),
                None,
                true,
            ),
            (
                "egress-node-agent",
                "patch",
                (GROUP, "podendpoints/status"),
                Some("apps"),
                None,
                true,
            ),
            (
                "egress-node-agent",
                "get",
                ("", "secrets"),
                Some(ns),
                None,
                false,
            ),
            (
                // The agent watches SGCs (every resync is answered from the
                // watch), but never writes them.
                "egress-node-agent",
                "list",
                (GROUP, "staticgatewayconfigurations"),
                None,
                None,
                true,
            ),
            (
                "egress-node-agent",
                "patch",
                (GROUP, "staticgatewayconfigurations"),
                Some("apps"),
                None,
                false,
            ),
            ("egress-node-agent", "watch", ("", "pods"), None, None, true),
            (
                "egress-node-agent",
                "patch",
                ("", "nodes"),
                None,
                None,
                false,
            ),
        ];
        let mut wrong = Vec::new();
        for &(account, verb, res, namespace, obj, allowed) in table {
            if may(&admin, ns, account, verb, res, namespace, obj).await != allowed {
                wrong.push(format!(
                    "{account} {verb} {res:?} in {namespace:?} {obj:?}: expected allowed={allowed}"
                ));
            }
        }
        assert!(wrong.is_empty(), "RBAC differs:\n{}", wrong.join("\n"));

        // The admission policy, with tokens bound to nodes as a pod's are.
        for node in ["node-1", "node-2"] {
            let mut n = Node::default();
            n.metadata.name = Some(node.into());
            Api::<Node>::all(admin.clone())
                .create(&PostParams::default(), &n)
                .await
                .unwrap();
        }
        let one = node_bound_client(&api, &admin, ns, "egress-node-agent", "node-1").await;
        let two = node_bound_client(&api, &admin, ns, "egress-node-agent", "node-2").await;
        // A policy takes effect shortly after it is created.
        let start = Instant::now();
        loop {
            let r = apply(&two, &endpoint("probe", "node-1"), true).await;
            if is_denied(&r) {
                let Err(kube::Error::Api(s)) = r else {
                    unreachable!()
                };
                assert!(s.message.contains("node-2"), "{}", s.message);
                break;
            }
            r.unwrap();
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the policy never took effect"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Its own node's endpoint: created, status written.
        apply(&one, &endpoint("a", "node-1"), false).await.unwrap();
        let pe = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(GROUP, "v1alpha1", "PodEndpoint"),
            "podendpoints",
        );
        let as_one: Api<DynamicObject> = Api::namespaced_with(one.clone(), "apps", &pe);
        let as_two: Api<DynamicObject> = Api::namespaced_with(two.clone(), "apps", &pe);
        let status = Patch::Merge(json!({"status": {"gatewayEndpoint": "10.0.0.4:6000"}}));
        as_one
            .patch_status("a", &PatchParams::default(), &status)
            .await
            .unwrap();
        // Another node's: no create, no status write, no delete.
        assert!(is_denied(
            &apply(&two, &endpoint("b", "node-1"), false).await
        ));
        let r = as_two
            .patch_status("a", &PatchParams::default(), &status)
            .await;
        assert!(
            is_denied(&r),
            "node-2 wrote node-1's PodEndpoint status: {r:?}"
        );
        let r = as_two
            .delete("a", &kube::api::DeleteParams::default())
            .await
            .map(|_| ());
        assert!(
            matches!(&r, Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422),
            "{r:?}"
        );
    });
}
