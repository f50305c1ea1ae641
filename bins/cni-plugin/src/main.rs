//! `egress-cni`: the chained CNI plugin. It holds no logic: it parses its
//! input, forwards it to the node agent over the agent's unix socket and
//! prints the answer. When the agent cannot be reached the configuration's
//! failure mode decides: `open` (the default) lets the pod start without a
//! tunnel (the agent plumbs it when it is back), `closed` fails.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use egress_cni::invocation::{answer_version, parse};
use egress_cni::sandbox::{SandboxRecord, SandboxStore};
use egress_cni::wire::{Answer, MAX_MESSAGE, Request, pass_on};
use egress_cni::{Command, Error, ErrorObject, FailureMode, SUPPORTED_VERSIONS};
use serde_json::{Value, json};

/// How long the agent may take to answer before the failure mode applies.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    let read = std::io::stdin()
        .take(MAX_MESSAGE)
        .read_to_end(&mut stdin)
        .map_err(|source| Error::Io {
            what: "cannot read the network configuration from stdin".into(),
            source,
        });
    let version = answer_version(&stdin);
    let outcome = read
        .map_err(|e| e.to_object(&version))
        .and_then(|_| run(&stdin, &version));
    let mut out = std::io::stdout().lock();
    match outcome {
        Ok(Some(result)) => {
            let _ = writeln!(out, "{result}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(obj) => {
            let _ = writeln!(out, "{}", json!(obj));
            ExitCode::FAILURE
        }
    }
}

fn run(stdin: &[u8], version: &str) -> Result<Option<Value>, ErrorObject> {
    let inv = parse(|k| std::env::var(k).ok(), stdin).map_err(|e| e.to_object(version))?;
    let Some(request) = Request::from_invocation(&inv) else {
        return Ok(Some(json!({
            "cniVersion": version,
            "supportedVersions": SUPPORTED_VERSIONS,
        })));
    };
    let Some(conf) = inv.conf.clone() else {
        return Ok(None);
    };
    // DEL: the sandbox's record goes, whatever the agent answers.
    if inv.command == Command::Del
        && let Some(id) = &inv.container_id
    {
        let _ = SandboxStore::new(&conf.sandbox_dir).remove(id);
    }
    match call(&conf.socket, &request) {
        Ok(Answer::Ok(result)) => Ok(result),
        Ok(Answer::Error(obj)) => Err(obj),
        Err(e) if conf.failure_mode == FailureMode::Open => {
            // Plugin stderr is where the runtime's logs show it; stdout
            // carries only the result.
            let _ = writeln!(
                std::io::stderr(),
                "egress-cni: {e}; failure mode open, continuing without the agent"
            );
            if inv.command == Command::Add {
                record(&inv, &conf.sandbox_dir);
            }
            Ok(match inv.command {
                Command::Add => Some(pass_on(conf.prev_result.as_ref(), &conf.cni_version)),
                _ => None,
            })
        }
        Err(e) => Err(e.to_object(version)),
    }
}

/// Records the sandbox of an ADD the agent did not answer, so that the agent
/// binds the pod's tunnel to exactly this sandbox once it is back. A record
/// that cannot be written is only a warning: the pod starts either way.
fn record(inv: &egress_cni::invocation::Invocation, dir: &std::path::Path) {
    let (Some(container_id), Some(netns), Some(ns), Some(name)) = (
        &inv.container_id,
        &inv.netns,
        &inv.pod_namespace,
        &inv.pod_name,
    ) else {
        return;
    };
    let r = SandboxRecord {
        container_id: container_id.clone(),
        netns: netns.clone(),
        ifname: inv.ifname.clone().unwrap_or_else(|| "eth0".into()),
        pod_namespace: ns.clone(),
        pod_name: name.clone(),
        pod_uid: inv.pod_uid.clone(),
    };
    if let Err(e) = SandboxStore::new(dir).put(&r) {
        let _ = writeln!(
            std::io::stderr(),
            "egress-cni: cannot record the sandbox for the agent: {e}"
        );
    }
}

fn call(socket: &str, request: &Request) -> Result<Answer, Error> {
    let unavailable = |source| Error::AgentUnavailable {
        socket: socket.to_string(),
        source,
    };
    let mut stream = UnixStream::connect(socket).map_err(unavailable)?;
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(unavailable)?;
    stream
        .set_write_timeout(Some(ANSWER_TIMEOUT))
        .map_err(unavailable)?;
    let body = serde_json::to_vec(request).map_err(|e| Error::BadAnswer(e.to_string()))?;
    stream.write_all(&body).map_err(unavailable)?;
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(unavailable)?;
    let mut answer = Vec::new();
    stream
        .take(MAX_MESSAGE)
        .read_to_end(&mut answer)
        .map_err(unavailable)?;
    if answer.is_empty() {
        return Err(unavailable(std::io::Error::other(
            "the agent closed the connection without an answer",
        )));
    }
    Answer::parse(&answer)
}
