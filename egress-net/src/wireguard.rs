//! WireGuard devices with a run-time choice of backend: the kernel module,
//! wireguard-go (an external userspace process per device, driven over its
//! control socket), or embedded boringtun as the last resort.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer;
use defguard_wireguard_rs::{
    InterfaceConfiguration, Kernel, Userspace, WGApi, WireguardInterfaceApi,
};
use ipnet::IpNet;

use crate::Error;

/// Which WireGuard implementation backs a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The Linux kernel module.
    Kernel,
    /// wireguard-go at this path: one process per device, behind a TUN
    /// device, configured through `/var/run/wireguard/<if>.sock`.
    WireguardGo(PathBuf),
    /// Embedded boringtun behind a TUN device (slower; a fallback).
    Boringtun,
}

impl Backend {
    /// The kernel module if it is loaded; otherwise wireguard-go from
    /// `$EGRESS_WIREGUARD_GO` (which `scripts/setup.sh` prints) or `PATH`;
    /// otherwise embedded boringtun. `EGRESS_WG_BACKEND=kernel|wireguard-go|
    /// boringtun` overrides the probe.
    pub fn detect() -> Self {
        let go = || {
            std::env::var_os("EGRESS_WIREGUARD_GO")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("PATH").and_then(|paths| {
                        std::env::split_paths(&paths)
                            .map(|d| d.join("wireguard-go"))
                            .find(|p| p.is_file())
                    })
                })
        };
        match std::env::var("EGRESS_WG_BACKEND").as_deref() {
            Ok("kernel") => return Self::Kernel,
            Ok("boringtun") => return Self::Boringtun,
            Ok("wireguard-go") => {
                return Self::WireguardGo(go().unwrap_or_else(|| "wireguard-go".into()));
            }
            _ => {}
        }
        if Path::new("/sys/module/wireguard").exists() {
            Self::Kernel
        } else {
            go().map_or(Self::Boringtun, Self::WireguardGo)
        }
    }

    /// How devices of this backend are configured.
    pub fn control(&self) -> crate::wgctl::Control {
        match self {
            Self::Kernel => crate::wgctl::Control::Kernel,
            Self::WireguardGo(_) | Self::Boringtun => crate::wgctl::Control::Uapi,
        }
    }

    /// A short name for logs and figures.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::WireguardGo(_) => "wireguard-go",
            Self::Boringtun => "boringtun",
        }
    }
}

/// The control socket of a userspace device.
pub fn socket_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/var/run/wireguard/{name}.sock"))
}

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts wireguard-go for device `name` in the calling thread's network
/// namespace (where its TUN device and UDP socket are made) and waits until
/// its control socket answers. The caller owns the process.
pub fn start_wireguard_go(program: &Path, name: &str) -> Result<Child, Error> {
    check_name(name)?;
    let socket = socket_path(name);
    // A socket left by a process that died would make the wait below succeed
    // too early; wireguard-go replaces it anyway.
    let _ = std::fs::remove_file(&socket);
    let mut child = Command::new(program)
        .arg("-f")
        .arg(name)
        .env("WG_PROCESS_FOREGROUND", "1")
        .env("LOG_LEVEL", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|source| Error::WireguardGo {
            device: name.to_string(),
            program: program.to_path_buf(),
            source,
        })?;
    let start = Instant::now();
    while start.elapsed() < START_TIMEOUT {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Ok(child);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::WireguardGo {
                device: name.to_string(),
                program: program.to_path_buf(),
                source: std::io::Error::other(format!("exited with {status}")),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(Error::WireguardGoTimeout {
        device: name.to_string(),
        socket,
        seconds: START_TIMEOUT.as_secs(),
    })
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
    /// wireguard-go: the process and the API on its socket.
    External(WGApi<Userspace>, Child),
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

pub(crate) fn check_name(name: &str) -> Result<(), Error> {
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
        let api = match &backend {
            Backend::Kernel => {
                let mut api = WGApi::<Kernel>::new(name).map_err(wrap("init"))?;
                api.create_interface().map_err(wrap("create"))?;
                Api::Kernel(api)
            }
            Backend::Boringtun => {
                let mut api = WGApi::<Userspace>::new(name).map_err(wrap("init"))?;
                api.create_interface().map_err(wrap("create"))?;
                Api::Userspace(api)
            }
            Backend::WireguardGo(program) => {
                let child = start_wireguard_go(program, name)?;
                let api = WGApi::<Userspace>::new(name).map_err(wrap("init"))?;
                let device = Self {
                    name: name.to_string(),
                    backend: backend.clone(),
                    api: Api::External(api, child),
                };
                // defguard's link-up helper is private; bring it up here.
                link_up_here(name)?;
                return Ok(device);
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
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// The wireguard-go process, if this device has one.
    pub fn pid(&self) -> Option<u32> {
        match &self.api {
            Api::External(_, child) => Some(child.id()),
            _ => None,
        }
    }

    fn iface(&self) -> &dyn WireguardInterfaceApi {
        match &self.api {
            Api::Kernel(api) => api,
            Api::Userspace(api) | Api::External(api, _) => api,
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

/// Sets link `name` up in the calling thread's namespace, through a
/// short-lived rtnetlink connection.
fn link_up_here(name: &str) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|source| Error::Netns {
            path: PathBuf::from("/proc/thread-self/ns/net"),
            source,
        })?;
    rt.block_on(async {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| Error::Netns {
            path: PathBuf::from("/proc/thread-self/ns/net"),
            source,
        })?;
        tokio::spawn(conn);
        let rtnl = crate::rtnl::Rtnl::new(handle, std::sync::Arc::default());
        let index = rtnl.index(name).await?;
        rtnl.set_up(index).await
    })
}

impl Drop for Device {
    fn drop(&mut self) {
        match &mut self.api {
            Api::External(_, child) => {
                // Removing the TUN device or killing the process ends it.
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_file(socket_path(&self.name));
            }
            _ => {
                // defguard reports a DNS error on hosts without resolvconf
                // even when the device is gone; that is only worth a debug line.
                if let Err(e) = self.iface().remove_interface() {
                    tracing::debug!(device = %self.name, error = %e, "removing WireGuard device reported an error");
                }
            }
        }
    }
}

/// Whether `text` is a WireGuard key (32 bytes, base64).
pub fn valid_key(text: &str) -> bool {
    Key::try_from(text).is_ok()
}
