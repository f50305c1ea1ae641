//! The Linux dataplane on a gateway node in real network namespaces: traffic
//! from pods through three configurations, SNAT, replies, unsolicited
//! inbound, deletion, drift repair, readiness and the no-op pass.

// One scenario, read top to bottom: the namespaces are costly to build.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::too_many_lines
)]

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egress_core::node::{NodeState, desired, ready, tunnel_mtu};
use egress_core::traits::{Dataplane, sync_node};
use egress_net::LinuxDataplane;
use egress_net::dataplane::{Config, StaticKeys};
use egress_net::netns::NsRef;
use support::{
    ECHO, Topology, backend, endpoint, fetch_eventually, fetch_from, gateways, pod_tunnels,
};

/// Applies passes until one has nothing to do; returns the operations applied.
async fn converge(dp: &LinuxDataplane, want: &NodeState) -> usize {
    let mut total = 0;
    for _ in 0..4 {
        match sync_node(dp, want).await {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) => panic!("sync failed: {e} ({:?})", std::error::Error::source(&e)),
        }
    }
    panic!(
        "no convergence after 4 passes: {:?}",
        egress_core::node::diff(want, &dp.observe().await.unwrap())
    );
}

#[test]
fn three_configurations_snat_reply_drop_delete_repair_and_idle() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let topo = Topology::build();
    let gws = gateways(6100, 3);
    let keys = Arc::new(StaticKeys::default());
    for g in &gws {
        keys.insert(&g.config.server.key_secret, &g.key.private);
    }
    let dp = rt
        .block_on(LinuxDataplane::new(
            Config {
                host_ns: NsRef::Path(format!("/var/run/netns/{}", topo.node.name()).into()),
                gateway_ns: NsRef::Path(topo.gateway_path()),
                node_interface: "eth0".into(),
                backend: backend(),
            },
            keys,
        ))
        .unwrap();
    let configs: Vec<_> = gws.iter().map(|g| g.config.clone()).collect();
    let endpoints: Vec<_> = gws.iter().map(endpoint).collect();
    let want = desired(&configs, &endpoints, tunnel_mtu(1500));

    rt.block_on(converge(&dp, &want));
    let seen = rt.block_on(dp.observe()).unwrap();
    assert_eq!(seen, want, "observed state is the plan");
    let uids: BTreeSet<String> = gws.iter().map(|g| g.config.uid.clone()).collect();
    assert_eq!(ready(&want, &seen), uids);

    // The layout, as an operator would see it.
    let links = topo.gateway.ip(&["-d", "link", "show"]).unwrap();
    for g in &gws {
        let name = format!("wg-{}", g.config.server.port);
        assert!(links.contains(&name), "{links}");
    }
    assert!(
        links.contains("mtu 1420"),
        "tunnels get the tunnel MTU: {links}"
    );
    assert!(
        topo.node
            .ip(&["addr", "show", "eth0"])
            .unwrap()
            .contains("192.0.2.100/32")
    );

    // Each pod's traffic leaves with its configuration's egress IP, through
    // the node's masquerade, and the reply comes back through the tunnel.
    let pods = pod_tunnels(&topo.client, &gws, "a");
    for (i, g) in gws.iter().enumerate() {
        let seen_src =
            fetch_eventually(&topo.client, g.pod_ip, ECHO, Duration::from_secs(20)).unwrap();
        assert_eq!(
            seen_src,
            format!("203.0.113.{}", 10 + i),
            "source seen by the echo host"
        );
    }
    // The gateway answers from the frontend the tunnel came to, so each
    // pod's WireGuard keeps the frontend as its endpoint (a reply from the
    // node's own address would move the tunnel off the load balancer).
    for (pod, g) in pods.iter().zip(&gws) {
        let name = pod.name().to_string();
        let host = topo
            .client
            .run(move || egress_net::wgctl::read(backend().control(), &name))
            .unwrap()
            .unwrap();
        let endpoints: Vec<_> = host.peers.values().map(|p| p.endpoint).collect();
        assert_eq!(
            endpoints,
            vec![Some(SocketAddr::new(
                support::FRONTEND.parse().unwrap(),
                g.config.server.port
            ))],
            "the pod's endpoint after the gateway's replies"
        );
    }

    // Unsolicited inbound to an egress IP is dropped (no reset, no answer).
    let probe = topo
        .echo
        .run(|| {
            std::net::TcpStream::connect_timeout(
                &"203.0.113.10:22".parse().unwrap(),
                Duration::from_secs(2),
            )
        })
        .unwrap();
    assert_eq!(
        probe.map(drop).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::TimedOut),
        "unsolicited connection must time out, not be answered or refused"
    );

    // A pass with nothing changed writes nothing.
    let before = dp.kernel_writes();
    assert_eq!(rt.block_on(sync_node(&dp, &want)).unwrap(), 0);
    assert_eq!(dp.kernel_writes(), before, "no-op pass made kernel writes");

    // Drift: a host route, a peer and an nftables rule removed by hand.
    topo.node
        .ip(&["route", "del", "203.0.113.10/32", "dev", "host-gateway"])
        .unwrap();
    let wg1 = format!("wg-{}", gws[1].config.server.port);
    egress_net::wgctl::remove_peer(backend().control(), &wg1, &gws[1].pod_key.public).unwrap();
    let listing = topo
        .gateway
        .exec(
            "nft",
            &[
                "-a",
                "list",
                "chain",
                "inet",
                "egress_gateway",
                "postrouting",
            ],
        )
        .unwrap();
    let handle = listing
        .lines()
        .find(|l| l.contains("snat ipv4 by tunnel"))
        .and_then(|l| l.rsplit("handle ").next())
        .unwrap()
        .trim()
        .to_string();
    topo.gateway
        .exec(
            "nft",
            &[
                "delete",
                "rule",
                "inet",
                "egress_gateway",
                "postrouting",
                "handle",
                &handle,
            ],
        )
        .unwrap();
    let broken = rt.block_on(dp.observe()).unwrap();
    assert!(
        ready(&want, &broken).is_empty(),
        "a missing SNAT rule breaks every configuration"
    );
    assert!(fetch_from(&topo.client, gws[2].pod_ip, ECHO, Duration::from_secs(2)).is_err());
    let repaired = rt.block_on(converge(&dp, &want));
    assert!(repaired > 0);
    assert_eq!(
        rt.block_on(dp.observe()).unwrap(),
        want,
        "everything is back"
    );
    for (i, g) in gws.iter().enumerate() {
        let src = fetch_eventually(&topo.client, g.pod_ip, ECHO, Duration::from_secs(20)).unwrap();
        assert_eq!(src, format!("203.0.113.{}", 10 + i));
    }

    // Deleting one configuration removes exactly its state.
    let fewer = desired(
        &[configs[0].clone(), configs[2].clone()],
        &endpoints,
        tunnel_mtu(1500),
    );
    rt.block_on(converge(&dp, &fewer));
    let after = rt.block_on(dp.observe()).unwrap();
    assert_eq!(after, fewer);
    assert!(after.stray_ips.is_empty());
    assert!(!topo.gateway.ip(&["link", "show"]).unwrap().contains(&wg1));
    assert!(
        !topo
            .gateway
            .ip(&["addr", "show", "host0"])
            .unwrap()
            .contains("203.0.113.11")
    );
    assert!(
        !topo
            .node
            .ip(&["route", "show"])
            .unwrap()
            .contains("203.0.113.11")
    );
    let host_table = topo
        .node
        .exec("nft", &["list", "table", "inet", "egress_gateway_host"])
        .unwrap();
    assert!(
        !host_table.contains("203.0.113.11") && host_table.contains("203.0.113.12"),
        "{host_table}"
    );
    for i in [0usize, 2] {
        let src =
            fetch_eventually(&topo.client, gws[i].pod_ip, ECHO, Duration::from_secs(20)).unwrap();
        assert_eq!(src, format!("203.0.113.{}", 10 + i));
    }

    // Nothing left: everything goes, including the plumbing.
    rt.block_on(converge(&dp, &NodeState::default()));
    assert_eq!(rt.block_on(dp.observe()).unwrap(), NodeState::default());
    assert!(
        !topo
            .node
            .ip(&["link", "show"])
            .unwrap()
            .contains("host-gateway")
    );
    let start = Instant::now();
    while !dp.userspace_pids().is_empty() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
}
