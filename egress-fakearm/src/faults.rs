//! The fault script: rules that match calls by operation name (Azure's operationId, or `*` for
//! any) and optionally a path substring, for the next N calls or always.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What an injected fault does to a matching call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Fault {
    /// Answer 429 with `Retry-After` and do nothing.
    #[serde(rename_all = "camelCase")]
    Throttle {
        /// Seconds in `Retry-After`.
        retry_after_seconds: u64,
    },
    /// Answer 409 with this error code and do nothing.
    #[serde(rename_all = "camelCase")]
    Conflict {
        /// ARM error code, e.g. `AnotherOperationInProgress`.
        code: String,
    },
    /// Answer this 5xx status and do nothing.
    #[serde(rename_all = "camelCase")]
    ServerError {
        /// HTTP status (500..=599).
        status: u16,
        /// ARM error code; `InternalServerError` when absent.
        #[serde(default)]
        code: Option<String>,
    },
    /// Carry the call out (a write takes effect, its operation runs), then answer 500.
    AppliedThenError,
    /// Make the call slow: a read answers after `extra_ms`; a write's operation takes
    /// `extra_ms` longer to settle.
    #[serde(rename_all = "camelCase")]
    Slow {
        /// Extra milliseconds.
        extra_ms: u64,
    },
    /// Accept a write, then end its operation `Failed` with this code (the resource reads
    /// `provisioningState: Failed`; the body written stays, as Azure keeps the goal state).
    /// Reads are not matched.
    #[serde(rename_all = "camelCase")]
    FailOperation {
        /// ARM error code of the failed operation.
        code: String,
        /// Its message; a generic one when absent.
        #[serde(default)]
        message: Option<String>,
    },
}

impl Fault {
    /// A short name for the request log.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Throttle { .. } => "throttle",
            Fault::Conflict { .. } => "conflict",
            Fault::ServerError { .. } => "serverError",
            Fault::AppliedThenError => "appliedThenError",
            Fault::Slow { .. } => "slow",
            Fault::FailOperation { .. } => "failOperation",
        }
    }

    /// A throttle with `Retry-After` of this duration (whole seconds, rounded up).
    pub fn throttle(retry_after: Duration) -> Self {
        Fault::Throttle {
            retry_after_seconds: retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0),
        }
    }

    /// A slow call by this much.
    pub fn slow(extra: Duration) -> Self {
        Fault::Slow {
            extra_ms: u64::try_from(extra.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// One rule of the script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// The operation name to match (Azure's operationId, e.g. `LoadBalancers_CreateOrUpdate`),
    /// or `*` for any ARM operation.
    pub operation: String,
    /// Only calls whose path contains this (case-insensitively).
    #[serde(default)]
    pub path_contains: Option<String>,
    /// How many more calls it applies to; absent means always.
    #[serde(default)]
    pub times: Option<u32>,
    /// What it does.
    pub fault: Fault,
}

impl FaultRule {
    /// A rule for the next call of `operation`.
    pub fn new(operation: &str, fault: Fault) -> Self {
        Self {
            operation: operation.to_owned(),
            path_contains: None,
            times: Some(1),
            fault,
        }
    }

    /// Applies to the next `n` matching calls.
    #[must_use]
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Applies to every matching call.
    #[must_use]
    pub fn always(mut self) -> Self {
        self.times = None;
        self
    }

    /// Only calls whose path contains `s`.
    #[must_use]
    pub fn path_contains(mut self, s: &str) -> Self {
        self.path_contains = Some(s.to_owned());
        self
    }

    fn matches(&self, operation: &str, path: &str, is_write: bool) -> bool {
        if self.times == Some(0) {
            return false;
        }
        if matches!(self.fault, Fault::FailOperation { .. }) && !is_write {
            return false;
        }
        let op_ok = self.operation == "*" || self.operation.eq_ignore_ascii_case(operation);
        let path_ok = self
            .path_contains
            .as_ref()
            .is_none_or(|s| path.to_ascii_lowercase().contains(&s.to_ascii_lowercase()));
        op_ok && path_ok
    }
}

/// Takes the first rule that matches a call, using up one of its times.
pub fn take(
    rules: &mut Vec<FaultRule>,
    operation: &str,
    path: &str,
    is_write: bool,
) -> Option<Fault> {
    let rule = rules
        .iter_mut()
        .find(|r| r.matches(operation, path, is_write))?;
    if let Some(n) = rule.times.as_mut() {
        *n -= 1;
    }
    let fault = rule.fault.clone();
    rules.retain(|r| r.times != Some(0));
    Some(fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_used_up_in_order() {
        let mut rules = vec![
            FaultRule::new("LoadBalancers_Get", Fault::AppliedThenError).times(2),
            FaultRule::new("*", Fault::slow(Duration::from_millis(5))).always(),
        ];
        assert_eq!(
            take(&mut rules, "loadbalancers_get", "/x", false),
            Some(Fault::AppliedThenError)
        );
        assert_eq!(
            take(&mut rules, "LoadBalancers_Get", "/x", false),
            Some(Fault::AppliedThenError)
        );
        assert_eq!(
            take(&mut rules, "LoadBalancers_Get", "/x", false),
            Some(Fault::Slow { extra_ms: 5 })
        );
        assert_eq!(rules.len(), 1);
    }

    #[test]
    fn failed_operations_only_match_writes() {
        let mut rules = vec![FaultRule::new(
            "*",
            Fault::FailOperation {
                code: "X".into(),
                message: None,
            },
        )];
        assert_eq!(take(&mut rules, "LoadBalancers_Get", "/x", false), None);
        assert!(take(&mut rules, "LoadBalancers_CreateOrUpdate", "/x", true).is_some());
    }
}
