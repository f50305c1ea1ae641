//! Route and exclusion planning for a pod that uses a gateway.
//!
//! # Semantics
//!
//! For a destination `d`, in order:
//! 1. `d` inside a node-level exception (the node agent's list: metadata
//!    service, node-local DNS, cluster CIDRs) or equal to the pod's primary
//!    gateway: **primary interface**. These protect the node and the cluster and
//!    win over any configuration, in both modes.
//! 2. `d` inside one of the configuration's `excludeCidrs`: the **opposite** of
//!    the default route.
//! 3. Otherwise: the **default route** (the tunnel for `staticEgressGateway`, the
//!    primary interface for `azureNetworking`).
//!
//! Upstream ignores the node exceptions in `azureNetworking` mode, so an
//! `excludeCidrs` entry such as `0.0.0.0/1` could pull the metadata service into
//! the tunnel; rule 1 closes that hole.
//!
//! # Host bits
//!
//! A CIDR with host bits set denotes its network: `10.1.2.3/8` means
//! `10.0.0.0/8`, as for `ip route` and upstream's parser. The plan records a
//! [`Note::HostBitsCleared`] so tools can point it out.
//!
//! # Shape of the plan
//!
//! The plan is a set of routes per family such that a longest-prefix-match
//! lookup gives exactly the semantics above. Tunnel routes are the normalised
//! opposite-path CIDRs, minus those entirely covered by an exception; exception
//! routes are emitted only where they punch a hole into a tunnel route (or, in
//! gateway mode, where they must escape the default). The plan therefore never
//! holds more routes than its inputs had CIDRs (plus the gateway host route).

use std::net::IpAddr;

use ipnet::IpNet;

use crate::cidr::{Family, Prefix, addr_bits, find, find_container, normalise};

/// Which way the pod's default route points (the SGC's `defaultRoute`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RouteMode {
    /// `staticEgressGateway`: default through the tunnel.
    #[default]
    Gateway,
    /// `azureNetworking`: default on the primary interface.
    Primary,
}

impl RouteMode {
    /// The path of traffic that matches no route.
    pub const fn default_path(self) -> Path {
        match self {
            Self::Gateway => Path::Tunnel,
            Self::Primary => Path::Primary,
        }
    }
}

/// Where a packet leaves the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Path {
    /// Through the WireGuard tunnel to the gateway.
    Tunnel,
    /// Through the pod's primary interface.
    Primary,
}

impl Path {
    /// The other path.
    #[must_use]
    pub const fn opposite(self) -> Self {
        match self {
            Self::Tunnel => Self::Primary,
            Self::Primary => Self::Tunnel,
        }
    }
}

/// Inputs of a route plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteInputs {
    /// The configuration's default-route mode.
    pub mode: RouteMode,
    /// The configuration's `excludeCidrs`, already parsed.
    pub exclude_cidrs: Vec<IpNet>,
    /// Node-level exception CIDRs (always the primary interface).
    pub node_exceptions: Vec<IpNet>,
    /// The pod's primary default gateway, kept reachable on the primary interface.
    pub primary_gateway: Option<IpAddr>,
}

/// Which input list a route comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The configuration's `excludeCidrs`.
    Exclusion,
    /// The node-level exceptions or the primary gateway.
    NodeException,
}

/// A route in the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// Destination prefix.
    pub dst: IpNet,
    /// The path for it.
    pub via: Path,
    /// The input it comes from.
    pub origin: Origin,
}

/// Why [`RoutePlan::explain`] chose a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No route matched; the default route applies.
    Default,
    /// A route derived from `excludeCidrs` matched.
    Excluded(IpNet),
    /// A node-level exception (or the primary gateway) matched.
    NodeException(IpNet),
}

/// The outcome of [`RoutePlan::explain`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Where the packet goes.
    pub path: Path,
    /// Which rule decided.
    pub reason: Reason,
}

/// Something the planner changed or dropped while normalising.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    /// The CIDR had host bits set; its network is used.
    HostBitsCleared {
        /// As given.
        given: IpNet,
        /// As used.
        network: IpNet,
    },
}

/// Routes of one family. Both lists are sorted and disjoint within themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct FamilyRoutes {
    /// Prefixes that take the opposite of the default path.
    opposite: Vec<Prefix>,
    /// Exception prefixes emitted as primary routes.
    exceptions: Vec<Prefix>,
}

/// A normalised, dual-stack route plan for one pod and configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoutePlan {
    mode: RouteMode,
    v4: FamilyRoutes,
    v6: FamilyRoutes,
    notes: Vec<Note>,
}

impl RoutePlan {
    /// Plans the routes for `inputs`. Planning cannot fail: inputs are already
    /// parsed, and IPv4 and IPv6 are planned separately.
    pub fn new(inputs: &RouteInputs) -> Self {
        let mut notes = Vec::new();
        let mut split = |nets: &[IpNet]| -> [Vec<Prefix>; 2] {
            let mut out: [Vec<Prefix>; 2] = [Vec::new(), Vec::new()];
            for &net in nets {
                let p = Prefix::from_net(net);
                let family = Family::of(net.addr());
                if addr_bits(net.addr()) != p.start {
                    notes.push(Note::HostBitsCleared {
                        given: net,
                        network: p.to_net(family),
                    });
                }
                out[usize::from(family == Family::V6)].push(p);
            }
            out
        };
        let [ex4, ex6] = split(&inputs.exclude_cidrs);
        let [mut node4, mut node6] = split(&inputs.node_exceptions);
        match inputs.primary_gateway {
            Some(IpAddr::V4(gw)) => node4.push(Prefix {
                start: u128::from(u32::from(gw)),
                len: 32,
            }),
            Some(IpAddr::V6(gw)) => node6.push(Prefix {
                start: u128::from(gw),
                len: 128,
            }),
            None => {}
        }
        Self {
            mode: inputs.mode,
            v4: plan_family(inputs.mode, ex4, node4, Family::V4.bits()),
            v6: plan_family(inputs.mode, ex6, node6, Family::V6.bits()),
            notes,
        }
    }

    /// The mode the plan was made for.
    pub const fn mode(&self) -> RouteMode {
        self.mode
    }

    /// What normalisation changed.
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// Every route of the plan (IPv4 first), not counting the default route.
    pub fn routes(&self) -> Vec<Route> {
        let default = self.mode.default_path();
        let mut out = Vec::with_capacity(self.len());
        for (family, routes) in [(Family::V4, &self.v4), (Family::V6, &self.v6)] {
            out.extend(routes.opposite.iter().map(|p| Route {
                dst: p.to_net(family),
                via: default.opposite(),
                origin: Origin::Exclusion,
            }));
            out.extend(routes.exceptions.iter().map(|p| Route {
                dst: p.to_net(family),
                via: Path::Primary,
                origin: Origin::NodeException,
            }));
        }
        out
    }

    /// Number of routes, not counting the default route.
    pub fn len(&self) -> usize {
        self.v4.opposite.len()
            + self.v4.exceptions.len()
            + self.v6.opposite.len()
            + self.v6.exceptions.len()
    }

    /// Whether the plan is the default route alone.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Where traffic to `dst` goes, by longest-prefix match over the plan.
    pub fn explain(&self, dst: IpAddr) -> Decision {
        let family = Family::of(dst);
        let (routes, width) = match family {
            Family::V4 => (&self.v4, 32),
            Family::V6 => (&self.v6, 128),
        };
        let addr = addr_bits(dst);
        let opposite = find(&routes.opposite, addr, width);
        let exception = find(&routes.exceptions, addr, width);
        match (opposite, exception) {
            (Some(o), Some(e)) if o.len > e.len => Decision {
                path: self.mode.default_path().opposite(),
                reason: Reason::Excluded(o.to_net(family)),
            },
            (_, Some(e)) => Decision {
                path: Path::Primary,
                reason: Reason::NodeException(e.to_net(family)),
            },
            (Some(o), None) => Decision {
                path: self.mode.default_path().opposite(),
                reason: Reason::Excluded(o.to_net(family)),
            },
            (None, None) => Decision {
                path: self.mode.default_path(),
                reason: Reason::Default,
            },
        }
    }
}

fn plan_family(
    mode: RouteMode,
    excludes: Vec<Prefix>,
    nodes: Vec<Prefix>,
    width: u8,
) -> FamilyRoutes {
    let nodes = normalise(nodes, width);
    // An exclusion entirely inside an exception is decided by the exception.
    let opposite: Vec<Prefix> = normalise(excludes, width)
        .into_iter()
        .filter(|x| find_container(&nodes, *x, width).is_none())
        .collect();
    let exceptions = nodes
        .into_iter()
        .filter(|n| {
            let inside_exclusion = find_container(&opposite, *n, width).is_some();
            match mode {
                // Exclusions already leave by the primary interface, so an
                // exception inside one adds nothing.
                RouteMode::Gateway => !inside_exclusion,
                // The default is already primary: an exception only matters as
                // a hole inside a tunnelled exclusion.
                RouteMode::Primary => inside_exclusion,
            }
        })
        .collect();
    FamilyRoutes {
        opposite,
        exceptions,
    }
}

#[cfg(test)]
mod tests;
