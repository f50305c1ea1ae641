//! The "internet" side of the local system: echo hosts that answer every
//! connection with the source address they see and remember when each
//! request arrived, a sink that measures throughput, and the pod side
//! (`kubectl exec` of busybox's `nc`).

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use egress_testkit::cluster::Cluster;
use egress_testkit::netns::Netns;

use crate::E2eError;

/// The echo port.
pub const ECHO_PORT: u16 = 8080;
/// The throughput sink's port.
pub const SINK_PORT: u16 = 9000;

/// One request seen by an echo host.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it arrived (the test host's clock).
    pub at: Instant,
    /// The source address it came from.
    pub source: String,
    /// The tag the client sent after reading the answer (may be empty).
    pub tag: String,
}

/// An echo host: a TCP service in a namespace that writes the peer's
/// address, then reads an optional tag line, and records both.
#[derive(Debug, Clone)]
pub struct EchoHost {
    /// Where it listens.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl EchoHost {
    /// Adds `ip/32` to the namespace's loopback and serves on it.
    pub fn start(ns: &Netns, ip: &str) -> Result<Self, E2eError> {
        ns.ip(&["addr", "add", &format!("{ip}/32"), "dev", "lo"])?;
        let addr: SocketAddr = format!("{ip}:{ECHO_PORT}")
            .parse()
            .map_err(|e| E2eError::Unexpected(format!("echo address {ip}: {e}")))?;
        let listener = ns
            .run(move || TcpListener::bind(addr))?
            .map_err(E2eError::io(format!("echo host {addr}")))?;
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let record = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let record = record.clone();
                std::thread::spawn(move || {
                    let Ok(peer) = conn.peer_addr() else { return };
                    let at = Instant::now();
                    let source = peer.ip().to_string();
                    let _ = conn.write_all(format!("{source}\n").as_bytes());
                    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
                    let mut buf = [0u8; 64];
                    let n = conn.read(&mut buf).unwrap_or(0);
                    let tag = String::from_utf8_lossy(&buf[..n]).trim().to_string();
                    record
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Seen { at, source, tag });
                });
            }
        });
        Ok(Self { addr, seen })
    }

    /// Requests seen so far whose tag starts with `prefix`, oldest first.
    pub fn seen_with_tag_prefix(&self, prefix: &str) -> Vec<Seen> {
        let mut seen: Vec<Seen> = self
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|s| s.tag.starts_with(prefix))
            .cloned()
            .collect();
        seen.sort_by_key(|s| s.at);
        seen
    }
}

/// A TCP sink that counts the bytes of each connection and the time from
/// its first byte to its last.
#[derive(Debug, Clone)]
pub struct Sink {
    /// Where it listens.
    pub addr: SocketAddr,
    done: Arc<Mutex<Vec<(String, u64, Duration)>>>,
}

impl Sink {
    /// Serves on `ip` (already on the namespace) at [`SINK_PORT`].
    pub fn start(ns: &Netns, ip: &str) -> Result<Self, E2eError> {
        let addr: SocketAddr = format!("{ip}:{SINK_PORT}")
            .parse()
            .map_err(|e| E2eError::Unexpected(format!("sink address {ip}: {e}")))?;
        let listener = ns
            .run(move || TcpListener::bind(addr))?
            .map_err(E2eError::io(format!("sink {addr}")))?;
        let done: Arc<Mutex<Vec<(String, u64, Duration)>>> = Arc::default();
        let record = done.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let record = record.clone();
                std::thread::spawn(move || {
                    let source = conn.peer_addr().map(|p| p.ip().to_string());
                    // First byte to last byte: the sender may idle before it
                    // closes, which is not throughput.
                    let mut first: Option<Instant> = None;
                    let mut last = Instant::now();
                    let mut buf = vec![0u8; 1 << 16];
                    let mut total = 0u64;
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        first.get_or_insert_with(Instant::now);
                        last = Instant::now();
                        total += n as u64;
                    }
                    let took = first.map_or(Duration::ZERO, |f| last.duration_since(f));
                    record.lock().unwrap_or_else(PoisonError::into_inner).push((
                        source.unwrap_or_default(),
                        total,
                        took,
                    ));
                });
            }
        });
        Ok(Self { addr, done })
    }

    /// `(source, bytes, duration)` of every finished connection.
    pub fn finished(&self) -> Vec<(String, u64, Duration)> {
        self.done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What an echo host at `echo` sees as the source of one connection from
/// the pod (busybox `nc`, 3 s timeout).
pub async fn egress_of(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    echo: SocketAddr,
) -> Result<String, String> {
    let out = cluster
        .exec_in_pod(
            namespace,
            pod,
            None,
            &[
                "nc",
                "-w",
                "3",
                &echo.ip().to_string(),
                &echo.port().to_string(),
            ],
        )
        .await
        .map_err(|e| e.to_string())?;
    let seen = out.trim().to_string();
    if seen.is_empty() {
        Err("no answer".into())
    } else {
        Ok(seen)
    }
}

/// Sends `megabytes` MiB of zeros from the pod to the sink and returns the
/// rate the sink measured, in MiB/s, with the source it saw.
pub async fn throughput(
    cluster: &Cluster,
    namespace: &str,
    pod: &str,
    sink: &Sink,
    megabytes: u32,
) -> Result<(f64, String), E2eError> {
    let before = sink.finished().len();
    let script = format!(
        "dd if=/dev/zero bs=65536 count={} 2>/dev/null | nc -w 2 {} {}",
        megabytes * 16,
        sink.addr.ip(),
        sink.addr.port()
    );
    cluster
        .exec_in_pod(namespace, pod, None, &["sh", "-c", &script])
        .await?;
    let (done, _) =
        crate::wait::eventually("the sink to finish", Duration::from_secs(30), || async {
            let all = sink.finished();
            all.get(before)
                .cloned()
                .ok_or_else(|| "not yet".to_string())
        })
        .await?;
    let (source, bytes, took) = done;
    let expected = u64::from(megabytes) << 20;
    if bytes != expected || took.is_zero() {
        return Err(E2eError::Unexpected(format!(
            "the sink got {bytes} of {expected} bytes from {namespace}/{pod} in {took:?}"
        )));
    }
    #[allow(clippy::cast_precision_loss)] // MiB and seconds: far below 2^52
    let rate = bytes as f64 / f64::from(1u32 << 20) / took.as_secs_f64();
    Ok((rate, source))
}
