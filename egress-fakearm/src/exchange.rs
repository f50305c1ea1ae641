//! A request as handlers see it (already read whole) and the reply they give.

use std::collections::BTreeMap;

use http::{HeaderMap, Method};
use serde_json::Value;

use crate::arm_error::ArmError;

/// One request, read whole.
#[derive(Debug, Clone)]
pub struct Req {
    /// Method.
    pub method: Method,
    /// Path, without query.
    pub path: String,
    /// Query parameters (last one wins).
    pub query: BTreeMap<String, String>,
    /// Headers.
    pub headers: HeaderMap,
    /// Raw body.
    pub body: Vec<u8>,
    /// `http://host:port` as the client addressed the fake, for status URLs.
    pub base_url: String,
}

impl Req {
    /// The `api-version` query parameter.
    pub fn api_version(&self) -> Option<&str> {
        self.query.get("api-version").map(String::as_str)
    }

    /// A header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as a JSON object; a clear 400 when it is not one.
    pub fn json_object(&self) -> Result<Value, ArmError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Err(ArmError::invalid_body(
                "The request body is empty; a JSON object is required.",
            ));
        }
        let v: Value = serde_json::from_slice(&self.body).map_err(|e| {
            ArmError::invalid_body(format!("The request body is not valid JSON: {e}."))
        })?;
        if v.is_object() {
            Ok(v)
        } else {
            Err(ArmError::invalid_body(
                "The request body must be a JSON object.",
            ))
        }
    }

    /// The body as JSON for the request log, if it is JSON.
    pub fn json_for_log(&self) -> Option<Value> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .map(|v| crate::log::redact(&v))
    }
}

/// What a handler answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// JSON body, if any.
    pub body: Option<Value>,
}

impl Reply {
    /// 200 with a JSON body.
    pub fn ok(body: Value) -> Self {
        Self {
            status: 200,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    /// A status with no body.
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: None,
        }
    }

    /// An ARM list: `{"value": [...]}`.
    pub fn list(items: Vec<Value>) -> Self {
        Self::ok(serde_json::json!({ "value": Value::Array(items) }))
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The reply for an ARM error.
    pub fn error(e: &ArmError) -> Self {
        let mut r = Self {
            status: e.status,
            headers: Vec::new(),
            body: Some(e.body()),
        };
        if let Some(s) = e.retry_after {
            r.headers.push(("Retry-After".into(), s.to_string()));
        }
        r
    }
}
