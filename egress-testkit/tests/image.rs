//! OCI image tarballs from local binaries: reproducible, and complete enough
//! for a dynamically linked binary to run (checked in a pod by tests/cluster.rs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use egress_testkit::image::{ImageSpec, build};

fn spec() -> ImageSpec {
    ImageSpec {
        files: vec![(std::env::current_exe().unwrap(), "/bin/tests".into())],
        with_libraries: true,
        entrypoint: vec!["/bin/tests".into()],
        dirs: vec!["/tmp".into()],
        ..ImageSpec::default()
    }
}

fn list(tar: &std::path::Path) -> String {
    let out = Command::new("tar").arg("-tf").arg(tar).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_same_inputs_give_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let a = build(&dir.path().join("a.tar"), "localhost/tests:1", &spec()).unwrap();
    let b = build(&dir.path().join("b.tar"), "localhost/tests:1", &spec()).unwrap();
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn the_layout_names_the_image_and_ships_the_loader() {
    let dir = tempfile::tempdir().unwrap();
    let tar = build(&dir.path().join("i.tar"), "localhost/tests:2", &spec()).unwrap();
    let names = list(&tar);
    for entry in ["oci-layout", "index.json", "blobs/sha256/"] {
        assert!(
            names.lines().any(|l| l == entry),
            "{entry} missing: {names}"
        );
    }
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(&tar)
        .arg("index.json")
        .output()
        .unwrap();
    let index: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["io.containerd.image.name"],
        "localhost/tests:2"
    );

    // The layer holds the binary, libc and the dynamic loader.
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&unpacked)
            .status()
            .unwrap()
            .success()
    );
    let layer = std::fs::read_dir(unpacked.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| list_gz(p).is_some())
        .unwrap();
    let files = list_gz(&layer).unwrap();
    for f in [
        "./bin/tests",
        "./lib64/ld-linux-x86-64.so.2",
        "./lib/x86_64-linux-gnu/libc.so.6",
        "./tmp/",
    ] {
        assert!(files.lines().any(|l| l == f), "{f} missing: {files}");
    }
}

#[test]
fn a_reference_without_a_tag_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = build(&dir.path().join("x.tar"), "localhost/tests", &spec()).unwrap_err();
    assert!(err.to_string().contains("needs a tag"), "{err}");
}

/// Entries of a gzip-compressed tar, or `None` if `path` is not one.
fn list_gz(path: &std::path::Path) -> Option<String> {
    let out = Command::new("tar").arg("-tzf").arg(path).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn one_layer_can_carry_several_names_and_stripped_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec();
    spec.also_named = vec!["localhost/other:3".into()];
    spec.symlinks = vec![("/bin/sh".into(), "tests".into())];
    spec.strip = true;
    let tar = build(&dir.path().join("i.tar"), "localhost/tests:3", &spec).unwrap();
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(&tar)
        .arg("index.json")
        .output()
        .unwrap();
    let index: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let manifests = index["manifests"].as_array().unwrap();
    let names: Vec<&str> = manifests
        .iter()
        .map(|m| {
            m["annotations"]["io.containerd.image.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names, ["localhost/tests:3", "localhost/other:3"]);
    assert_eq!(manifests[0]["digest"], manifests[1]["digest"]);
    // Stripped: the layer is smaller than the same image unstripped.
    let plain = build(
        &dir.path().join("p.tar"),
        "localhost/tests:3",
        &self::spec(),
    )
    .unwrap();
    let size = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    assert!(
        size(&tar) < size(&plain),
        "{} !< {}",
        size(&tar),
        size(&plain)
    );
}
