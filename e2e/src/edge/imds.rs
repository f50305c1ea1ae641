//! [`Imds`]: a fake instance metadata service for one node, listening at
//! `169.254.169.254:80` inside the node's namespace (the address goes on the
//! node's `lo`, so nothing on the shared link can see it) and answering from
//! the fake ARM's state at the time of each request.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use egress_testkit::netns::Netns;
use serde_json::{Value, json};

use super::command::ip;
use super::{ArmState, EdgeError, imds_document};

/// The metadata service's address.
pub const IMDS_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
const IMDS_CIDR: &str = "169.254.169.254/32";

/// A fake IMDS serving one node; removed (address and thread) on drop.
#[derive(Debug)]
pub struct Imds {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), egress_testkit::Error>>>,
    netns: String,
}

impl Imds {
    /// Serves `/metadata/instance` and `/metadata/loadbalancer` for the
    /// machine named `computer_name` inside `node`.
    pub fn start(
        arm: Arc<dyn ArmState>,
        node: &Netns,
        computer_name: &str,
    ) -> Result<Imds, EdgeError> {
        let netns = node.name().to_string();
        node.ip(&["addr", "add", IMDS_CIDR, "dev", "lo"])
            .map_err(|source| EdgeError::Netns {
                name: netns.clone(),
                source,
            })?;
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let thread = {
            let (stop, name) = (stop.clone(), computer_name.to_string());
            node.spawn(move || {
                let bound = TcpListener::bind(SocketAddr::from((IMDS_ADDR, 80)))
                    .and_then(|l| l.set_nonblocking(true).map(|()| l));
                match bound {
                    Ok(listener) => {
                        let _ = ready_tx.send(Ok(()));
                        serve(&listener, &stop, &*arm, &name);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
        };
        let imds = Imds {
            stop,
            thread: Some(thread),
            netns,
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(imds),
            Ok(Err(source)) => Err(EdgeError::Socket {
                what: format!("IMDS listener in {}", imds.netns),
                source,
            }),
            Err(_) => Err(EdgeError::WorkerGone),
        }
    }
}

impl Drop for Imds {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = ip(&["-n", &self.netns, "addr", "del", IMDS_CIDR, "dev", "lo"]);
    }
}

/// Accepts until stopped; the listener is non-blocking so a stop is seen
/// within a few milliseconds. Requests are served one at a time: a node
/// agent asks twice at start-up.
fn serve(listener: &TcpListener, stop: &AtomicBool, arm: &dyn ArmState, name: &str) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = answer(stream, arm, name);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn answer(mut stream: TcpStream, arm: &dyn ArmState, name: &str) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    let head = read_head(&mut stream)?;
    let (status, body) = respond(&head, || arm.arm_state(), name);
    let body = body.to_string();
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        _ => "Method Not Allowed",
    };
    let reply = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes())
}

/// The request line and headers (IMDS requests have no body).
fn read_head(stream: &mut TcpStream) -> std::io::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf)? {
            0 => break,
            n => head.extend_from_slice(&buf[..n]),
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// Status and JSON body for a request head, as IMDS answers: `Metadata:
/// true` and an `api-version` are required (400 without).
pub fn respond(head: &str, state: impl FnOnce() -> Value, name: &str) -> (u16, Value) {
    let mut lines = head.lines();
    let mut request = lines.next().unwrap_or_default().split_whitespace();
    let (method, target) = (
        request.next().unwrap_or_default(),
        request.next().unwrap_or_default(),
    );
    let metadata = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("metadata") && v.trim().eq_ignore_ascii_case("true")
        })
    });
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if method != "GET" {
        return (405, json!({"error": "Method not allowed"}));
    }
    if !metadata {
        return (
            400,
            json!({"error": "Bad request. Required metadata header not specified"}),
        );
    }
    if !query
        .split('&')
        .any(|p| p.starts_with("api-version=") && p.len() > 12)
    {
        return (
            400,
            json!({"error": "Bad request. api-version was not specified in the request"}),
        );
    }
    let path = path.trim_end_matches('/');
    if path == "/metadata/loadbalancer" {
        return (200, imds_document::loadbalancer());
    }
    let Some(rest) = path.strip_prefix("/metadata/instance") else {
        return (404, json!({"error": "Not found"}));
    };
    let Some(doc) = imds_document::instance(&state(), name) else {
        return (
            404,
            json!({"error": format!("no machine named {name} in the fake ARM")}),
        );
    };
    // `/metadata/instance/compute/...` walks into the document.
    let mut node = &doc;
    for part in rest.split('/').filter(|p| !p.is_empty()) {
        node = match node {
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => node.get(part),
        }
        .unwrap_or(&Value::Null);
    }
    if node.is_null() {
        return (404, json!({"error": "Not found"}));
    }
    (200, node.clone())
}
