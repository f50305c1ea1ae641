//! When to run the next pass. Changes arrive as events (a configuration
//! applied, a node added); passes cost Azure calls, so a burst of changes
//! becomes one pass. Pure: the caller passes the time as the duration since
//! any fixed start, and sleeps until [`Scheduler::next_pass_at`].

use std::time::Duration;

/// Debounce settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Debounce {
    /// Quiet time after the last change before a pass starts.
    pub quiet: Duration,
    /// Longest a change waits for quiet: a steady stream of changes still
    /// gets a pass this often.
    pub max_wait: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Self {
            quiet: Duration::from_millis(200),
            max_wait: Duration::from_secs(1),
        }
    }
}

/// Decides when passes run: after a burst of changes settles (or has waited
/// long enough), when the last pass asked to be requeued, and never two at
/// once. Changes that arrive during a pass are covered by the next one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scheduler {
    debounce: Debounce,
    first_pending: Option<Duration>,
    last_change: Option<Duration>,
    requeue_at: Option<Duration>,
    running: bool,
}

impl Scheduler {
    /// A scheduler with nothing pending.
    pub fn new(debounce: Debounce) -> Self {
        Self {
            debounce,
            ..Self::default()
        }
    }

    /// Something the pass looks at changed at `now`.
    pub fn changed(&mut self, now: Duration) {
        self.first_pending.get_or_insert(now);
        self.last_change = Some(now);
    }

    /// A pass starts at `now`: it covers every change seen so far.
    pub fn pass_started(&mut self, _now: Duration) {
        self.running = true;
        self.first_pending = None;
        self.last_change = None;
        self.requeue_at = None;
    }

    /// The pass ended at `now` and asked to run again after `requeue`.
    pub fn pass_finished(&mut self, now: Duration, requeue: Duration) {
        self.running = false;
        self.requeue_at = Some(now.saturating_add(requeue));
    }

    /// When the next pass should start; `None` while one runs or when
    /// nothing is due (before the first change or requeue).
    pub fn next_pass_at(&self) -> Option<Duration> {
        if self.running {
            return None;
        }
        let debounced = match (self.first_pending, self.last_change) {
            (Some(first), Some(last)) => Some(
                last.saturating_add(self.debounce.quiet)
                    .min(first.saturating_add(self.debounce.max_wait)),
            ),
            _ => None,
        };
        match (debounced, self.requeue_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether a pass should start at `now`.
    pub fn due(&self, now: Duration) -> bool {
        self.next_pass_at().is_some_and(|at| at <= now)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_burst_becomes_one_pass_and_changes_during_a_pass_get_the_next() {
        let mut s = Scheduler::new(Debounce {
            quiet: 200 * MS,
            max_wait: 1000 * MS,
        });
        assert_eq!(s.next_pass_at(), None);
        for t in 0..5 {
            s.changed(t * 100 * MS);
        }
        assert_eq!(s.next_pass_at(), Some(600 * MS), "quiet after the last");
        s.pass_started(600 * MS);
        s.changed(700 * MS);
        assert_eq!(s.next_pass_at(), None, "never two passes at once");
        s.pass_finished(6000 * MS, Duration::from_mins(5));
        assert!(s.due(6000 * MS), "the change during the pass is overdue");
    }

    #[test]
    fn a_steady_stream_still_gets_passes_and_requeue_is_honoured() {
        let mut s = Scheduler::new(Debounce {
            quiet: 200 * MS,
            max_wait: 1000 * MS,
        });
        for t in 0..30 {
            s.changed(t * 100 * MS);
        }
        assert_eq!(s.next_pass_at(), Some(1000 * MS), "max wait bounds it");
        s.pass_started(1000 * MS);
        s.pass_finished(1500 * MS, 50 * MS);
        assert_eq!(s.next_pass_at(), Some(1550 * MS));
    }

    proptest! {
        #[test]
        fn no_change_waits_longer_than_max_wait(times in prop::collection::vec(0u32..10_000, 1..50)) {
            let d = Debounce { quiet: 200 * MS, max_wait: 1000 * MS };
            let mut s = Scheduler::new(d);
            let mut sorted = times.clone();
            sorted.sort_unstable();
            for t in &sorted {
                s.changed(*t * MS);
            }
            let first = sorted[0] * MS;
            let at = s.next_pass_at().unwrap();
            prop_assert!(at <= first + d.max_wait);
            prop_assert!(at >= first);
        }
    }
}
