//! Fast failover on the pod side: every tunnel's counters are sampled once
//! a second and `egress_core::liveness` says which silent tunnel to reset.
//! A reset re-writes the tunnel's peer, which drops its session, so the
//! next packet starts a handshake through the load balancer to a healthy
//! gateway node instead of waiting out WireGuard's own 15 seconds.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egress_core::agent::{PodDataplane, Sandbox};
use egress_core::liveness::{Liveness, LivenessSettings, Verdict};

use crate::pods::{PodKey, Pods};

/// Starts the watch (sampling each second) unless `silence_ms` is 0.
pub fn spawn(pods: Arc<Pods>, silence_ms: u64) -> Option<tokio::task::JoinHandle<()>> {
    (silence_ms > 0).then(|| {
        let settings = LivenessSettings {
            silence_ms,
            ..LivenessSettings::default()
        };
        tokio::spawn(watch(pods, settings, Duration::from_secs(1)))
    })
}

/// Samples every `every` until the task is aborted.
pub async fn watch(pods: Arc<Pods>, settings: LivenessSettings, every: Duration) {
    let start = Instant::now();
    // Keyed by pod and sandbox, so a new sandbox starts a new watch.
    let mut watched: HashMap<(PodKey, String), Liveness> = HashMap::new();
    loop {
        tokio::time::sleep(every).await;
        let now_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        // What to read is taken under the state lock; the reads run after
        // it is released, so CNI requests never wait for a sampling round.
        let readers: Vec<_> = {
            let state = pods.state.lock().await;
            watched.retain(|(key, sandbox), _| {
                state
                    .get(key)
                    .is_some_and(|e| &e.sandbox.container_id == sandbox && e.have.on_tunnel())
            });
            let on: Vec<(PodKey, Sandbox)> = state
                .iter()
                .filter(|(_, e)| e.have.on_tunnel())
                .map(|(k, e)| (k.clone(), e.sandbox.clone()))
                .collect();
            let sandboxes: Vec<Sandbox> = on.iter().map(|(_, s)| s.clone()).collect();
            let readers: HashMap<String, _> = pods
                .devices
                .counter_readers(&sandboxes)
                .into_iter()
                .collect();
            on.into_iter()
                .filter_map(|(key, s)| {
                    let reader = readers.get(&s.container_id)?.clone();
                    Some((key, s.container_id, reader))
                })
                .collect()
        };
        let mut reset = Vec::new();
        for (key, sandbox, reader) in readers {
            let counters = match reader.read().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(pod = %format!("{}/{}", key.0, key.1), error = %e, "reading tunnel counters failed");
                    continue;
                }
            };
            let live = watched
                .entry((key.clone(), sandbox.clone()))
                .or_insert_with(|| Liveness::new(settings, counters));
            if live.observe(now_ms, counters) == Verdict::Reset {
                reset.push((key, sandbox, live.streak()));
            }
        }
        for (key, sandbox, streak) in reset {
            let _held = pods.lock_pod(&key).await;
            let Some(e) = pods
                .state
                .lock()
                .await
                .get(&key)
                .filter(|e| e.sandbox.container_id == sandbox)
                .cloned()
            else {
                continue;
            };
            let Some(tunnel) = &e.have.routes else {
                continue;
            };
            // Writing the same peer again drops the session.
            let done = pods
                .devices
                .set_peer(&e.sandbox, tunnel, &e.key.private)
                .await;
            match done {
                Ok(()) => {
                    pods.metrics.tunnel_reset();
                    tracing::info!(pod = %format!("{}/{}", key.0, key.1), streak, "tunnel silent: session dropped for a new handshake");
                }
                Err(e) => {
                    pods.metrics.failure("tunnel_reset");
                    tracing::warn!(pod = %format!("{}/{}", key.0, key.1), error = %e, "resetting a silent tunnel failed");
                }
            }
        }
    }
}
