//! Naming how a gateway node differs from its plan, for operators.
//!
//! [`node::diff`](crate::node::diff) answers "what to do" (idempotent
//! operations, some of which repair several things at once);
//! [`differences`] answers "what is wrong", one entry per thing out of
//! place, worded for a person reading `egressctl doctor`. Both compare the
//! same [`NodeState`] values, so a node with no difference is one where
//! `diff` plans nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::node::{Interface, NodeState, Plumbing};

/// One way a node differs from its plan.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Difference {
    /// The gateway namespace's plumbing (veth pair, default route, base
    /// tables, forwarding) is absent.
    MissingPlumbing,
    /// The plumbing exists only in part, or with other settings.
    BrokenPlumbing {
        /// As planned.
        want: String,
        /// As observed (`incomplete` when only part of it exists).
        have: String,
    },
    /// Plumbing is present although no configuration needs it.
    ExtraPlumbing,
    /// A load-balancer frontend address is not on the node's interface.
    MissingFrontend(IpAddr),
    /// A frontend address is held that no configuration uses.
    ExtraFrontend(IpAddr),
    /// A configuration's WireGuard device is absent.
    MissingDevice {
        /// Device name (`wg-<port>`).
        device: String,
        /// The configuration's UID.
        sgc_uid: String,
    },
    /// A device no configuration plans.
    ExtraDevice(String),
    /// A device setting differs from the plan.
    Setting {
        /// Device name.
        device: String,
        /// Which setting.
        field: &'static str,
        /// As planned.
        want: String,
        /// As observed.
        have: String,
    },
    /// The configuration's egress address (its address on the gateway side
    /// of the veth, host route, masquerade exemption, SNAT entry, marking
    /// and reply route) is not wholly in place.
    MissingEgress {
        /// Device name.
        device: String,
        /// The planned egress address.
        ip: IpAddr,
    },
    /// A pod's peer is absent from the device.
    MissingPeer {
        /// Device name.
        device: String,
        /// The pod's public key.
        public_key: String,
        /// The pod's address.
        pod_ip: IpAddr,
    },
    /// A peer is present with another allowed address.
    WrongPeer {
        /// Device name.
        device: String,
        /// The pod's public key.
        public_key: String,
        /// Planned address.
        want: IpAddr,
        /// Observed address (unspecified: not exactly one address).
        have: IpAddr,
    },
    /// A peer no PodEndpoint asks for.
    ExtraPeer {
        /// Device name.
        device: String,
        /// The peer's public key.
        public_key: String,
    },
    /// Parts of an egress address that no device holds.
    StrayEgress(IpAddr),
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingPlumbing => write!(
                f,
                "missing plumbing: the gateway namespace's veth pair, default route and base tables are absent"
            ),
            Self::BrokenPlumbing { want, have } => {
                write!(f, "broken plumbing: planned {want}, found {have}")
            }
            Self::ExtraPlumbing => write!(
                f,
                "extra plumbing: the gateway namespace is plumbed but no configuration uses this node"
            ),
            Self::MissingFrontend(ip) => {
                write!(f, "missing frontend address {ip} on the node interface")
            }
            Self::ExtraFrontend(ip) => write!(
                f,
                "extra frontend address {ip} on the node interface (no configuration uses it)"
            ),
            Self::MissingDevice { device, sgc_uid } => {
                write!(f, "missing device {device} (configuration {sgc_uid})")
            }
            Self::ExtraDevice(device) => {
                write!(f, "extra device {device} (no configuration plans it)")
            }
            Self::Setting {
                device,
                field,
                want,
                have,
            } => write!(f, "{device}: {field} is {have}, planned {want}"),
            Self::MissingEgress { device, ip } => write!(
                f,
                "{device}: egress address {ip} not in place (its address, host route, masquerade exemption, SNAT entry or reply route is missing)"
            ),
            Self::MissingPeer {
                device,
                public_key,
                pod_ip,
            } => write!(f, "{device}: missing peer {public_key} (pod {pod_ip})"),
            Self::WrongPeer {
                device,
                public_key,
                want,
                have,
            } => write!(
                f,
                "{device}: peer {public_key} allows {have}, planned {want}"
            ),
            Self::ExtraPeer { device, public_key } => write!(
                f,
                "{device}: extra peer {public_key} (no PodEndpoint asks for it)"
            ),
            Self::StrayEgress(ip) => write!(
                f,
                "stray egress address {ip}: parts of its setup remain but no device holds it"
            ),
        }
    }
}

fn plumbing_text(p: &Plumbing) -> String {
    if *p == Plumbing::incomplete() {
        "incomplete".to_string()
    } else {
        format!("default route via {}, veth MTU {}", p.primary_ip, p.mtu)
    }
}

fn settings(device: &str, want: &Interface, have: &Interface, out: &mut Vec<Difference>) {
    let mut push = |field: &'static str, w: String, h: String| {
        if w != h {
            out.push(Difference::Setting {
                device: device.to_string(),
                field,
                want: w,
                have: h,
            });
        }
    };
    push("listen port", want.port.to_string(), have.port.to_string());
    push("MTU", want.mtu.to_string(), have.mtu.to_string());
    push(
        "public key",
        want.public_key.clone(),
        have.public_key.clone(),
    );
    push(
        "key Secret",
        format!("{}/{}", want.key_secret.namespace, want.key_secret.name),
        format!("{}/{}", have.key_secret.namespace, have.key_secret.name),
    );
    push(
        "configuration UID",
        want.sgc_uid.clone(),
        have.sgc_uid.clone(),
    );
    push(
        "next hop",
        want.primary_ip.to_string(),
        have.primary_ip.to_string(),
    );
    if want.snat_ip != have.snat_ip {
        if have.snat_ip.is_unspecified() {
            out.push(Difference::MissingEgress {
                device: device.to_string(),
                ip: want.snat_ip,
            });
        } else {
            out.push(Difference::Setting {
                device: device.to_string(),
                field: "egress address",
                want: want.snat_ip.to_string(),
                have: have.snat_ip.to_string(),
            });
        }
    }
}

fn peers(
    device: &str,
    want: &BTreeMap<String, IpAddr>,
    have: &BTreeMap<String, IpAddr>,
    out: &mut Vec<Difference>,
) {
    for (key, ip) in want {
        match have.get(key) {
            None => out.push(Difference::MissingPeer {
                device: device.to_string(),
                public_key: key.clone(),
                pod_ip: *ip,
            }),
            Some(h) if h != ip => out.push(Difference::WrongPeer {
                device: device.to_string(),
                public_key: key.clone(),
                want: *ip,
                have: *h,
            }),
            Some(_) => {}
        }
    }
    for key in have.keys().filter(|k| !want.contains_key(*k)) {
        out.push(Difference::ExtraPeer {
            device: device.to_string(),
            public_key: key.clone(),
        });
    }
}

/// Every way `observed` differs from `desired`, in a stable order (shared
/// plumbing, frontends, then device by device). Empty exactly when
/// [`node::diff`](crate::node::diff) plans no operation.
pub fn differences(desired: &NodeState, observed: &NodeState) -> Vec<Difference> {
    let mut out = Vec::new();
    match (&desired.plumbing, &observed.plumbing) {
        (Some(_), None) => out.push(Difference::MissingPlumbing),
        (Some(w), Some(h)) if w != h => out.push(Difference::BrokenPlumbing {
            want: plumbing_text(w),
            have: plumbing_text(h),
        }),
        (None, Some(_)) => out.push(Difference::ExtraPlumbing),
        _ => {}
    }
    for ip in desired.frontend_ips.difference(&observed.frontend_ips) {
        out.push(Difference::MissingFrontend(*ip));
    }
    for ip in observed.frontend_ips.difference(&desired.frontend_ips) {
        out.push(Difference::ExtraFrontend(*ip));
    }
    for (name, want) in &desired.interfaces {
        match observed.interfaces.get(name) {
            None => out.push(Difference::MissingDevice {
                device: name.clone(),
                sgc_uid: want.sgc_uid.clone(),
            }),
            Some(have) => {
                settings(name, want, have, &mut out);
                peers(name, &want.peers, &have.peers, &mut out);
            }
        }
    }
    for name in observed.interfaces.keys() {
        if !desired.interfaces.contains_key(name) {
            out.push(Difference::ExtraDevice(name.clone()));
        }
    }
    let claimed: std::collections::BTreeSet<IpAddr> =
        desired.interfaces.values().map(|i| i.snat_ip).collect();
    for ip in observed.stray_ips.difference(&claimed) {
        out.push(Difference::StrayEgress(*ip));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::{GatewayNode, PodEndpoint, SecretRef, ServerProfile};
    use crate::node::{ActiveConfig, apply, desired as plan, diff};

    fn config(name: &str, port: u16, last: u8) -> ActiveConfig {
        ActiveConfig {
            namespace: "apps".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            server: ServerProfile {
                ip: Ipv4Addr::new(192, 0, 2, 100).into(),
                port,
                public_key: format!("pk-{name}"),
                key_secret: SecretRef {
                    namespace: "sys".into(),
                    name: format!("sgw-{name}"),
                },
            },
            node: GatewayNode {
                node_name: "gw-0".into(),
                primary_ip: Ipv4Addr::new(192, 0, 2, 1).into(),
                secondary_ip: Ipv4Addr::new(203, 0, 113, last).into(),
            },
        }
    }

    fn endpoint(pod: u8, config: &str) -> PodEndpoint {
        PodEndpoint {
            namespace: "apps".into(),
            name: format!("pod-{pod}"),
            config: config.into(),
            pod_ip: Ipv4Addr::new(10, 244, 0, pod).into(),
            public_key: format!("pod-key-{pod}"),
        }
    }

    fn node() -> NodeState {
        plan(
            &[config("a", 6000, 10), config("b", 6001, 11)],
            &[endpoint(1, "a"), endpoint(2, "a"), endpoint(3, "b")],
            1420,
        )
    }

    #[test]
    fn a_node_in_its_plan_has_no_difference() {
        let want = node();
        let mut have = NodeState::default();
        for op in diff(&want, &have) {
            apply(&mut have, &op);
        }
        assert_eq!(differences(&want, &have), []);
        assert_eq!(
            differences(&NodeState::default(), &NodeState::default()),
            []
        );
    }

    #[test]
    fn each_break_is_named_exactly() {
        let want = node();
        let mut have = want.clone();
        have.interfaces
            .get_mut("wg-6000")
            .unwrap()
            .peers
            .remove("pod-key-2");
        have.interfaces
            .get_mut("wg-6001")
            .unwrap()
            .peers
            .insert("intruder".into(), Ipv4Addr::new(10, 244, 9, 9).into());
        let shown: Vec<String> = differences(&want, &have)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "wg-6000: missing peer pod-key-2 (pod 10.244.0.2)",
                "wg-6001: extra peer intruder (no PodEndpoint asks for it)",
            ]
        );

        let mut have = want.clone();
        have.interfaces.get_mut("wg-6001").unwrap().snat_ip = Ipv4Addr::UNSPECIFIED.into();
        have.interfaces.get_mut("wg-6000").unwrap().mtu = 1500;
        assert_eq!(
            differences(&want, &have),
            [
                Difference::Setting {
                    device: "wg-6000".into(),
                    field: "MTU",
                    want: "1420".into(),
                    have: "1500".into()
                },
                Difference::MissingEgress {
                    device: "wg-6001".into(),
                    ip: Ipv4Addr::new(203, 0, 113, 11).into()
                },
            ]
        );

        let mut have = want.clone();
        have.interfaces.remove("wg-6001");
        have.plumbing = Some(Plumbing::incomplete());
        have.frontend_ips.clear();
        have.stray_ips.insert(Ipv4Addr::new(203, 0, 113, 99).into());
        let shown: Vec<String> = differences(&want, &have)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "broken plumbing: planned default route via 192.0.2.1, veth MTU 1500, found incomplete",
                "missing frontend address 192.0.2.100 on the node interface",
                "missing device wg-6001 (configuration uid-b)",
                "stray egress address 203.0.113.99: parts of its setup remain but no device holds it",
            ]
        );
    }

    #[test]
    fn leftovers_on_a_node_without_configurations_are_extra() {
        let have = node();
        let shown: Vec<String> = differences(&NodeState::default(), &have)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "extra plumbing: the gateway namespace is plumbed but no configuration uses this node",
                "extra frontend address 192.0.2.100 on the node interface (no configuration uses it)",
                "extra device wg-6000 (no configuration plans it)",
                "extra device wg-6001 (no configuration plans it)",
            ]
        );
    }

    #[test]
    fn differences_are_empty_exactly_when_diff_is() {
        let want = node();
        let variants: Vec<NodeState> = {
            let mut v = Vec::new();
            let mut s = want.clone();
            s.frontend_ips.insert(Ipv4Addr::new(192, 0, 2, 200).into());
            v.push(s);
            let mut s = want.clone();
            s.interfaces.get_mut("wg-6000").unwrap().public_key = "other".into();
            v.push(s);
            let mut s = want.clone();
            s.interfaces
                .get_mut("wg-6000")
                .unwrap()
                .peers
                .insert("pod-key-1".into(), Ipv4Addr::new(10, 244, 0, 77).into());
            v.push(s);
            v.push(NodeState::default());
            v.push(want.clone());
            v
        };
        for have in &variants {
            assert_eq!(
                differences(&want, have).is_empty(),
                diff(&want, have).is_empty(),
                "{have:?}"
            );
        }
    }
}
