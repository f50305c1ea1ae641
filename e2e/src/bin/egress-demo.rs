//! `egress-demo`: the whole system on this machine in one command. Starts a
//! local cluster of real kubelets, the fake Azure and its edge, installs the
//! Helm chart with the project's binaries, creates five namespaces with a
//! gateway configuration and a pod each, and prints what an echo host on
//! the "internet" sees, the throughput of the whole path beside the direct
//! one, the Azure calls made, and a failover: the gateway node serving one
//! pod is killed while it sends requests. `--keep` skips the failover,
//! leaves the system running (until Ctrl-C) and prints a kubeconfig.

#![allow(clippy::print_stdout)] // a command-line program: its output is the point

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use egress_e2e::stack::{Stack, StackOptions};
use egress_e2e::tenants::{self, Mode};
use egress_e2e::traffic::egress_of;

const TENANTS: [&str; 5] = ["shop", "billing", "search", "partners", "internal"];

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let keep = std::env::args().skip(1).any(|a| a == "--keep");
    if let Some(bad) = std::env::args().skip(1).find(|a| a != "--keep") {
        anyhow::bail!("unknown argument {bad:?}; usage: egress-demo [--keep]");
    }
    let started = Instant::now();
    println!("egress-gateway demo: five namespaces, five egress addresses, one gateway pool");
    let mut stack = Stack::start(
        StackOptions {
            byo_prefixes: vec!["partners-prefix".into()],
            ..StackOptions::default()
        },
        &mut |step, took| println!("  [{:>6.1}s] {step}", took.as_secs_f64()),
    )
    .await
    .context("starting the local system")?;
    stack.azure.arm.reset_counts();

    let byo = stack.azure.byo_prefixes["partners-prefix"].clone();
    let modes = [
        Mode::Managed,
        Mode::Managed,
        Mode::Managed,
        Mode::Byo(byo),
        Mode::Private,
    ];
    let plan: Vec<(&str, Mode)> = TENANTS.into_iter().zip(modes).collect();
    let worker = stack.workers[0].clone();
    let step = Instant::now();
    let seen = tenants::create(&stack, &plan, &worker)
        .await
        .context("five namespaces egressing")?;
    println!(
        "  [{:>6.1}s] five configurations applied, every pod egressing with its address",
        step.elapsed().as_secs_f64()
    );
    stack
        .cluster
        .apply(&tenants::pod_yaml("shop", "plain", &worker, false))
        .await?;
    stack
        .cluster
        .wait_pod_running("shop", "plain", Duration::from_mins(1))
        .await?;
    let plain_seen = egress_of(&stack.cluster, "shop", "plain", stack.echo.addr)
        .await
        .map_err(anyhow::Error::msg)?;
    let plain_ip = tenants::pod_ip(&stack.cluster.client(), "shop", "plain").await?;

    print_table(&seen, &plain_ip, &plain_seen);
    let counts = stack.azure.arm.counts();
    // Same run, same pods: the whole path (pod, tunnel, gateway, SNAT, edge
    // NAT) beside the pod's direct path.
    let (tunnel, via) =
        egress_e2e::traffic::throughput(&stack.cluster, "shop", "app", &stack.sink, 32).await?;
    let (direct, from) =
        egress_e2e::traffic::throughput(&stack.cluster, "shop", "plain", &stack.sink, 32).await?;
    println!();
    println!(
        "throughput, 32 MiB per TCP stream: through the gateway {tunnel:.0} MiB/s (seen as {via}), direct {direct:.0} MiB/s (seen as {from}), ratio {:.2}",
        tunnel / direct
    );
    println!();
    println!(
        "Azure calls since the system was up (five configurations): {} writes, {} reads, {} operation polls",
        counts.writes, counts.reads, counts.polls
    );
    if !keep {
        let f = egress_e2e::failover::kill_serving_gateway(&mut stack, "shop", "app")
            .await
            .context("failover")?;
        println!();
        println!(
            "failover: gateway node {} killed while shop/app sent a request every {} ms; requests succeed again after {:.1}s (target {:.0}s: probe interval x (threshold + 1) + 1 s), through {}, leaving as {} instead of {} (same prefix); {} of the requests sent meanwhile failed after retrying for {} s",
            f.victim,
            egress_e2e::failover::GAP_MS,
            f.took.as_secs_f64(),
            f.budget.as_secs_f64(),
            f.survivor,
            f.after,
            f.before,
            f.failed,
            egress_e2e::stream::REQUEST_TIMEOUT_SECS
        );
    }
    println!("total {:.1}s", started.elapsed().as_secs_f64());

    if keep {
        println!();
        println!(
            "kept running; in another shell:\n  export KUBECONFIG={}\n  kubectl get sgc -A\nCtrl-C tears it down.",
            stack.cluster.kubeconfig_path().display()
        );
        tokio::signal::ctrl_c()
            .await
            .context("waiting for Ctrl-C")?;
    }
    println!("tearing down");
    Ok(())
}

/// The namespaces and what the echo host saw of each.
fn print_table(seen: &[tenants::Tenant], plain_ip: &str, plain_seen: &str) {
    println!();
    println!(
        "{:<10} {:<8} {:<9} {:<32} {:<15} {:>8}",
        "NAMESPACE", "SGC", "MODE", "STATUS egressIpPrefix", "ECHO HOST SEES", "READY IN"
    );
    for t in seen {
        let mode = match t.mode {
            Mode::Managed => "managed",
            Mode::Byo(_) => "byo",
            Mode::Private => "private",
        };
        println!(
            "{:<10} {:<8} {:<9} {:<32} {:<15} {:>7.1}s",
            t.namespace,
            tenants::SGC,
            mode,
            t.status,
            t.seen,
            t.took.as_secs_f64()
        );
    }
    println!(
        "{:<10} {:<8} {:<9} {:<32} {:<15}",
        "shop",
        "-",
        "none",
        format!("(pod plain, {plain_ip})"),
        plain_seen
    );
}
