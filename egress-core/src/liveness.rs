//! When a pod's tunnel should start a new handshake.
//!
//! Every gateway node of a pool holds the same key, so when the load
//! balancer moves a pod's tunnel flow to another node (the first one died or
//! is draining), that node could serve it at once, but it has no session
//! with the pod and drops its packets silently. WireGuard itself only starts
//! a new handshake once data has gone unanswered for 15 seconds (keepalive
//! timeout plus rekey timeout), which on its own exceeds the failover target
//! of probe interval × (threshold + 1) + 1 s.
//!
//! [`Liveness`] applies WireGuard's own rule with a shorter silence: data
//! sent and nothing at all received for [`LivenessSettings::silence_ms`] asks
//! for a reset (the adapter re-writes the peer, which drops the stale session
//! so the next packet starts a handshake, through the load balancer to a
//! healthy node). The inputs are the device's byte counters, sampled by the
//! caller; the clock is passed in.
//!
//! Two kinds of traffic must not cause resets:
//! - keepalives: a keepalive is 32 bytes on the wire and gets no answer, so
//!   an idle pod would otherwise reset once per keepalive. Only transmit
//!   growth of at least [`MIN_DATA_BYTES`] per sample counts as data.
//! - one-way traffic (a pod streaming UDP to a host that never answers):
//!   the gateway answers data only with a keepalive every 10 seconds, so such
//!   a tunnel looks silent. Resets in one streak of silence are spaced
//!   `silence` apart for the first [`LivenessSettings::quick_resets`], then
//!   doubling up to [`LivenessSettings::max_gap_ms`]; the streak ends only
//!   after twice `max_gap` without a reset, which a tunnel reset at the cap
//!   never reaches. A one-way pod costs one
//!   handshake per `max_gap` in the steady state.

/// The smallest transmit growth that is data rather than a keepalive: a
/// transport message has a 16-byte header and a 16-byte tag around a payload
/// padded to 16 bytes, so a keepalive (empty payload) is 32 bytes and any
/// packet carrying data at least 48.
pub const MIN_DATA_BYTES: u64 = 48;

/// A tunnel's byte counters, as its device reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bytes sent to the gateway, handshakes included.
    pub tx_bytes: u64,
    /// Bytes received from the gateway, handshakes included.
    pub rx_bytes: u64,
}

/// How eagerly silent tunnels are reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LivenessSettings {
    /// Data unanswered this long asks for a reset.
    pub silence_ms: u64,
    /// Resets in a streak spaced by `silence_ms` before the gap doubles.
    pub quick_resets: u32,
    /// The largest gap between two resets of one streak; a tunnel that goes
    /// twice this long without a reset starts a new streak.
    pub max_gap_ms: u64,
}

impl Default for LivenessSettings {
    /// Two seconds of silence, four quick resets, then at most one a minute.
    fn default() -> Self {
        Self {
            silence_ms: 2_000,
            quick_resets: 4,
            max_gap_ms: 60_000,
        }
    }
}

/// What to do with a tunnel after a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Answered, idle, or silent for less than the threshold.
    Fine,
    /// Data has gone unanswered, but a reset happened too recently.
    Waiting,
    /// Drop the session so the next packet starts a new handshake.
    Reset,
}

/// The liveness state of one tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Liveness {
    settings: LivenessSettings,
    last: Counters,
    /// When data first went unanswered since the last receive, if it has.
    unanswered_since: Option<u64>,
    /// Resets in the current streak, and when the last one was asked for.
    streak: u32,
    last_reset: Option<u64>,
    /// When the previous sample asked for a reset: data seen in the next
    /// sample went out with the reset's handshake, so its silence counts
    /// from the reset rather than from that later sample.
    reset_in_last_sample: Option<u64>,
}

impl Liveness {
    /// Starts watching a tunnel whose counters are `now_counters`.
    #[must_use]
    pub fn new(settings: LivenessSettings, now_counters: Counters) -> Self {
        Self {
            settings,
            last: now_counters,
            unanswered_since: None,
            streak: 0,
            last_reset: None,
            reset_in_last_sample: None,
        }
    }

    /// The number of resets in the current streak.
    #[must_use]
    pub fn streak(&self) -> u32 {
        self.streak
    }

    fn gap_ms(&self) -> u64 {
        let s = self.settings;
        let doublings = self.streak.saturating_sub(s.quick_resets).min(32);
        s.silence_ms
            .saturating_mul(1u64 << doublings)
            .min(s.max_gap_ms.max(s.silence_ms))
    }

    /// Takes a sample of the counters at `now_ms` (a monotonic clock in
    /// milliseconds) and says whether to reset the tunnel. After
    /// [`Verdict::Reset`] the caller resets it; a failed reset is simply
    /// asked for again later.
    pub fn observe(&mut self, now_ms: u64, counters: Counters) -> Verdict {
        // Counters going backwards mean a new device: start over.
        if counters.tx_bytes < self.last.tx_bytes || counters.rx_bytes < self.last.rx_bytes {
            *self = Self::new(self.settings, counters);
            return Verdict::Fine;
        }
        let after_reset = self.reset_in_last_sample.take();
        let sent = counters.tx_bytes - self.last.tx_bytes;
        let received = counters.rx_bytes - self.last.rx_bytes;
        self.last = counters;
        if let Some(at) = self.last_reset
            && now_ms.saturating_sub(at) >= self.settings.max_gap_ms.saturating_mul(2)
        {
            self.streak = 0;
            self.last_reset = None;
        }
        if received > 0 {
            self.unanswered_since = None;
            return Verdict::Fine;
        }
        if sent >= MIN_DATA_BYTES && self.unanswered_since.is_none() {
            self.unanswered_since = Some(after_reset.unwrap_or(now_ms));
        }
        let Some(since) = self.unanswered_since else {
            return Verdict::Fine;
        };
        if now_ms.saturating_sub(since) < self.settings.silence_ms {
            return Verdict::Fine;
        }
        if let Some(at) = self.last_reset
            && now_ms.saturating_sub(at) < self.gap_ms()
        {
            return Verdict::Waiting;
        }
        self.streak = self.streak.saturating_add(1);
        self.last_reset = Some(now_ms);
        // The clock restarts with the next data sent: the reset's own
        // handshake (148 bytes) counts, from the reset on, so a handshake
        // nobody answers leads to the next reset a silence later (once the
        // gap allows), not a silence plus a sample. An idle tunnel sends
        // nothing after its reset and is left alone.
        self.unanswered_since = None;
        self.reset_in_last_sample = Some(now_ms);
        Verdict::Reset
    }
}

#[cfg(test)]
mod tests;
