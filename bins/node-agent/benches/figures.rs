//! Figures of the node agent, printed: CNI ADD latency with 100 concurrent
//! ADDs (unannotated pods, and pods put on the tunnel), the time 100 running
//! pods take to follow a gateway port and key change, and the agent's RSS
//! with 100 pods on the tunnel.
//!
//! `cargo bench -p egress-node-agent --bench figures` (root, with
//! `eval "$(bash scripts/setup.sh)"` for the API server and wireguard-go).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::too_many_lines
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use egress_net::wgctl::{self, Control};
use egress_testkit::apiserver::ApiServer;
use support::{
    Dirs, Gateway, PodNs, cni, conf, dirs, free_udp_port, put_pod, put_sgc, setup, start_agent,
    wait_until,
};

/// The userspace WireGuard devices of pods on this machine, by name.
fn pod_devices() -> Vec<String> {
    std::fs::read_dir("/var/run/wireguard")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("eg-"))
        .map(|n| n.trim_end_matches(".sock").to_string())
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Runs one ADD per pod, all at once; returns the sorted latencies.
fn concurrent_adds(d: &Dirs, ns: &str, pods: &[PodNs]) -> Vec<Duration> {
    let conf = conf(d, "open");
    let mut lat: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let conf = conf.clone();
                let path = p.path();
                s.spawn(move || {
                    let start = Instant::now();
                    let (code, out) = cni(
                        "ADD",
                        ns,
                        &format!("p{i}"),
                        &path,
                        &format!("sandbox-{ns}-{i}"),
                        &conf,
                    );
                    assert_eq!(code, 0, "{out}");
                    start.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    lat.sort();
    lat
}

/// The agent's summed ADD handling time (s) and count, from `/metrics`.
fn agent_sum_count(agent: &support::Agent) -> (f64, f64) {
    let value = |name: &str| {
        support::metric(agent, name)
            .split_whitespace()
            .last()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    (
        value("egress_agent_cni_requests_seconds_sum{command=\"ADD\"}"),
        value("egress_agent_cni_requests_seconds_count{command=\"ADD\"}"),
    )
}

fn agent_mean_ms(agent: &support::Agent) -> f64 {
    let (sum, count) = agent_sum_count(agent);
    sum / count.max(1.0) * 1e3
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
                .flat_map(|c| {
                    c.split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<u32>>()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn main() {
    // `cargo bench` measures 100 pods; `cargo test --all-targets` runs a
    // short smoke pass of the same code.
    let pods_n: usize = if std::env::args().any(|a| a == "--bench") {
        100
    } else {
        5
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let api = rt.block_on(ApiServer::start()).unwrap();
    let client = rt.block_on(api.client()).unwrap();
    rt.block_on(setup(&client));
    let mut gw = Gateway::start();
    rt.block_on(put_sgc(&client, "apps", "egress", &gw));
    let d = dirs();
    let agent = start_agent(&api, &d);
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!(
        "node agent figures ({pods_n} pods, {cores} cores, WireGuard backend {})",
        support::backend().name()
    );

    // Pods that did not opt in: the plugin, the socket and one pod GET.
    let plain: Vec<PodNs> = (0..pods_n).map(|i| PodNs::new(10 + i as u8)).collect();
    for (i, p) in plain.iter().enumerate() {
        rt.block_on(put_pod(&client, "plain", &format!("p{i}"), &p.ip, None));
    }
    let lat = concurrent_adds(&d, "plain", &plain);
    println!(
        "CNI ADD, {pods_n} concurrent, pods not opted in: p50 {:.1} ms, p99 {:.1} ms (plugin exec to exit; agent's own mean {:.2} ms)",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        agent_mean_ms(&agent)
    );
    drop(plain);

    // Pods on the tunnel: device, routes, reply path and PodEndpoint each.
    let pods: Vec<PodNs> = (0..pods_n).map(|i| PodNs::new(10 + i as u8)).collect();
    for (i, p) in pods.iter().enumerate() {
        rt.block_on(put_pod(
            &client,
            "apps",
            &format!("p{i}"),
            &p.ip,
            Some("egress"),
        ));
    }
    let devices_before = pod_devices();
    let before = agent_sum_count(&agent);
    let lat = concurrent_adds(&d, "apps", &pods);
    let after = agent_sum_count(&agent);
    println!(
        "CNI ADD, {pods_n} concurrent, pods put on the tunnel: p50 {:.1} ms, p99 {:.1} ms (agent's own mean {:.1} ms)",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        (after.0 - before.0) / (after.1 - before.1).max(1.0) * 1e3
    );
    assert!(pods.iter().all(PodNs::has_wg0));

    let pid = agent.child.id();
    let helpers: u64 = children(pid).into_iter().map(rss_kib).sum();
    println!(
        "agent RSS with {pods_n} pods on the tunnel: {:.1} MiB (plus {:.1} MiB in {} wireguard-go processes)",
        rss_kib(pid) as f64 / 1024.0,
        helpers as f64 / 1024.0,
        children(pid).len()
    );

    // A new gateway port and key: time until every pod's device has them.
    // Only this run's devices: a killed earlier run can leave one behind.
    let sockets: Vec<String> = pod_devices()
        .into_iter()
        .filter(|n| !devices_before.contains(n))
        .collect();
    assert_eq!(sockets.len(), pods_n, "{sockets:?}");
    gw.rekey(free_udp_port());
    let start = Instant::now();
    rt.block_on(put_sgc(&client, "apps", "egress", &gw));
    let took = wait_until("every pod to follow", Duration::from_mins(2), || {
        sockets.iter().all(|dev| {
            wgctl::read(Control::Uapi, dev).is_ok_and(|h| {
                h.peers.values().any(|p| {
                    p.public_key.to_string() == gw.key.public
                        && p.endpoint.is_some_and(|e| e.port() == gw.port)
                })
            })
        })
    });
    let _ = start;
    println!(
        "{} running pods followed a gateway port and key change in {:.2} s (agent resync period 1 s)",
        sockets.len(),
        took.as_secs_f64()
    );
    let conf = conf(&d, "open");
    for (i, p) in pods.iter().enumerate() {
        let (code, out) = cni(
            "DEL",
            "apps",
            &format!("p{i}"),
            &p.path(),
            &format!("sandbox-apps-{i}"),
            &conf,
        );
        assert_eq!(code, 0, "{out}");
    }
    assert!(
        support::run("ip", &["-o", "link"])
            .lines()
            .all(|l| !l.contains(" eg-"))
    );
}
