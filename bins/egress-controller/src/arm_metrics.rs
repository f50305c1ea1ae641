//! The ARM client's per-operation counters in the Prometheus text format.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use egress_azure::metrics::OperationStats;

/// Renders every operation's calls, failures, answers by status,
/// throttles, retries and time spent.
pub(crate) fn render(ops: &BTreeMap<&'static str, OperationStats>) -> String {
    let mut out = String::new();
    let mut family =
        |name: &str, help: &str, kind: &str, rows: &mut dyn Iterator<Item = String>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for r in rows {
                let _ = writeln!(out, "{name}{r}");
            }
        };
    family(
        "egress_arm_calls_total",
        "ARM calls by operation (retries and polls included in one call).",
        "counter",
        &mut ops
            .iter()
            .map(|(op, s)| format!("{{operation=\"{op}\"}} {}", s.calls)),
    );
    family(
        "egress_arm_call_failures_total",
        "ARM calls that ended in an error.",
        "counter",
        &mut ops
            .iter()
            .map(|(op, s)| format!("{{operation=\"{op}\"}} {}", s.failures)),
    );
    family(
        "egress_arm_responses_total",
        "HTTP answers to ARM requests by operation and status.",
        "counter",
        &mut ops.iter().flat_map(|(op, s)| {
            s.statuses
                .iter()
                .map(move |(code, n)| format!("{{operation=\"{op}\",status=\"{code}\"}} {n}"))
        }),
    );
    family(
        "egress_arm_throttled_total",
        "ARM answers 429 (throttled).",
        "counter",
        &mut ops
            .iter()
            .map(|(op, s)| format!("{{operation=\"{op}\"}} {}", s.throttled)),
    );
    family(
        "egress_arm_retries_total",
        "ARM requests repeated after a 5xx, a timeout or a passing 409.",
        "counter",
        &mut ops
            .iter()
            .map(|(op, s)| format!("{{operation=\"{op}\"}} {}", s.retries)),
    );
    family(
        "egress_arm_call_seconds_sum",
        "Time spent in ARM calls, long-running operations included.",
        "counter",
        &mut ops
            .iter()
            .map(|(op, s)| format!("{{operation=\"{op}\"}} {}", s.latency_total.as_secs_f64())),
    );
    out
}
