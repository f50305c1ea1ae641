//! CRDs against a real kube-apiserver and etcd (started by egress-testkit).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::time::Duration;

use egress_k8s::crd::StaticGatewayConfiguration;
use egress_testkit::apiserver::ApiServer;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn server_with_crds() -> Result<(ApiServer, kube::Client), Box<dyn std::error::Error>> {
    let server = ApiServer::start().await?;
    let client = server.client().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in egress_k8s::generate::crds() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        crds.create(&PostParams::default(), &crd).await?;
        tokio::time::timeout(
            Duration::from_secs(30),
            await_condition(crds.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .map_err(|_| format!("CRD {name} not Established within 30 s"))??;
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "egress"}}))?,
        )
        .await?;
    Ok((server, client))
}

fn sgc_api(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "egress",
        &ApiResource::erase::<StaticGatewayConfiguration>(&()),
    )
}

/// Creates an SGC from YAML text exactly as written (no Rust round trip).
async fn create_yaml(client: &kube::Client, yaml: &str) -> Result<DynamicObject, kube::Error> {
    let obj: DynamicObject =
        serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("bad test YAML: {e}\n{yaml}"));
    sgc_api(client).create(&PostParams::default(), &obj).await
}

#[tokio::test]
async fn crds_establish_and_accept_upstream_manifests() -> TestResult {
    let (_server, client) = server_with_crds().await?;

    // The upstream README's example. Its metadata names (`myStaticEgressGateway`,
    // `myNamespace`) are not valid Kubernetes names on any cluster, so only the
    // names are lower-cased; the spec is applied unchanged.
    let readme = r"
apiVersion: egressgateway.kubernetes.azure.com/v1alpha1
kind: StaticGatewayConfiguration
metadata:
  name: mystaticegressgateway
  namespace: egress
spec:
  gatewayVmssProfile:
    vmssResourceGroup: myResourceGroup
    vmssName: myGatewayVMSS
    publicIpPrefixSize: 31
  provisionPublicIps: true
  publicIpPrefixId: /subscriptions/mySubscriptionID/resourcegroups/myResourceGroup/providers/Microsoft.Network/publicipprefixes/myPIPPrefix
  defaultRoute: staticEgressGateway
  excludeCidrs:
    - 10.244.0.0/16
    - 10.245.0.0/16
";
    let created = create_yaml(&client, readme).await?;
    let typed: StaticGatewayConfiguration =
        serde_json::from_value(serde_json::to_value(&created)?)?;
    assert_eq!(
        typed.spec.exclude_cidrs.as_deref(),
        Some(&["10.244.0.0/16".to_string(), "10.245.0.0/16".to_string()][..])
    );

    // The AKS documentation's pool-mode example, placeholders filled in.
    let aks_docs = r"
apiVersion: egressgateway.kubernetes.azure.com/v1alpha1
kind: StaticGatewayConfiguration
metadata:
  name: aks-docs
  namespace: egress
spec:
  gatewayNodepoolName: gwpool
  excludeCidrs:  # Optional
  - 10.0.0.0/8
  - 172.16.0.0/12
  - 169.254.169.254/32
  publicIpPrefixId: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Network/publicIPPrefixes/prefix
";
    let created = create_yaml(&client, aks_docs).await?;
    // Defaults are applied by the API server, as upstream's schema does.
    assert_eq!(created.data["spec"]["provisionPublicIps"], json!(true));
    assert_eq!(
        created.data["spec"]["defaultRoute"],
        json!("staticEgressGateway")
    );

    // Upstream's private-mode sample (VMSS profile, prefix size ignored in private mode)
    // and the always-serialised empty profile upstream writes in pool mode.
    for (name, spec) in [
        (
            "private",
            "gatewayVmssProfile: {vmssResourceGroup: rg, vmssName: gw, publicIpPrefixSize: 31}\n  provisionPublicIps: false\n  defaultRoute: azureNetworking\n  excludeCidrs: [\"10.96.0.0/12\", \"fd00::/108\"]",
        ),
        (
            "empty-profile",
            "gatewayNodepoolName: gwpool\n  gatewayVmssProfile: {}\n  provisionPublicIps: true",
        ),
    ] {
        let yaml = format!(
            "apiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata: {{name: {name}, namespace: egress}}\nspec:\n  {spec}\n"
        );
        create_yaml(&client, &yaml).await?;
    }
    Ok(())
}

#[tokio::test]
async fn status_subresource_and_printer_columns() -> TestResult {
    let (_server, client) = server_with_crds().await?;
    let api: Api<StaticGatewayConfiguration> = Api::namespaced(client.clone(), "egress");
    let sgc: StaticGatewayConfiguration = serde_json::from_value(json!({
        "apiVersion": "egressgateway.kubernetes.azure.com/v1alpha1",
        "kind": "StaticGatewayConfiguration",
        "metadata": {"name": "gw"},
        "spec": {"gatewayNodepoolName": "gwpool"}
    }))?;
    let created = api.create(&PostParams::default(), &sgc).await?;
    assert!(created.status.is_none());

    let status = json!({"status": {
        "egressIpPrefix": "203.0.113.4/31",
        "gatewayServerProfile": {"ip": "10.0.0.4", "port": 6000, "publicKey": "pk",
            "privateKeySecretRef": {"apiVersion": "v1", "kind": "Secret", "name": "sgw-x", "namespace": "kube-egress-gateway-system"}}
    }});
    let patched = api
        .patch_status("gw", &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    let s = patched.status.ok_or("status missing after patch_status")?;
    assert_eq!(s.egress_ip_prefix.as_deref(), Some("203.0.113.4/31"));
    assert_eq!(s.gateway_server_profile.and_then(|p| p.port), Some(6000));

    // With a status subresource, writes to the main resource cannot change status.
    let spec_patch = json!({"spec": {"excludeCidrs": ["10.0.0.0/8"]}, "status": {"egressIpPrefix": "198.51.100.0/31"}});
    let after = api
        .patch("gw", &PatchParams::default(), &Patch::Merge(&spec_patch))
        .await?;
    assert_eq!(
        after.spec.exclude_cidrs.as_deref(),
        Some(&["10.0.0.0/8".to_string()][..])
    );
    assert_eq!(
        after.status.and_then(|s| s.egress_ip_prefix).as_deref(),
        Some("203.0.113.4/31")
    );

    // Printer columns as `kubectl get sgc` would show them (server-side Table).
    let mut req = http::Request::get(
        "/apis/egressgateway.kubernetes.azure.com/v1alpha1/namespaces/egress/staticgatewayconfigurations",
    )
    .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
    .body(Vec::new())?;
    req.headers_mut();
    let table: serde_json::Value = client.request(req).await?;
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .ok_or("no columnDefinitions")?
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Name",
            "Pool",
            "VMSS",
            "Public",
            "Egress Prefix",
            "Gateway IP",
            "Port",
            "Ready",
            "Age"
        ]
    );
    let cells = &table["rows"][0]["cells"];
    assert_eq!(cells[1], json!("gwpool"));
    assert_eq!(cells[3], json!(true));
    assert_eq!(cells[4], json!("203.0.113.4/31"));
    assert_eq!(cells[6], json!(6000));
    Ok(())
}

/// Invalid specs, each with the field its rejection message must name.
const INVALID: &[(&str, &str, &str)] = &[
    (
        "both-selectors",
        "gatewayNodepoolName: gwpool\n  gatewayVmssProfile: {vmssResourceGroup: rg, vmssName: gw, publicIpPrefixSize: 31}",
        "spec.gatewayNodepoolName and spec.gatewayVmssProfile",
    ),
    (
        "no-selector",
        "provisionPublicIps: true",
        "spec.gatewayNodepoolName and spec.gatewayVmssProfile",
    ),
    (
        "profile-without-rg",
        "gatewayVmssProfile: {vmssName: gw, publicIpPrefixSize: 31}",
        "spec.gatewayVmssProfile.vmssResourceGroup",
    ),
    (
        "profile-without-name",
        "gatewayVmssProfile: {vmssResourceGroup: rg, publicIpPrefixSize: 31}",
        "spec.gatewayVmssProfile.vmssName",
    ),
    (
        "prefix-too-big",
        "gatewayVmssProfile: {vmssResourceGroup: rg, vmssName: gw, publicIpPrefixSize: 27}",
        "spec.gatewayVmssProfile.publicIpPrefixSize",
    ),
    (
        "prefix-missing",
        "gatewayVmssProfile: {vmssResourceGroup: rg, vmssName: gw}",
        "spec.gatewayVmssProfile.publicIpPrefixSize",
    ),
    (
        "prefix-over-32",
        "gatewayVmssProfile: {vmssResourceGroup: rg, vmssName: gw, publicIpPrefixSize: 32}",
        "spec.gatewayVmssProfile.publicIpPrefixSize",
    ),
    (
        "prefix-negative",
        "gatewayVmssProfile: {vmssResourceGroup: rg, vmssName: gw, publicIpPrefixSize: -1}",
        "spec.gatewayVmssProfile.publicIpPrefixSize",
    ),
    (
        "byo-prefix-private",
        "gatewayNodepoolName: gwpool\n  provisionPublicIps: false\n  publicIpPrefixId: /subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/publicIPPrefixes/p",
        "spec.publicIpPrefixId",
    ),
    (
        "byo-prefix-not-arm-id",
        "gatewayNodepoolName: gwpool\n  publicIpPrefixId: my-prefix",
        "spec.publicIpPrefixId",
    ),
    (
        "byo-prefix-wrong-type",
        "gatewayNodepoolName: gwpool\n  publicIpPrefixId: /subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/publicIPAddresses/p",
        "spec.publicIpPrefixId",
    ),
    (
        "cidr-without-mask",
        "gatewayNodepoolName: gwpool\n  excludeCidrs: [\"10.0.0.0/8\", \"10.1.2.3\"]",
        "spec.excludeCidrs",
    ),
    (
        "cidr-garbage",
        "gatewayNodepoolName: gwpool\n  excludeCidrs: [\"not-a-cidr\"]",
        "spec.excludeCidrs",
    ),
    (
        "cidr-bad-octet",
        "gatewayNodepoolName: gwpool\n  excludeCidrs: [\"300.0.0.0/8\"]",
        "spec.excludeCidrs",
    ),
    (
        "default-route-enum",
        "gatewayNodepoolName: gwpool\n  defaultRoute: viaGateway",
        "spec.defaultRoute",
    ),
    (
        "public-ips-not-bool",
        "gatewayNodepoolName: gwpool\n  provisionPublicIps: \"yes\"",
        "spec.provisionPublicIps",
    ),
    (
        "vmss-name-too-long",
        "gatewayVmssProfile: {vmssResourceGroup: rg, vmssName: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa, publicIpPrefixSize: 31}",
        "spec.gatewayVmssProfile.vmssName",
    ),
];

#[tokio::test]
async fn invalid_specs_are_rejected_at_admission_naming_the_field() -> TestResult {
    let (_server, client) = server_with_crds().await?;
    let mut failures = Vec::new();
    for (name, spec, field) in INVALID {
        let yaml = format!(
            "apiVersion: egressgateway.kubernetes.azure.com/v1alpha1\nkind: StaticGatewayConfiguration\nmetadata: {{name: {name}, namespace: egress}}\nspec:\n  {spec}\n"
        );
        match create_yaml(&client, &yaml).await {
            Ok(_) => failures.push(format!(
                "{name}: accepted, expected rejection naming {field}"
            )),
            Err(kube::Error::Api(status))
                if status.code == 422 && status.message.contains(field) =>
            {
                eprintln!("{name}: rejected: {}", status.message);
            }
            Err(other) => failures.push(format!(
                "{name}: wrong rejection (want 422 naming {field}): {other}"
            )),
        }
    }
    assert!(INVALID.len() >= 12);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing invalid was stored.
    assert!(
        sgc_api(&client)
            .list(&kube::api::ListParams::default())
            .await?
            .items
            .is_empty()
    );
    Ok(())
}
