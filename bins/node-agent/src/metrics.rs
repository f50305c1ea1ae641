//! The agent's Prometheus metrics, served as text on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Latency buckets, seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Counters and a latency histogram per CNI command.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<&'static str, Histogram>>,
    failures: Mutex<BTreeMap<&'static str, u64>>,
    replumbs: AtomicU64,
    on_tunnel: AtomicU64,
    tunnel_resets: AtomicU64,
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// Records one CNI request of `command` that took `took`.
    pub fn request(&self, command: &'static str, took: Duration) {
        let s = took.as_secs_f64();
        if let Ok(mut m) = self.requests.lock() {
            let h = m.entry(command).or_default();
            h.count += 1;
            h.sum += s;
            for (i, b) in BUCKETS.iter().enumerate() {
                if s <= *b {
                    h.counts[i] += 1;
                }
            }
        }
    }

    /// Counts a failure by reason.
    pub fn failure(&self, reason: &'static str) {
        if let Ok(mut m) = self.failures.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Counts a re-plumb of a running pod.
    pub fn replumb(&self) {
        self.replumbs.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a silent tunnel's session dropped for a new handshake.
    pub fn tunnel_reset(&self) {
        self.tunnel_resets.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the number of pods on the tunnel.
    pub fn set_on_tunnel(&self, n: usize) {
        self.on_tunnel.store(n as u64, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# TYPE egress_agent_cni_requests_seconds histogram\n");
        if let Ok(m) = self.requests.lock() {
            for (cmd, h) in m.iter() {
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "egress_agent_cni_requests_seconds_bucket{{command=\"{cmd}\",le=\"{b}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "egress_agent_cni_requests_seconds_bucket{{command=\"{cmd}\",le=\"+Inf\"}} {}\negress_agent_cni_requests_seconds_sum{{command=\"{cmd}\"}} {}\negress_agent_cni_requests_seconds_count{{command=\"{cmd}\"}} {}",
                    h.count, h.sum, h.count
                );
            }
        }
        out.push_str("# TYPE egress_agent_failures_total counter\n");
        if let Ok(m) = self.failures.lock() {
            for (reason, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "egress_agent_failures_total{{reason=\"{reason}\"}} {n}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# TYPE egress_agent_replumbs_total counter\negress_agent_replumbs_total {}\n# TYPE egress_agent_pods_on_tunnel gauge\negress_agent_pods_on_tunnel {}\n# TYPE egress_agent_tunnel_resets_total counter\negress_agent_tunnel_resets_total {}",
            self.replumbs.load(Ordering::Relaxed),
            self.on_tunnel.load(Ordering::Relaxed),
            self.tunnel_resets.load(Ordering::Relaxed)
        );
        out
    }
}
