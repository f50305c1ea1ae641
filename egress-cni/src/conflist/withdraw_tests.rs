//! A chained file whose primary is gone or broken is withdrawn, and comes
//! back with the primary.

use serde_json::json;

use super::*;

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

const BRIDGE: &str = r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[{"type":"bridge"}]}"#;

#[test]
fn a_removed_primary_withdraws_ours_and_its_return_reinstalls_it() {
    let root = tempfile::tempdir().unwrap();
    let l = layout(root.path());
    let primary = l.dir.join("10-bridge.conflist");
    fs::write(&primary, BRIDGE).unwrap();
    install(&l, &plugin()).unwrap();
    assert!(l.dir.join(&l.file).exists());

    fs::remove_file(&primary).unwrap();
    let err = install(&l, &plugin()).unwrap_err();
    assert!(matches!(err, Error::Withdrawn { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("withdrew") && text.contains("no primary"),
        "{text}"
    );
    assert!(
        !l.dir.join(&l.file).exists(),
        "the stale chained copy is gone"
    );
    // Nothing left to withdraw: the plain reason.
    let err = install(&l, &plugin()).unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");

    fs::write(&primary, BRIDGE).unwrap();
    install(&l, &plugin()).unwrap();
    let chained: Value = serde_json::from_slice(&fs::read(l.dir.join(&l.file)).unwrap()).unwrap();
    assert_eq!(chained[OWNER_KEY], "10-bridge.conflist");
}

#[test]
fn a_broken_primary_withdraws_ours() {
    let root = tempfile::tempdir().unwrap();
    let l = layout(root.path());
    let primary = l.dir.join("10-bridge.conflist");
    fs::write(&primary, BRIDGE).unwrap();
    install(&l, &plugin()).unwrap();

    fs::write(&primary, "{\"cniVersion\": ").unwrap();
    let err = install(&l, &plugin()).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("withdrew") && text.contains("10-bridge.conflist"),
        "{text}"
    );
    assert!(!l.dir.join(&l.file).exists());
    assert_eq!(fs::read(&primary).unwrap(), b"{\"cniVersion\": ");

    fs::write(&primary, BRIDGE).unwrap();
    install(&l, &plugin()).unwrap();
    assert!(l.dir.join(&l.file).exists());
}

#[test]
fn withdrawing_puts_back_a_foreign_file_we_replaced_and_uninstall_still_works() {
    let root = tempfile::tempdir().unwrap();
    let l = layout(root.path());
    let primary = l.dir.join("10-bridge.conflist");
    let foreign = b"{\"someone\": \"else\"}\n";
    fs::write(&primary, BRIDGE).unwrap();
    fs::write(l.dir.join(&l.file), foreign).unwrap();
    assert!(install(&l, &plugin()).unwrap().backed_up);

    fs::remove_file(&primary).unwrap();
    install(&l, &plugin()).unwrap_err();
    assert_eq!(fs::read(l.dir.join(&l.file)).unwrap(), foreign);
    assert!(!l.backup().exists());

    fs::write(&primary, BRIDGE).unwrap();
    assert!(install(&l, &plugin()).unwrap().backed_up);
    uninstall(&l).unwrap();
    assert_eq!(fs::read(l.dir.join(&l.file)).unwrap(), foreign);
}
