//! The plugin's socket: a unix socket in a root-only directory, mode 0600,
//! and every peer's credentials checked, so only root on this node reaches
//! the agent. No network listener.

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

/// Serves connections until the listener fails.
pub async fn serve(listener: UnixListener, handler: Arc<Handler>) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .context("accept on the agent socket")?;
        let handler = handler.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &handler).await {
                tracing::warn!(error = %format!("{e:#}"), "plugin connection failed");
            }
        });
    }
}

async fn connection(mut stream: UnixStream, handler: &Handler) -> anyhow::Result<()> {
    let cred = stream
        .peer_cred()
        .context("reading the peer's credentials")?;
    if cred.uid() != 0 {
        handler.metrics.failure("peer_not_root");
        anyhow::bail!("refused a connection from uid {}", cred.uid());
    }
    let mut body = Vec::new();
    (&mut stream)
        .take(MAX_MESSAGE)
        .read_to_end(&mut body)
        .await
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
