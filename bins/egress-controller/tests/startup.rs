//! The binary refuses to start, naming what is missing or malformed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_egress-controller"));
    cmd.args(args)
        .env_remove("MY_POD_NAMESPACE")
        .env_remove("EGRESS_CLOUD_CONFIG")
        .env_remove("EGRESS_ARM_STATIC_TOKEN")
        .env_remove("KUBECONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD: &str = r#"{"cloud": "AzurePublicCloud", "tenantId": "t", "subscriptionId": "s",
    "resourceGroup": "rg", "location": "westus", "vnetName": "v", "subnetName": "n",
    "useManagedIdentityExtension": true, "resourceManagerEndpoint": "http://127.0.0.1:9"}"#;

#[test]
fn refuses_to_start_naming_what_is_missing_or_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("azure.json");
    std::fs::write(&good, GOOD).unwrap();
    let cfg = good.to_string_lossy().to_string();

    let (ok, err) = run(&["--cloud-config", &cfg], &[]);
    assert!(!ok);
    assert!(
        err.contains("--secret-namespace (or MY_POD_NAMESPACE) is required"),
        "{err}"
    );

    let missing = dir.path().join("absent.json");
    let (ok, err) = run(
        &["--cloud-config", &missing.to_string_lossy()],
        &[("MY_POD_NAMESPACE", "sys")],
    );
    assert!(!ok);
    assert!(
        err.contains("cannot read the cloud configuration") && err.contains("absent.json"),
        "{err}"
    );

    let no_sub = dir.path().join("no-sub.json");
    std::fs::write(&no_sub, GOOD.replace(r#""subscriptionId": "s","#, "")).unwrap();
    let (ok, err) = run(
        &["--cloud-config", &no_sub.to_string_lossy()],
        &[("MY_POD_NAMESPACE", "sys")],
    );
    assert!(!ok);
    assert!(err.contains("subscriptionId is required"), "{err}");

    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, "{ not json").unwrap();
    let (ok, err) = run(
        &["--cloud-config", &bad_json.to_string_lossy()],
        &[("MY_POD_NAMESPACE", "sys")],
    );
    assert!(!ok);
    assert!(err.contains("bad.json"), "{err}");

    let (ok, err) = run(
        &["--cloud-config", &cfg, "--lease-duration", "10"],
        &[("MY_POD_NAMESPACE", "sys")],
    );
    assert!(!ok);
    assert!(
        err.contains("--lease-duration") && err.contains("no unit"),
        "{err}"
    );

    let (ok, err) = run(
        &["--cloud-config", &cfg, "--lease-duration", "5s"],
        &[
            ("MY_POD_NAMESPACE", "sys"),
            ("EGRESS_ARM_STATIC_TOKEN", "t"),
        ],
    );
    assert!(!ok);
    assert!(err.contains("renew deadline"), "{err}");

    let (ok, err) = run(
        &["--cloud-config", &cfg, "--arm-endpoint", "not a url"],
        &[
            ("MY_POD_NAMESPACE", "sys"),
            ("EGRESS_ARM_STATIC_TOKEN", "t"),
        ],
    );
    assert!(!ok);
    assert!(err.contains("--arm-endpoint"), "{err}");

    let (ok, err) = run(
        &[
            "--cloud-config",
            &cfg,
            "--kubeconfig",
            "/nonexistent/kubeconfig",
        ],
        &[
            ("MY_POD_NAMESPACE", "sys"),
            ("EGRESS_ARM_STATIC_TOKEN", "t"),
        ],
    );
    assert!(!ok);
    assert!(err.contains("kubeconfig /nonexistent/kubeconfig"), "{err}");
}
