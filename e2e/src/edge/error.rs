//! The edge simulator's one error type.

use std::process::ExitStatus;

/// What can go wrong while simulating Azure's edge.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// A helper program (`ip`, `nft`) could not be started.
    #[error("could not run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A helper program ran and failed.
    #[error("`{command}` failed with {status}: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it wrote to standard error.
        stderr: String,
    },
    /// A kernel setting under `/proc/sys` could not be read or written.
    #[error("sysctl {path}")]
    Sysctl {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A socket of the simulator (probe, IMDS listener) failed.
    #[error("{what}")]
    Socket {
        /// What the socket was for.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A worker thread could not start in its network namespace.
    #[error("network namespace {name}")]
    Netns {
        /// The namespace.
        name: String,
        /// Why entering it failed.
        #[source]
        source: egress_testkit::Error,
    },
    /// A worker thread stopped (it panicked or was already shut down).
    #[error("the edge worker thread is gone")]
    WorkerGone,
    /// The node map names more nodes than the simulator has marks for.
    #[error("{count} nodes given; the edge simulates at most {max}")]
    TooManyNodes {
        /// Nodes given.
        count: usize,
        /// The limit.
        max: usize,
    },
}
