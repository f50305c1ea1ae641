//! The product image: the project's binaries as the Helm chart runs them.
//!
//! One image tarball carries every component under the four names the chart
//! asks for (`localhost/egress-controller:<tag>` and so on): one layer,
//! imported once per node. It holds the binaries at the chart's default
//! `binaryPath`s, their shared libraries, `nft` (the gateway daemon's
//! nftables batches), wireguard-go (the userspace `WireGuard` where the
//! kernel has no module) and a static busybox for the plugin installer's
//! shell. Debug information is stripped from the copies.

use std::path::{Path, PathBuf};
use std::process::Command;

use egress_testkit::image::{ImageSpec, build};

use crate::E2eError;

/// The registry prefix of the chart's images in the local cluster.
pub const REPOSITORY: &str = "localhost";
/// The tag of the local build.
pub const TAG: &str = "local";

/// `(package, binary, path in the image)` of the four components.
pub const COMPONENTS: [(&str, &str, &str); 4] = [
    (
        "egress-controller",
        "egress-controller",
        "/egress-controller",
    ),
    (
        "egress-gateway-daemon",
        "egress-gateway-daemon",
        "/egress-gateway-daemon",
    ),
    (
        "egress-node-agent",
        "egress-node-agent",
        "/egress-node-agent",
    ),
    ("egress-cni-plugin", "egress-cni", "/egress-cni"),
];

/// Where cargo puts this build's binaries: beside the running executable
/// (`target/<profile>/` for a binary, its parent for a test in `deps/`).
pub fn binary_dir() -> Result<PathBuf, E2eError> {
    let exe = std::env::current_exe().map_err(E2eError::io("the running executable"))?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| E2eError::Unexpected(format!("{} has no directory", exe.display())))?
        .to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    Ok(dir)
}

/// Builds the four components with cargo (a no-op when they are current),
/// in the profile of the running executable.
pub fn build_components(dir: &Path) -> Result<(), E2eError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--quiet", "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"));
    for (package, bin, _) in COMPONENTS {
        cmd.args(["-p", package, "--bin", bin]);
    }
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    // The binaries must land where this executable looks for them.
    if let Some(target) = dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    let out = cmd.output().map_err(E2eError::io(&cargo))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(E2eError::Command {
            command: format!("{cargo} build (the four components)"),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// The binary of a component in `dir`, building the components first if
/// any is missing.
fn component_paths(dir: &Path) -> Result<Vec<(PathBuf, String)>, E2eError> {
    if COMPONENTS
        .iter()
        .any(|(_, bin, _)| !dir.join(bin).is_file())
    {
        build_components(dir)?;
    }
    Ok(COMPONENTS
        .iter()
        .map(|(_, bin, dest)| (dir.join(bin), (*dest).to_string()))
        .collect())
}

fn wireguard_go() -> Result<PathBuf, E2eError> {
    std::env::var_os("EGRESS_WIREGUARD_GO")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .ok_or_else(|| {
            E2eError::Unexpected(
                "EGRESS_WIREGUARD_GO does not name wireguard-go: run `eval \"$(bash scripts/setup.sh)\"` first"
                    .into(),
            )
        })
}

fn host_file(path: &str) -> Result<PathBuf, E2eError> {
    let p = PathBuf::from(path);
    if p.is_file() {
        Ok(p)
    } else {
        Err(E2eError::Unexpected(format!(
            "{path} is missing: run scripts/setup.sh (it installs the Debian packages)"
        )))
    }
}

/// The image reference of a chart image name (`egress-controller`).
pub fn reference(name: &str) -> String {
    format!("{REPOSITORY}/{name}:{TAG}")
}

/// Writes the product image tarball to `out` from the binaries in `dir`.
pub fn product_image(out: &Path, dir: &Path) -> Result<PathBuf, E2eError> {
    let mut files = component_paths(dir)?;
    files.push((wireguard_go()?, "/usr/bin/wireguard-go".into()));
    files.push((host_file("/usr/sbin/nft")?, "/usr/sbin/nft".into()));
    files.push((host_file("/bin/busybox")?, "/bin/busybox".into()));
    // The Azure client verifies TLS against the system's roots (a fake
    // ARM on plain HTTP needs none, but the client refuses to start
    // without any, as it should in production).
    files.push((
        host_file("/etc/ssl/certs/ca-certificates.crt")?,
        "/etc/ssl/certs/ca-certificates.crt".into(),
    ));
    let symlinks = ["sh", "cp", "mv", "chmod", "rm", "cat", "ls", "ip"]
        .iter()
        .map(|tool| (format!("/bin/{tool}"), "busybox".to_string()))
        .collect();
    let names: Vec<String> = COMPONENTS
        .iter()
        .map(|(_, bin, _)| reference(bin))
        .collect();
    let spec = ImageSpec {
        files,
        with_libraries: true,
        entrypoint: Vec::new(),
        dirs: vec!["/tmp".into(), "/var/run/wireguard".into()],
        symlinks,
        also_named: names[1..].to_vec(),
        strip: true,
    };
    Ok(build(out, &names[0], &spec)?)
}
