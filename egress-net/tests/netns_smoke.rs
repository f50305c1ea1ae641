//! Dataplane smoke tests in real network namespaces on the real kernel.
//! Every namespace is created by the test and removed when it ends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use egress_net::nft::{self, SnatRule};
use egress_net::wireguard::{Backend, Device, DeviceConfig, KeyPair, PeerConfig};
use egress_testkit::netns::{Netns, veth};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts one connection, reads until EOF and echoes it back.
fn echo_once(listener: &TcpListener) -> std::io::Result<usize> {
    let (mut conn, _) = listener.accept()?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    let mut buf = Vec::new();
    conn.read_to_end(&mut buf)?;
    conn.write_all(&buf)?;
    Ok(buf.len())
}

/// Accepts one connection and writes back the source address it sees.
fn report_peer_once(listener: &TcpListener) -> std::io::Result<SocketAddr> {
    let (mut conn, peer) = listener.accept()?;
    conn.write_all(peer.ip().to_string().as_bytes())?;
    Ok(peer)
}

fn connect_and_read(to: SocketAddr) -> std::io::Result<String> {
    let mut conn = TcpStream::connect_timeout(&to, TIMEOUT)?;
    conn.set_read_timeout(Some(TIMEOUT))?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    Ok(text)
}

#[test]
fn tcp_passes_through_a_userspace_wireguard_tunnel() -> TestResult {
    let a = Netns::create("wg-a")?;
    let b = Netns::create("wg-b")?;
    // The underlay only knows 192.0.2.0/24; 10.200.0.0/24 exists only inside the tunnel.
    veth(&a, "eth0", "192.0.2.1/24", &b, "eth0", "192.0.2.2/24")?;

    let (ka, kb) = (KeyPair::generate(), KeyPair::generate());
    // Userspace devices keep a control socket named after the interface under
    // /var/run/wireguard on the host, so names must be unique per process.
    let id = std::process::id() % 100_000;
    let config =
        |key: &KeyPair, addr: &str, peer: &KeyPair, peer_tunnel: &str, endpoint| DeviceConfig {
            private_key: key.private.clone(),
            listen_port: 51820,
            addresses: vec![addr.parse().unwrap()],
            mtu: 1420,
            peers: vec![PeerConfig {
                public_key: peer.public.clone(),
                endpoint,
                allowed_ips: vec![peer_tunnel.parse().unwrap()],
                persistent_keepalive: None,
            }],
        };
    let cfg_a = config(
        &ka,
        "10.200.0.1/24",
        &kb,
        "10.200.0.2/32",
        Some("192.0.2.2:51820".parse()?),
    );
    let cfg_b = config(&kb, "10.200.0.2/24", &ka, "10.200.0.1/32", None);
    let (name_a, name_b) = (format!("wgs{id}a"), format!("wgs{id}b"));

    let dev_a = a.run(move || -> Result<Device, egress_net::Error> {
        let dev = Device::create(&name_a, Backend::Boringtun)?;
        dev.configure(&cfg_a)?;
        Ok(dev)
    })??;
    let dev_b = b.run(move || -> Result<Device, egress_net::Error> {
        let dev = Device::create(&name_b, Backend::Boringtun)?;
        dev.configure(&cfg_b)?;
        Ok(dev)
    })??;
    assert_eq!(dev_a.backend(), &Backend::Boringtun);
    // MTU is applied explicitly, not left to the default.
    assert!(a.ip(&["link", "show", dev_a.name()])?.contains("mtu 1420"));

    let listener = b.run(|| TcpListener::bind("10.200.0.2:7000"))??;
    let server = std::thread::spawn(move || echo_once(&listener));

    let payload: Vec<u8> = (0..256 * 1024_u32)
        .map(|i| u8::try_from(i % 251).unwrap())
        .collect();
    let sent = payload.clone();
    let echoed = a.run(move || -> std::io::Result<Vec<u8>> {
        let mut conn = TcpStream::connect_timeout(&"10.200.0.2:7000".parse().unwrap(), TIMEOUT)?;
        conn.set_read_timeout(Some(TIMEOUT))?;
        conn.write_all(&sent)?;
        conn.shutdown(std::net::Shutdown::Write)?;
        let mut back = Vec::new();
        conn.read_to_end(&mut back)?;
        Ok(back)
    })??;
    let echoed_len = server.join().map_err(|_| "echo server panicked")??;
    assert_eq!(echoed_len, payload.len());
    assert!(echoed == payload, "echoed payload differs");

    // The bytes really crossed WireGuard: a handshake happened and the peer
    // counters cover the payload in both directions.
    let stats = dev_a.peer_stats()?;
    let peer = stats
        .iter()
        .find(|p| p.public_key == kb.public)
        .ok_or("peer B missing on A")?;
    assert!(peer.handshake_done, "no handshake recorded: {peer:?}");
    let size = payload.len() as u64;
    assert!(
        peer.tx_bytes >= size && peer.rx_bytes >= size,
        "counters too low: {peer:?}"
    );
    // B learned A's endpoint from the handshake (A's underlay address).
    let b_stats = dev_b.peer_stats()?;
    assert!(
        b_stats
            .iter()
            .any(|p| p.public_key == ka.public && p.handshake_done)
    );
    Ok(())
}

#[test]
fn nftables_snat_rewrites_the_source_seen_by_an_echo_server() -> TestResult {
    // client --(10.1.0.0/24)-- router --(198.51.100.0/24)-- echo server
    let client = Netns::create("client")?;
    let router = Netns::create("router")?;
    let server = Netns::create("echo")?;
    veth(
        &client,
        "eth0",
        "10.1.0.2/24",
        &router,
        "lan0",
        "10.1.0.1/24",
    )?;
    veth(
        &router,
        "wan0",
        "198.51.100.1/24",
        &server,
        "eth0",
        "198.51.100.10/24",
    )?;
    router.sysctl("net.ipv4.ip_forward", "1")?;
    client.route(&["default", "via", "10.1.0.1"])?;
    // The server can reach both the client's own prefix and the SNAT address.
    server.route(&["10.1.0.0/24", "via", "198.51.100.1"])?;
    server.route(&["203.0.113.0/24", "via", "198.51.100.1"])?;

    let listener = server.run(|| TcpListener::bind("198.51.100.10:8080"))??;
    let seen = std::thread::spawn(move || -> std::io::Result<Vec<SocketAddr>> {
        Ok(vec![
            report_peer_once(&listener)?,
            report_peer_once(&listener)?,
        ])
    });
    let target: SocketAddr = "198.51.100.10:8080".parse()?;

    // Without the rule the server sees the client's own address.
    let before = client.run(move || connect_and_read(target))??;
    assert_eq!(before, "10.1.0.2");

    let rules = [SnatRule {
        out_interface: "wan0".into(),
        source: "10.1.0.0/24".parse()?,
        to: "203.0.113.7".parse()?,
    }];
    let table = nft::snat_table("egress_smoke", &rules);
    router.run(move || nft::apply(&table))??;
    // Applying the same table twice is idempotent: still exactly one rule.
    let again = nft::snat_table("egress_smoke", &rules);
    let listing = router.run(move || -> Result<String, egress_net::Error> {
        nft::apply(&again)?;
        nft::list_table("egress_smoke")
    })??;
    assert_eq!(
        listing.matches("snat ip to 203.0.113.7").count(),
        1,
        "{listing}"
    );

    let after = client.run(move || connect_and_read(target))??;
    assert_eq!(
        after, "203.0.113.7",
        "source seen by the echo server after SNAT"
    );
    let peers = seen.join().map_err(|_| "echo server panicked")??;
    assert_eq!(peers[1].ip().to_string(), "203.0.113.7");

    router.run(|| nft::delete_table("egress_smoke"))??;
    let gone = router.run(|| nft::list_table("egress_smoke"))?;
    assert!(gone.is_err(), "table still present after delete");
    Ok(())
}
