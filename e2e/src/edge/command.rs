//! Running `ip` and `nft`. The edge's worker thread lives in the control
//! plane's namespace, so the programs it starts act there.

use std::io::Write as _;
use std::process::{Command, Stdio};

use super::EdgeError;

/// Runs `program args…`, feeding `stdin` if given; returns standard output.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, EdgeError> {
    let spawn_err = |source| EdgeError::Spawn {
        program: program.to_string(),
        source,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(spawn_err)?;
        // Dropping the pipe closes it, so the program sees the end of input.
    }
    let out = child.wait_with_output().map_err(spawn_err)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(EdgeError::Command {
            command: format!("{program} {}", args.join(" ")),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// `ip args…` in the calling thread's namespace.
pub fn ip(args: &[&str]) -> Result<String, EdgeError> {
    run("ip", args, None)
}

/// Applies an nftables script in one transaction.
pub fn nft(script: &str) -> Result<(), EdgeError> {
    run("nft", &["-f", "-"], Some(script)).map(drop)
}

/// Reads a sysctl of the calling thread's namespace (`/proc/sys/net` is per
/// namespace of the reading thread).
pub fn sysctl_get(key: &str) -> Result<String, EdgeError> {
    let path = sysctl_path(key);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .map_err(|source| EdgeError::Sysctl { path, source })
}

/// Writes a sysctl of the calling thread's namespace.
pub fn sysctl_set(key: &str, value: &str) -> Result<(), EdgeError> {
    let path = sysctl_path(key);
    std::fs::write(&path, value).map_err(|source| EdgeError::Sysctl { path, source })
}

/// Keys are written with slashes (`net/ipv4/conf/br0/send_redirects`), as
/// interface names may hold dots.
fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{key}")
}
