//! The one error type of the end-to-end library.

use std::path::PathBuf;

/// What went wrong while building, running or checking the local system.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    /// The local cluster, a namespace or an image could not be made.
    #[error("local cluster")]
    Cluster(#[from] egress_testkit::Error),
    /// The fake Azure Resource Manager could not start or be seeded.
    #[error("fake Azure Resource Manager")]
    FakeArm(#[from] egress_fakearm::FakeArmError),
    /// The simulated Azure edge could not be set up.
    #[error("simulated Azure edge")]
    Edge(#[from] crate::edge::EdgeError),
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {what}")]
    Kube {
        /// The call.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// A program the system needs (cargo, helm, a built binary) failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and standard error.
        detail: String,
    },
    /// A file could not be read or written.
    #[error("file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Something did not happen in time.
    #[error("timed out after {limit:?} waiting for {what}; last: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        limit: std::time::Duration,
        /// The last observation.
        last: String,
    },
    /// The system is in a state the caller did not expect.
    #[error("{0}")]
    Unexpected(String),
}

impl E2eError {
    /// A Kubernetes error with the call it came from.
    pub fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| Self::Kube { what, source }
    }

    /// A file error with its path.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
