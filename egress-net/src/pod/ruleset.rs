//! The pod's reply-path firewall: connections that arrive on the primary
//! interface are marked, and packets of those connections leaving the pod
//! carry the mark, so policy routing sends replies back the way the
//! connection came instead of into the tunnel.

use egress_core::pod::ReplyPath;

/// The nftables table holding the pod's reply-path rules.
pub const TABLE: &str = "egress_pod";

/// Renders the table for `reply`. The table is deleted and recreated in one
/// transaction, so applying it twice changes nothing.
pub fn reply_table(reply: &ReplyPath) -> String {
    let mark = reply.mark;
    let iface = &reply.iface;
    format!(
        "table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n  \
         chain prerouting {{\n    type filter hook prerouting priority mangle; policy accept;\n    \
         iifname \"{iface}\" ct state new ct mark set {mark:#x}\n  }}\n  \
         chain output {{\n    type route hook output priority mangle; policy accept;\n    \
         ct mark {mark:#x} meta mark set {mark:#x}\n  }}\n}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_inbound_connections_of_the_primary_interface() {
        let text = reply_table(&ReplyPath {
            iface: "eth0".into(),
            mark: 0x2222,
            table: 8738,
            gateway: "10.244.1.1".parse().unwrap(),
        });
        assert!(text.contains("iifname \"eth0\" ct state new ct mark set 0x2222"));
        assert!(text.contains("ct mark 0x2222 meta mark set 0x2222"));
        assert!(text.starts_with("table inet egress_pod\ndelete table inet egress_pod\n"));
    }
}
