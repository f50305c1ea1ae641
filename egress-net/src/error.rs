use std::path::PathBuf;

/// Errors of the Linux dataplane adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A network namespace could not be opened, entered or created.
    #[error("network namespace {path}")]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The thread working inside a namespace stopped.
    #[error("the namespace worker thread stopped")]
    WorkerGone,
    /// An rtnetlink request failed.
    #[error("netlink: {action} failed")]
    Netlink {
        /// What was being done.
        action: String,
        /// The library's error.
        #[source]
        source: rtnetlink::Error,
    },
    /// A route that cannot be expressed (mixed address families).
    #[error("invalid route: {0}")]
    BadRoute(String),
    /// A link the operation needs does not exist.
    #[error("link {0} does not exist")]
    MissingLink(String),
    /// wireguard-go could not be started.
    #[error("cannot start wireguard-go {program} for {device}")]
    WireguardGo {
        /// The interface name.
        device: String,
        /// The program started.
        program: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// wireguard-go started but its control socket never appeared.
    #[error("wireguard-go for {device} did not open {socket} within {seconds} s")]
    WireguardGoTimeout {
        /// The interface name.
        device: String,
        /// The expected socket.
        socket: PathBuf,
        /// How long we waited.
        seconds: u64,
    },
    /// The userspace API of a WireGuard device failed.
    #[error("WireGuard device {device}: userspace API {action} failed")]
    Uapi {
        /// The interface name.
        device: String,
        /// What was being done.
        action: &'static str,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Embedded boringtun cannot serve a gateway device: its UDP socket
    /// would have to stay in the host namespace.
    #[error(
        "the gateway needs the kernel WireGuard module or wireguard-go; embedded boringtun cannot keep a device's socket in the host namespace"
    )]
    BoringtunUnsupported,
    /// The private key of a configuration is not (yet) known.
    #[error("no private key loaded from Secret {0}")]
    MissingKey(String),
    /// A sysctl could not be read or written.
    #[error("sysctl {key}")]
    Sysctl {
        /// The sysctl path under /proc/sys.
        key: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A WireGuard device operation failed.
    #[error("WireGuard device {device}: {action} failed")]
    WireGuard {
        /// The interface name.
        device: String,
        /// What was being done.
        action: &'static str,
        /// The library's error.
        #[source]
        source: defguard_wireguard_rs::error::WireguardInterfaceError,
    },
    /// A WireGuard key was not 32 bytes of base64 (or hex).
    #[error("invalid WireGuard {which} key")]
    Key {
        /// Which key (private, peer public).
        which: &'static str,
        /// The decoder's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An interface name is empty, too long for Linux, or has bad characters.
    #[error("invalid interface name {0:?}: must be 1 to 15 bytes without '/' or whitespace")]
    InterfaceName(String),
    /// `nft` could not be started.
    #[error("cannot run nft (is the nftables package installed?)")]
    NftSpawn(#[source] std::io::Error),
    /// `nft` rejected a ruleset or command.
    #[error("nft {action} failed: {stderr}")]
    Nft {
        /// What was being done.
        action: String,
        /// What nft reported.
        stderr: String,
    },
}
