//! Errors of the CNI layer, each with its CNI error code.

use serde::{Deserialize, Serialize};

/// What went wrong handling a CNI invocation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration asks for a CNI version this plugin does not speak.
    #[error("CNI version {0:?} is not supported (supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)")]
    IncompatibleVersion(String),
    /// The configuration's version does not define the command.
    #[error("CNI version {version} has no {command} command")]
    CommandNotInVersion {
        /// The configuration's version.
        version: String,
        /// The command asked for.
        command: &'static str,
    },
    /// A required environment variable is missing or malformed.
    #[error("environment variable {name}: {problem}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The network configuration on stdin is not valid.
    #[error("network configuration: {0}")]
    Config(String),
    /// One of the plugin's own configuration keys has a bad value.
    #[error("network configuration: {key:?} {problem}")]
    Key {
        /// The key.
        key: &'static str,
        /// What is wrong with its value.
        problem: String,
    },
    /// The network configuration is not JSON.
    #[error("network configuration is not valid JSON")]
    Decode(#[source] serde_json::Error),
    /// Reading the input or talking to the agent failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The node agent cannot be reached (failure mode `closed`).
    #[error("the node agent is not available at {socket}")]
    AgentUnavailable {
        /// The socket tried.
        socket: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The node agent answered with an error.
    #[error("{0}")]
    Agent(String),
    /// The agent's answer could not be understood.
    #[error("the node agent's answer is not valid: {0}")]
    BadAnswer(String),
    /// The chained configuration was removed because its primary is not
    /// usable any more. The reason is part of the message (not a `source`)
    /// because the node agent logs the message alone.
    #[error("withdrew the chained CNI configuration {}: {reason}", file.display())]
    Withdrawn {
        /// Our chained file, now removed (or restored to what it replaced).
        file: std::path::PathBuf,
        /// Why the primary is not usable.
        reason: Box<Error>,
    },
}

impl Error {
    /// The CNI error code (spec section "Error").
    pub fn code(&self) -> u32 {
        match self {
            Self::IncompatibleVersion(_) | Self::CommandNotInVersion { .. } => 1,
            Self::Env { .. } => 4,
            Self::Io { .. } | Self::BadAnswer(_) | Self::Agent(_) => 5,
            Self::Decode(_) => 6,
            Self::Config(_) | Self::Key { .. } | Self::Withdrawn { .. } => 7,
            Self::AgentUnavailable { .. } => 11,
        }
    }

    /// The error object the plugin prints.
    pub fn to_object(&self, cni_version: &str) -> ErrorObject {
        let mut details = Vec::new();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            details.push(c.to_string());
            cause = c.source();
        }
        ErrorObject {
            cni_version: cni_version.to_string(),
            code: self.code(),
            msg: self.to_string(),
            details: details.join(": "),
        }
    }
}

/// A CNI error object, as printed on stdout.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// The version of the answer.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// CNI error code.
    pub code: u32,
    /// Short message.
    pub msg: String,
    /// Longer explanation.
    #[serde(default)]
    pub details: String,
}
