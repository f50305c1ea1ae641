//! Route planning: `cargo bench -p egress-benches --bench routes`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use egress_benches::route_inputs;
use egress_core::routes::{RouteMode, RoutePlan};

fn plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_plan");
    for n in [20, 1_000, 10_000] {
        for mode in [RouteMode::Gateway, RouteMode::Primary] {
            let inputs = route_inputs(n, mode);
            group.bench_with_input(BenchmarkId::new(format!("{mode:?}"), n), &inputs, |b, i| {
                b.iter(|| RoutePlan::new(std::hint::black_box(i)));
            });
        }
    }
    group.finish();
}

fn explain(c: &mut Criterion) {
    let plan = RoutePlan::new(&route_inputs(10_000, RouteMode::Primary));
    let dst = std::net::Ipv4Addr::new(93, 184, 216, 34).into();
    c.bench_function("explain/10000", |b| {
        b.iter(|| plan.explain(std::hint::black_box(dst)));
    });
}

criterion_group!(benches, plan, explain);
criterion_main!(benches);
