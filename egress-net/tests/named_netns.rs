//! Creating and removing the named gateway namespace, as the daemon does
//! when the node has none yet and on `--uninstall`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use egress_net::netns::{ensure_named, remove_named};

/// Removes the namespace even if an assertion fails.
struct Cleanup(PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = remove_named(&self.0);
    }
}

#[test]
fn a_named_namespace_is_created_once_and_removed() {
    let path = PathBuf::from(format!("/var/run/netns/egt{}-named", std::process::id()));
    let _cleanup = Cleanup(path.clone());
    assert!(ensure_named(&path).unwrap(), "created");
    assert!(!ensure_named(&path).unwrap(), "second call finds it");
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&name));
    // It is a real, separate namespace: only loopback, and down.
    let links = std::process::Command::new("ip")
        .args(["-n", &name, "link", "show"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert_eq!(
        links.lines().filter(|l| !l.starts_with(' ')).count(),
        1,
        "{links}"
    );
    remove_named(&path).unwrap();
    assert!(!path.exists());
    remove_named(&path).unwrap();
}
