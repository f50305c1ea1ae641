//! A steady stream of tagged requests from a pod to an echo host, for
//! measuring failover and drains: the pod runs a busybox loop (`kubectl
//! exec`, a child process the test does not wait on) that opens one
//! connection every `gap`, sends `<prefix><n>` and gives up on it after a
//! timeout; the echo host records when each tag arrived and from where.
//! Requests that never arrive are the failed ones.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use egress_testkit::cluster::Cluster;

use crate::E2eError;
use crate::traffic::{EchoHost, Seen};

/// Seconds each request may take, connect included (busybox `nc -w`): TCP
/// retransmits within it, so a short stall is a slow request, not a failed one.
pub const REQUEST_TIMEOUT_SECS: u32 = 8;

/// A running request stream. Stopped (the loop ends, `kubectl` is reaped)
/// on drop.
#[derive(Debug)]
pub struct RequestStream {
    child: Child,
    prefix: String,
    echo: EchoHost,
    stop: (String, String, std::path::PathBuf),
    /// When the stream was started.
    pub started: Instant,
}

impl RequestStream {
    /// Starts the loop in `namespace/pod`, one request every `gap_ms`.
    pub fn start(
        cluster: &Cluster,
        namespace: &str,
        pod: &str,
        echo: &EchoHost,
        prefix: &str,
        gap_ms: u32,
    ) -> Result<Self, E2eError> {
        let kubectl = egress_testkit::tools::k8s_binary("kubectl")?;
        let SocketAddr::V4(addr) = echo.addr else {
            return Err(E2eError::Unexpected("IPv6 echo hosts are not used".into()));
        };
        // Each request in the background, so a slow one does not hold back
        // the next: the stream keeps its pace whatever the path does.
        let script = format!(
            "rm -f /tmp/{prefix}stop; i=0; while [ ! -e /tmp/{prefix}stop ]; do i=$((i+1)); \
             (echo {prefix}$i | nc -w {REQUEST_TIMEOUT_SECS} {ip} {port} >/dev/null 2>&1) & \
             usleep {us}; done; wait",
            ip = addr.ip(),
            port = addr.port(),
            us = u64::from(gap_ms) * 1000,
        );
        let kubeconfig = cluster.kubeconfig_path().to_path_buf();
        let child = Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["exec", "-n", namespace, pod, "--", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(E2eError::io(kubectl.clone()))?;
        Ok(Self {
            child,
            prefix: prefix.to_string(),
            echo: echo.clone(),
            stop: (namespace.to_string(), pod.to_string(), kubeconfig),
            started: Instant::now(),
        })
    }

    /// Requests that arrived so far, oldest first, with their number.
    pub fn arrived(&self) -> Vec<(u64, Seen)> {
        self.echo
            .seen_with_tag_prefix(&self.prefix)
            .into_iter()
            .filter_map(|s| {
                let n = s.tag.strip_prefix(&self.prefix)?.parse().ok()?;
                Some((n, s))
            })
            .collect()
    }

    /// The numbers that never arrived, between the first request that did
    /// and request `through`.
    pub fn missing_through(&self, through: u64) -> Vec<u64> {
        let mut got: Vec<u64> = self.arrived().into_iter().map(|(n, _)| n).collect();
        got.sort_unstable();
        got.dedup();
        let Some(first) = got.first() else {
            return Vec::new();
        };
        (*first..=through)
            .filter(|n| got.binary_search(n).is_err())
            .collect()
    }

    /// The number of the last request sent before `at` that arrived by now.
    pub fn last_sent_before(&self, at: Instant) -> Option<u64> {
        self.arrived()
            .into_iter()
            .filter(|(_, s)| s.at <= at)
            .map(|(n, _)| n)
            .max()
    }

    /// Ends the loop, lets requests in flight finish and reaps `kubectl`.
    pub fn stop(mut self) -> Result<(), E2eError> {
        self.end();
        Ok(())
    }

    fn end(&mut self) {
        if let Ok(kubectl) = egress_testkit::tools::k8s_binary("kubectl") {
            let (ns, pod, kubeconfig) = &self.stop;
            let _ = Command::new(kubectl)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args(["exec", "-n", ns, pod, "--", "touch"])
                .arg(format!("/tmp/{}stop", self.prefix))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(u64::from(REQUEST_TIMEOUT_SECS) + 5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RequestStream {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.end();
        }
    }
}
