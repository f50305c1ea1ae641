//! `fake-arm`: the fake Azure Resource Manager server as a process, for the local demo and
//! end-to-end tests. Prints its base URL, then logs one line per request (never a header).

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use egress_fakearm::{FakeArm, FakeArmOptions};

/// A fake Azure Resource Manager server (plain HTTP, any bearer token).
#[derive(Debug, Parser)]
#[command(name = "fake-arm", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8899")]
    listen: SocketAddr,
    /// Operation latency of writes: `2s`, `500ms` or a number of seconds.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    latency: Duration,
    /// A seed file (the JSON of `POST /_admin/seed`).
    #[arg(long)]
    seed: Option<std::path::PathBuf>,
    /// The subscription of seeds that name none.
    #[arg(long, default_value = "00000000-0000-0000-0000-000000000001")]
    subscription: String,
    /// The region of seeded resources.
    #[arg(long, default_value = "westus")]
    location: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("{s:?} is not a duration like 2s or 500ms");
    if let Some(ms) = s.strip_suffix("ms") {
        return ms
            .trim()
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| bad());
    }
    let secs = s.strip_suffix('s').unwrap_or(s).trim();
    secs.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(bad)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    // Logs go to stderr: stdout carries only the base URL, for scripts to read.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let arm = FakeArm::start(FakeArmOptions {
        listen: args.listen,
        latency: args.latency,
        subscription: args.subscription,
        location: args.location,
        ..FakeArmOptions::default()
    })
    .await?;
    if let Some(path) = &args.seed {
        let text =
            std::fs::read(path).with_context(|| format!("reading seed file {}", path.display()))?;
        let seed = egress_fakearm::seed::parse(&text)
            .with_context(|| format!("seed file {}", path.display()))?;
        let report = arm
            .seed(&seed)
            .with_context(|| format!("applying seed file {}", path.display()))?;
        tracing::info!(
            subnets = report.subnets.len(),
            scale_sets = report.vmss_pools.len(),
            vm_pools = report.vm_pools.len(),
            prefixes = report.public_ip_prefixes.len(),
            "seeded"
        );
    }
    #[allow(clippy::print_stdout)] // The base URL on stdout is this binary's interface.
    {
        println!("{}", arm.base_url());
    }
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
