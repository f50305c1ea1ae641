//! Health probes, as Azure's load balancer sends them: one thread per
//! (backend, probe) in the control plane's namespace, probing every
//! `interval`; a backend is down after `threshold` consecutive failures
//! (refused, no answer within a second, or a non-2xx status) and up again
//! after one success. A backend counts as down until its first success, as a
//! new instance takes no flows before Azure has probed it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::plan::{ProbeCheck, ProbeSpec};

/// How long one probe may take (connect and answer).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// One backend node probed by one probe.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The node's name (its computer name).
    pub node: String,
    /// The node's address, where probes go.
    pub addr: Ipv4Addr,
    /// The probe.
    pub probe: ProbeSpec,
}

/// Current health of every probed target, shared with readers.
pub type HealthMap = Arc<Mutex<BTreeMap<Target, bool>>>;

/// Called when a target's health changes, so the edge re-applies at once.
pub type Wake = Arc<dyn Fn() + Send + Sync>;

struct Prober {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The running probers.
pub struct Probers {
    running: BTreeMap<Target, Prober>,
    /// Stopped but maybe still inside a probe; joined once finished.
    stopping: Vec<JoinHandle<()>>,
    health: HealthMap,
    wake: Wake,
}

impl std::fmt::Debug for Probers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probers")
            .field("running", &self.running.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Probers {
    /// No probers yet; `wake` is called on every health change.
    pub fn new(health: HealthMap, wake: Wake) -> Self {
        Self {
            running: BTreeMap::new(),
            stopping: Vec::new(),
            health,
            wake,
        }
    }

    /// Starts probers for new targets and stops those no longer wanted.
    /// Must run on a thread in the namespace probes come from.
    pub fn reconcile(&mut self, wanted: &BTreeSet<Target>) {
        let gone: Vec<Target> = self
            .running
            .keys()
            .filter(|t| !wanted.contains(*t))
            .cloned()
            .collect();
        for target in gone {
            if let Some(p) = self.running.remove(&target) {
                p.stop.store(true, Ordering::Relaxed);
                self.stopping.push(p.thread);
            }
            lock(&self.health).remove(&target);
        }
        for target in wanted {
            if !self.running.contains_key(target) {
                let stop = Arc::new(AtomicBool::new(false));
                let thread = {
                    let (target, stop) = (target.clone(), stop.clone());
                    let (health, wake) = (self.health.clone(), self.wake.clone());
                    std::thread::spawn(move || probe_loop(&target, &stop, &health, &*wake))
                };
                self.running.insert(target.clone(), Prober { stop, thread });
            }
        }
        // Join the stopped ones that are done; the rest wait for `stop_all`.
        let (done, busy): (Vec<_>, Vec<_>) =
            self.stopping.drain(..).partition(JoinHandle::is_finished);
        self.stopping = busy;
        for t in done {
            let _ = t.join();
        }
    }

    /// Every running target's health now (down before its first success).
    pub fn snapshot(&self) -> BTreeMap<Target, bool> {
        let health = lock(&self.health);
        self.running
            .keys()
            .map(|t| (t.clone(), health.get(t).copied().unwrap_or(false)))
            .collect()
    }

    /// Stops and joins every prober.
    pub fn stop_all(&mut self) {
        for p in self.running.values() {
            p.stop.store(true, Ordering::Relaxed);
        }
        let threads = std::mem::take(&mut self.running)
            .into_values()
            .map(|p| p.thread)
            .chain(self.stopping.drain(..));
        for t in threads {
            let _ = t.join();
        }
        lock(&self.health).clear();
    }
}

impl Drop for Probers {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// Locks the health map; a panicked prober leaves a usable map behind.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn probe_loop(
    target: &Target,
    stop: &AtomicBool,
    health: &HealthMap,
    wake: &(dyn Fn() + Send + Sync),
) {
    let mut up = false;
    let mut failures = 0u32;
    lock(health).insert(target.clone(), up);
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let ok = check(target.addr, &target.probe);
        let was = up;
        if ok {
            failures = 0;
            up = true;
        } else {
            failures = failures.saturating_add(1);
            if failures >= target.probe.threshold {
                up = false;
            }
        }
        if up != was {
            lock(health).insert(target.clone(), up);
            wake();
        }
        // Sleep out the interval in short steps, so a stop is quick.
        let next = started + target.probe.interval;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next {
                break;
            }
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
        }
    }
}

/// One probe: a TCP connect, and for HTTP a GET answered with a 2xx status.
fn check(addr: Ipv4Addr, probe: &ProbeSpec) -> bool {
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let Ok(mut stream) =
        TcpStream::connect_timeout(&SocketAddr::from((addr, probe.port)), PROBE_TIMEOUT)
    else {
        return false;
    };
    let ProbeCheck::Http { path } = &probe.check else {
        return true;
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}:{}\r\nUser-Agent: Load Balancer Agent\r\nConnection: close\r\n\r\n",
        probe.port
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    // The status line is all a probe reads.
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .is_some_and(|code| (200..300).contains(&code))
}
