use std::collections::BTreeMap;

use serde_json::json;

use super::*;

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn layout(root: &Path) -> Layout {
    fs::create_dir_all(root.join("net.d")).unwrap();
    Layout {
        dir: root.join("net.d"),
        file: "00-egress-gateway.conflist".into(),
        backup_dir: root.join("backup"),
    }
}

fn plugin() -> Value {
    json!({"type": "egress-cni", "failureMode": "open"})
}

const BRIDGE: &str = r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"bridge","ipam":{"type":"host-local"}},{"type":"portmap"}]}"#;

#[test]
fn install_chains_and_uninstall_restores_byte_for_byte() {
    let root = tempfile::tempdir().unwrap();
    let l = layout(root.path());
    fs::write(l.dir.join("10-bridge.conflist"), BRIDGE).unwrap();
    fs::write(l.dir.join("README"), "not a config").unwrap();
    let before = snapshot(&l.dir);
    let done = install(&l, &plugin()).unwrap();
    assert_eq!(done.primary, l.dir.join("10-bridge.conflist"));
    let chained: Value = serde_json::from_slice(&fs::read(l.dir.join(&l.file)).unwrap()).unwrap();
    let types: Vec<&str> = chained["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["bridge", "portmap", "egress-cni"]);
    // Idempotent, and no temporary file left.
    install(&l, &plugin()).unwrap();
    assert_eq!(snapshot(&l.dir).len(), before.len() + 1);
    uninstall(&l).unwrap();
    assert_eq!(snapshot(&l.dir), before);
}

#[test]
fn a_foreign_file_of_our_name_is_kept_and_put_back() {
    let root = tempfile::tempdir().unwrap();
    let l = layout(root.path());
    fs::write(l.dir.join("10-bridge.conflist"), BRIDGE).unwrap();
    fs::write(l.dir.join(&l.file), b"{\"someone\": \"else\"}  \n").unwrap();
    let before = snapshot(&l.dir);
    let done = install(&l, &plugin()).unwrap();
    assert!(done.backed_up);
    // The foreign file was the first by name: the primary is the next one.
    assert_eq!(done.primary, l.dir.join("10-bridge.conflist"));
    uninstall(&l).unwrap();
    assert_eq!(snapshot(&l.dir), before);
}

#[test]
fn a_missing_or_broken_primary_is_reported_and_nothing_written() {
    let root = tempfile::tempdir().unwrap();
    let l = layout(root.path());
    let err = install(&l, &plugin()).unwrap_err();
    assert!(
        err.to_string().contains("no primary CNI configuration"),
        "{err}"
    );
    fs::write(l.dir.join("10-bridge.conflist"), "{\"cniVersion\": ").unwrap();
    let before = snapshot(&l.dir);
    let err = install(&l, &plugin()).unwrap_err();
    assert!(err.to_string().contains("10-bridge.conflist"), "{err}");
    assert_eq!(snapshot(&l.dir), before);
}

#[test]
fn a_single_plugin_conf_is_wrapped_and_a_symlinked_primary_is_followed() {
    let root = tempfile::tempdir().unwrap();
    let l = layout(root.path());
    let real = root.path().join("real.conf");
    fs::write(
        &real,
        r#"{"cniVersion":"1.0.0","name":"net","type":"bridge"}"#,
    )
    .unwrap();
    std::os::unix::fs::symlink(&real, l.dir.join("10-net.conf")).unwrap();
    install(&l, &plugin()).unwrap();
    let chained: Value = serde_json::from_slice(&fs::read(l.dir.join(&l.file)).unwrap()).unwrap();
    assert_eq!(chained["name"], "net");
    assert_eq!(chained["plugins"][0], json!({"type": "bridge"}));
    assert_eq!(chained["plugins"][1]["type"], "egress-cni");
}
