//! Errors as ARM answers them: an HTTP status and `{"error": {"code", "message"}}`.

use serde_json::{Value, json};

/// One ARM error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmError {
    /// HTTP status code.
    pub status: u16,
    /// ARM's error code, e.g. `InvalidResourceReference`.
    pub code: String,
    /// A human message that names what is wrong.
    pub message: String,
    /// `Retry-After` seconds, for throttling answers.
    pub retry_after: Option<u64>,
}

impl ArmError {
    /// An error with the given status, code and message.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 with the given code.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// 400 `InvalidResourceReference` naming the dangling reference and its referrer.
    pub fn invalid_reference(reference: &str, referrer: &str) -> Self {
        Self::bad_request(
            "InvalidResourceReference",
            format!("Resource {reference} referenced by resource {referrer} was not found."),
        )
    }

    /// 404 `ResourceNotFound` for a top-level resource.
    pub fn not_found(id: &str) -> Self {
        Self::new(
            404,
            "ResourceNotFound",
            format!("The Resource '{id}' was not found."),
        )
    }

    /// 404 `NotFound` for a child resource (instance, subnet, NIC of an instance).
    pub fn child_not_found(id: &str) -> Self {
        Self::new(404, "NotFound", format!("Resource {id} not found."))
    }

    /// 400 `InvalidRequestFormat`: the body could not be understood.
    pub fn invalid_body(message: impl Into<String>) -> Self {
        Self::bad_request("InvalidRequestFormat", message)
    }

    /// The ARM error body.
    pub fn body(&self) -> Value {
        json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl std::fmt::Display for ArmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.message)
    }
}
