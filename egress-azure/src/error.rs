use std::time::Duration;

use egress_core::{FailureKind, Layer};

/// Errors of the Azure adapter: reading the cloud configuration, getting a
/// token, and talking to Azure Resource Manager. ARM errors keep Azure's own
/// `code` and `message`; [`Error::failure_kind`] maps each to the reaction
/// the controller's core should have.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cloud configuration is not a JSON object.
    #[error("cloud configuration is not valid JSON")]
    ConfigJson(#[source] serde_json::Error),
    /// A field of the cloud configuration has the wrong type.
    #[error("cloud configuration field {field} must be {expected}")]
    ConfigType {
        /// The field, as spelled in the file.
        field: String,
        /// The expected JSON type.
        expected: &'static str,
    },
    /// A required field is missing or empty.
    #[error("cloud configuration field {0} is required")]
    ConfigRequired(&'static str),
    /// Fields that contradict each other.
    #[error("cloud configuration: {0}")]
    ConfigConflict(&'static str),
    /// A cloud name the adapter has no endpoints for.
    #[error(
        "cloud configuration field cloud is {0:?}; known clouds are AzurePublicCloud, AzureChinaCloud and AzureUSGovernmentCloud (or set resourceManagerEndpoint)"
    )]
    UnknownCloud(String),
    /// The Resource Manager endpoint is not an http(s) URL.
    #[error("resource manager endpoint {0:?} is not an http:// or https:// URL")]
    Endpoint(String),
    /// The credential could not be built or could not produce a token.
    #[error("Azure credential ({kind}): {message}")]
    Credential {
        /// Which credential.
        kind: &'static str,
        /// What went wrong (never a secret).
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client for Azure Resource Manager")]
    HttpClient(#[source] reqwest::Error),
    /// ARM answered with an error status.
    #[error("{operation}: Azure answered HTTP {status} {code}: {message}")]
    Arm {
        /// The ARM operation (Azure's operationId).
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// Azure's error code (`error.code`), or the status text.
        code: String,
        /// Azure's error message.
        message: String,
        /// The server's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// A long-running operation ended `Failed` or `Canceled`.
    #[error("{operation}: long-running operation ended {status}: {code}: {message}")]
    OperationFailed {
        /// The ARM operation that started it.
        operation: &'static str,
        /// The final status.
        status: String,
        /// Azure's error code.
        code: String,
        /// Azure's error message.
        message: String,
    },
    /// A long-running operation did not finish within the bounded wait.
    #[error("{operation}: long-running operation still running after {} s", waited.as_secs())]
    OperationTimeout {
        /// The ARM operation that started it.
        operation: &'static str,
        /// How long the adapter waited.
        waited: Duration,
    },
    /// The request did not get an answer (connection, timeout).
    #[error("{operation}: request to Azure Resource Manager failed")]
    Transport {
        /// The ARM operation.
        operation: &'static str,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The answer's body is not what the operation returns.
    #[error("{operation}: response body is not a valid {what}")]
    Decode {
        /// The ARM operation.
        operation: &'static str,
        /// What was expected.
        what: &'static str,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// ARM pointed the adapter at a URL off its endpoint; the adapter will
    /// not send its token there.
    #[error("{operation}: refusing to follow {url}: not on the Resource Manager endpoint")]
    ForeignUrl {
        /// The ARM operation.
        operation: &'static str,
        /// The URL.
        url: String,
    },
    /// The resource changed since the caller read it (its `ETag` differs), so
    /// the write was not sent: re-read and re-plan.
    #[error("{resource} changed since it was read (ETag {expected} is now {found})")]
    Stale {
        /// The resource.
        resource: String,
        /// The `ETag` the caller planned from.
        expected: String,
        /// The current `ETag`.
        found: String,
    },
    /// A gateway pool the selector names does not exist.
    #[error("gateway pool {0} not found (no VMSS or VM carries it)")]
    PoolNotFound(String),
    /// A resource lacks something the adapter needs.
    #[error("{resource}: {problem}")]
    Unexpected {
        /// The resource (ID or name).
        resource: String,
        /// What is wrong.
        problem: String,
    },
    /// The local fake ARM server could not start or be seeded.
    #[cfg(feature = "fake-arm")]
    #[error("local fake ARM server")]
    FakeArm(#[source] egress_fakearm::FakeArmError),
}

/// 409 codes that name a passing state of the resource rather than a request
/// that can never succeed.
const RETRYABLE_CONFLICTS: &[&str] = &[
    "AnotherOperationInProgress",
    "Conflict",
    "OperationPreempted",
    "RetryableError",
    "ConcurrentRequestsLimitReached",
];

/// Codes of failed long-running operations worth retrying.
const RETRYABLE_OPERATION_CODES: &[&str] = &[
    "InternalServerError",
    "InternalOperationError",
    "RetryableError",
    "OperationPreempted",
    "AnotherOperationInProgress",
    "Canceled",
];

fn is_one_of(code: &str, set: &[&str]) -> bool {
    set.iter().any(|c| c.eq_ignore_ascii_case(code))
}

impl Error {
    /// How the controller's core should react to this error.
    pub fn failure_kind(&self) -> FailureKind {
        match self {
            Self::Arm {
                status,
                code,
                retry_after,
                ..
            } => match *status {
                404 => FailureKind::NotFound,
                412 => FailureKind::Conflict,
                429 => FailureKind::Throttled {
                    retry_after_secs: retry_after.map(|d| d.as_secs().max(1)),
                },
                409 if is_one_of(code, RETRYABLE_CONFLICTS) => FailureKind::Transient,
                408 | 500..=599 => FailureKind::Transient,
                _ => FailureKind::Permanent,
            },
            Self::OperationFailed { code, .. } if is_one_of(code, RETRYABLE_OPERATION_CODES) => {
                FailureKind::Transient
            }
            Self::Stale { .. } => FailureKind::Conflict,
            Self::PoolNotFound(_) => FailureKind::NotFound,
            Self::OperationTimeout { .. }
            | Self::Transport { .. }
            | Self::Credential { .. }
            | Self::ForeignUrl { .. } => FailureKind::Transient,
            _ => FailureKind::Permanent,
        }
    }

    /// Azure's error code, for errors Azure gave.
    pub fn azure_code(&self) -> Option<&str> {
        match self {
            Self::Arm { code, .. } | Self::OperationFailed { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, for errors Azure answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Arm { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is a 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// Wraps the error for the core's `CloudProvider` callers.
    pub fn into_core(self, op: &'static str) -> egress_core::Error {
        let kind = self.failure_kind();
        egress_core::Error::adapter(Layer::Cloud, op, kind, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(status: u16, code: &str, retry_after: Option<u64>) -> Error {
        Error::Arm {
            operation: "LoadBalancers_CreateOrUpdate",
            status,
            code: code.into(),
            message: "m".into(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn statuses_map_to_failure_kinds() {
        assert_eq!(
            arm(404, "NotFound", None).failure_kind(),
            FailureKind::NotFound
        );
        assert_eq!(
            arm(412, "PreconditionFailed", None).failure_kind(),
            FailureKind::Conflict
        );
        assert_eq!(
            arm(429, "TooManyRequests", Some(17)).failure_kind(),
            FailureKind::Throttled {
                retry_after_secs: Some(17)
            }
        );
        assert_eq!(
            arm(409, "AnotherOperationInProgress", None).failure_kind(),
            FailureKind::Transient
        );
        assert_eq!(
            arm(409, "PublicIPAddressInUse", None).failure_kind(),
            FailureKind::Permanent
        );
        assert_eq!(
            arm(503, "ServerBusy", None).failure_kind(),
            FailureKind::Transient
        );
        assert_eq!(
            arm(400, "InvalidResourceReference", None).failure_kind(),
            FailureKind::Permanent
        );
        assert_eq!(
            arm(403, "AuthorizationFailed", None).failure_kind(),
            FailureKind::Permanent
        );
    }

    #[test]
    fn failed_operations_keep_azures_code() {
        let e = Error::OperationFailed {
            operation: "VirtualMachineScaleSets_Update",
            status: "Failed".into(),
            code: "PublicIpPrefixOutOfIpAddressesForVMScaleSet".into(),
            message: "prefix is full".into(),
        };
        assert_eq!(e.failure_kind(), FailureKind::Permanent);
        assert_eq!(
            e.azure_code(),
            Some("PublicIpPrefixOutOfIpAddressesForVMScaleSet")
        );
        assert_eq!(
            e.to_string(),
            "VirtualMachineScaleSets_Update: long-running operation ended Failed: PublicIpPrefixOutOfIpAddressesForVMScaleSet: prefix is full"
        );
        let core = e.into_core("put_vmss_model");
        assert_eq!(core.failure_kind(), Some(FailureKind::Permanent));
        assert!(core.to_string().contains("put_vmss_model"));
    }
}
