//! The plugin's input: `CNI_*` environment variables and the network
//! configuration on stdin, checked field by field so that every defect is
//! named in the error the runtime shows.
//!
//! Two kinds of defect are told apart. The runtime's input (the `CNI_*`
//! variables, JSON that does not parse, a `cniVersion` not spoken, a missing
//! `prevResult`) is always an [`Error`]. A bad value of one of this
//! plugin's own keys (`failureMode`, `agentSocket`, `timeoutSeconds`,
//! `sandboxDir`) is a [`KeyDefect`] listed in [`NetConf::defects`] by
//! [`parse_tolerant`]: in failure mode open a mistake in our configuration
//! must not keep pods from starting, so the plugin decides, not the parser.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{DEFAULT_SOCKET, DEFAULT_TIMEOUT, Error, SUPPORTED_VERSIONS};

/// The CNI operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Command {
    /// Attach the container.
    Add,
    /// Detach the container.
    Del,
    /// Verify the attachment.
    Check,
    /// Report readiness (CNI 1.1).
    Status,
    /// Report versions.
    Version,
    /// Remove leftovers of attachments not listed (CNI 1.1).
    Gc,
}

/// What the plugin does when the agent cannot be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureMode {
    /// The pod starts without a tunnel; the agent plumbs it when it returns.
    #[default]
    Open,
    /// The operation fails.
    Closed,
}

/// One attachment the runtime still uses (GC's `cni.dev/valid-attachments`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The container.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Its interface.
    pub ifname: String,
}

/// The parts of the network configuration the plugin uses.
#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    /// `cniVersion`.
    pub cni_version: String,
    /// The network name.
    pub name: String,
    /// `failureMode`: `open` (default) or `closed`.
    pub failure_mode: FailureMode,
    /// `agentSocket`: the agent's unix socket.
    pub socket: String,
    /// `timeoutSeconds`: how long the whole exchange with the agent may
    /// take, counted from the plugin's start.
    pub timeout: Duration,
    /// `sandboxDir`: where the plugin records a sandbox itself when the
    /// agent cannot be reached (see [`crate::sandbox`]).
    pub sandbox_dir: PathBuf,
    /// Bad values of the plugin's own keys; each such key holds its default
    /// above (`failureMode`: open).
    pub defects: Vec<KeyDefect>,
    /// The previous plugin's result (ADD, CHECK).
    pub prev_result: Option<Value>,
    /// GC's list of attachments still in use.
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// A bad value of one of the plugin's own configuration keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyDefect {
    /// The key (`failureMode`, `agentSocket`, `timeoutSeconds`, `sandboxDir`).
    pub key: &'static str,
    /// What is wrong with its value, naming the value where it helps.
    pub problem: String,
}

impl KeyDefect {
    fn new(key: &'static str, problem: impl Into<String>) -> Self {
        Self {
            key,
            problem: problem.into(),
        }
    }

    /// The defect as an error (a CNI "invalid network configuration").
    pub fn to_error(&self) -> Error {
        Error::Key {
            key: self.key,
            problem: self.problem.clone(),
        }
    }
}

/// A parsed invocation.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    /// The operation.
    pub command: Command,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`.
    pub netns: Option<String>,
    /// `CNI_IFNAME`.
    pub ifname: Option<String>,
    /// `K8S_POD_NAMESPACE` from `CNI_ARGS`.
    pub pod_namespace: Option<String>,
    /// `K8S_POD_NAME` from `CNI_ARGS`.
    pub pod_name: Option<String>,
    /// `K8S_POD_UID` from `CNI_ARGS`.
    pub pod_uid: Option<String>,
    /// The configuration; `None` only for VERSION.
    pub conf: Option<NetConf>,
}

fn env_err(name: &'static str, problem: impl Into<String>) -> Error {
    Error::Env {
        name,
        problem: problem.into(),
    }
}

fn parse_command(text: Option<String>) -> Result<Command, Error> {
    let text = text.ok_or_else(|| env_err("CNI_COMMAND", "not set"))?;
    Ok(match text.as_str() {
        "ADD" => Command::Add,
        "DEL" => Command::Del,
        "CHECK" => Command::Check,
        "STATUS" => Command::Status,
        "VERSION" => Command::Version,
        "GC" => Command::Gc,
        other => {
            return Err(env_err(
                "CNI_COMMAND",
                format!(
                    "unknown command {other:?} (expected ADD, DEL, CHECK, STATUS, VERSION or GC)"
                ),
            ));
        }
    })
}

fn container_id(text: Option<String>) -> Result<String, Error> {
    let id = text.ok_or_else(|| env_err("CNI_CONTAINERID", "not set"))?;
    let ok = !id.is_empty()
        && id.len() <= 256
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(id)
    } else {
        Err(env_err(
            "CNI_CONTAINERID",
            "must be 1 to 256 characters of letters, digits, '.', '_' or '-'",
        ))
    }
}

fn ifname(text: Option<String>) -> Result<String, Error> {
    let name = text.ok_or_else(|| env_err("CNI_IFNAME", "not set"))?;
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(name)
    } else {
        Err(env_err(
            "CNI_IFNAME",
            "must be 1 to 15 bytes without '/', ':' or whitespace",
        ))
    }
}

fn netns(text: Option<String>, required: bool) -> Result<Option<String>, Error> {
    match text.filter(|t| !t.is_empty()) {
        None if required => Err(env_err("CNI_NETNS", "not set")),
        None => Ok(None),
        Some(p) if p.starts_with('/') && !p.contains('\0') => Ok(Some(p)),
        Some(_) => Err(env_err("CNI_NETNS", "must be an absolute path")),
    }
}

/// Whether `s` is a Kubernetes object name (a DNS subdomain).
fn k8s_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// The pod's namespace, name and UID from `CNI_ARGS`.
type PodArgs = (Option<String>, Option<String>, Option<String>);

/// Whether `s` can be a Kubernetes UID (a UUID in practice; any short run of
/// letters, digits and '-' is taken).
fn k8s_uid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Parses `CNI_ARGS` (`K=V;K=V`) for the pod's namespace, name and UID.
fn pod_args(text: Option<&str>) -> Result<PodArgs, Error> {
    let (mut ns, mut name, mut uid) = (None, None, None);
    for part in text
        .iter()
        .flat_map(|t| t.split(';'))
        .filter(|p| !p.is_empty())
    {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| env_err("CNI_ARGS", format!("{part:?} is not KEY=VALUE")))?;
        if k == "K8S_POD_UID" {
            if !k8s_uid(v) {
                return Err(env_err(
                    "CNI_ARGS",
                    format!("K8S_POD_UID={v:?} is not a Kubernetes UID"),
                ));
            }
            uid = Some(v.to_string());
            continue;
        }
        let slot = match k {
            "K8S_POD_NAMESPACE" => &mut ns,
            "K8S_POD_NAME" => &mut name,
            _ => continue,
        };
        if !k8s_name(v) {
            return Err(env_err(
                "CNI_ARGS",
                format!("{k}={v:?} is not a Kubernetes object name"),
            ));
        }
        *slot = Some(v.to_string());
    }
    Ok((ns, name, uid))
}

fn field<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn string_field(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, Error> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::Config(format!("{key:?} must be a string"))),
    }
}

fn required(obj: &Map<String, Value>, key: &str) -> Result<String, Error> {
    string_field(obj, key)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::Config(format!("{key:?} is missing")))
}

fn failure_mode(obj: &Map<String, Value>) -> Result<FailureMode, KeyDefect> {
    match field(obj, "failureMode") {
        None => Ok(FailureMode::Open),
        Some(Value::String(s)) if s == "open" => Ok(FailureMode::Open),
        Some(Value::String(s)) if s == "closed" => Ok(FailureMode::Closed),
        Some(other) => Err(KeyDefect::new(
            "failureMode",
            format!("is {other}; expected \"open\" or \"closed\""),
        )),
    }
}

/// An absolute path under `key`, or `default` when the key is absent.
fn absolute_path(
    obj: &Map<String, Value>,
    key: &'static str,
    default: &str,
) -> Result<String, KeyDefect> {
    match field(obj, key) {
        None => Ok(default.to_string()),
        Some(Value::String(p)) if p.starts_with('/') && !p.contains('\0') => Ok(p.clone()),
        Some(Value::String(p)) => Err(KeyDefect::new(
            key,
            format!("is {p:?}; it must be an absolute path"),
        )),
        Some(other) => Err(KeyDefect::new(
            key,
            format!("is {other}; it must be a string"),
        )),
    }
}

/// The agent gets at most a minute: the runtime's own CNI timeout is a few
/// minutes, and a sandbox held longer only delays the pod.
const MAX_TIMEOUT_SECONDS: u64 = 60;

fn timeout(obj: &Map<String, Value>) -> Result<Duration, KeyDefect> {
    match field(obj, "timeoutSeconds") {
        None => Ok(DEFAULT_TIMEOUT),
        Some(v) => v
            .as_u64()
            .filter(|s| (1..=MAX_TIMEOUT_SECONDS).contains(s))
            .map(Duration::from_secs)
            .ok_or_else(|| {
                KeyDefect::new(
                    "timeoutSeconds",
                    format!(
                        "is {v}; expected a whole number of seconds from 1 to {MAX_TIMEOUT_SECONDS}"
                    ),
                )
            }),
    }
}

/// The value of an own key, or `default` with the defect recorded.
fn own<T>(defects: &mut Vec<KeyDefect>, value: Result<T, KeyDefect>, default: T) -> T {
    value.unwrap_or_else(|d| {
        defects.push(d);
        default
    })
}

/// Parses the network configuration for `command`. The runtime's defects
/// are errors; bad values of the plugin's own keys are listed in
/// [`NetConf::defects`].
pub fn parse_conf(command: Command, stdin: &[u8]) -> Result<NetConf, Error> {
    let value: Value = serde_json::from_slice(stdin).map_err(Error::Decode)?;
    let Value::Object(obj) = value else {
        return Err(Error::Config("must be a JSON object".into()));
    };
    let cni_version = required(&obj, "cniVersion")?;
    if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
        return Err(Error::IncompatibleVersion(cni_version));
    }
    if !crate::version_has(&cni_version, command) {
        return Err(Error::CommandNotInVersion {
            version: cni_version,
            command: match command {
                Command::Check => "CHECK",
                Command::Status => "STATUS",
                Command::Gc => "GC",
                Command::Add | Command::Del | Command::Version => "this",
            },
        });
    }
    let name = required(&obj, "name")?;
    required(&obj, "type")?;
    let mut defects = Vec::new();
    let failure_mode = own(&mut defects, failure_mode(&obj), FailureMode::Open);
    let socket = own(
        &mut defects,
        absolute_path(&obj, "agentSocket", DEFAULT_SOCKET),
        DEFAULT_SOCKET.into(),
    );
    let timeout = own(&mut defects, timeout(&obj), DEFAULT_TIMEOUT);
    let default_dir = crate::sandbox::DEFAULT_DIR;
    let sandbox_dir = own(
        &mut defects,
        absolute_path(&obj, "sandboxDir", default_dir),
        default_dir.into(),
    )
    .into();
    let prev_result = match field(&obj, "prevResult") {
        None => None,
        Some(v @ Value::Object(_)) => Some(v.clone()),
        Some(_) => return Err(Error::Config("\"prevResult\" must be an object".into())),
    };
    if matches!(command, Command::Add | Command::Check) && prev_result.is_none() {
        return Err(Error::Config(
            "\"prevResult\" is missing: this plugin must be chained after the primary plugin"
                .into(),
        ));
    }
    if let Some(Value::Object(prev)) = &prev_result
        && let Some(ifaces) = field(prev, "interfaces")
        && !ifaces.is_array()
    {
        return Err(Error::Config(
            "\"prevResult.interfaces\" must be a list".into(),
        ));
    }
    let valid_attachments = match field(&obj, "cni.dev/valid-attachments") {
        None => None,
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| {
            Error::Config(format!(
                "\"cni.dev/valid-attachments\" must be a list of {{containerID, ifname}}: {e}"
            ))
        })?),
    };
    Ok(NetConf {
        cni_version,
        name,
        failure_mode,
        socket,
        timeout,
        sandbox_dir,
        defects,
        prev_result,
        valid_attachments,
    })
}

/// Parses an invocation from the environment (`env` looks a variable up)
/// and stdin; a bad value of one of the plugin's own keys is an error too
/// (the first one found).
pub fn parse(env: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<Invocation, Error> {
    let inv = parse_tolerant(env, stdin)?;
    match inv.conf.as_ref().and_then(|c| c.defects.first()) {
        Some(defect) => Err(defect.to_error()),
        None => Ok(inv),
    }
}

/// As [`parse`], but bad values of the plugin's own keys are listed in
/// [`NetConf::defects`] instead of failing, for the plugin to weigh against
/// its failure mode.
pub fn parse_tolerant(
    env: impl Fn(&str) -> Option<String>,
    stdin: &[u8],
) -> Result<Invocation, Error> {
    let command = parse_command(env("CNI_COMMAND"))?;
    if command == Command::Version {
        return Ok(Invocation {
            command,
            container_id: None,
            netns: None,
            ifname: None,
            pod_namespace: None,
            pod_name: None,
            pod_uid: None,
            conf: None,
        });
    }
    let conf = parse_conf(command, stdin)?;
    let per_container = matches!(command, Command::Add | Command::Del | Command::Check);
    let (container_id, ifname_, netns_) = if per_container {
        (
            Some(container_id(env("CNI_CONTAINERID"))?),
            Some(ifname(env("CNI_IFNAME"))?),
            netns(env("CNI_NETNS"), command != Command::Del)?,
        )
    } else {
        (None, None, None)
    };
    let (pod_namespace, pod_name, pod_uid) = pod_args(env("CNI_ARGS").as_deref())?;
    Ok(Invocation {
        command,
        container_id,
        netns: netns_,
        ifname: ifname_,
        pod_namespace,
        pod_name,
        pod_uid,
        conf: Some(conf),
    })
}

/// The `cniVersion` to answer in: the configuration's when it could be read,
/// else the newest supported.
pub fn answer_version(stdin: &[u8]) -> String {
    serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
        .unwrap_or_else(|| SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.len() - 1].to_string())
}

#[cfg(test)]
mod own_keys_tests;
#[cfg(test)]
mod tests;
