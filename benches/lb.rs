//! Load-balancer planning: `cargo bench -p egress-benches --bench lb`.

use criterion::{Criterion, criterion_group, criterion_main};
use egress_benches::lb_demands;
use egress_core::lb::{LbChange, ProbeSettings, plan};

fn lb(c: &mut Criterion) {
    let demands = lb_demands(1_000, 4);
    c.bench_function("lb_plan/1000_from_empty", |b| {
        b.iter(|| {
            plan(
                None,
                std::hint::black_box(&demands),
                ProbeSettings::default(),
            )
        });
    });
    let LbChange::Put(existing) = plan(None, &demands, ProbeSettings::default()).change else {
        return;
    };
    c.bench_function("lb_plan/1000_steady_state", |b| {
        b.iter(|| {
            plan(
                Some(&existing),
                std::hint::black_box(&demands),
                ProbeSettings::default(),
            )
        });
    });
}

criterion_group!(benches, lb);
criterion_main!(benches);
