//! The whole system, installed by its Helm chart on a local cluster of real
//! kubelets (two workers, two gateway nodes of one scale set), with the
//! fake Azure Resource Manager and Azure's edge simulated from its state:
//! the controller, gateway daemons, node agents and CNI plugin are the
//! project's binaries in an image, run by containerd in real pods.
//!
//! Checked by traffic at an "internet" echo host that answers with the
//! source it sees: five namespaces leave with five addresses (managed
//! prefixes, a BYO prefix, private mode); exclusions in both route modes;
//! live changes; deleting the configurations
//! leaves nothing in Azure, the API or the nodes; `helm uninstall` puts
//! every node's CNI configuration back byte for byte. Needs root and
//! `scripts/setup.sh`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::too_many_lines
)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use egress_e2e::stack::{Stack, StackOptions};
use egress_e2e::tenants::{ANNOTATION, Mode, pod_yaml, sgc_resource, within};
use egress_e2e::traffic::egress_of;
use egress_e2e::wait::eventually;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const WAIT: Duration = Duration::from_mins(2);

fn sgcs(stack: &Stack, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(stack.cluster.client(), ns, &sgc_resource())
}

/// Waits until the pod reaches `echo` from an address `ok` accepts.
async fn wait_egress(
    stack: &Stack,
    ns: &str,
    pod: &str,
    echo: SocketAddr,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> (String, Duration) {
    egress_e2e::tenants::wait_seen(stack, ns, pod, echo, ok)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}\n{}", stack.component_logs(20)))
}

async fn pod_ip(stack: &Stack, ns: &str, name: &str) -> String {
    egress_e2e::tenants::pod_ip(&stack.cluster.client(), ns, name)
        .await
        .unwrap()
}

async fn identity(stack: &Stack, ns: &str, name: &str) -> (String, i32) {
    egress_e2e::tenants::pod_identity(&stack.cluster.client(), ns, name)
        .await
        .unwrap()
}

async fn merge_patch<K>(api: &Api<K>, name: &str, patch: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chart_installed_system_gives_five_namespaces_five_addresses() {
    let started = Instant::now();
    let stack = Stack::start(
        StackOptions {
            byo_prefixes: vec!["partners-prefix".into()],
            ..StackOptions::default()
        },
        &mut |step, took| eprintln!("[{took:>8.1?}] {step}"),
    )
    .await
    .unwrap();
    let client = stack.cluster.client();
    let echo = stack.echo.addr;
    let other = stack.other_echo.addr;
    let worker = stack.workers[0].clone();
    let byo = stack.azure.byo_prefixes["partners-prefix"].clone();

    // Five namespaces, one configuration each, an opted-in pod in each.
    let tenants = [
        ("shop", Mode::Managed),
        ("billing", Mode::Managed),
        ("search", Mode::Managed),
        ("partners", Mode::Byo(byo)),
        ("internal", Mode::Private),
    ];
    let seen = egress_e2e::tenants::create(&stack, &tenants, &worker)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.component_logs(30)));
    let mut addresses = BTreeMap::new();
    // Each gateway node has its own address in a configuration's prefix,
    // and the load balancer places each tunnel by its 5-tuple: a pod that
    // joins later may leave through the other node, with the other address.
    let mut prefixes = BTreeMap::new();
    for t in &seen {
        eprintln!(
            "{:>9} ({:?}): status {}, echo host sees {} ({:?} after the configurations were applied)",
            t.namespace, t.mode, t.status, t.seen, t.took
        );
        if t.mode == Mode::Private {
            assert!(
                t.seen.starts_with("10.0.16."),
                "private mode leaves with the gateway's private address, not {}",
                t.seen
            );
        } else {
            assert!(
                !t.seen.starts_with("10."),
                "{} leaves with a public address, not {}",
                t.namespace,
                t.seen
            );
        }
        addresses.insert(t.namespace.clone(), t.seen.clone());
        prefixes.insert(t.namespace.clone(), t.status.clone());
    }
    let distinct: BTreeSet<&String> = addresses.values().collect();
    assert_eq!(
        distinct.len(),
        5,
        "five namespaces, five addresses: {addresses:?}"
    );
    stack
        .cluster
        .apply(&pod_yaml("shop", "plain", &worker, false))
        .await
        .unwrap();
    stack
        .cluster
        .wait_pod_running("shop", "plain", WAIT)
        .await
        .unwrap();
    let plain_ip = pod_ip(&stack, "shop", "plain").await;
    assert_eq!(
        egress_of(&stack.cluster, "shop", "plain", echo)
            .await
            .unwrap(),
        plain_ip,
        "a pod that did not opt in keeps its own path"
    );

    // excludeCidrs, live, in both route modes. shop (default route through
    // the gateway) excludes the other echo host: it goes direct. billing
    // (azureNetworking) lists the echo host: only it goes through.
    let shop_app = identity(&stack, "shop", "app").await;
    let shop_ip = pod_ip(&stack, "shop", "app").await;
    assert_eq!(
        wait_egress(&stack, "shop", "app", other, "through the gateway", |s| s
            == addresses["shop"])
        .await
        .0,
        addresses["shop"]
    );
    merge_patch(
        &sgcs(&stack, "shop"),
        "egress",
        json!({"spec": {"excludeCidrs": [format!("{}/32", other.ip())]}}),
    )
    .await;
    let (_, took) = wait_egress(&stack, "shop", "app", other, "directly", |s| s == shop_ip).await;
    eprintln!("excludeCidrs change reached the running pod in {took:?}");
    assert_eq!(
        egress_of(&stack.cluster, "shop", "app", echo)
            .await
            .unwrap(),
        addresses["shop"]
    );
    let billing_ip = pod_ip(&stack, "billing", "app").await;
    merge_patch(
        &sgcs(&stack, "billing"),
        "egress",
        json!({"spec": {"defaultRoute": "azureNetworking", "excludeCidrs": [format!("{}/32", echo.ip())]}}),
    )
    .await;
    wait_egress(
        &stack,
        "billing",
        "app",
        other,
        "directly (azureNetworking)",
        |s| s == billing_ip,
    )
    .await;
    assert_eq!(
        egress_of(&stack.cluster, "billing", "app", echo)
            .await
            .unwrap(),
        addresses["billing"],
        "azureNetworking: the listed destination still goes through the gateway"
    );
    assert_eq!(
        identity(&stack, "shop", "app").await,
        shop_app,
        "no restart"
    );

    // Live opt-in: the annotation added to a running pod, and a namespace
    // default reaching a running pod.
    let plain = identity(&stack, "shop", "plain").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "shop");
    merge_patch(
        &pods,
        "plain",
        json!({"metadata": {"annotations": {ANNOTATION: "egress"}}}),
    )
    .await;
    let (_, took) = wait_egress(
        &stack,
        "shop",
        "plain",
        echo,
        "through shop's gateway",
        |s| within(&prefixes["shop"], s),
    )
    .await;
    eprintln!("annotation on a running pod took effect in {took:?}");
    assert_eq!(identity(&stack, "shop", "plain").await, plain, "no restart");
    stack
        .cluster
        .apply(&pod_yaml("search", "late", &worker, false))
        .await
        .unwrap();
    stack
        .cluster
        .wait_pod_running("search", "late", WAIT)
        .await
        .unwrap();
    let late_ip = pod_ip(&stack, "search", "late").await;
    assert_eq!(
        egress_of(&stack.cluster, "search", "late", echo)
            .await
            .unwrap(),
        late_ip
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    merge_patch(
        &namespaces,
        "search",
        json!({"metadata": {"annotations": {ANNOTATION: "egress"}}}),
    )
    .await;
    let (_, took) = wait_egress(
        &stack,
        "search",
        "late",
        echo,
        "by its namespace's default",
        |s| within(&prefixes["search"], s),
    )
    .await;
    eprintln!("namespace default reached a running pod in {took:?}");

    // Deleting every configuration leaves nothing: in Azure, in the API, on
    // the nodes; the pods fall back to their own path.
    for (ns, _) in &tenants {
        sgcs(&stack, ns)
            .delete("egress", &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually("the fake Azure to hold only its seeds", WAIT, || async {
        let left = stack.azure.arm.leftovers();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", stack.component_logs(30)));
    for (ns, _) in &tenants {
        let ip = pod_ip(&stack, ns, "app").await;
        wait_egress(&stack, ns, "app", echo, "directly", |s| s == ip).await;
        for plural in [
            "gatewaylbconfigurations",
            "gatewayvmconfigurations",
            "podendpoints",
            "staticgatewayconfigurations",
        ] {
            let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
                client.clone(),
                ns,
                &kube::api::ApiResource {
                    group: "egressgateway.kubernetes.azure.com".into(),
                    version: "v1alpha1".into(),
                    api_version: "egressgateway.kubernetes.azure.com/v1alpha1".into(),
                    kind: String::new(),
                    plural: plural.into(),
                },
            );
            let (left, _) = eventually(&format!("{ns}'s {plural} to go"), WAIT, || async {
                let l = api
                    .list(&ListParams::default())
                    .await
                    .map_err(|e| e.to_string())?;
                if l.items.is_empty() {
                    Ok(0)
                } else {
                    Err(l
                        .items
                        .iter()
                        .map(ResourceExt::name_any)
                        .collect::<Vec<_>>()
                        .join(","))
                }
            })
            .await
            .unwrap();
            assert_eq!(left, 0);
        }
    }
    for gw in stack.gateways.clone() {
        if !stack.cluster.node_running(&gw).unwrap() {
            continue;
        }
        let links = stack
            .cluster
            .exec_on_node(
                &gw,
                "sh",
                &[
                    "-c",
                    "ip netns exec ns-static-egress-gateway ip -o link 2>/dev/null || true",
                ],
            )
            .unwrap();
        assert!(!links.contains("wg"), "{gw} still has tunnels: {links}");
    }

    // helm uninstall (with the CNI uninstall switched on first, as the
    // chart's README says): every node's CNI configuration is as it was,
    // and pods still start.
    let mut values = egress_e2e::chart::local_values(&stack.azure);
    values["gatewayCNIManager"]["cniUninstall"] = json!(true);
    egress_e2e::chart::install(&stack.cluster, &values).unwrap();
    stack.wait_ready().await.unwrap();
    egress_e2e::chart::uninstall(&stack.cluster).unwrap();
    for node in stack.cluster.node_names() {
        if !stack.cluster.node_running(&node).unwrap() {
            continue;
        }
        let now = egress_e2e::stack::read_dir(&stack.cluster.cni_conf_dir(&node).unwrap()).unwrap();
        assert_eq!(
            now, stack.cni_before[&node],
            "{node}'s CNI configuration after uninstall"
        );
    }
    stack
        .cluster
        .apply(&pod_yaml("shop", "after", &worker, true))
        .await
        .unwrap();
    stack
        .cluster
        .wait_pod_running("shop", "after", WAIT)
        .await
        .unwrap();
    eprintln!("whole system test: {:?}", started.elapsed());
}
