//! The `egressctl` binary, run as a user would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn egressctl(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_egressctl"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn explain_follows_the_route_plan() {
    let (ok, out, err) = egressctl(&[
        "explain",
        "--default-route",
        "azureNetworking",
        "--exclude",
        "0.0.0.0/1",
        "--node-exception",
        "10.96.0.0/12",
        "8.8.8.8",
        "10.96.0.10",
        "192.0.2.1",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("8.8.8.8 -> tunnel (egress gateway), by excludeCidrs entry 0.0.0.0/1"),
        "{out}"
    );
    assert!(
        out.contains("10.96.0.10 -> primary interface, by node exception 10.96.0.0/12"),
        "{out}"
    );
    assert!(
        out.contains("192.0.2.1 -> primary interface, by the default route"),
        "{out}"
    );
}

#[test]
fn bad_input_names_what_is_wrong() {
    let (ok, _, err) = egressctl(&[
        "explain",
        "--exclude",
        "10.0.0.0/8",
        "--exclude",
        "10.1.2.3",
        "1.1.1.1",
    ]);
    assert!(!ok);
    assert!(err.contains("--exclude #2 is \"10.1.2.3\""), "{err}");
    let (ok, _, err) = egressctl(&["explain", "not-an-ip"]);
    assert!(!ok);
    assert!(
        err.contains("destination \"not-an-ip\" is not an IP address"),
        "{err}"
    );
}

#[test]
fn crds_check_passes_on_the_committed_manifests() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/crds");
    let (ok, out, err) = egressctl(&["crds", "--check", dir]);
    assert!(ok, "{err}");
    assert!(out.contains("up to date"));
    let tmp = std::env::temp_dir().join(format!("egressctl-crds-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("stale.yaml"), "x").unwrap();
    let (ok, _, err) = egressctl(&["crds", "--check", tmp.to_str().unwrap()]);
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(!ok);
    assert!(err.contains("stale"), "{err}");
}

#[test]
fn crds_writes_and_checks_several_directories() {
    let root = std::env::temp_dir().join(format!("egressctl-crds-two-{}", std::process::id()));
    let (a, b) = (root.join("a"), root.join("chart/crds"));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let (ok, out, err) = egressctl(&["crds", "--out", a, "--out", b]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 10, "five CRDs in each: {out}");
    let (ok, _, err) = egressctl(&["crds", "--check", a, "--check", b]);
    assert!(ok, "{err}");
    // One stale copy fails the check, names the directory and the file,
    // and says how to regenerate both.
    let file = std::path::Path::new(b).join("podendpoints.egressgateway.kubernetes.azure.com.yaml");
    std::fs::write(&file, "stale").unwrap();
    let (ok, _, err) = egressctl(&["crds", "--check", a, "--check", b]);
    std::fs::remove_dir_all(&root).unwrap();
    assert!(!ok);
    assert!(
        err.contains(b)
            && err.contains("podendpoints.egressgateway.kubernetes.azure.com.yaml differs"),
        "{err}"
    );
    assert!(
        !err.contains(&format!("{a}:")),
        "the good copy is not named: {err}"
    );
    assert!(
        err.contains(&format!("egressctl crds --out {a} --out {b}")),
        "{err}"
    );
}

#[test]
fn the_charts_crds_are_up_to_date() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy");
    let (ok, _, err) = egressctl(&[
        "crds",
        "--check",
        &format!("{root}/crds"),
        "--check",
        &format!("{root}/helm/egress-gateway/crds"),
    ]);
    assert!(ok, "{err}");
}
