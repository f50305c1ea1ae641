//! The CNI side of the egress gateway, shared by the plugin and the node
//! agent:
//!
//! - [`invocation`]: the plugin's input (environment and network
//!   configuration, CNI 0.3.0 to 1.1.0) parsed into an [`Invocation`], every
//!   defect reported as an [`Error`] that becomes a CNI error object;
//! - [`conflist`]: installing the chained configuration beside the node's
//!   primary one, and restoring the directory on uninstall;
//! - [`sandbox`]: the records of which pod the runtime attached in which
//!   sandbox, so the agent binds tunnels by sandbox, never by address;
//! - [`wire`]: the request the plugin forwards to the node agent over its
//!   unix socket and the answer it prints.
//!
//! Nothing here touches the network or the kernel; [`conflist`] only the
//! files it is given.

pub mod conflist;
mod error;
pub mod invocation;
pub mod sandbox;
pub mod wire;

pub use error::{Error, ErrorObject};
pub use invocation::KeyDefect;
pub use invocation::{Command, FailureMode, Invocation, NetConf};

/// The CNI versions this plugin speaks. The chained conflist takes the
/// primary's version (every plugin of a list is invoked with it), and
/// primaries write older ones: Azure CNI 0.3.0; Calico, Cilium, Flannel and
/// kindnet 0.3.1. The runtime hands `prevResult` over in the list's version,
/// and the plugin answers in it, so passing the result on keeps its shape.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Whether `version` knows `command`: CHECK arrived in 0.4.0, STATUS and GC
/// in 1.1.0.
pub fn version_has(version: &str, command: Command) -> bool {
    match command {
        Command::Add | Command::Del | Command::Version => true,
        Command::Check => !version.starts_with("0.3."),
        Command::Status | Command::Gc => version == "1.1.0",
    }
}
/// The unix socket the agent serves by default.
pub const DEFAULT_SOCKET: &str = "/run/egress-gateway/cni/agent.sock";
/// How long the plugin's whole exchange with the agent may take by default
/// (`timeoutSeconds`), counted from the plugin's start.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The interface the plugin adds to the pod.
pub const INTERFACE: &str = "wg0";
