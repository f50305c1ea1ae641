//! Shared pieces of the end-to-end tests: the workspace's binaries, the
//! processes run inside a node, an echo host, and polling.

#![allow(dead_code)]

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use egress_testkit::cluster::Cluster;
use egress_testkit::netns::Netns;

/// Path of a binary of another workspace package. `cargo test --workspace`
/// builds every binary before any test runs; run alone, the test builds
/// the ones it is missing.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<test> -> target/<profile>/<bin>
    let dir = exe.parent().and_then(Path::parent).unwrap();
    let path = dir.join(bin);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", package, "--bin", bin]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let ok = cmd.status().is_ok_and(|s| s.success());
        assert!(
            ok && path.exists(),
            "cannot build {bin}: run `cargo build -p {package}`"
        );
    }
    path
}

/// Starts `program` inside `node` (its network, mount and PID namespaces),
/// detached, its output appended to `<node dir>/<name>.log` and its PID in
/// `<node dir>/<name>.pid`, as a `DaemonSet`'s container would run.
pub fn start_on_node(cluster: &Cluster, node: &str, name: &str, env: &str, command: &str) {
    let nd = cluster.node_dir(node).unwrap().display().to_string();
    cluster
        .exec_on_node(
            node,
            "sh",
            &[
                "-c",
                &format!(
                    "{env} setsid {command} </dev/null >>{nd}/{name}.log 2>&1 & echo $! >{nd}/{name}.pid"
                ),
            ],
        )
        .unwrap();
}

/// Stops what [`start_on_node`] started.
pub fn stop_on_node(cluster: &Cluster, node: &str, name: &str) {
    let nd = cluster.node_dir(node).unwrap();
    let pid = std::fs::read_to_string(nd.join(format!("{name}.pid"))).unwrap();
    cluster.exec_on_node(node, "kill", &[pid.trim()]).unwrap();
}

/// The log of what [`start_on_node`] started, for failure messages.
pub fn node_log(cluster: &Cluster, node: &str, name: &str) -> String {
    let nd = cluster.node_dir(node).unwrap();
    let text = std::fs::read_to_string(nd.join(format!("{name}.log"))).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// A TCP service at `addr` inside `ns` that answers every connection with
/// the source address it sees, then closes: the "internet" host.
pub fn echo_host(ns: &Netns, addr: &str) {
    let addr = addr.to_string();
    let listener = ns.run(move || TcpListener::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            if let Ok(peer) = conn.peer_addr() {
                let _ = conn.write_all(peer.ip().to_string().as_bytes());
            }
        }
    });
}

/// Polls `f` every 200 ms until it returns `Some`, or panics after `limit`
/// naming `what` and the last value seen.
pub async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Ok(v) => return (v, start.elapsed()),
            Err(last) => {
                assert!(
                    start.elapsed() < limit,
                    "timed out after {limit:?} waiting for {what}; last: {last}"
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
