//! Long-running operations: every write is accepted at once, the resource reads `Updating` (or
//! `Deleting`) until the operation latency has passed, and the status and result URLs report
//! `InProgress`, then `Succeeded` or `Failed`.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::arm_error::ArmError;
use crate::exchange::{Reply, Req};
use crate::state::{Operation, Provider, Provisioning, State, Target};

/// How an injected fault shapes the operation a write starts.
#[derive(Debug, Clone, Default)]
pub struct OpShape {
    /// Added to the operation latency.
    pub extra_latency: Duration,
    /// The error the operation ends `Failed` with.
    pub failure: Option<ArmError>,
}

/// Refuses a write on a resource that has an operation running, as Azure does.
/// Chosen code: `AnotherOperationInProgress` (409), the network provider's; the compute
/// provider's exact code for the same case may differ.
pub fn ensure_idle(state: &State, target_busy: Option<&str>, id: &str) -> Result<(), ArmError> {
    let Some(op) = target_busy else {
        return Ok(());
    };
    let name = state
        .operations
        .get(op)
        .map_or("an operation", |o| o.operation.as_str());
    Err(ArmError::new(
        409,
        "AnotherOperationInProgress",
        format!(
            "Operation {name} ({op}) is in progress on resource {id}; retry when it has finished."
        ),
    ))
}

/// Starts an operation on `targets` (marking them busy) and returns its id.
pub fn start(
    state: &mut State,
    provider: Provider,
    operation: &str,
    resource_path: &str,
    targets: Vec<Target>,
    deleting: bool,
    shape: &OpShape,
) -> String {
    let id = state.next_guid();
    let until = Instant::now() + state.latency + shape.extra_latency;
    for t in &targets {
        if let Some(entry) = state.entry_mut(t) {
            entry.provisioning = Provisioning::Busy {
                op: id.clone(),
                deleting,
            };
        }
    }
    state.operations.insert(
        id.clone(),
        Operation {
            id: id.clone(),
            provider,
            until,
            failure: shape.failure.clone(),
            settled: false,
            targets,
            resource_path: resource_path.to_owned(),
            deleting,
            operation: operation.to_owned(),
        },
    );
    id
}

/// The `Azure-AsyncOperation`, `Location` and `Retry-After` headers of an accepted write.
pub fn headers(state: &State, req: &Req, op_id: &str) -> Vec<(String, String)> {
    let Some(op) = state.operations.get(op_id) else {
        return Vec::new();
    };
    let sub = req
        .path
        .trim_matches('/')
        .split('/')
        .nth(1)
        .unwrap_or_default();
    let version = req.api_version().unwrap_or_default();
    let base = format!(
        "{}/subscriptions/{sub}/providers/{}/locations/{}",
        req.base_url,
        op.provider.namespace(),
        state.location
    );
    vec![
        (
            "Azure-AsyncOperation".into(),
            format!("{base}/operations/{op_id}?api-version={version}"),
        ),
        (
            "Location".into(),
            format!("{base}/operationResults/{op_id}?api-version={version}"),
        ),
        ("Retry-After".into(), retry_after(op.until).to_string()),
    ]
}

fn retry_after(until: Instant) -> u64 {
    let left = until.saturating_duration_since(Instant::now());
    left.as_secs() + u64::from(left.subsec_nanos() > 0)
}

/// `GET …/operations/{id}`: `{"status": "InProgress" | "Succeeded" | "Failed", "error"?}`.
pub fn status(state: &State, id: &str) -> Result<Reply, ArmError> {
    let op = find(state, id)?;
    let body = if !op.settled {
        json!({"id": id, "name": id, "status": "InProgress"})
    } else if let Some(e) = &op.failure {
        json!({"id": id, "name": id, "status": "Failed", "error": {"code": e.code, "message": e.message}})
    } else {
        json!({"id": id, "name": id, "status": "Succeeded"})
    };
    let mut reply = Reply::ok(body);
    if !op.settled {
        reply = reply.with_header("Retry-After", retry_after(op.until).to_string());
    }
    Ok(reply)
}

/// `GET …/operationResults/{id}`: 202 while running; when done, 204 for a DELETE or a POST, the
/// resource for a PUT or PATCH; a failed operation answers its error.
/// Chosen status for a failed operation's result: 400 when the error has no status of its own.
pub fn result(
    state: &State,
    req: &Req,
    id: &str,
    resource: impl Fn(&str) -> Option<serde_json::Value>,
) -> Result<Reply, ArmError> {
    let op = find(state, id)?;
    if !op.settled {
        let mut reply = Reply::empty(202);
        for (k, v) in headers(state, req, id) {
            if k != "Azure-AsyncOperation" {
                reply.headers.push((k, v));
            }
        }
        return Ok(reply);
    }
    if let Some(e) = &op.failure {
        return Err(e.clone());
    }
    if op.deleting {
        return Ok(Reply::empty(204));
    }
    Ok(resource(&op.resource_path).map_or_else(|| Reply::empty(204), Reply::ok))
}

fn find<'a>(state: &'a State, id: &str) -> Result<&'a Operation, ArmError> {
    state.operations.get(id).ok_or_else(|| {
        ArmError::new(
            404,
            "OperationNotFound",
            format!("Operation {id} was not found."),
        )
    })
}
