/// Errors of the Linux dataplane adapter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
