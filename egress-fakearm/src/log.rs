//! The request log and the per-operation counters the admin API reports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One logged request. The `Authorization` header is never recorded, and secret-looking body
/// fields (`adminPassword`, `customData`) are redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Milliseconds since the fake started.
    pub at_ms: u64,
    /// HTTP method.
    pub method: String,
    /// URL path (no query).
    pub path: String,
    /// The `api-version` query parameter, if any.
    pub api_version: Option<String>,
    /// The ARM operation name (Azure's operationId), or `Unknown`.
    pub operation: String,
    /// The HTTP status answered.
    pub status: u16,
    /// The ARM error code answered, if any.
    pub error_code: Option<String>,
    /// The request body, when it was JSON.
    pub body: Option<Value>,
    /// The injected fault that shaped the answer, if any.
    pub fault: Option<String>,
}

/// What kind of call an operation is, for the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CallKind {
    /// A GET of a resource or list.
    Read,
    /// A PUT, PATCH, POST or DELETE.
    Write,
    /// A GET of a long-running operation's status or result.
    Poll,
}

/// Calls of one operation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationCount {
    /// Read, write or poll (absent until the first call).
    pub kind: Option<CallKind>,
    /// All calls.
    pub calls: u64,
    /// Calls by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
}

/// Calls per operation, with totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Resource and list GETs.
    pub reads: u64,
    /// PUT, PATCH, POST and DELETE calls (refused ones included).
    pub writes: u64,
    /// Operation status and result GETs.
    pub polls: u64,
    /// Per operation name.
    pub operations: BTreeMap<String, OperationCount>,
}

impl Counts {
    /// Counts one call.
    pub fn record(&mut self, operation: &str, kind: CallKind, status: u16) {
        match kind {
            CallKind::Read => self.reads += 1,
            CallKind::Write => self.writes += 1,
            CallKind::Poll => self.polls += 1,
        }
        let entry = self.operations.entry(operation.to_owned()).or_default();
        entry.kind = Some(kind);
        entry.calls += 1;
        *entry.statuses.entry(status).or_default() += 1;
    }

    /// Calls of one operation (0 when never called).
    pub fn calls(&self, operation: &str) -> u64 {
        self.operations.get(operation).map_or(0, |c| c.calls)
    }

    /// Calls of one operation that answered `status`.
    pub fn calls_with_status(&self, operation: &str, status: u16) -> u64 {
        self.operations
            .get(operation)
            .and_then(|c| c.statuses.get(&status))
            .copied()
            .unwrap_or(0)
    }
}

/// A copy of a request body with secret-looking fields replaced, for the log.
pub fn redact(body: &Value) -> Value {
    match body {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let secret = matches!(
                        k.to_ascii_lowercase().as_str(),
                        "adminpassword" | "customdata" | "protectedsettings"
                    );
                    let v = if secret {
                        Value::String("<redacted>".into())
                    } else {
                        redact(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}
