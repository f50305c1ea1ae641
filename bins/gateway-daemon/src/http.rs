//! The two small HTTP endpoints: the load balancer's health probe
//! (`/gw/<sgc uid>`) and `/metrics` with `/healthz`. Plain HTTP/1.1, one
//! request per connection, as probes and scrapers use them.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::state::Shared;

/// What to answer: status code and body.
type Answer = (u16, String);

/// The probe: 200 only for a configuration observed fully in place and while
/// not draining; 503 otherwise; 400 for a path that is not `/gw/<uid>`.
pub fn probe(shared: &Shared, path: &str) -> Answer {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "gw", uid] if !uid.is_empty() => {
            if shared.serving(uid) {
                (200, "ok\n".into())
            } else {
                (503, "not serving\n".into())
            }
        }
        _ => (400, "expected /gw/<uid>\n".into()),
    }
}

/// `/metrics` and `/healthz`.
pub fn admin(shared: &Shared, path: &str) -> Answer {
    match path {
        "/metrics" => (200, shared.render_metrics()),
        "/healthz" | "/readyz" => (200, "ok\n".into()),
        _ => (404, "not found\n".into()),
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Serves `route` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, route: fn(&Shared, &str) -> Answer) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut len = 0;
            // Read the request head (bounded in size and time).
            let head = tokio::time::timeout(Duration::from_secs(10), async {
                while len < buf.len() {
                    let n = conn.read(&mut buf[len..]).await.ok()?;
                    if n == 0 {
                        break;
                    }
                    len += n;
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Some(String::from_utf8_lossy(&buf[..len]).to_string())
            })
            .await;
            let Ok(Some(head)) = head else { return };
            let mut words = head.split_whitespace();
            let (method, target) = (
                words.next().unwrap_or_default(),
                words.next().unwrap_or_default(),
            );
            let path = target.split('?').next().unwrap_or_default();
            let (code, body) = if method == "GET" || method == "HEAD" {
                route(&shared, path)
            } else {
                (400, "GET only\n".into())
            };
            let content_type = if path == "/metrics" {
                "text/plain; version=0.0.4"
            } else {
                "text/plain"
            };
            let reply = format!(
                "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                reason(code),
                body.len(),
                if method == "HEAD" { "" } else { body.as_str() }
            );
            let _ = conn.write_all(reply.as_bytes()).await;
        });
    }
}
