use proptest::prelude::*;

use super::*;

const DATA: u64 = 100;
const KEEPALIVE: u64 = 32;

/// A tunnel sampled once a second by a test.
struct Tunnel {
    live: Liveness,
    now: u64,
    c: Counters,
}

impl Tunnel {
    fn new() -> Self {
        Self {
            live: Liveness::new(LivenessSettings::default(), Counters::default()),
            now: 0,
            c: Counters::default(),
        }
    }

    /// One second passes with `tx` and `rx` bytes moved.
    fn second(&mut self, tx: u64, rx: u64) -> Verdict {
        self.now += 1_000;
        self.c.tx_bytes += tx;
        self.c.rx_bytes += rx;
        self.live.observe(self.now, self.c)
    }
}

#[test]
fn answered_traffic_never_resets() {
    let mut t = Tunnel::new();
    for _ in 0..600 {
        assert_eq!(t.second(DATA, DATA), Verdict::Fine);
    }
}

#[test]
fn an_idle_pod_with_keepalives_never_resets() {
    let mut t = Tunnel::new();
    for s in 0..600 {
        let tx = if s % 25 == 0 { KEEPALIVE } else { 0 };
        assert_eq!(t.second(tx, 0), Verdict::Fine, "second {s}");
    }
}

#[test]
fn data_unanswered_for_the_silence_resets_once() {
    let mut t = Tunnel::new();
    assert_eq!(t.second(DATA, DATA), Verdict::Fine);
    // The gateway dies: data goes out, nothing comes back.
    assert_eq!(t.second(DATA, 0), Verdict::Fine); // unanswered since 2 s
    assert_eq!(t.second(DATA, 0), Verdict::Fine); // 1 s of silence
    assert_eq!(t.second(DATA, 0), Verdict::Reset); // 2 s
    // The reset's handshake reaches a healthy node and is answered.
    assert_eq!(t.second(148, 92), Verdict::Fine);
    for _ in 0..120 {
        assert_eq!(t.second(DATA, DATA), Verdict::Fine);
    }
    assert_eq!(
        t.live.streak(),
        0,
        "two minutes without resets end the streak"
    );
}

#[test]
fn one_way_traffic_backs_off_to_one_reset_per_max_gap() {
    let mut t = Tunnel::new();
    let mut resets = Vec::new();
    for s in 1..=600u64 {
        // Every reset's handshake is answered (the gateway is fine); the
        // data never is.
        let rx = if resets.last() == Some(&(s - 1)) {
            92
        } else {
            0
        };
        if t.second(DATA, rx) == Verdict::Reset {
            resets.push(s);
        }
    }
    let gaps: Vec<u64> = resets.windows(2).map(|w| w[1] - w[0]).collect();
    // Four quick resets a silence (plus the answered second) apart, then
    // doubling to the one-minute cap.
    assert!(gaps.len() >= 8, "{resets:?}");
    assert!(gaps[..3].iter().all(|g| *g <= 4), "{gaps:?}");
    assert!(gaps.iter().all(|g| *g <= 61), "{gaps:?}");
    assert!(gaps[gaps.len() - 3..].iter().all(|g| *g >= 59), "{gaps:?}");
    assert!(resets.len() <= 20, "{} resets in ten minutes", resets.len());
}

#[test]
fn a_dead_gateway_is_retried_a_silence_apart() {
    let mut t = Tunnel::new();
    assert_eq!(t.second(DATA, DATA), Verdict::Fine);
    let mut resets = Vec::new();
    // Nothing answers: neither data nor the resets' handshakes.
    for s in 2..=12u64 {
        if t.second(DATA + 148, 0) == Verdict::Reset {
            resets.push(s);
        }
    }
    // Silence counted from the first unanswered sample (2 s), then from
    // each reset: the quick resets come a silence apart, not a silence
    // plus a sample.
    assert_eq!(resets, vec![4, 6, 8, 10, 12]);
}

#[test]
fn an_idle_tunnel_is_not_reset_again() {
    let mut t = Tunnel::new();
    assert_eq!(t.second(DATA, 0), Verdict::Fine);
    assert_eq!(t.second(DATA, 0), Verdict::Fine);
    assert_eq!(t.second(DATA, 0), Verdict::Reset);
    // The pod stops sending: no handshake, no data, no further reset.
    for _ in 0..120 {
        assert_eq!(t.second(0, 0), Verdict::Fine);
    }
}

#[test]
fn a_new_device_starts_over() {
    let mut t = Tunnel::new();
    t.second(10_000, 10_000);
    t.c = Counters::default();
    assert_eq!(t.second(0, 0), Verdict::Fine);
    assert_eq!(t.live.streak(), 0);
}

#[test]
fn a_reset_too_soon_waits() {
    use Verdict::{Fine, Reset, Waiting};
    let settings = LivenessSettings {
        silence_ms: 1_000,
        quick_resets: 0,
        max_gap_ms: 8_000,
    };
    let mut live = Liveness::new(settings, Counters::default());
    let mut c = Counters::default();
    let mut verdicts = Vec::new();
    for s in 1..=12u64 {
        c.tx_bytes += DATA;
        verdicts.push(live.observe(s * 1_000, c));
    }
    // Silence from 1 s; reset at 2 s; the gap doubles at once (no quick
    // resets): 2 s, so 4 s; then 4 s, so 8 s. Between resets the data is
    // unanswered from the reset on, so the tunnel waits for the gap.
    assert_eq!(
        verdicts,
        vec![
            Fine, Reset, Waiting, Reset, Waiting, Waiting, Waiting, Reset, Waiting, Waiting,
            Waiting, Waiting
        ]
    );
}

proptest! {
    /// Whatever the traffic, resets are never closer than the silence, and
    /// a tunnel that received something in a sample is never reset in it.
    #[test]
    fn resets_are_spaced_and_never_follow_an_answer(
        samples in proptest::collection::vec((0u64..3, 0u64..500, 0u64..200, 0u64..2_000), 1..300),
    ) {
        let settings = LivenessSettings::default();
        let mut live = Liveness::new(settings, Counters::default());
        let (mut now, mut c, mut last_reset) = (0u64, Counters::default(), None::<u64>);
        for (kind, tx, rx, step) in samples {
            now += step + 1;
            c.tx_bytes += tx;
            let rx = if kind == 0 { rx } else { 0 };
            c.rx_bytes += rx;
            let v = live.observe(now, c);
            if v == Verdict::Reset {
                prop_assert_eq!(rx, 0);
                if let Some(at) = last_reset {
                    prop_assert!(now - at >= settings.silence_ms);
                }
                last_reset = Some(now);
            }
        }
    }
}
