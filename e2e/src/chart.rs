//! The Helm chart installed in the local cluster, as an operator installs it.

use std::path::{Path, PathBuf};
use std::process::Command;

use egress_testkit::cluster::Cluster;

use crate::E2eError;
use crate::cloud::{LocalAzure, TOKEN};
use crate::images::{REPOSITORY, TAG};

/// The release name and namespace.
pub const RELEASE: &str = "egress-gateway";
/// The namespace of the system (upstream's).
pub const NAMESPACE: &str = "kube-egress-gateway-system";

/// The chart in this repository.
pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/helm/egress-gateway")
}

/// Values for the local cluster: the local images (never pulled), the
/// fake ARM as the controller's Resource Manager, and the cloud
/// configuration it was seeded for. `backupDir` moves to the node's own
/// `/run`: the test nodes share the host's `/var/lib`, real nodes do not.
pub fn local_values(azure: &LocalAzure) -> serde_json::Value {
    let pull = serde_json::json!({"imagePullPolicy": "Never"});
    serde_json::json!({
        "common": {"imageRepository": REPOSITORY, "imageTag": TAG},
        "gatewayControllerManager": {
            "imagePullPolicy": "Never",
            "extraArgs": [format!("--arm-endpoint={}", azure.endpoint)],
            "extraEnv": [{"name": "EGRESS_ARM_STATIC_TOKEN", "value": TOKEN}],
        },
        "gatewayDaemonManager": pull.clone(),
        "gatewayCNIManager": {
            "imagePullPolicy": "Never",
            "backupDir": "/run/egress-gateway/cni-backup",
        },
        "gatewayCNI": pull,
        "config": {"azureCloudConfig": azure.cloud_config()},
    })
}

fn helm(cluster: &Cluster, args: &[&str]) -> Result<String, E2eError> {
    let bin = egress_testkit::tools::helm();
    let out = Command::new(&bin)
        .arg("--kubeconfig")
        .arg(cluster.kubeconfig_path())
        .args(args)
        .output()
        .map_err(E2eError::io(&bin))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(E2eError::Command {
            command: format!("helm {}", args.join(" ")),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

fn write_values(cluster: &Cluster, values: &serde_json::Value) -> Result<PathBuf, E2eError> {
    // JSON is YAML: helm reads it as a values file.
    let path = cluster.dir().join("values.json");
    std::fs::write(&path, values.to_string()).map_err(E2eError::io(&path))?;
    Ok(path)
}

/// `helm install` (or `upgrade --install`) of the chart with `values`.
pub fn install(cluster: &Cluster, values: &serde_json::Value) -> Result<(), E2eError> {
    let file = write_values(cluster, values)?;
    let chart = chart_dir().display().to_string();
    let file = file.display().to_string();
    helm(
        cluster,
        &[
            "upgrade",
            "--install",
            RELEASE,
            &chart,
            "--namespace",
            NAMESPACE,
            "--create-namespace",
            "--values",
            &file,
        ],
    )
    .map(|_| ())
}

/// `helm uninstall`, waiting until the release's pods are gone.
pub fn uninstall(cluster: &Cluster) -> Result<(), E2eError> {
    helm(
        cluster,
        &[
            "uninstall",
            RELEASE,
            "--namespace",
            NAMESPACE,
            "--wait",
            "--timeout",
            "3m",
        ],
    )
    .map(|_| ())
}
