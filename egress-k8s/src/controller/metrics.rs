//! The controller's own metrics, rendered in the Prometheus text format.
//! Plain counters under a mutex: a pass takes milliseconds to seconds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use egress_core::controller::{Outcome, PassReport};

/// Upper bounds of the pass-duration histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];

/// Every outcome state, so each is exported even at zero.
const STATES: [&str; 8] = [
    "ready",
    "pending",
    "held",
    "invalid",
    "failed",
    "moving",
    "deleted",
    "delete_pending",
];

fn state(o: &Outcome) -> &'static str {
    match o {
        Outcome::Ready => "ready",
        Outcome::Pending => "pending",
        Outcome::Held(_) => "held",
        Outcome::Invalid(_) => "invalid",
        Outcome::Failed(_) => "failed",
        Outcome::Moving => "moving",
        Outcome::Deleted => "deleted",
        Outcome::DeletePending(_) => "delete_pending",
    }
}

#[derive(Debug, Default)]
struct Inner {
    passes: u64,
    abandoned: u64,
    list_failures: u64,
    buckets: [u64; BUCKETS.len()],
    seconds_sum: f64,
    last_seconds: f64,
    outcomes: BTreeMap<&'static str, u64>,
    leader: bool,
}

/// Counters of passes, outcomes and leadership.
#[derive(Debug, Default)]
pub struct Metrics(Mutex<Inner>);

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// A pass finished with `report` after `took`.
    pub fn pass(&self, took: Duration, report: &PassReport) {
        let secs = took.as_secs_f64();
        self.with(|m| {
            m.passes += 1;
            m.seconds_sum += secs;
            m.last_seconds = secs;
            for (i, le) in BUCKETS.iter().enumerate() {
                if secs <= *le {
                    m.buckets[i] += 1;
                }
            }
            m.outcomes.clear();
            for o in report.outcomes.values() {
                *m.outcomes.entry(state(o)).or_default() += 1;
            }
        });
    }

    /// A pass could not list the configurations.
    pub fn list_failed(&self) {
        self.with(|m| m.list_failures += 1);
    }

    /// A pass was abandoned (leadership lost, or shutdown past the grace period).
    pub fn abandoned(&self) {
        self.with(|m| m.abandoned += 1);
    }

    /// Whether this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.with(|m| m.leader = leader);
    }

    /// Passes so far.
    pub fn passes(&self) -> u64 {
        self.with(|m| m.passes)
    }

    /// The Prometheus text of these metrics, the Kubernetes writes and
    /// `extra` (the cloud adapter's).
    pub fn render(&self, kube_writes: &BTreeMap<&'static str, u64>, extra: &str) -> String {
        let mut out = String::new();
        self.with(|m| {
            let _ = writeln!(
                out,
                "# HELP egress_controller_passes_total Reconcile passes completed.\n# TYPE egress_controller_passes_total counter\negress_controller_passes_total {}",
                m.passes
            );
            let _ = writeln!(
                out,
                "# HELP egress_controller_passes_abandoned_total Passes abandoned on loss of leadership or shutdown.\n# TYPE egress_controller_passes_abandoned_total counter\negress_controller_passes_abandoned_total {}",
                m.abandoned
            );
            let _ = writeln!(
                out,
                "# HELP egress_controller_list_failures_total Passes that could not list configurations.\n# TYPE egress_controller_list_failures_total counter\negress_controller_list_failures_total {}",
                m.list_failures
            );
            let _ = writeln!(
                out,
                "# HELP egress_controller_pass_duration_seconds Duration of reconcile passes.\n# TYPE egress_controller_pass_duration_seconds histogram"
            );
            for (i, le) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "egress_controller_pass_duration_seconds_bucket{{le=\"{le}\"}} {}",
                    m.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "egress_controller_pass_duration_seconds_bucket{{le=\"+Inf\"}} {p}\negress_controller_pass_duration_seconds_sum {}\negress_controller_pass_duration_seconds_count {p}",
                m.seconds_sum,
                p = m.passes
            );
            let _ = writeln!(
                out,
                "# HELP egress_controller_last_pass_seconds Duration of the last pass.\n# TYPE egress_controller_last_pass_seconds gauge\negress_controller_last_pass_seconds {}",
                m.last_seconds
            );
            let _ = writeln!(
                out,
                "# HELP egress_controller_configurations Configurations by outcome of the last pass.\n# TYPE egress_controller_configurations gauge"
            );
            for s in STATES {
                let _ = writeln!(
                    out,
                    "egress_controller_configurations{{state=\"{s}\"}} {}",
                    m.outcomes.get(s).copied().unwrap_or(0)
                );
            }
            let _ = writeln!(
                out,
                "# HELP egress_controller_leader Whether this replica leads (1) or waits (0).\n# TYPE egress_controller_leader gauge\negress_controller_leader {}",
                u8::from(m.leader)
            );
        });
        let _ = writeln!(
            out,
            "# HELP egress_controller_kube_writes_total Writes to the Kubernetes API by kind.\n# TYPE egress_controller_kube_writes_total counter"
        );
        for (op, n) in kube_writes {
            let _ = writeln!(
                out,
                "egress_controller_kube_writes_total{{op=\"{op}\"}} {n}"
            );
        }
        out.push_str(extra);
        out
    }
}
