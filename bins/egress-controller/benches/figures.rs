//! Controller figures through the whole real path: the controller binary as
//! a process, a real kube-apiserver (the testkit's) and the fake ARM over
//! HTTP. `cargo bench -p egress-controller --bench figures`.
//!
//! 1. Time from applying one configuration to Ready, ARM writes at 2 s.
//! 2. 100 configurations applied at once, ARM writes at 2 s: ARM writes and
//!    time until all are Ready.
//! 3. Controller RSS with 1,000 configurations in the API server (all
//!    provisioned, ARM writes at 10 ms). Target: under 30 MB.
//! 4. Pass latency at 1,000 configurations (steady state, from the
//!    controller's own histogram).
//!
//! `cargo test --benches` runs a small version (latency 100 ms; 1, 10 and
//! 50 configurations) that checks the path, not the figures.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss
)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use kube::api::{ListParams, PostParams};
use support::{Env, is_ready, pool_spec};

struct Sizes {
    latency: Duration,
    burst: usize,
    many: usize,
    full: bool,
}

fn sizes() -> Sizes {
    if std::env::args().any(|a| a == "--bench") {
        Sizes {
            latency: Duration::from_secs(2),
            burst: 100,
            many: 1000,
            full: true,
        }
    } else {
        Sizes {
            latency: Duration::from_millis(100),
            burst: 10,
            many: 50,
            full: false,
        }
    }
}

async fn all_ready(env: &Env, n: usize) -> bool {
    let list = env.sgcs().list(&ListParams::default()).await.unwrap();
    list.items.len() == n && list.items.iter().all(is_ready)
}

async fn wait_all_ready(env: &Env, n: usize, timeout: Duration) -> Duration {
    let start = Instant::now();
    while !all_ready(env, n).await {
        assert!(
            start.elapsed() < timeout,
            "{n} configurations not Ready within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

const RESYNC: &str = "10s";

async fn one(s: &Sizes) {
    let env = Env::start(s.latency, 4).await;
    let ctl = env.controller("figures", &["--leader-elect=false"]);
    // Let the controller start and sync first: the figure is apply-to-Ready.
    while ctl.get("/readyz").is_none_or(|(c, _)| c != 200) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.local.arm.reset_counts();
    // From the moment the API server has stored it, as after `kubectl apply`.
    env.apply("one", pool_spec(true)).await;
    let start = Instant::now();
    wait_all_ready(&env, 1, Duration::from_mins(2)).await;
    let took = start.elapsed().as_secs_f64();
    let writes = env.local.arm.counts().writes;
    if std::env::var_os("EGRESS_FIGURES_VERBOSE").is_some() {
        for l in ctl.logs().lines().filter(|l| l.contains("pass finished")) {
            println!("    {l}");
        }
    }
    println!(
        "apply to Ready, 1 configuration (managed prefix, 4-instance pool), ARM writes at {:.1} s: {took:.1} s, {writes} ARM writes ({:.1} operation latencies)",
        s.latency.as_secs_f64(),
        took / s.latency.as_secs_f64()
    );
}

async fn burst(s: &Sizes) {
    let env = Env::start(s.latency, 4).await;
    let ctl = env.controller("figures", &["--leader-elect=false"]);
    while ctl.get("/readyz").is_none_or(|(c, _)| c != 200) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    env.local.arm.reset_counts();
    let start = Instant::now();
    for i in 0..s.burst {
        env.apply(&format!("b{i:03}"), pool_spec(false)).await;
    }
    let applied = start.elapsed().as_secs_f64();
    let ready = wait_all_ready(&env, s.burst, Duration::from_mins(5)).await;
    let counts = env.local.arm.counts();
    let passes = ctl.metric("egress_controller_passes_total").unwrap_or(0.0);
    println!(
        "{} configurations applied at once (private mode, 4-instance pool), ARM writes at {:.1} s: {} ARM writes, all Ready {:.1} s after the first apply (applies took {applied:.1} s), {passes} passes; upstream's algorithm: {} writes, serial",
        s.burst,
        s.latency.as_secs_f64(),
        counts.writes,
        ready.as_secs_f64(),
        s.burst * 6
    );
    for (op, c) in &counts.operations {
        if !matches!(
            c.kind,
            Some(egress_fakearm::CallKind::Read | egress_fakearm::CallKind::Poll)
        ) {
            println!("    {op}: {}", c.calls);
        }
    }
}

async fn many(s: &Sizes) {
    let env = Env::start(Duration::from_millis(10), 2).await;
    let api = env.sgcs();
    let start = Instant::now();
    for i in 0..s.many {
        let spec = serde_json::from_value(pool_spec(false)).unwrap();
        api.create(
            &PostParams::default(),
            &egress_k8s::crd::StaticGatewayConfiguration::new(&format!("m{i:04}"), spec),
        )
        .await
        .unwrap();
    }
    let created = start.elapsed().as_secs_f64();
    // A follower (the Lease is held elsewhere) holds the watch stores only.
    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(env.client.clone(), support::SYSTEM_NS);
    leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({
                "metadata": {"name": "figures-held-elsewhere"},
                "spec": {"holderIdentity": "elsewhere", "leaseDurationSeconds": 3600,
                         "renewTime": k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
                             k8s_openapi::jiff::Timestamp::now())},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let mut follower = env.controller(
        "follower",
        &["--leader-election-id", "figures-held-elsewhere"],
    );
    while follower.get("/readyz").is_none_or(|(c, _)| c != 200) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let follower_rss = follower.rss_kib().unwrap_or(0);
    follower.kill9();
    let ctl = env.controller("figures", &["--leader-elect=false", "--resync", RESYNC]);
    let ready = wait_all_ready(&env, s.many, Duration::from_mins(10)).await;
    if std::env::var_os("EGRESS_FIGURES_VERBOSE").is_some() {
        println!("    RSS when all Ready: {} KiB", ctl.rss_kib().unwrap_or(0));
    }
    // Steady state: a few resync passes with nothing to do.
    let passes = ctl.metric("egress_controller_passes_total").unwrap_or(0.0);
    let sum = ctl
        .metric("egress_controller_pass_duration_seconds_sum")
        .unwrap_or(0.0);
    let wait = if s.full { 35 } else { 12 };
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let passes2 = ctl.metric("egress_controller_passes_total").unwrap_or(0.0);
    let sum2 = ctl
        .metric("egress_controller_pass_duration_seconds_sum")
        .unwrap_or(0.0);
    let last = ctl
        .metric("egress_controller_last_pass_seconds")
        .unwrap_or(0.0);
    let rss = ctl.rss_kib().unwrap_or(0);
    let steady = if passes2 > passes {
        (sum2 - sum) / (passes2 - passes)
    } else {
        last
    };
    println!(
        "{} configurations in the API server (created in {created:.1} s, all Ready {:.1} s after the controller started): controller RSS {:.1} MB (target < 30 MB, ratio {:.2})",
        s.many,
        ready.as_secs_f64(),
        rss as f64 / 1024.0,
        rss as f64 / 1024.0 / 30.0
    );
    println!(
        "    of which the watch stores and the runtime (a follower that never passes): {:.1} MB",
        follower_rss as f64 / 1024.0
    );
    println!(
        "pass latency at {} configurations, steady state: {:.1} ms per pass ({} resync passes at {RESYNC}; last {:.1} ms)",
        s.many,
        steady * 1000.0,
        passes2 - passes,
        last * 1000.0
    );
}

fn main() {
    let s = sizes();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // `EGRESS_FIGURES_ONLY=one|burst|many` runs one figure.
    let only = std::env::var("EGRESS_FIGURES_ONLY").unwrap_or_default();
    rt.block_on(async {
        if only.is_empty() || only == "one" {
            one(&s).await;
        }
        if only.is_empty() || only == "burst" {
            burst(&s).await;
        }
        if only.is_empty() || only == "many" {
            many(&s).await;
        }
    });
}
