//! Long-running operations: poll `Azure-AsyncOperation`, else `Location`,
//! else the resource's `provisioningState`, within a bounded wait.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::retry::{ErrorDetail, arm_error, retry_after};
use super::{Answer, ArmClient};
use crate::Error;

#[derive(Deserialize)]
struct OperationStatus {
    #[serde(default)]
    status: String,
    #[serde(default)]
    error: Option<ErrorDetail>,
}

fn provisioning_state(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("properties")?
        .get("provisioningState")?
        .as_str()
        .map(str::to_string)
}

/// Whether a write's answer already shows the final state: no
/// `provisioningState`, or `Succeeded`.
pub(super) fn settled(answer: &Answer) -> bool {
    provisioning_state(&answer.body).is_none_or(|s| s.eq_ignore_ascii_case("Succeeded"))
}

enum Poll {
    Done,
    Again(Option<Duration>),
}

impl ArmClient {
    fn next_delay(&self, hint: Option<Duration>) -> Duration {
        hint.unwrap_or(self.settings.poll_interval)
            .min(self.settings.max_poll_interval)
    }

    /// Waits for the operation a write started. Returns whether it polled.
    pub(super) async fn wait(
        &self,
        operation: &'static str,
        answer: &Answer,
        resource_url: Option<&str>,
    ) -> Result<bool, Error> {
        let started = Instant::now();
        let (url, kind) = if let Some(url) = answer.header("azure-asyncoperation") {
            (url.to_string(), Kind::AsyncOperation)
        } else if answer.status == StatusCode::ACCEPTED
            && let Some(url) = answer.header("location")
        {
            (url.to_string(), Kind::Location)
        } else if let Some(url) = resource_url.filter(|_| !settled(answer)) {
            (url.to_string(), Kind::ProvisioningState)
        } else {
            return Ok(false);
        };
        let mut delay = self.next_delay(retry_after(answer));
        loop {
            if started.elapsed() + delay > self.settings.operation_timeout {
                return Err(Error::OperationTimeout {
                    operation,
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(delay).await;
            self.metrics.poll(operation);
            match self.poll_once(operation, &url, kind).await? {
                Poll::Done => return Ok(true),
                Poll::Again(hint) => delay = self.next_delay(hint),
            }
        }
    }

    async fn poll_once(
        &self,
        operation: &'static str,
        url: &str,
        kind: Kind,
    ) -> Result<Poll, Error> {
        let answer = match self
            .send_once(
                operation,
                &Method::GET,
                url,
                None,
                super::Precondition::None,
            )
            .await
        {
            Ok(a) => a,
            // No answer: the operation goes on regardless; ask again.
            Err(Error::Transport { .. }) => return Ok(Poll::Again(None)),
            Err(e) => return Err(e),
        };
        let hint = retry_after(&answer);
        let status = answer.status;
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Ok(Poll::Again(hint));
        }
        if !status.is_success() {
            return Err(arm_error(operation, &answer));
        }
        match kind {
            Kind::AsyncOperation => {
                let s: OperationStatus =
                    serde_json::from_slice(&answer.body).map_err(|source| Error::Decode {
                        operation,
                        what: "operation status",
                        source,
                    })?;
                terminal(operation, &s.status, s.error)
                    .map(|done| if done { Poll::Done } else { Poll::Again(hint) })
            }
            Kind::Location => Ok(if status == StatusCode::ACCEPTED {
                Poll::Again(hint)
            } else {
                Poll::Done
            }),
            Kind::ProvisioningState => {
                let state = provisioning_state(&answer.body).unwrap_or_else(|| "Succeeded".into());
                terminal(operation, &state, None)
                    .map(|done| if done { Poll::Done } else { Poll::Again(hint) })
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    AsyncOperation,
    Location,
    ProvisioningState,
}

/// `Ok(true)` when finished, `Ok(false)` while running, the error when it
/// ended `Failed` or `Canceled`.
fn terminal(
    operation: &'static str,
    status: &str,
    error: Option<ErrorDetail>,
) -> Result<bool, Error> {
    if status.eq_ignore_ascii_case("Succeeded") {
        return Ok(true);
    }
    if status.eq_ignore_ascii_case("Failed") || status.eq_ignore_ascii_case("Canceled") {
        let detail = error.unwrap_or_default();
        return Err(Error::OperationFailed {
            operation,
            status: status.to_string(),
            code: if detail.code.is_empty() {
                format!("Operation{status}")
            } else {
                detail.code
            },
            message: detail.message,
        });
    }
    Ok(false)
}
