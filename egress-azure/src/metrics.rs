//! Per-operation counters of the ARM client, readable by callers (the
//! controller binary exports them). Plain counters under one mutex: ARM calls
//! take milliseconds to seconds, so contention is not a concern.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Counters for one ARM operation (Azure's operationId).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperationStats {
    /// Calls made (one per client call, whatever its retries and polls).
    pub calls: u64,
    /// Calls that ended in an error.
    pub failures: u64,
    /// HTTP answers to the operation's own requests (retries included, polls
    /// excluded), by status.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection error, timeout).
    pub transport_errors: u64,
    /// 429 answers.
    pub throttled: u64,
    /// Requests repeated after a 5xx, a timeout or a passing 409.
    pub retries: u64,
    /// Polls of long-running operations.
    pub lro_polls: u64,
    /// Sum of call latencies (retries and polling included).
    pub latency_total: Duration,
    /// Longest call.
    pub latency_max: Duration,
}

impl OperationStats {
    /// HTTP requests sent for the operation itself (polls excluded).
    pub fn requests(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.transport_errors
    }
}

/// The counters of every operation.
#[derive(Debug, Default)]
pub struct Metrics {
    ops: Mutex<BTreeMap<&'static str, OperationStats>>,
}

impl Metrics {
    fn with(&self, op: &'static str, f: impl FnOnce(&mut OperationStats)) {
        // A poisoned lock only means another thread panicked mid-update of
        // plain counters; the counters are still usable.
        let mut ops = self
            .ops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(ops.entry(op).or_default());
    }

    pub(crate) fn answer(&self, op: &'static str, status: u16) {
        self.with(op, |s| {
            *s.statuses.entry(status).or_default() += 1;
            if status == 429 {
                s.throttled += 1;
            }
        });
    }

    pub(crate) fn transport_error(&self, op: &'static str) {
        self.with(op, |s| s.transport_errors += 1);
    }

    pub(crate) fn retry(&self, op: &'static str) {
        self.with(op, |s| s.retries += 1);
    }

    pub(crate) fn poll(&self, op: &'static str) {
        self.with(op, |s| s.lro_polls += 1);
    }

    pub(crate) fn call(&self, op: &'static str, latency: Duration, ok: bool) {
        self.with(op, |s| {
            s.calls += 1;
            s.failures += u64::from(!ok);
            s.latency_total += latency;
            s.latency_max = s.latency_max.max(latency);
        });
    }

    /// A copy of every operation's counters.
    pub fn snapshot(&self) -> BTreeMap<&'static str, OperationStats> {
        self.ops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Calls of one operation so far.
    pub fn calls(&self, op: &str) -> u64 {
        self.snapshot().get(op).map_or(0, |s| s.calls)
    }
}
