//! Which failures the client retries itself, how long it waits, and how an
//! error answer becomes an [`Error`].

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use egress_core::FailureKind;
use serde::Deserialize;

use super::{Answer, ClientSettings};
use crate::Error;

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<ErrorDetail>,
}

/// ARM's `{"error": {"code", "message"}}`, also used by operation statuses.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// Seconds from a `Retry-After` header (ARM sends seconds).
pub(crate) fn retry_after(answer: &Answer) -> Option<Duration> {
    answer
        .header("retry-after")?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// The error an unsuccessful answer stands for, keeping Azure's code and
/// message (or the status text when the body has none).
pub(crate) fn arm_error(operation: &'static str, answer: &Answer) -> Error {
    let detail = serde_json::from_slice::<ErrorBody>(&answer.body)
        .ok()
        .and_then(|b| b.error)
        .unwrap_or_default();
    let reason = answer.status.canonical_reason().unwrap_or("error");
    Error::Arm {
        operation,
        status: answer.status.as_u16(),
        code: if detail.code.is_empty() {
            reason.replace(' ', "")
        } else {
            detail.code
        },
        message: if detail.message.is_empty() {
            String::from_utf8_lossy(&answer.body)
                .chars()
                .take(200)
                .collect()
        } else {
            detail.message
        },
        retry_after: retry_after(answer),
    }
}

/// Failures retried inside the client: 5xx, 408, passing 409s and requests
/// that got no answer. A 429 is not: its `Retry-After` goes up to the
/// controller's backoff, which spaces out every call, not just this one.
pub(crate) fn is_retried_here(error: &Error) -> bool {
    match error {
        Error::Arm { status, .. } => {
            matches!(status, 408 | 409 | 500..=599)
                && error.failure_kind() == FailureKind::Transient
        }
        Error::Transport { .. } => true,
        _ => false,
    }
}

/// Exponential backoff with ±20 % jitter, capped; a server's `Retry-After`
/// (on a 5xx) is honoured up to the same cap.
pub(crate) fn backoff(settings: &ClientSettings, attempt: u32, error: &Error) -> Duration {
    let exp = settings
        .backoff_base
        .saturating_mul(1u32 << attempt.min(16))
        .min(settings.backoff_max);
    // Jitter from the std hasher's random keys: no RNG dependency needed.
    let r = RandomState::new().hash_one(attempt) % 401;
    let factor = 0.8 + f64::from(u32::try_from(r).unwrap_or(0)) / 1000.0;
    let jittered = exp.mul_f64(factor);
    let hinted = match error {
        Error::Arm {
            retry_after: Some(d),
            ..
        } => *d,
        _ => Duration::ZERO,
    };
    jittered.max(hinted).min(settings.backoff_max)
}
