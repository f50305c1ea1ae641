//! Gateway-node planning: `cargo bench -p egress-benches --bench node`.

use criterion::{Criterion, criterion_group, criterion_main};
use egress_benches::node_inputs;
use egress_core::node::{NodeState, desired, diff};

fn node(c: &mut Criterion) {
    let (configs, endpoints) = node_inputs(100, 10_000);
    c.bench_function("node_desired/10000_peers_100_configs", |b| {
        b.iter(|| {
            desired(
                std::hint::black_box(&configs),
                std::hint::black_box(&endpoints),
                1420,
            )
        });
    });
    let want = desired(&configs, &endpoints, 1420);
    let empty = NodeState::default();
    c.bench_function("node_diff/10000_peers_from_empty", |b| {
        b.iter(|| diff(std::hint::black_box(&want), &empty));
    });
    c.bench_function("node_diff/10000_peers_no_op", |b| {
        b.iter(|| diff(std::hint::black_box(&want), &want));
    });
}

criterion_group!(benches, node);
criterion_main!(benches);
