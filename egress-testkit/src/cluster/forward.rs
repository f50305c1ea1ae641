//! A TCP port on the host's loopback that leads into a network namespace.
//!
//! The test cluster's API server lives in the control-plane namespace, where
//! the nodes reach it; test code (and `kubectl` run by hand) runs in the host
//! namespace. Each accepted connection is paired with one opened by a thread
//! that has entered the namespace; a socket keeps the namespace it was made in.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::Error;

type ConnectRequest = mpsc::Sender<std::io::Result<TcpStream>>;

/// Forwards `127.0.0.1:<port>` on the host to an address inside a namespace.
/// Dropping it stops accepting; open connections end with their peers.
#[derive(Debug)]
pub(crate) struct Forwarder {
    port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Forwarder {
    pub(crate) fn start(netns: &str, target: SocketAddr) -> Result<Self, Error> {
        let io = |source| Error::Io {
            path: PathBuf::from("127.0.0.1:0"),
            source,
        };
        let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
        let port = listener.local_addr().map_err(io)?.port();

        // The connector lives in the namespace and opens sockets on request.
        let (connect_tx, connect_rx) = mpsc::channel::<ConnectRequest>();
        let name = netns.to_string();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let entered = crate::netns::enter(&name);
            let ok = entered.is_ok();
            let _ = ready_tx.send(entered);
            if ok {
                for reply in connect_rx {
                    let _ = reply.send(TcpStream::connect(target));
                }
            }
        });
        ready_rx
            .recv()
            .map_err(|_| Error::Unsupported("namespace connector thread died".into()))??;

        let stop = Arc::new(AtomicBool::new(false));
        let stop_accept = Arc::clone(&stop);
        let accept = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop_accept.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(down) = conn else { continue };
                let (tx, rx) = mpsc::channel();
                if connect_tx.send(tx).is_err() {
                    break;
                }
                if let Ok(Ok(up)) = rx.recv() {
                    splice(down, up);
                }
            }
        });
        Ok(Self {
            port,
            stop,
            accept: Some(accept),
        })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Copies both directions on two threads; each half-closes its writer at EOF.
fn splice(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    std::thread::spawn(move || copy(a, b2));
    std::thread::spawn(move || copy(b, a2));
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
