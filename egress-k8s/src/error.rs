use std::path::PathBuf;

/// Errors of the Kubernetes adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A CRD could not be rendered as YAML.
    #[error("cannot render CRD {name} as YAML")]
    Render {
        /// The CRD's name.
        name: String,
        /// The serializer's error.
        #[source]
        source: serde_yaml::Error,
    },
    /// Reading or writing a CRD manifest failed.
    #[error("CRD manifest {path}")]
    Io {
        /// The manifest path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {action} failed")]
    Api {
        /// What was being done.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A Kubernetes API call took longer than its deadline.
    #[error("Kubernetes API: {action} did not finish within {seconds} s")]
    Timeout {
        /// What was being done.
        action: String,
        /// The deadline.
        seconds: u64,
    },
    /// A watch stopped before its first full listing.
    #[error("watch of {0} stopped before its first listing")]
    WatchStopped(&'static str),
    /// Manifests on disk differ from what the Rust types generate.
    #[error("CRD manifests are stale: {files:?}")]
    Stale {
        /// The files that differ, are missing or are unexpected.
        files: Vec<String>,
    },
    /// A Kubernetes API call of the controller failed.
    #[error("Kubernetes API call {op} on {object} failed")]
    Kube {
        /// The call.
        op: &'static str,
        /// The object, `namespace/name` or a kind.
        object: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// An object the controller reads holds something it cannot use.
    #[error("{object}: {problem}")]
    Malformed {
        /// The object, `namespace/name`.
        object: String,
        /// What is wrong.
        problem: String,
    },
    /// A listener of the controller could not be opened or served.
    #[error("cannot serve {what} on {addr}")]
    Serve {
        /// Which endpoint.
        what: &'static str,
        /// The address.
        addr: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// An object an operator asked about does not exist.
    #[error("{0} not found")]
    NotFound(String),
}

/// How a caller should react to a client error: one mapping for every
/// adapter of this crate.
pub(crate) fn failure_kind(e: &kube::Error) -> egress_core::FailureKind {
    use egress_core::FailureKind;
    match e {
        kube::Error::Api(s) => match s.code {
            404 => FailureKind::NotFound,
            409 => FailureKind::Conflict,
            429 => FailureKind::Throttled {
                retry_after_secs: None,
            },
            c if c >= 500 => FailureKind::Transient,
            _ => FailureKind::Permanent,
        },
        _ => FailureKind::Transient,
    }
}
