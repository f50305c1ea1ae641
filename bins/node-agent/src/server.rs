//! The plugin's socket: a unix socket in a root-only directory, mode 0600,
//! and every peer checked. No network listener.
//!
//! Who may call: root (uid 0) in the node's own mount namespace, which is
//! where the kubelet and the container runtime run and so where they execute
//! the plugin. A container that merely sees the host's `/run` (a hostPath
//! mount of it, even as root) lives in a mount namespace of its own and is
//! refused. The node's mount namespace is PID 1's: the agent runs with the
//! node's PID namespace (`hostPID`), so PID 1 is the node's init and the
//! peer's PID from `SO_PEERCRED` names a process the agent can look at.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use egress_cni::wire::{Answer, MAX_MESSAGE, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::handler::Handler;

/// Binds the socket at `path`, creating its directory root-only.
pub fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    let dir = path.parent().context("the socket path has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {}", dir.display()))?;
    let _ = std::fs::remove_file(path);
    let listener =
        UnixListener::bind(path).with_context(|| format!("cannot bind {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    Ok(listener)
}

/// A mount namespace, by the device and inode of its `/proc/<pid>/ns/mnt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MountNs(u64, u64);

impl MountNs {
    /// The mount namespace of process `pid`.
    pub fn of(pid: &str) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(format!("/proc/{pid}/ns/mnt"))?;
        Ok(Self(m.dev(), m.ino()))
    }

    /// The node's: that of `pid` (1, the node's init, in a pod with
    /// `hostPID`). Failing here means the agent cannot see that process.
    pub fn node(pid: u32) -> anyhow::Result<Self> {
        Self::of(&pid.to_string()).with_context(|| {
            format!(
                "cannot read the mount namespace of PID {pid} (/proc/{pid}/ns/mnt); the agent needs the node's PID namespace (hostPID) to check who calls its socket"
            )
        })
    }
}

/// How long a peer may take to send its request.
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serves connections until the listener fails; callers must be in `node`.
pub async fn serve(
    listener: UnixListener,
    handler: Arc<Handler>,
    node: MountNs,
) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .context("accept on the agent socket")?;
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &handler, node).await {
                tracing::warn!(error = %format!("{e:#}"), "plugin connection failed");
            }
        });
    }
}

async fn connection(
    mut stream: UnixStream,
    handler: &Handler,
    node: MountNs,
) -> anyhow::Result<()> {
    let cred = stream
        .peer_cred()
        .context("reading the peer's credentials")?;
    if cred.uid() != 0 {
        handler.metrics.failure("peer_not_root");
        anyhow::bail!("refused a connection from uid {}", cred.uid());
    }
    // A peer outside the agent's PID namespace has no PID here (0 or none).
    let peer = cred.pid().filter(|p| *p > 0);
    let same = peer.is_some_and(|p| MountNs::of(&p.to_string()).is_ok_and(|m| m == node));
    if !same {
        handler.metrics.failure("peer_not_on_node");
        anyhow::bail!(
            "refused a connection from pid {}: not in the node's mount namespace (only the container runtime's plugin calls may use this socket)",
            peer.map_or_else(|| "unknown".to_string(), |p| p.to_string())
        );
    }
    let mut body = Vec::new();
    tokio::time::timeout(
        READ_TIMEOUT,
        (&mut stream).take(MAX_MESSAGE).read_to_end(&mut body),
    )
    .await
    .context("the peer sent no request in time")?
    .context("reading the request")?;
    if body.is_empty() {
        // A readiness probe connecting and hanging up.
        return Ok(());
    }
    let started = Instant::now();
    let answer = match serde_json::from_slice::<Request>(&body) {
        Ok(req) => {
            let command = command_name(&req);
            let a = handler.handle(req).await;
            handler.metrics.request(command, started.elapsed());
            a
        }
        Err(e) => {
            handler.metrics.failure("bad_request");
            Answer::Error(egress_cni::ErrorObject {
                cni_version: egress_cni::SUPPORTED_VERSIONS
                    [egress_cni::SUPPORTED_VERSIONS.len() - 1]
                    .into(),
                code: 6,
                msg: "the agent could not decode the plugin's request".into(),
                details: e.to_string(),
            })
        }
    };
    let text = serde_json::to_vec(&answer)?;
    stream.write_all(&text).await?;
    stream.shutdown().await?;
    Ok(())
}

fn command_name(req: &Request) -> &'static str {
    use egress_cni::Command::{Add, Check, Del, Gc, Status, Version};
    match req.command {
        Add => "ADD",
        Del => "DEL",
        Check => "CHECK",
        Status => "STATUS",
        Version => "VERSION",
        Gc => "GC",
    }
}
