//! The plugin-agent protocol: one JSON request per connection, the plugin
//! closes its writing half, the agent answers with one JSON object and closes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::invocation::{Attachment, Command, FailureMode, Invocation};
use crate::{Error, ErrorObject};

/// Largest request or answer accepted, bytes.
pub const MAX_MESSAGE: u64 = 1 << 20;

/// What the plugin forwards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// The operation.
    pub command: Command,
    /// `cniVersion` of the configuration.
    pub cni_version: String,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`.
    pub netns: Option<String>,
    /// `CNI_IFNAME`.
    pub ifname: Option<String>,
    /// The pod's namespace.
    pub pod_namespace: Option<String>,
    /// The pod's name.
    pub pod_name: Option<String>,
    /// The pod's UID (`K8S_POD_UID`), when the runtime passes it.
    #[serde(default)]
    pub pod_uid: Option<String>,
    /// The configuration's failure mode: with `open` the agent never fails
    /// an ADD for a reason of its own, it plumbs the pod later.
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// The previous plugin's result.
    pub prev_result: Option<Value>,
    /// GC: the attachments still in use.
    pub valid_attachments: Option<Vec<Attachment>>,
}

impl Request {
    /// The request for an invocation (not VERSION, which has no configuration).
    pub fn from_invocation(inv: &Invocation) -> Option<Self> {
        let conf = inv.conf.as_ref()?;
        Some(Self {
            command: inv.command,
            cni_version: conf.cni_version.clone(),
            container_id: inv.container_id.clone(),
            netns: inv.netns.clone(),
            ifname: inv.ifname.clone(),
            pod_namespace: inv.pod_namespace.clone(),
            pod_name: inv.pod_name.clone(),
            pod_uid: inv.pod_uid.clone(),
            failure_mode: conf.failure_mode,
            prev_result: conf.prev_result.clone(),
            valid_attachments: conf.valid_attachments.clone(),
        })
    }
}

/// The agent's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Answer {
    /// Success, with the result to print (none for DEL, STATUS and GC).
    Ok(Option<Value>),
    /// Failure, with the error object to print.
    Error(ErrorObject),
}

impl Answer {
    /// Parses an answer.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(bytes).map_err(|e| Error::BadAnswer(e.to_string()))
    }
}

/// The result to pass on when the plugin adds nothing: `prev` as the
/// configuration's version.
pub fn pass_on(prev: Option<&Value>, cni_version: &str) -> Value {
    let mut out = prev
        .cloned()
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    if let Value::Object(m) = &mut out {
        m.insert("cniVersion".into(), Value::String(cni_version.to_string()));
    }
    out
}

/// `prev` with `wg0` in `netns` appended to its interfaces.
pub fn with_interface(prev: Option<&Value>, cni_version: &str, netns: &str) -> Value {
    let mut out = pass_on(prev, cni_version);
    if let Value::Object(m) = &mut out {
        let entry = serde_json::json!({"name": crate::INTERFACE, "sandbox": netns});
        match m.get_mut("interfaces") {
            Some(Value::Array(list)) => list.push(entry),
            _ => {
                m.insert("interfaces".into(), Value::Array(vec![entry]));
            }
        }
    }
    out
}
