//! One ARM request from start to end: authentication, route, method, api-version, the fault
//! script, the handler under the state lock, then the request log and the counters.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::arm_error::ArmError;
use crate::exchange::{Reply, Req};
use crate::faults::{self, Fault};
use crate::log::{CallKind, RequestRecord};
use crate::lro::OpShape;
use crate::providers::{self, common::WriteCtx};
use crate::router::Route;
use crate::state::State;

/// The state shared by every connection.
pub type Shared = Arc<Mutex<State>>;

/// Locks the state; a handler that panicked (it may not, but a test thread might) leaves the
/// state as it was at the panic, which is still the best answer available.
pub fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Answers one ARM request.
pub async fn handle(shared: &Shared, req: &Req) -> Reply {
    // Refused calls are logged and counted under their operation when the path names one.
    let (mut operation, mut kind) = Route::parse(&req.path)
        .and_then(|r| r.operation(&req.method).ok())
        .unwrap_or(("Unknown", CallKind::Read));
    let mut fault_name = None;
    let reply = match prepare(req) {
        Err(e) => Reply::error(&e),
        Ok((route, op, k)) => {
            operation = op;
            kind = k;
            let fault = {
                let mut state = lock(shared);
                faults::take(&mut state.faults, op, &req.path, k == CallKind::Write)
            };
            fault_name = fault.as_ref().map(|f| f.name().to_owned());
            run(shared, req, &route, op, k, fault).await
        }
    };
    let mut state = lock(shared);
    let at_ms = u64::try_from(state.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    state.counts.record(operation, kind, reply.status);
    let error_code = reply
        .body
        .as_ref()
        .and_then(|b| crate::json::str_at(b, &["error", "code"]))
        .map(str::to_owned);
    state.log_request(RequestRecord {
        at_ms,
        method: req.method.to_string(),
        path: req.path.clone(),
        api_version: req.api_version().map(str::to_owned),
        operation: operation.to_owned(),
        status: reply.status,
        error_code,
        body: req.json_for_log(),
        fault: fault_name,
    });
    tracing::info!(method = %req.method, path = %req.path, operation, status = reply.status, "ARM request");
    reply
}

/// Authentication, route, method and api-version, in the order ARM checks them.
fn prepare(req: &Req) -> Result<(Route, &'static str, CallKind), ArmError> {
    let token = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim);
    if token.is_none_or(str::is_empty) {
        return Err(ArmError::new(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing or is not a bearer token.",
        ));
    }
    // Chosen answer for a path the fake does not serve: 404 `InvalidResourceType`.
    let route = Route::parse(&req.path).ok_or_else(|| {
        ArmError::new(
            404,
            "InvalidResourceType",
            format!(
                "The fake ARM server serves no resource type at {}.",
                req.path
            ),
        )
    })?;
    let (op, kind) = route.operation(&req.method)?;
    route.api_provider().check(req.api_version())?;
    Ok((route, op, kind))
}

async fn run(
    shared: &Shared,
    req: &Req,
    route: &Route,
    op: &'static str,
    kind: CallKind,
    fault: Option<Fault>,
) -> Reply {
    let mut shape = OpShape::default();
    let mut then_error = false;
    match fault {
        // Chosen code for throttling: `TooManyRequests`.
        Some(Fault::Throttle {
            retry_after_seconds,
        }) => {
            let mut e = ArmError::new(
                429,
                "TooManyRequests",
                format!(
                    "The request {op} was throttled; retry after {retry_after_seconds} seconds."
                ),
            );
            e.retry_after = Some(retry_after_seconds);
            return Reply::error(&e);
        }
        Some(Fault::Conflict { code }) => {
            return Reply::error(&ArmError::new(
                409,
                &code,
                format!("The request {op} conflicts with the current state (injected)."),
            ));
        }
        Some(Fault::ServerError { status, code }) => {
            let status = if (500..=599).contains(&status) {
                status
            } else {
                500
            };
            let code = code.unwrap_or_else(|| "InternalServerError".to_owned());
            return Reply::error(&ArmError::new(
                status,
                &code,
                format!("The server failed to process {op} (injected)."),
            ));
        }
        Some(Fault::Slow { extra_ms }) => {
            if kind == CallKind::Write {
                shape.extra_latency = Duration::from_millis(extra_ms);
            } else {
                tokio::time::sleep(Duration::from_millis(extra_ms)).await;
            }
        }
        Some(Fault::FailOperation { code, message }) => {
            let message =
                message.unwrap_or_else(|| format!("The operation {op} failed (injected)."));
            // The status a failed operation's result URL answers with.
            shape.failure = Some(ArmError::new(400, &code, message));
        }
        Some(Fault::AppliedThenError) => then_error = true,
        None => {}
    }
    let reply = {
        let mut state = lock(shared);
        state.settle(Instant::now());
        let ctx = WriteCtx {
            req,
            operation: op,
            shape,
        };
        providers::dispatch(&mut state, route, &ctx).unwrap_or_else(|e| Reply::error(&e))
    };
    if then_error {
        return Reply::error(&ArmError::new(
            500,
            "InternalServerError",
            format!("The server failed to answer {op} after carrying it out (injected)."),
        ));
    }
    reply
}
