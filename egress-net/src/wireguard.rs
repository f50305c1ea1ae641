//! WireGuard devices with a run-time choice of kernel or userspace backend.

use std::fmt;
use std::net::SocketAddr;

use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer;
use defguard_wireguard_rs::{
    InterfaceConfiguration, Kernel, Userspace, WGApi, WireguardInterfaceApi,
};
use ipnet::IpNet;

use crate::Error;

/// Which WireGuard implementation backs a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The Linux kernel module.
    Kernel,
    /// Embedded userspace WireGuard (boringtun) behind a TUN device.
    Userspace,
}

impl Backend {
    /// The kernel module if it is loaded, otherwise userspace.
    /// `EGRESS_WG_BACKEND=kernel|userspace` overrides the probe.
    pub fn detect() -> Self {
        match std::env::var("EGRESS_WG_BACKEND").as_deref() {
            Ok("kernel") => Self::Kernel,
            Ok("userspace") => Self::Userspace,
            _ if std::path::Path::new("/sys/module/wireguard").exists() => Self::Kernel,
            _ => Self::Userspace,
        }
    }
}

/// A base64 WireGuard key pair. `Debug` never shows the private key.
#[derive(Clone)]
pub struct KeyPair {
    /// Private key, base64.
    pub private: String,
    /// Public key, base64.
    pub public: String,
}

impl KeyPair {
    /// A fresh random key pair.
    pub fn generate() -> Self {
        let private = Key::generate();
        Self {
            public: private.public_key().to_string(),
            private: private.to_string(),
        }
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// One peer of a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's public key, base64.
    pub public_key: String,
    /// Where to send to; `None` learns it from the peer's first handshake.
    pub endpoint: Option<SocketAddr>,
    /// Source addresses accepted from, and destinations routed to, this peer.
    pub allowed_ips: Vec<IpNet>,
    /// Keepalive interval in seconds.
    pub persistent_keepalive: Option<u16>,
}

/// Full configuration of a device.
#[derive(Clone)]
pub struct DeviceConfig {
    /// Private key, base64.
    pub private_key: String,
    /// UDP listen port.
    pub listen_port: u16,
    /// Addresses on the interface.
    pub addresses: Vec<IpNet>,
    /// MTU, set explicitly so encapsulated packets fit the underlay.
    pub mtu: u32,
    /// Peers.
    pub peers: Vec<PeerConfig>,
}

impl fmt::Debug for DeviceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceConfig")
            .field("listen_port", &self.listen_port)
            .field("addresses", &self.addresses)
            .field("mtu", &self.mtu)
            .field("peers", &self.peers)
            .finish_non_exhaustive()
    }
}

/// What a device reports about a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer's public key, base64.
    pub public_key: String,
    /// Whether a handshake has completed.
    pub handshake_done: bool,
    /// Bytes received from the peer.
    pub rx_bytes: u64,
    /// Bytes sent to the peer.
    pub tx_bytes: u64,
}

enum Api {
    Kernel(WGApi<Kernel>),
    Userspace(WGApi<Userspace>),
}

/// A WireGuard interface in the calling thread's network namespace.
/// It is removed when dropped.
pub struct Device {
    name: String,
    backend: Backend,
    api: Api,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("name", &self.name)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

fn check_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && !name.contains('/')
        && !name.chars().any(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        Err(Error::InterfaceName(name.to_string()))
    }
}

fn key(which: &'static str, text: &str) -> Result<Key, Error> {
    Key::try_from(text).map_err(|e| Error::Key {
        which,
        source: Box::new(e),
    })
}

fn mask(net: &IpNet) -> IpAddrMask {
    IpAddrMask::new(net.addr(), net.prefix_len())
}

impl Device {
    /// Creates the interface with the given backend.
    pub fn create(name: &str, backend: Backend) -> Result<Self, Error> {
        check_name(name)?;
        let wrap = |action| {
            move |source| Error::WireGuard {
                device: name.to_string(),
                action,
                source,
            }
        };
        let api = match backend {
            Backend::Kernel => {
                let mut api = WGApi::<Kernel>::new(name).map_err(wrap("init"))?;
                api.create_interface().map_err(wrap("create"))?;
                Api::Kernel(api)
            }
            Backend::Userspace => {
                let mut api = WGApi::<Userspace>::new(name).map_err(wrap("init"))?;
                api.create_interface().map_err(wrap("create"))?;
                Api::Userspace(api)
            }
        };
        Ok(Self {
            name: name.to_string(),
            backend,
            api,
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn iface(&self) -> &dyn WireguardInterfaceApi {
        match &self.api {
            Api::Kernel(api) => api,
            Api::Userspace(api) => api,
        }
    }

    /// Applies MTU, addresses, key, port and the full peer set.
    pub fn configure(&self, config: &DeviceConfig) -> Result<(), Error> {
        key("private", &config.private_key)?;
        let peers = config
            .peers
            .iter()
            .map(peer)
            .collect::<Result<Vec<_>, _>>()?;
        let iface = InterfaceConfiguration {
            name: self.name.clone(),
            prvkey: config.private_key.clone(),
            addresses: config.addresses.iter().map(mask).collect(),
            port: config.listen_port,
            peers,
            mtu: Some(config.mtu),
            fwmark: None,
        };
        self.iface()
            .configure_interface(&iface)
            .map_err(|source| Error::WireGuard {
                device: self.name.clone(),
                action: "configure",
                source,
            })
    }

    /// Reads per-peer handshake and traffic counters.
    pub fn peer_stats(&self) -> Result<Vec<PeerStats>, Error> {
        let host = self
            .iface()
            .read_interface_data()
            .map_err(|source| Error::WireGuard {
                device: self.name.clone(),
                action: "read",
                source,
            })?;
        Ok(host
            .peers
            .values()
            .map(|p| PeerStats {
                public_key: p.public_key.to_string(),
                handshake_done: p.last_handshake.is_some_and(|t| t > std::time::UNIX_EPOCH),
                rx_bytes: p.rx_bytes,
                tx_bytes: p.tx_bytes,
            })
            .collect())
    }
}

fn peer(config: &PeerConfig) -> Result<Peer, Error> {
    let mut peer = Peer::new(key("peer public", &config.public_key)?);
    peer.endpoint = config.endpoint;
    peer.allowed_ips = config.allowed_ips.iter().map(mask).collect();
    peer.persistent_keepalive_interval = config.persistent_keepalive;
    Ok(peer)
}

impl Drop for Device {
    fn drop(&mut self) {
        if let Err(e) = self.iface().remove_interface() {
            tracing::warn!(device = %self.name, error = %e, "removing WireGuard device failed");
        }
    }
}
