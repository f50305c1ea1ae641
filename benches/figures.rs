//! Harness figures against the targets of DESIGN.md section 7:
//! `cargo bench -p egress-benches --bench figures`.
//!
//! Each figure is the median of many timed runs, printed with its target and
//! the ratio (below 1.0 meets the target).

#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use egress_benches::route_inputs;
use egress_core::routes::{RouteMode, RoutePlan};

fn median<F: FnMut()>(runs: usize, mut f: F) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

fn report(name: &str, took: Duration, target: Duration) {
    println!(
        "{name:<44} {:>10.1} us   target < {:>8.1} us   ratio {:.3}",
        took.as_secs_f64() * 1e6,
        target.as_secs_f64() * 1e6,
        took.as_secs_f64() / target.as_secs_f64()
    );
}

fn main() {
    // `cargo test --benches` runs this in test mode; keep that quick.
    let runs = if std::env::args().any(|a| a == "--bench") {
        201
    } else {
        3
    };
    for (n, target) in [
        (20, Duration::from_micros(20)),
        (10_000, Duration::from_millis(5)),
    ] {
        for mode in [RouteMode::Gateway, RouteMode::Primary] {
            let inputs = route_inputs(n, mode);
            let took = median(runs, || {
                std::hint::black_box(RoutePlan::new(std::hint::black_box(&inputs)));
            });
            report(
                &format!("route plan, {n} exclude CIDRs, {mode:?}"),
                took,
                target,
            );
        }
    }
}
