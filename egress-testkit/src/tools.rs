//! Where the binaries and images that `scripts/setup.sh` builds are found.
//!
//! Each location can be overridden by the variable that `setup.sh` prints
//! (`EGRESS_K8S_BIN_DIR`, `EGRESS_CONTAINERD_BIN_DIR`, `EGRESS_RUNC_BIN_DIR`,
//! `EGRESS_IMAGES_DIR`, `EGRESS_HELM`); otherwise the cache under
//! `$EGRESS_CACHE` (default `~/.cache/egress-gateway`) is used, keyed by the
//! versions pinned in `tools/`.

use std::path::{Path, PathBuf};

use crate::Error;

/// containerd version pinned in `tools/containerd/version`.
pub const CONTAINERD_VERSION: &str = include_str!("../../tools/containerd/version");
/// runc version pinned in `tools/runc/version`.
pub const RUNC_VERSION: &str = include_str!("../../tools/runc/version");
/// Helm version pinned in `tools/helm/version`.
pub const HELM_VERSION: &str = include_str!("../../tools/helm/version");

/// The cache directory `scripts/setup.sh` fills.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("EGRESS_CACHE").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/egress-gateway")
        },
        PathBuf::from,
    )
}

fn dir_from(var: &str, default: impl FnOnce() -> PathBuf) -> PathBuf {
    std::env::var_os(var).map_or_else(default, PathBuf::from)
}

/// Directory holding containerd, containerd-shim-runc-v2 and ctr.
pub fn containerd_bin_dir() -> PathBuf {
    dir_from("EGRESS_CONTAINERD_BIN_DIR", || {
        cache_dir()
            .join(format!("containerd-{}", CONTAINERD_VERSION.trim()))
            .join("bin")
    })
}

/// Directory holding runc.
pub fn runc_bin_dir() -> PathBuf {
    dir_from("EGRESS_RUNC_BIN_DIR", || {
        cache_dir()
            .join(format!("runc-{}", RUNC_VERSION.trim()))
            .join("bin")
    })
}

/// Directory holding `pause.tar` and `busybox.tar` (and the static `pause`).
pub fn images_dir() -> PathBuf {
    dir_from("EGRESS_IMAGES_DIR", || cache_dir().join("images"))
}

/// The Helm binary.
pub fn helm() -> PathBuf {
    dir_from("EGRESS_HELM", || {
        cache_dir()
            .join(format!("helm-{}", HELM_VERSION.trim()))
            .join("bin/helm")
    })
}

/// A Kubernetes binary (kube-apiserver, kubelet, kubectl, ...) from the
/// pinned build.
pub fn k8s_binary(name: &str) -> Result<PathBuf, Error> {
    existing(crate::apiserver::bin_dir().join(name))
}

/// `path` if it is a file, else the error telling how to get it.
pub(crate) fn existing(path: PathBuf) -> Result<PathBuf, Error> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::MissingBinary { path })
    }
}

/// The repository's `scripts/` directory (for `mkimage.sh`).
pub(crate) fn scripts_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts"))
}
