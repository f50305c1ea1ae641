//! Azure figures through the real path: the pass loop (debounced by core's
//! scheduler), the ARM adapter over HTTP, and the fake ARM server with its
//! operation latency. `cargo bench -p egress-benches --bench azure`.
//!
//! 1. 100 configurations arriving one at a time, 10 a second, on one
//!    4-instance VMSS pool, in private mode, with BYO prefixes and with
//!    managed prefixes: ARM writes and the time until all are Ready, beside
//!    upstream's algorithm.
//! 2. ARM reads per hour at steady state for 100 configurations.
//! 3. 100 create/delete cycles with random faults: every cycle converges and
//!    the fake ARM holds nothing afterwards.
//!
//! `cargo test --benches` runs a small version (10 configurations, 100 ms
//! operations, 10 cycles) that checks convergence only.

#![allow(
    clippy::print_stdout,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::cast_precision_loss // ratios of small counts, for printing
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egress_azure::local::LocalCloud;
use egress_benches::Lcg;
use egress_core::backoff::Backoff;
use egress_core::controller::schedule::{Debounce, Scheduler};
use egress_core::controller::{ControllerSettings, Outcome, PassReport, reconcile};
use egress_core::lb::ProbeSettings;
use egress_core::model::GatewaySpec;
use egress_core::testing::InMemoryCluster;
use egress_fakearm::{Fault, FaultRule};
use tokio::sync::mpsc;

/// The figure's sizes: full under `cargo bench`, small under `cargo test`.
struct Sizes {
    configs: usize,
    latency: Duration,
    cycles: usize,
}

/// `EGRESS_AZURE_FIGURES_VERBOSE=1` prints every fault cycle.
fn verbose() -> bool {
    std::env::var_os("EGRESS_AZURE_FIGURES_VERBOSE").is_some()
}

fn sizes() -> Sizes {
    if let Ok(n) = std::env::var("EGRESS_AZURE_FIGURES_CONFIGS") {
        return Sizes {
            configs: n.parse().unwrap_or(10),
            latency: Duration::from_secs(2),
            cycles: 100,
        };
    }
    if std::env::args().any(|a| a == "--bench") {
        Sizes {
            configs: 100,
            latency: Duration::from_secs(2),
            cycles: 100,
        }
    } else {
        Sizes {
            configs: 10,
            latency: Duration::from_millis(100),
            cycles: 10,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Private,
    Byo,
    Managed,
}

fn spec(mode: Mode, byo: Option<String>) -> GatewaySpec {
    GatewaySpec {
        gateway_nodepool_name: Some("gwpool".into()),
        provision_public_ips: !matches!(mode, Mode::Private),
        public_ip_prefix_id: byo,
        ..GatewaySpec::default()
    }
}

fn settings(local: &LocalCloud) -> ControllerSettings {
    ControllerSettings {
        subscription_id: local.arm.subscription().to_string(),
        frontend_subnet_id: local.frontend_subnet.clone(),
        probe: ProbeSettings::default(),
    }
}

/// The controller's loop: passes whenever the scheduler says so, until
/// `done` says every configuration reached its goal. Returns the number of
/// passes and when the goal was reached.
async fn run_loop(
    local: &LocalCloud,
    cluster: &InMemoryCluster,
    mut events: mpsc::UnboundedReceiver<()>,
    expected: usize,
    done: impl Fn(&PassReport) -> bool,
) -> (usize, Instant) {
    let start = Instant::now();
    let settings = settings(local);
    let mut scheduler = Scheduler::new(Debounce {
        quiet: Duration::from_millis(200),
        max_wait: Duration::from_secs(1),
    });
    let backoff = Backoff::default();
    let mut attempts = BTreeMap::new();
    let mut passes = 0;
    let mut seen = 0;
    loop {
        let now = start.elapsed();
        if scheduler.due(now) {
            scheduler.pass_started(now);
            let report = reconcile(&local.cloud, cluster, &settings).await.unwrap();
            passes += 1;
            let requeue = report.requeue(&backoff, &mut attempts, 0.5);
            scheduler.pass_finished(start.elapsed(), requeue);
            let failed: Vec<String> = report
                .retryable()
                .take(2)
                .map(|(id, e)| format!("{id}: {:?}", e.first()))
                .collect();
            println!(
                "           pass {passes}: {:.1}-{:.1} s, {seen} configurations seen, {} Ready, {} writes so far, next in {:.1} s {failed:?}",
                now.as_secs_f64(),
                start.elapsed().as_secs_f64(),
                report
                    .outcomes
                    .values()
                    .filter(|o| **o == Outcome::Ready)
                    .count(),
                local.arm.counts().writes,
                requeue.as_secs_f64(),
            );
            if seen == expected && done(&report) {
                return (passes, Instant::now());
            }
            continue;
        }
        let wait = scheduler
            .next_pass_at()
            .map_or(Duration::from_hours(1), |at| at.saturating_sub(now));
        tokio::select! {
            event = events.recv() => {
                if event.is_some() {
                    seen += 1;
                    scheduler.changed(start.elapsed());
                }
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

fn all(report: &PassReport, n: usize, want: &Outcome) -> bool {
    report.outcomes.len() == n && report.outcomes.values().all(|o| o == want)
}

async fn arrivals(mode: Mode, s: &Sizes) -> (LocalCloud, Arc<InMemoryCluster>) {
    let local = LocalCloud::start(s.latency).await.unwrap();
    local
        .add_vmss_pool("aks-gwpool-1234-vmss", "gwpool", 30, 4)
        .unwrap();
    let byo: Vec<Option<String>> = (0..s.configs)
        .map(|i| match mode {
            Mode::Byo => Some(local.add_byo_prefix(&format!("byo{i}"), 30).unwrap()),
            Mode::Private | Mode::Managed => None,
        })
        .collect();
    local.arm.reset_counts();
    let cluster = Arc::new(InMemoryCluster::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let feeder = {
        let cluster = Arc::clone(&cluster);
        tokio::spawn(async move {
            for (i, prefix) in byo.into_iter().enumerate() {
                cluster.apply("ns", &format!("gw{i:03}"), spec(mode, prefix));
                let _ = tx.send(());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Instant::now()
        })
    };
    let first = Instant::now();
    let n = s.configs;
    let (passes, ready) = run_loop(&local, &cluster, rx, n, |r| all(r, n, &Outcome::Ready)).await;
    let last = feeder.await.unwrap();
    let counts = local.arm.counts();
    let creates = counts
        .operations
        .get("PublicIPPrefixes_CreateOrUpdate")
        .map_or(0, |o| o.calls);
    let others = counts.writes - creates;
    let latency = s.latency.as_secs_f64();
    let target = 4.0 * latency + 5.0;
    let after_last = ready.saturating_duration_since(last).as_secs_f64();
    println!(
        "{:<8} {n} configurations: {others:>3} ARM writes + {creates:>3} prefix creates in {passes} passes; all Ready {:.1} s after the first, {after_last:.1} s after the last (target <= {target:.0} s, ratio {:.2}); writes target <= 20 (ratio {:.2})",
        format!("{mode:?}"),
        ready.duration_since(first).as_secs_f64(),
        after_last / target,
        others as f64 / 20.0,
    );
    for (op, c) in &counts.operations {
        if !matches!(
            c.kind,
            Some(egress_fakearm::CallKind::Read | egress_fakearm::CallKind::Poll)
        ) {
            println!("           {op}: {}", c.calls);
        }
    }
    (local, cluster)
}

async fn steady_reads(local: &LocalCloud, cluster: &InMemoryCluster, n: usize) {
    let settings = settings(local);
    local.arm.reset_counts();
    let passes = 3;
    for _ in 0..passes {
        let report = reconcile(&local.cloud, cluster, &settings).await.unwrap();
        assert!(all(&report, n, &Outcome::Ready), "{report:?}");
    }
    let counts = local.arm.counts();
    assert_eq!(counts.writes, 0, "steady state writes: {counts:?}");
    let per_pass = counts.reads as f64 / f64::from(passes);
    // One pass per 5-minute resync, as upstream requeues every 5 minutes.
    let ours = per_pass * 12.0;
    // Upstream, per configuration every 5 minutes: list VMs, list VMSSes,
    // list the VMSS's instances and GET each of the 4 instances' NICs.
    let upstream = (3.0 + 4.0) * n as f64 * 12.0;
    println!(
        "steady state, {n} configurations (private mode): {per_pass:.0} ARM reads per pass, {ours:.0} per hour at one pass per 5 minutes; upstream about {upstream:.0} per hour; ratio {:.3} (target <= 0.1)",
        ours / upstream
    );
}

const WRITE_OPS: [&str; 7] = [
    "LoadBalancers_CreateOrUpdate",
    "VirtualMachineScaleSets_Update",
    "VirtualMachineScaleSets_UpdateInstances",
    "VirtualMachineScaleSetVMs_Update",
    "PublicIPPrefixes_CreateOrUpdate",
    "PublicIPPrefixes_Delete",
    "LoadBalancers_Delete",
];
const VM_WRITE_OPS: [&str; 3] = [
    "NetworkInterfaces_CreateOrUpdate",
    "PublicIPAddresses_CreateOrUpdate",
    "PublicIPAddresses_Delete",
];

fn random_fault(rng: &mut Lcg) -> Fault {
    match rng.below(6) {
        0 => Fault::Throttle {
            retry_after_seconds: 1,
        },
        1 => Fault::Conflict {
            code: "AnotherOperationInProgress".into(),
        },
        2 => Fault::ServerError {
            status: 503,
            code: None,
        },
        3 => Fault::AppliedThenError,
        4 => Fault::slow(Duration::from_millis(300)),
        _ => Fault::FailOperation {
            code: "InternalOperationError".into(),
            message: None,
        },
    }
}

async fn passes_until(
    local: &LocalCloud,
    cluster: &InMemoryCluster,
    goal: impl Fn(&PassReport) -> bool,
) -> usize {
    let settings = settings(local);
    for passes in 1..=12 {
        let report = reconcile(&local.cloud, cluster, &settings).await.unwrap();
        if goal(&report) {
            return passes;
        }
    }
    panic!("no convergence within 12 passes");
}

async fn fault_cycles(s: &Sizes) {
    let local = LocalCloud::start(Duration::from_millis(20)).await.unwrap();
    local
        .add_vmss_pool("aks-gwpool-1234-vmss", "gwpool", 30, 2)
        .unwrap();
    local.add_vm_pool("vmpool", 30, 2).unwrap();
    let cluster = InMemoryCluster::default();
    let mut rng = Lcg::new(0x5eed);
    let mut max_passes = 0;
    let mut total = 0;
    let started = Instant::now();
    for cycle in 0..s.cycles {
        let vm = rng.below(3) == 0;
        let mode = match rng.below(3) {
            0 => Mode::Private,
            1 => Mode::Byo,
            _ => Mode::Managed,
        };
        let byo = matches!(mode, Mode::Byo)
            .then(|| local.add_byo_prefix(&format!("c{cycle}"), 30).unwrap());
        let mut spec = spec(mode, byo);
        if vm {
            spec.gateway_nodepool_name = Some("vmpool".into());
        }
        let ops: Vec<&str> = WRITE_OPS
            .iter()
            .chain(if vm { VM_WRITE_OPS.iter() } else { [].iter() })
            .copied()
            .collect();
        let mut faults = Vec::new();
        for _ in 0..2 {
            let op = ops[usize::try_from(rng.below(ops.len() as u64)).unwrap()];
            let fault = random_fault(&mut rng);
            faults.push(format!("{op}: {}", fault.name()));
            local.arm.script_fault(FaultRule::new(op, fault));
        }
        let cycle_start = Instant::now();
        cluster.apply("ns", "cycle", spec);
        let up = passes_until(&local, &cluster, |r| all(r, 1, &Outcome::Ready)).await;
        for _ in 0..2 {
            let op = ops[usize::try_from(rng.below(ops.len() as u64)).unwrap()];
            let fault = random_fault(&mut rng);
            faults.push(format!("{op}: {}", fault.name()));
            local.arm.script_fault(FaultRule::new(op, fault));
        }
        cluster.delete("ns", "cycle");
        let down = passes_until(&local, &cluster, |r| all(r, 1, &Outcome::Deleted)).await;
        local.arm.clear_faults();
        let left = local.arm.leftovers();
        assert!(left.is_empty(), "cycle {cycle}: {left:#?}");
        assert!(cluster.state().configs.is_empty());
        if verbose() {
            println!(
                "           cycle {cycle}: {mode:?}{} up in {up}, down in {down} passes, {:.1} s; {faults:?}",
                if vm { " on the VM pool" } else { "" },
                cycle_start.elapsed().as_secs_f64()
            );
        }
        max_passes = max_passes.max(up.max(down));
        total += up + down;
    }
    println!(
        "{} create/delete cycles with 2 random faults each way: all converged, 0 objects left in the fake ARM; {:.1} passes per cycle on average, at most {max_passes} per direction; {:.1} s",
        s.cycles,
        total as f64 / s.cycles as f64,
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    let s = sizes();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "upstream's algorithm for {n} configurations on a 4-instance pool: {w} writes (1 load-balancer PUT, 1 VMSS PUT, 4 instance updates each), serial: about {t:.0} s at {l:.1} s per operation",
            n = s.configs,
            w = 6 * s.configs,
            t = 6.0 * s.configs as f64 * s.latency.as_secs_f64(),
            l = s.latency.as_secs_f64(),
        );
        let only_cycles = std::env::var_os("EGRESS_AZURE_FIGURES_ONLY_CYCLES").is_some();
        let mut steady = None;
        for mode in [Mode::Private, Mode::Byo, Mode::Managed] {
            if only_cycles {
                break;
            }
            let (local, cluster) = arrivals(mode, &s).await;
            if matches!(mode, Mode::Private) {
                steady = Some((local, cluster));
            }
        }
        if let Some((local, cluster)) = steady {
            steady_reads(&local, &cluster, s.configs).await;
        }
        fault_cycles(&s).await;
    });
}
