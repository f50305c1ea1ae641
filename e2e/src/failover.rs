//! Killing the gateway node that serves a pod, hard, while the pod sends a
//! steady stream of requests; measured as an operator would: the time from
//! the kill until requests succeed again, and the address they leave with.

use std::time::{Duration, Instant};

use crate::E2eError;
use crate::stack::Stack;
use crate::stream::{REQUEST_TIMEOUT_SECS, RequestStream};
use crate::wait::eventually;

/// One request every this many milliseconds.
pub const GAP_MS: u32 = 200;
const WAIT: Duration = Duration::from_mins(1);

/// What a failover looked like.
#[derive(Debug, Clone)]
pub struct Failover {
    /// The gateway node killed (computer name).
    pub victim: String,
    /// The node that took over.
    pub survivor: String,
    /// The address requests left with before the kill.
    pub before: String,
    /// The address of the first request that succeeded after it.
    pub after: String,
    /// From the kill to that request's arrival.
    pub took: Duration,
    /// Requests sent before the first that succeeded after the kill that
    /// never arrived (gave up after `REQUEST_TIMEOUT_SECS`).
    pub failed: usize,
    /// The target: probe interval × (threshold + 1) + 1 s.
    pub budget: Duration,
}

/// The failover target of the load balancer's probe, as the fake ARM holds it.
pub fn budget(stack: &Stack) -> Result<Duration, E2eError> {
    let probe = stack
        .edge
        .plan()
        .and_then(|p| p.rules.into_iter().find_map(|r| r.probe))
        .ok_or_else(|| E2eError::Unexpected("the load balancer has no probe yet".into()))?;
    Ok(probe.interval * (probe.threshold + 1) + Duration::from_secs(1))
}

/// Waits until `stream` has delivered a request after `after` from an
/// address of gateway node `node`; returns its arrival.
pub async fn first_from(
    stack: &Stack,
    stream: &RequestStream,
    node: &str,
    after: Instant,
    what: &str,
) -> Result<Instant, E2eError> {
    let (at, _) = eventually(what, WAIT, || async {
        stream
            .arrived()
            .into_iter()
            .map(|(_, s)| s)
            .find(|s| s.at > after && stack.node_with_address(&s.source).as_deref() == Some(node))
            .map(|s| s.at)
            .ok_or_else(|| {
                let last = stream.arrived().last().map(|(n, s)| (*n, s.source.clone()));
                format!("last arrival {last:?}")
            })
    })
    .await
    .map_err(|e| E2eError::Unexpected(format!("{e}\n{}", stack.component_logs(30))))?;
    Ok(at)
}

/// Streams requests from `namespace/pod` to the echo host, kills the
/// gateway node they leave through and measures until they succeed again
/// through the other one.
pub async fn kill_serving_gateway(
    stack: &mut Stack,
    namespace: &str,
    pod: &str,
) -> Result<Failover, E2eError> {
    let budget = budget(stack)?;
    let stream = RequestStream::start(&stack.cluster, namespace, pod, &stack.echo, "fo", GAP_MS)?;
    eventually("the request stream to flow", WAIT, || async {
        if stream.arrived().len() >= 5 {
            Ok(())
        } else {
            Err("fewer than five arrivals".to_string())
        }
    })
    .await
    .map_err(|e| E2eError::Unexpected(e.to_string()))?;
    let before = stream
        .arrived()
        .last()
        .map(|(_, s)| s.source.clone())
        .unwrap_or_default();
    let victim = stack
        .node_with_address(&before)
        .ok_or_else(|| E2eError::Unexpected(format!("{before} is no gateway node's address")))?;
    let survivor = stack
        .gateways
        .iter()
        .find(|g| **g != victim)
        .cloned()
        .ok_or_else(|| E2eError::Unexpected("a single gateway node cannot fail over".into()))?;
    let killed_at = Instant::now();
    stack.cluster.kill_node(&victim)?;
    let back = first_from(
        stack,
        &stream,
        &survivor,
        killed_at,
        "requests to succeed again after the kill",
    )
    .await?;
    let (first_back, after) = stream
        .arrived()
        .into_iter()
        .find(|(_, s)| s.at >= back)
        .map(|(n, s)| (n, s.source))
        .unwrap_or_default();
    // Requests still retrying when the path came back have their timeout
    // to arrive; counted are those sent up to the first that succeeded
    // after the kill and never arrived.
    tokio::time::sleep(Duration::from_secs(u64::from(REQUEST_TIMEOUT_SECS) + 1)).await;
    let failed = stream.missing_through(first_back).len();
    stream.stop()?;
    Ok(Failover {
        victim,
        survivor,
        before,
        after,
        took: back - killed_at,
        failed,
        budget,
    })
}
