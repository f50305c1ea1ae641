//! The two nftables tables of a gateway node, rendered as transactions and
//! read back from nft's JSON listing.
//!
//! - `inet egress_gateway`, in the gateway namespace: new flows from a tunnel
//!   get the tunnel's port as connection mark (map `mark_of_iif`); replies
//!   carry it back as packet mark so policy routing sends them into their
//!   tunnel; flows leaving through the veth are translated (SNAT) by mark (maps
//!   `snat4`/`snat6`); nothing enters from the veth unless it is a reply.
//! - `inet egress_gateway_host`, in the host namespace: packets from an
//!   egress IP (sets `exempt4`/`exempt6`) get an identity SNAT before any
//!   masquerade rule runs. An nftables `accept` would not do: it ends only its
//!   own base chain, and kube-proxy's or ip-masq-agent's masquerade in another
//!   table would still run. Once a NAT binding exists, later NAT chains skip
//!   the flow.
//!   Tunnel packets to a frontend IP (sets `frontend4`/`frontend6`) are
//!   redirected to the node's own address, so conntrack gives the replies the
//!   frontend as source again. The load balancer keeps the frontend as
//!   destination (floating IP) and the pod's WireGuard takes the reply's
//!   source as the gateway's endpoint: a reply from the node's own address
//!   would move the pod's tunnel off the load balancer onto this node, and
//!   it would then neither drain nor fail over. wireguard-go answers from
//!   the node's address (it does not keep the destination a packet came to),
//!   so without this every pod roams.
//!
//! Per-configuration state lives in map and set elements, so adding or
//! removing a configuration is one small transaction that never rewrites the
//! rules other configurations depend on. Every rule carries a comment by
//! which an observer checks it is still there.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use serde_json::Value;

/// The gateway namespace's table.
pub const GATEWAY_TABLE: &str = "egress_gateway";
/// The host namespace's table.
pub const HOST_TABLE: &str = "egress_gateway_host";

/// The rules of the gateway table: (chain, comment, rule body).
fn gateway_rules(veth: &str) -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            "prerouting",
            "egress: mark new flows by tunnel",
            "ct state new ct mark set iifname map @mark_of_iif".into(),
        ),
        (
            "prerouting",
            "egress: replies follow their tunnel",
            "ct direction reply meta mark set ct mark".into(),
        ),
        (
            "postrouting",
            "egress: snat ipv4 by tunnel",
            format!("oifname \"{veth}\" meta nfproto ipv4 snat ip to ct mark map @snat4"),
        ),
        (
            "postrouting",
            "egress: snat ipv6 by tunnel",
            format!("oifname \"{veth}\" meta nfproto ipv6 snat ip6 to ct mark map @snat6"),
        ),
        (
            "input",
            "egress: replies in from the host",
            format!("iifname \"{veth}\" ct state established,related accept"),
        ),
        (
            "input",
            "egress: drop unsolicited from the host",
            format!("iifname \"{veth}\" drop"),
        ),
        (
            "forward",
            "egress: replies through from the host",
            format!("iifname \"{veth}\" ct state established,related accept"),
        ),
        (
            "forward",
            "egress: drop unsolicited through the host",
            format!("iifname \"{veth}\" drop"),
        ),
    ]
}

fn host_rules() -> Vec<(&'static str, &'static str, String)> {
    vec![
        (
            "prerouting",
            "egress: tunnels to ipv4 frontends answer from them",
            "ip daddr @frontend4 meta l4proto udp redirect".into(),
        ),
        (
            "prerouting",
            "egress: tunnels to ipv6 frontends answer from them",
            "ip6 daddr @frontend6 meta l4proto udp redirect".into(),
        ),
        (
            "postrouting",
            "egress: keep translated ipv4 sources",
            "ip saddr @exempt4 snat ip to ip saddr".into(),
        ),
        (
            "postrouting",
            "egress: keep translated ipv6 sources",
            "ip6 saddr @exempt6 snat ip6 to ip6 saddr".into(),
        ),
    ]
}

const GATEWAY_CHAINS: [(&str, &str); 4] = [
    (
        "prerouting",
        "type filter hook prerouting priority mangle; policy accept;",
    ),
    (
        "postrouting",
        "type nat hook postrouting priority srcnat; policy accept;",
    ),
    (
        "input",
        "type filter hook input priority filter; policy accept;",
    ),
    (
        "forward",
        "type filter hook forward priority filter; policy accept;",
    ),
];
const HOST_CHAINS: [(&str, &str); 2] = [
    (
        "prerouting",
        "type nat hook prerouting priority dstnat - 10; policy accept;",
    ),
    (
        "postrouting",
        "type nat hook postrouting priority srcnat - 10; policy accept;",
    ),
];

/// The host table's set declarations (`add` of an existing set is accepted).
const HOST_SETS: [&str; 4] = [
    "set inet egress_gateway_host exempt4 { type ipv4_addr; }",
    "set inet egress_gateway_host exempt6 { type ipv6_addr; }",
    "set inet egress_gateway_host frontend4 { type ipv4_addr; }",
    "set inet egress_gateway_host frontend6 { type ipv6_addr; }",
];

fn render_base(
    table: &str,
    declarations: &[&str],
    chains: &[(&str, &str)],
    rules: &[(&str, &str, String)],
) -> String {
    let mut t = format!("add table inet {table}\n");
    for d in declarations {
        let _ = writeln!(t, "add {d}");
    }
    for (chain, spec) in chains {
        let _ = writeln!(t, "add chain inet {table} {chain} {{ {spec} }}");
        let _ = writeln!(t, "flush chain inet {table} {chain}");
    }
    for (chain, comment, body) in rules {
        let _ = writeln!(
            t,
            "add rule inet {table} {chain} {body} comment \"{comment}\""
        );
    }
    t
}

/// The gateway table's chains and rules, rewritten in one transaction; its
/// maps (the per-configuration elements) are kept.
pub fn gateway_base(veth: &str) -> String {
    render_base(
        GATEWAY_TABLE,
        &[
            "map inet egress_gateway mark_of_iif { type ifname : mark; }",
            "map inet egress_gateway snat4 { type mark : ipv4_addr; }",
            "map inet egress_gateway snat6 { type mark : ipv6_addr; }",
        ],
        &GATEWAY_CHAINS,
        &gateway_rules(veth),
    )
}

/// The host table's chain and rules, rewritten in one transaction; its sets
/// are kept.
pub fn host_base() -> String {
    render_base(HOST_TABLE, &HOST_SETS, &HOST_CHAINS, &host_rules())
}

/// Deletes a table; nft accepts `add` then `delete`, so a missing table is fine.
pub fn delete(table: &str) -> String {
    format!("add table inet {table}\ndelete table inet {table}\n")
}

fn v(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "4" } else { "6" }
}

/// Makes map `map` hold `key : value`, given what it holds now (`add` alone
/// fails on a key with another value, and nft 1.0.6 has no `destroy`).
fn upsert(t: &mut String, now: &Listing, table: &str, map: &str, key: &str, value: &str) {
    match now.maps.get(map).and_then(|m| m.get(key.trim_matches('"'))) {
        Some(v) if v == value => {}
        Some(_) => {
            let _ = writeln!(t, "delete element inet {table} {map} {{ {key} }}");
            let _ = writeln!(t, "add element inet {table} {map} {{ {key} : {value} }}");
        }
        None => {
            let _ = writeln!(t, "add element inet {table} {map} {{ {key} : {value} }}");
        }
    }
}

/// Removes `key` from map or set `name` if it holds it now.
fn remove(t: &mut String, now: &Listing, table: &str, name: &str, key: &str) {
    let bare = key.trim_matches('"');
    let present = now.maps.get(name).is_some_and(|m| m.contains_key(bare))
        || now.sets.get(name).is_some_and(|s| s.contains(bare));
    if present {
        let _ = writeln!(t, "delete element inet {table} {name} {{ {key} }}");
    }
}

/// One configuration's elements in the gateway table, given its listing.
/// Empty when they are already there.
pub fn gateway_tunnel(now: &Listing, iface: &str, port: u16, snat: IpAddr) -> String {
    let mut t = String::new();
    let (key, mark) = (format!("\"{iface}\""), port.to_string());
    upsert(&mut t, now, GATEWAY_TABLE, "mark_of_iif", &key, &mark);
    // The port's SNAT element lives in one map per family.
    let (this, other) = if snat.is_ipv4() {
        ("snat4", "snat6")
    } else {
        ("snat6", "snat4")
    };
    remove(&mut t, now, GATEWAY_TABLE, other, &mark);
    upsert(&mut t, now, GATEWAY_TABLE, this, &mark, &snat.to_string());
    t
}

/// Removes one configuration's elements from the gateway table.
pub fn gateway_tunnel_removed(now: &Listing, iface: &str, port: u16) -> String {
    let mut t = String::new();
    remove(
        &mut t,
        now,
        GATEWAY_TABLE,
        "mark_of_iif",
        &format!("\"{iface}\""),
    );
    remove(&mut t, now, GATEWAY_TABLE, "snat4", &port.to_string());
    remove(&mut t, now, GATEWAY_TABLE, "snat6", &port.to_string());
    t
}

/// Exempts an egress IP from the host's masquerading (adding an element
/// that is already there is accepted by nft).
pub fn host_exempt(ip: IpAddr) -> String {
    format!("add element inet {HOST_TABLE} exempt{} {{ {ip} }}\n", v(ip))
}

/// Ends an egress IP's exemption.
pub fn host_exempt_removed(now: &Listing, ip: IpAddr) -> String {
    let mut t = String::new();
    remove(
        &mut t,
        now,
        HOST_TABLE,
        &format!("exempt{}", v(ip)),
        &ip.to_string(),
    );
    t
}

/// Makes a frontend IP's tunnels answer from it. The table and its sets are
/// declared first (both accepted when present), so this works before the
/// plumbing's rules are in place.
pub fn host_frontend(ip: IpAddr) -> String {
    let mut t = format!("add table inet {HOST_TABLE}\n");
    for set in HOST_SETS {
        let _ = writeln!(t, "add {set}");
    }
    let _ = writeln!(
        t,
        "add element inet {HOST_TABLE} frontend{} {{ {ip} }}",
        v(ip)
    );
    t
}

/// Ends a frontend IP's redirect.
pub fn host_frontend_removed(now: &Listing, ip: IpAddr) -> String {
    let mut t = String::new();
    remove(
        &mut t,
        now,
        HOST_TABLE,
        &format!("frontend{}", v(ip)),
        &ip.to_string(),
    );
    t
}

/// Whether the host table lists `ip` as a frontend.
pub fn is_frontend(l: &Listing, ip: IpAddr) -> bool {
    l.sets
        .get(&format!("frontend{}", v(ip)))
        .is_some_and(|s| s.contains(&ip.to_string()))
}

/// Removes every SNAT element that names `ip` from the gateway table.
pub fn gateway_snat_removed(now: &Listing, ip: IpAddr) -> String {
    let mut t = String::new();
    let text = ip.to_string();
    for map in ["snat4", "snat6"] {
        for (port, value) in now.maps.get(map).into_iter().flatten() {
            if value == &text {
                remove(&mut t, now, GATEWAY_TABLE, map, port);
            }
        }
    }
    t
}

/// What a table holds, as read back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Chains present (name).
    pub chains: BTreeSet<String>,
    /// Rules present: (chain, comment).
    pub rules: BTreeSet<(String, String)>,
    /// Map elements: map name -> key -> value, as text.
    pub maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Set elements: set name -> elements, as text.
    pub sets: BTreeMap<String, BTreeSet<String>>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses `nft -j list table` output.
pub fn parse(json: &Value) -> Listing {
    let mut out = Listing::default();
    let items = json
        .get("nftables")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for item in &items {
        if let Some(chain) = item.get("chain") {
            if let Some(name) = chain.get("name").and_then(Value::as_str) {
                out.chains.insert(name.to_string());
            }
        } else if let Some(rule) = item.get("rule") {
            if let (Some(chain), Some(comment)) = (
                rule.get("chain").and_then(Value::as_str),
                rule.get("comment").and_then(Value::as_str),
            ) {
                out.rules.insert((chain.to_string(), comment.to_string()));
            }
        } else if let Some(map) = item.get("map") {
            let name = map
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let entries = out.maps.entry(name).or_default();
            for e in map
                .get("elem")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some([k, val]) = e.as_array().map(Vec::as_slice)
                    && let (Some(k), Some(val)) = (text(k), text(val))
                {
                    entries.insert(k, val);
                }
            }
        } else if let Some(set) = item.get("set") {
            let name = set
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let entries = out.sets.entry(name).or_default();
            for e in set
                .get("elem")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(t) = text(e) {
                    entries.insert(t);
                }
            }
        }
    }
    out
}

fn complete(l: &Listing, chains: &[(&str, &str)], rules: &[(&str, &str, String)]) -> bool {
    chains.iter().all(|(c, _)| l.chains.contains(*c))
        && rules.iter().all(|(c, comment, _)| {
            l.rules
                .contains(&((*c).to_string(), (*comment).to_string()))
        })
}

/// Whether the gateway table's chains and rules are all in place.
pub fn gateway_complete(l: &Listing, veth: &str) -> bool {
    complete(l, &GATEWAY_CHAINS, &gateway_rules(veth))
}

/// Whether the host table's chain and rules are all in place.
pub fn host_complete(l: &Listing) -> bool {
    complete(l, &HOST_CHAINS, &host_rules())
}
