//! What the daemon shares between its loop and its HTTP endpoints: the
//! configurations observed in place, the draining flag, and the metrics.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use egress_net::dataplane::InterfaceStats;

/// Counters and gauges for `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Configurations observed fully in place.
    pub configurations: usize,
    /// Peers configured on those interfaces.
    pub peers: usize,
    /// Per interface: SGC UID and traffic.
    pub interfaces: BTreeMap<String, (String, InterfaceStats)>,
    /// Passes and their total and last duration.
    pub passes: u64,
    /// Seconds spent applying, summed.
    pub apply_seconds_sum: f64,
    /// Last pass's duration.
    pub apply_seconds_last: f64,
    /// Timer passes that found and repaired drift.
    pub drift_repairs: u64,
    /// Kernel writes so far.
    pub kernel_writes: u64,
    /// Failed passes.
    pub errors: u64,
}

/// Shared daemon state.
#[derive(Debug, Default)]
pub struct Shared {
    serving: Mutex<BTreeSet<String>>,
    draining: AtomicBool,
    metrics: Mutex<Metrics>,
}

impl Shared {
    /// Whether the probe should say 200 for `uid`.
    pub fn serving(&self, uid: &str) -> bool {
        !self.draining.load(Ordering::SeqCst)
            && self
                .serving
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(uid)
    }

    /// Publishes the configurations observed in place.
    pub fn set_serving(&self, uids: BTreeSet<String>) {
        *self.serving.lock().unwrap_or_else(PoisonError::into_inner) = uids;
    }

    /// Stops serving every UID not in `keep` (a configuration on its way
    /// out answers 503 before its state is removed).
    pub fn retain_serving(&self, keep: &BTreeSet<String>) {
        self.serving
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|uid| keep.contains(uid));
    }

    /// From now on every probe answers 503.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Updates the metrics.
    pub fn metrics<R>(&self, f: impl FnOnce(&mut Metrics) -> R) -> R {
        f(&mut self.metrics.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Prometheus text exposition.
    pub fn render_metrics(&self) -> String {
        let m = self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
        let mut t = String::new();
        let mut gauge = |name: &str, help: &str, kind: &str, value: String| {
            let _ = writeln!(
                t,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        gauge(
            "egress_gateway_configurations_applied",
            "Configurations observed fully in place.",
            "gauge",
            m.configurations.to_string(),
        );
        gauge(
            "egress_gateway_peers_applied",
            "WireGuard peers on those configurations.",
            "gauge",
            m.peers.to_string(),
        );
        gauge(
            "egress_gateway_drift_repairs_total",
            "Timer passes that found and repaired drift.",
            "counter",
            m.drift_repairs.to_string(),
        );
        gauge(
            "egress_gateway_kernel_writes_total",
            "Netlink, WireGuard, nftables and sysctl writes.",
            "counter",
            m.kernel_writes.to_string(),
        );
        gauge(
            "egress_gateway_sync_errors_total",
            "Passes that failed.",
            "counter",
            m.errors.to_string(),
        );
        gauge(
            "egress_gateway_apply_seconds_last",
            "Duration of the last pass.",
            "gauge",
            format!("{:.6}", m.apply_seconds_last),
        );
        let _ = writeln!(
            t,
            "# HELP egress_gateway_apply_seconds Duration of passes.\n# TYPE egress_gateway_apply_seconds summary\negress_gateway_apply_seconds_sum {:.6}\negress_gateway_apply_seconds_count {}",
            m.apply_seconds_sum, m.passes
        );
        let mut by_metric: HashMap<&str, Vec<String>> = HashMap::new();
        for (iface, (uid, s)) in &m.interfaces {
            let labels = format!("interface=\"{iface}\",sgc_uid=\"{uid}\"");
            by_metric
                .entry("egress_gateway_rx_bytes_total")
                .or_default()
                .push(format!("{{{labels}}} {}", s.rx_bytes));
            by_metric
                .entry("egress_gateway_tx_bytes_total")
                .or_default()
                .push(format!("{{{labels}}} {}", s.tx_bytes));
            if let Some(age) = s.latest_handshake_age_secs {
                by_metric
                    .entry("egress_gateway_latest_handshake_age_seconds")
                    .or_default()
                    .push(format!("{{{labels}}} {age}"));
            }
        }
        for (name, help, kind) in [
            (
                "egress_gateway_rx_bytes_total",
                "Bytes received from a configuration's peers.",
                "counter",
            ),
            (
                "egress_gateway_tx_bytes_total",
                "Bytes sent to a configuration's peers.",
                "counter",
            ),
            (
                "egress_gateway_latest_handshake_age_seconds",
                "Age of a configuration's most recent handshake.",
                "gauge",
            ),
        ] {
            let _ = writeln!(t, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for line in by_metric.get(name).into_iter().flatten() {
                let _ = writeln!(t, "{name}{line}");
            }
        }
        t
    }
}
