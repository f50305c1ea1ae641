//! OCI image tarballs of local binaries, for the test cluster's nodes.
//!
//! A thin wrapper over `scripts/mkimage.sh`, which writes a one-layer OCI
//! image layout without a registry or a daemon. Pass the tarball to
//! [`crate::cluster::ClusterBuilder::image`]; pods use it with
//! `imagePullPolicy: Never`.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::process::run;

/// What goes into an image built by [`build`].
#[derive(Debug, Clone, Default)]
pub struct ImageSpec {
    /// `(source on the host, destination in the image)` pairs.
    pub files: Vec<(PathBuf, String)>,
    /// Also copy the shared libraries and dynamic loader the files need
    /// (for binaries not linked statically).
    pub with_libraries: bool,
    /// The image entrypoint, e.g. `["/egressctl"]`.
    pub entrypoint: Vec<String>,
    /// Extra empty directories, e.g. `/tmp`.
    pub dirs: Vec<String>,
    /// `(link in the image, target)` symbolic links, e.g. `("/bin/sh", "busybox")`.
    pub symlinks: Vec<(String, String)>,
    /// More names (`name:tag`) for the same image: one layer, imported once.
    pub also_named: Vec<String>,
    /// Strip debug information from the copied binaries (smaller, faster
    /// to import; the sources are untouched).
    pub strip: bool,
}

/// Writes `out`, an image named `reference` (`name:tag`) holding `spec`.
pub fn build(out: &Path, reference: &str, spec: &ImageSpec) -> Result<PathBuf, Error> {
    let script = crate::tools::scripts_dir().join("mkimage.sh");
    let mut args: Vec<String> = vec![
        script.display().to_string(),
        out.display().to_string(),
        reference.to_string(),
    ];
    for (src, dest) in &spec.files {
        args.push("--file".into());
        args.push(format!("{}:{dest}", src.display()));
    }
    if spec.with_libraries {
        args.push("--libs".into());
    }
    if spec.strip {
        args.push("--strip".into());
    }
    for (link, target) in &spec.symlinks {
        args.push("--symlink".into());
        args.push(format!("{link}:{target}"));
    }
    for name in &spec.also_named {
        args.push("--ref".into());
        args.push(name.clone());
    }
    for d in &spec.dirs {
        args.push("--dir".into());
        args.push(d.clone());
    }
    if !spec.entrypoint.is_empty() {
        args.push("--entrypoint".into());
        args.push(serde_json::to_string(&spec.entrypoint).unwrap_or_else(|_| "null".into()));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run("bash", &refs)?;
    Ok(out.to_path_buf())
}
