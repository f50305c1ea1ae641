use std::path::PathBuf;

/// Errors raised while building or tearing down a test environment.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required server binary is not installed.
    #[error(
        "test binary {path} is missing; run scripts/setup.sh (or set EGRESS_K8S_BIN_DIR) first"
    )]
    MissingBinary {
        /// Where the binary was looked for.
        path: PathBuf,
    },
    /// Spawning or waiting on a helper process failed.
    #[error("could not run {program}")]
    Spawn {
        /// The program that failed to start.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A helper command ran but reported failure.
    #[error("`{command}` failed with {status}: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it wrote to standard error.
        stderr: String,
    },
    /// A filesystem operation on the test's scratch space failed.
    #[error("test scratch file {path}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A server did not become ready in time.
    #[error("{what} did not become ready within {seconds} s; last error: {last}")]
    NotReady {
        /// Which server.
        what: &'static str,
        /// How long we waited.
        seconds: u64,
        /// The last observed failure.
        last: String,
    },
    /// A server process exited during start-up.
    #[error("{what} exited during start-up ({status}); log tail:\n{log}")]
    Exited {
        /// Which server.
        what: &'static str,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The last lines of its log.
        log: String,
    },
    /// Building the Kubernetes client from the generated kubeconfig failed.
    #[error("kubeconfig for the test API server is unusable")]
    Kubeconfig(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Entering a network namespace failed.
    #[error("cannot enter network namespace {name}")]
    Setns {
        /// The namespace name.
        name: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A request to the test cluster's API server failed.
    #[error("{what}")]
    Kube {
        /// What was being done.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A condition was not reached in time.
    #[error("timed out after {seconds} s waiting for {what}; last seen: {last}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long we waited.
        seconds: u64,
        /// The last observed state.
        last: String,
    },
    /// A manifest given to the test cluster is malformed.
    #[error("manifest document {index}: {reason}")]
    Manifest {
        /// Position of the YAML document, from 0.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A node name that is not part of the test cluster.
    #[error("no node named {name} in this test cluster (nodes: {known})")]
    UnknownNode {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: String,
    },
    /// A node's processes exited while it was expected to run.
    #[error("node {node} is down ({status}); log tail:\n{log}")]
    NodeDown {
        /// The node name.
        node: String,
        /// The exit status of its process tree.
        status: String,
        /// The last lines of its kubelet and containerd logs.
        log: String,
    },
    /// The host cannot run the test cluster as configured.
    #[error("test cluster: {0}")]
    Unsupported(String),
}
