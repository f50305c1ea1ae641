//! Gateway maintenance and failure, on the chart-installed system (two
//! workers, two gateway nodes of one scale set, Azure's edge simulated):
//! while a pod sends a steady stream of tagged requests to the echo host,
//!
//! - the gateway node serving it is drained (its gateway label removed, so
//!   the daemon's pod gets SIGTERM): traffic moves to the other node before
//!   the drained one's state is torn down, and no request is lost;
//! - the gateway node serving it then is killed hard: requests succeed
//!   again, from the other node's egress address, within the probe interval
//!   × (threshold + 1) + 1 s.
//!
//! Needs root and `scripts/setup.sh`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr,
    clippy::too_many_lines
)]

use std::time::{Duration, Instant};

use egress_e2e::failover::{GAP_MS, first_from, kill_serving_gateway};
use egress_e2e::stack::{Stack, StackOptions};
use egress_e2e::stream::{REQUEST_TIMEOUT_SECS, RequestStream};
use egress_e2e::tenants::{Mode, within};
use egress_e2e::wait::eventually;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const GATEWAY_LABEL: &str = "kubeegressgateway.azure.com/mode";
const WAIT: Duration = Duration::from_mins(1);

async fn set_gateway_label(stack: &Stack, node: &str, on: bool) {
    let value = if on { json!("true") } else { json!(null) };
    Api::<Node>::all(stack.cluster.client())
        .patch(
            node,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {GATEWAY_LABEL: value}}})),
        )
        .await
        .unwrap();
}

/// The gateway daemon pods on `node`.
async fn daemons_on(stack: &Stack, node: &str) -> Vec<String> {
    Api::<Pod>::namespaced(stack.cluster.client(), "kube-egress-gateway-system")
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await
        .unwrap()
        .items
        .iter()
        .map(ResourceExt::name_any)
        .filter(|n| n.starts_with("egress-gateway-daemon"))
        .collect()
}

/// The longest time between two consecutive arrivals in `[from, to]`.
fn longest_gap(stream: &RequestStream, from: Instant, to: Instant) -> Duration {
    let mut at: Vec<Instant> = stream
        .arrived()
        .into_iter()
        .map(|(_, s)| s.at)
        .filter(|t| *t >= from && *t <= to)
        .collect();
    at.sort();
    at.windows(2).map(|w| w[1] - w[0]).max().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_gateway_loses_no_request_and_a_killed_one_fails_over_in_time() {
    let mut stack = Stack::start(StackOptions::default(), &mut |step, took| {
        eprintln!("[{took:>8.1?}] {step}");
    })
    .await
    .unwrap();
    let worker = stack.workers[0].clone();
    let tenant = egress_e2e::tenants::create(&stack, &[("shop", Mode::Managed)], &worker)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.component_logs(30)))
        .remove(0);
    // Drain: the node serving the pod loses its gateway label.
    let stream =
        RequestStream::start(&stack.cluster, "shop", "app", &stack.echo, "dr", GAP_MS).unwrap();
    let warm = first_from(
        &stack,
        &stream,
        &stack
            .node_with_address(&tenant.seen)
            .expect("the first address is a gateway node's"),
        stream.started,
        "the request stream to reach the echo host",
    )
    .await
    .unwrap();
    let serving = stack
        .node_with_address(&stream.arrived().last().unwrap().1.source)
        .unwrap();
    let survivor = stack
        .gateways
        .iter()
        .find(|g| **g != serving)
        .unwrap()
        .clone();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let drained_at = Instant::now();
    set_gateway_label(&stack, &serving, false).await;
    // Both measured from the label's removal, side by side: when requests
    // first leave through the other node, and when the drained node's
    // daemon (which holds its state while it drains) is gone.
    let (moved, gone) = tokio::join!(
        first_from(
            &stack,
            &stream,
            &survivor,
            drained_at,
            "requests to leave through the other gateway node",
        ),
        eventually("the drained node's gateway daemon to go", WAIT, || async {
            let left = daemons_on(&stack, &serving).await;
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        }),
    );
    let moved = moved.unwrap();
    let ((), torn_down) = gone.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let end = Instant::now();
    tokio::time::sleep(Duration::from_secs(u64::from(REQUEST_TIMEOUT_SECS) + 1)).await;
    let sent = stream.arrived().len();
    let missing = stream
        .last_sent_before(end)
        .map(|n| stream.missing_through(n))
        .unwrap_or_default();
    let gap = longest_gap(&stream, warm, end);
    stream.stop().unwrap();
    eprintln!(
        "drain of {serving}: traffic on {survivor} after {:?}, daemon gone after {torn_down:?}; \
         {sent} requests, {} lost, longest gap between arrivals {gap:?}",
        moved - drained_at,
        missing.len()
    );
    assert!(
        moved - drained_at < torn_down,
        "traffic moved only after {:?}, not before the drained node's daemon and its state went \
         ({torn_down:?})",
        moved - drained_at
    );
    assert!(
        missing.is_empty(),
        "requests lost during the drain: {missing:?}"
    );

    // Back into service, then a hard kill of whichever node serves now.
    set_gateway_label(&stack, &serving, true).await;
    stack.wait_ready().await.unwrap();
    eventually(
        "the edge to see both gateway nodes healthy",
        WAIT,
        || async {
            let health = stack.edge.health();
            if stack.gateways.iter().all(|g| health.get(g) == Some(&true)) {
                Ok(())
            } else {
                Err(format!("{health:?}"))
            }
        },
    )
    .await
    .unwrap();
    let f = kill_serving_gateway(&mut stack, "shop", "app")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "failover: {} killed; requests succeed again after {:?} (budget {:?}) through {}, \
         leaving as {} instead of {}; {} requests failed",
        f.victim, f.took, f.budget, f.survivor, f.after, f.before, f.failed
    );
    assert!(
        within(&tenant.status, &f.after),
        "after failover the pod leaves from its configuration's prefix {}, not {}",
        tenant.status,
        f.after
    );
    assert_eq!(
        stack.node_with_address(&f.after).as_deref(),
        Some(f.survivor.as_str())
    );
    assert_ne!(f.after, f.before);
    assert!(
        f.took <= f.budget,
        "failover took {:?}, over the budget of {:?}",
        f.took,
        f.budget
    );
}
