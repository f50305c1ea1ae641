//! The pass loop: while this replica leads, run core's reconcile pass when
//! core's [`Scheduler`] says so (a burst of changes becomes one pass; the
//! last pass's requeue is honoured), and report each pass's outcomes.
//!
//! A pass is abandoned at once when leadership is lost: nothing is written
//! after that. On shutdown a running pass gets `grace` to finish, then is
//! abandoned; both are safe, because every pass re-reads everything and
//! core never leaves Azure in a state a later pass cannot continue from.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use egress_core::backoff::Backoff;
use egress_core::controller::schedule::{Debounce, Scheduler};
use egress_core::controller::{ControllerSettings, Outcome, reconcile};
use egress_core::traits::CloudProvider;
use tokio::sync::watch;

use super::cluster::KubeCluster;
use super::metrics::Metrics;

/// How passes are run.
#[derive(Clone, Debug)]
pub struct RunnerSettings {
    /// What the pass is configured with.
    pub controller: ControllerSettings,
    /// Burst coalescing.
    pub debounce: Debounce,
    /// Retry delays and the healthy resync interval.
    pub backoff: Backoff,
    /// How long a running pass may go on after a shutdown request.
    pub grace: Duration,
}

/// A jitter sample in `[0, 1)` from the clock's low bits.
fn sample() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    f64::from(nanos % 1000) / 1000.0
}

/// Runs `fut` unless leadership is lost (abandon at once) or shutdown is
/// requested and `grace` runs out. `None`: abandoned.
async fn guarded<F: Future>(
    fut: F,
    leading: &mut watch::Receiver<bool>,
    shutdown: &mut watch::Receiver<bool>,
    grace: Duration,
) -> Option<F::Output> {
    let fut = std::pin::pin!(fut);
    let mut fut = fut;
    let mut deadline = shutdown.borrow().then(|| Instant::now() + grace);
    loop {
        let sleep = tokio::time::sleep_until(
            deadline
                .unwrap_or_else(|| Instant::now() + Duration::from_hours(24))
                .into(),
        );
        tokio::select! {
            out = &mut fut => return Some(out),
            r = leading.changed() => {
                if r.is_err() || !*leading.borrow() {
                    return None;
                }
            }
            r = shutdown.changed(), if deadline.is_none() => {
                if r.is_err() || *shutdown.borrow() {
                    deadline = Some(Instant::now() + grace);
                }
            }
            () = sleep, if deadline.is_some() => return None,
        }
    }
}

/// Runs passes while `leading` is true, until `shutdown` turns true.
pub async fn run_passes<C: CloudProvider + ?Sized>(
    cloud: &C,
    cluster: &KubeCluster,
    settings: &RunnerSettings,
    metrics: &Metrics,
    mut leading: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // Follower: wait to lead.
        metrics.set_leader(false);
        while !*leading.borrow() {
            if *shutdown.borrow() {
                return;
            }
            tokio::select! {
                r = leading.changed() => if r.is_err() { return },
                _ = shutdown.changed() => {}
            }
        }
        if *shutdown.borrow() {
            return;
        }
        metrics.set_leader(true);
        // Another leader may have written conditions since we last did.
        cluster.forget_verdicts();
        cluster.stores().wait_synced().await;
        lead(
            cloud,
            cluster,
            settings,
            metrics,
            &mut leading,
            &mut shutdown,
        )
        .await;
        if *shutdown.borrow() {
            return;
        }
    }
}

/// One term as leader; returns when leadership is lost or on shutdown.
async fn lead<C: CloudProvider + ?Sized>(
    cloud: &C,
    cluster: &KubeCluster,
    settings: &RunnerSettings,
    metrics: &Metrics,
    leading: &mut watch::Receiver<bool>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let start = Instant::now();
    let mut scheduler = Scheduler::new(settings.debounce);
    let mut attempts = BTreeMap::new();
    let mut failed_lists = 0u32;
    // A new leader passes at once: nothing tells it what changed before.
    scheduler.changed(Duration::ZERO);
    loop {
        if *shutdown.borrow() || !*leading.borrow() {
            return;
        }
        let now = start.elapsed();
        if scheduler.due(now) {
            scheduler.pass_started(now);
            let t0 = Instant::now();
            let pass = async {
                let result = reconcile(cloud, cluster, &settings.controller).await;
                if let Ok(report) = &result {
                    for e in cluster.report(report).await {
                        tracing::warn!(error = %e, "could not write a condition");
                    }
                }
                result
            };
            let Some(result) = guarded(pass, leading, shutdown, settings.grace).await else {
                metrics.abandoned();
                tracing::warn!(
                    seconds = t0.elapsed().as_secs_f64(),
                    "pass abandoned (leadership lost or shutdown)"
                );
                return;
            };
            let requeue = match result {
                Ok(report) => {
                    failed_lists = 0;
                    metrics.pass(t0.elapsed(), &report);
                    let requeue = report.requeue(&settings.backoff, &mut attempts, sample());
                    let count =
                        |f: fn(&Outcome) -> bool| report.outcomes.values().filter(|o| f(o)).count();
                    tracing::info!(
                        seconds = t0.elapsed().as_secs_f64(),
                        configurations = report.outcomes.len(),
                        ready = count(|o| *o == Outcome::Ready),
                        pending = count(|o| *o == Outcome::Pending),
                        held = count(|o| matches!(o, Outcome::Held(_))),
                        invalid = count(|o| matches!(o, Outcome::Invalid(_))),
                        failed = count(|o| matches!(o, Outcome::Failed(_))),
                        deleted = count(|o| *o == Outcome::Deleted),
                        requeue_seconds = requeue.as_secs_f64(),
                        "pass finished"
                    );
                    for (id, errors) in report.retryable().take(5) {
                        if let Some(e) = errors.first() {
                            tracing::warn!(config = %id, error = %e, "configuration not converged");
                        }
                    }
                    requeue
                }
                Err(e) => {
                    failed_lists += 1;
                    metrics.list_failed();
                    tracing::warn!(error = %e, "pass could not list configurations");
                    settings.backoff.delay(failed_lists, sample())
                }
            };
            scheduler.pass_finished(start.elapsed(), requeue);
            continue;
        }
        let wait = scheduler
            .next_pass_at()
            .map_or(Duration::from_hours(1), |at| at.saturating_sub(now));
        tokio::select! {
            () = cluster.stores().changes.notified() => scheduler.changed(start.elapsed()),
            () = tokio::time::sleep(wait) => {}
            _ = leading.changed() => {}
            _ = shutdown.changed() => {}
        }
    }
}
