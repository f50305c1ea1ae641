//! Driving a gateway WireGuard device, whichever backend holds it: the kernel
//! module over generic netlink, or wireguard-go (or any userspace
//! implementation) over its control socket `/var/run/wireguard/<if>.sock`.
//!
//! Every function blocks; kernel calls must run inside the device's namespace.

use std::net::IpAddr;

use defguard_wireguard_rs::host::Host;
use defguard_wireguard_rs::key::Key;
use defguard_wireguard_rs::net::IpAddrMask;
use defguard_wireguard_rs::peer::Peer;
use defguard_wireguard_rs::{
    InterfaceConfiguration, Kernel, Userspace, WGApi, WireguardInterfaceApi,
};

use crate::Error;

/// How a device is controlled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Kernel module, generic netlink.
    Kernel,
    /// Userspace implementation, control socket.
    Uapi,
}

fn wg_err(
    device: &str,
    action: &'static str,
) -> impl FnOnce(defguard_wireguard_rs::error::WireguardInterfaceError) -> Error {
    let device = device.to_string();
    move |source| Error::WireGuard {
        device,
        action,
        source,
    }
}

fn uapi(device: &str) -> Result<WGApi<Userspace>, Error> {
    WGApi::<Userspace>::new(device).map_err(wg_err(device, "open"))
}

fn kernel(device: &str) -> Result<WGApi<Kernel>, Error> {
    WGApi::<Kernel>::new(device).map_err(wg_err(device, "open"))
}

fn key(which: &'static str, text: &str) -> Result<Key, Error> {
    Key::try_from(text).map_err(|e| Error::Key {
        which,
        source: Box::new(e),
    })
}

/// Reads the device: key, port and peers with their counters.
pub fn read(control: Control, device: &str) -> Result<Host, Error> {
    match control {
        Control::Uapi => uapi(device)?.read_host().map_err(|source| Error::Uapi {
            device: device.to_string(),
            action: "get",
            source,
        }),
        Control::Kernel => kernel(device)?
            .read_interface_data()
            .map_err(wg_err(device, "read")),
    }
}

/// Sets the private key and listen port, keeping the peers as they are.
pub fn set_key_and_port(
    control: Control,
    device: &str,
    private_key: &str,
    port: u16,
    mtu: u32,
) -> Result<(), Error> {
    let private = key("private", private_key)?;
    let mut host = read(control, device)?;
    host.private_key = Some(private);
    host.listen_port = port;
    match control {
        // A set with every current peer: the userspace API replaces the peer
        // list, so nothing is lost.
        Control::Uapi => uapi(device)?
            .write_host(&host)
            .map_err(|source| Error::Uapi {
                device: device.to_string(),
                action: "set",
                source,
            }),
        Control::Kernel => {
            let config = InterfaceConfiguration {
                name: device.to_string(),
                prvkey: private_key.to_string(),
                addresses: vec![IpAddrMask::new(
                    IpAddr::from([0xfe80, 0, 0, 0, 0, 0, 0, 1]),
                    64,
                )],
                port,
                peers: host.peers.into_values().collect(),
                mtu: Some(mtu),
                fwmark: None,
            };
            kernel(device)?
                .configure_interface(&config)
                .map_err(wg_err(device, "configure"))
        }
    }
}

/// Adds or updates a peer allowed exactly `ip` (a /32 or /128).
pub fn upsert_peer(
    control: Control,
    device: &str,
    public_key: &str,
    ip: IpAddr,
) -> Result<(), Error> {
    let mut peer = Peer::new(key("peer public", public_key)?);
    let len = if ip.is_ipv4() { 32 } else { 128 };
    peer.allowed_ips = vec![IpAddrMask::new(ip, len)];
    match control {
        Control::Uapi => uapi(device)?.configure_peer(&peer),
        Control::Kernel => kernel(device)?.configure_peer(&peer),
    }
    .map_err(wg_err(device, "configure peer"))
}

/// Removes a peer.
pub fn remove_peer(control: Control, device: &str, public_key: &str) -> Result<(), Error> {
    let k = key("peer public", public_key)?;
    match control {
        Control::Uapi => uapi(device)?.remove_peer(&k),
        Control::Kernel => kernel(device)?.remove_peer(&k),
    }
    .map_err(wg_err(device, "remove peer"))
}

/// Applies several peer changes to one device: in one set over the control
/// socket for userspace devices, one netlink request each for the kernel.
pub fn change_peers(
    control: Control,
    device: &str,
    upserts: &[(String, IpAddr)],
    removals: &[String],
) -> Result<(), Error> {
    use std::io::{BufRead, BufReader, Write};
    if control == Control::Kernel {
        for k in removals {
            remove_peer(control, device, k)?;
        }
        for (k, ip) in upserts {
            upsert_peer(control, device, k, *ip)?;
        }
        return Ok(());
    }
    // The text defguard writes for one peer, for many in one set.
    let mut text = String::from("set=1\n");
    for k in removals {
        text.push_str(&Peer::new(key("peer public", k)?).as_uapi_remove());
    }
    for (k, ip) in upserts {
        let mut peer = Peer::new(key("peer public", k)?);
        let len = if ip.is_ipv4() { 32 } else { 128 };
        peer.allowed_ips = vec![IpAddrMask::new(*ip, len)];
        text.push_str(&peer.as_uapi_update());
    }
    text.push('\n');
    let err = |source| Error::Uapi {
        device: device.to_string(),
        action: "set peers",
        source,
    };
    let mut sock = std::os::unix::net::UnixStream::connect(crate::wireguard::socket_path(device))
        .map_err(err)?;
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(err)?;
    sock.write_all(text.as_bytes()).map_err(err)?;
    let mut reader = BufReader::new(sock);
    let mut line = String::new();
    while reader.read_line(&mut line).map_err(err)? > 0 {
        if let Some(errno) = line.trim().strip_prefix("errno=") {
            return if errno == "0" {
                Ok(())
            } else {
                Err(err(std::io::Error::other(format!(
                    "device answered errno={errno}"
                ))))
            };
        }
        line.clear();
    }
    Err(err(std::io::Error::other(
        "device closed the socket without an answer",
    )))
}
