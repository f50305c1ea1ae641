//! The nftables table the edge keeps in the control plane's namespace,
//! rendered from a plan and the current backend health. Pure text, so it is
//! unit-tested without a kernel.
//!
//! - `lb` (prerouting, mangle priority): for each rule, a flow's connection
//!   mark picks its backend node. A new flow (mark 0), or one whose node is
//!   no longer healthy, gets a node from a hash of its 5-tuple over the
//!   healthy backends; every packet then carries the mark as its packet
//!   mark, which an `ip rule` turns into a route via that node. The
//!   destination stays the frontend address (floating IP).
//! - `nat_*`: 1:1 translation between an ipConfig's private address and its
//!   public one, both for traffic that passes through (prerouting,
//!   postrouting) and for traffic to and from the namespace itself, where the
//!   "internet" echo host lives (input, output).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::plan::{LbRule, NodeAddress};

/// The table's name (family `ip`).
pub const TABLE: &str = "egress_edge";

/// A fixed hash seed, so a flow's backend does not depend on the run.
const SEED: u32 = 0x00ed_6e00;

/// Renders the whole table, replacing any previous one in one transaction.
/// `healthy(rule, node)` tells whether a backend takes new flows; `marks`
/// gives each node its packet mark (nodes without one are not routed).
pub fn render(
    rules: &[LbRule],
    healthy: impl Fn(&LbRule, &str) -> bool,
    marks: &BTreeMap<String, u32>,
    addresses: &[NodeAddress],
) -> String {
    // Creating the table first makes the delete valid on a first apply.
    let mut out = format!("table ip {TABLE}\ndelete table ip {TABLE}\ntable ip {TABLE} {{\n");
    out.push_str("  chain lb {\n    type filter hook prerouting priority mangle; policy accept;\n");
    for rule in rules {
        let up: Vec<u32> = rule
            .backends
            .iter()
            .filter(|node| healthy(rule, node))
            .filter_map(|node| marks.get(node).copied())
            .collect();
        let matcher = format!(
            "ip daddr {} {} dport {}",
            rule.frontend,
            rule.protocol.nft(),
            rule.port
        );
        if up.is_empty() {
            // No healthy backend: Azure drops the rule's traffic.
            let _ = writeln!(out, "    {matcher} drop");
            continue;
        }
        let set = join(up.iter().map(|m| format!("{m:#010x}")));
        let map = join(
            up.iter()
                .enumerate()
                .map(|(i, m)| format!("{i} : {m:#010x}")),
        );
        let l4 = rule.protocol.nft();
        let _ = writeln!(
            out,
            "    {matcher} ct mark != {{ {set} }} ct mark set jhash ip saddr . {l4} sport . ip daddr . {l4} dport mod {} seed {SEED:#x} map {{ {map} }}",
            up.len()
        );
        let _ = writeln!(out, "    {matcher} meta mark set ct mark");
    }
    out.push_str("  }\n");
    render_nat(&mut out, addresses);
    out.push_str("}\n");
    out
}

fn render_nat(out: &mut String, addresses: &[NodeAddress]) {
    // One public address serves one ipConfig; keep the first of each side
    // so a malformed state cannot make nft refuse the whole table.
    let mut seen_public = BTreeSet::new();
    let pairs: BTreeMap<Ipv4Addr, Ipv4Addr> = addresses
        .iter()
        .filter_map(|a| Some((a.private, a.public?)))
        .filter(|(_, public)| seen_public.insert(*public))
        .collect();
    if pairs.is_empty() {
        return;
    }
    let dnat = join(
        pairs
            .iter()
            .map(|(private, public)| format!("{public} : {private}")),
    );
    let snat = join(
        pairs
            .iter()
            .map(|(private, public)| format!("{private} : {public}")),
    );
    for (chain, hook, priority, stmt) in [
        (
            "nat_pre",
            "prerouting",
            "dstnat",
            format!("dnat to ip daddr map {{ {dnat} }}"),
        ),
        (
            "nat_out",
            "output",
            "-100",
            format!("dnat to ip daddr map {{ {dnat} }}"),
        ),
        (
            "nat_post",
            "postrouting",
            "srcnat",
            format!("snat to ip saddr map {{ {snat} }}"),
        ),
        (
            "nat_in",
            "input",
            "100",
            format!("snat to ip saddr map {{ {snat} }}"),
        ),
    ] {
        let _ = writeln!(
            out,
            "  chain {chain} {{\n    type nat hook {hook} priority {priority}; policy accept;\n    {stmt}\n  }}"
        );
    }
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// Removes the table (nothing if it is not there).
pub fn teardown() -> String {
    format!("table ip {TABLE}\ndelete table ip {TABLE}\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;
    use crate::edge::plan::{ProbeCheck, ProbeSpec, Protocol};

    fn rule() -> LbRule {
        LbRule {
            name: "ilb/r".into(),
            frontend: Ipv4Addr::new(10, 0, 2, 4),
            protocol: Protocol::Udp,
            port: 6000,
            backends: ["a", "b", "c"].map(String::from).into(),
            probe: Some(ProbeSpec {
                check: ProbeCheck::Tcp,
                port: 1,
                interval: Duration::from_secs(1),
                threshold: 1,
            }),
        }
    }

    fn marks() -> BTreeMap<String, u32> {
        [
            ("a".to_string(), 1),
            ("b".to_string(), 2),
            ("c".to_string(), 3),
        ]
        .into()
    }

    #[test]
    fn only_healthy_backends_take_flows() {
        let text = render(&[rule()], |_, node| node != "b", &marks(), &[]);
        assert!(
            text.contains("ct mark != { 0x00000001, 0x00000003 }")
                && text.contains("mod 2 seed 0xed6e00 map { 0 : 0x00000001, 1 : 0x00000003 }"),
            "{text}"
        );
        assert!(!text.contains("nat"), "{text}");
    }

    #[test]
    fn no_healthy_backend_drops() {
        let text = render(&[rule()], |_, _| false, &marks(), &[]);
        assert!(
            text.contains("ip daddr 10.0.2.4 udp dport 6000 drop"),
            "{text}"
        );
        assert!(!text.contains("jhash"), "{text}");
    }

    #[test]
    fn public_addresses_translate_one_to_one_once() {
        let at = |private: [u8; 4], public: Option<[u8; 4]>| NodeAddress {
            node: "a".into(),
            ip_config: "c".into(),
            primary: false,
            private: private.into(),
            public: public.map(Ipv4Addr::from),
        };
        let addresses = [
            at([10, 0, 16, 7], Some([192, 0, 2, 0])),
            at([10, 0, 16, 8], None),
            // A public address twice (a state Azure refuses) is kept once.
            at([10, 0, 16, 9], Some([192, 0, 2, 0])),
        ];
        let text = render(&[], |_, _| true, &marks(), &addresses);
        assert!(
            text.contains("snat to ip saddr map { 10.0.16.7 : 192.0.2.0 }"),
            "{text}"
        );
        assert!(
            text.contains("dnat to ip daddr map { 192.0.2.0 : 10.0.16.7 }"),
            "{text}"
        );
        assert!(
            !text.contains("10.0.16.8") && !text.contains("10.0.16.9"),
            "{text}"
        );
    }
}
