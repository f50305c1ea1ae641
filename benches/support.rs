//! Deterministic inputs shared by the benchmarks.

use std::net::{Ipv4Addr, Ipv6Addr};

use egress_core::routes::{RouteInputs, RouteMode};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// A small linear congruential generator: reproducible inputs without a
/// randomness dependency.
#[derive(Debug, Clone)]
pub struct Lcg(u64);

impl Lcg {
    /// A generator with a fixed seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// A number in `0..n` from the high bits (an LCG's low bits repeat with
    /// short periods).
    pub fn below(&mut self, n: u64) -> u64 {
        (self.next_u64() >> 32) % n.max(1)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0
    }
}

/// `n` CIDRs, about one in ten IPv6, with realistic overlap.
pub fn cidrs(n: usize, seed: u64) -> Vec<IpNet> {
    let mut rng = Lcg::new(seed);
    (0..n)
        .map(|_| {
            let r = rng.next_u64();
            let len_pick = u8::try_from(r % 17).unwrap_or(0);
            if r.is_multiple_of(10) {
                let addr = Ipv6Addr::from((u128::from(rng.next_u64()) << 64) | 0xfd00 << 112);
                IpNet::V6(Ipv6Net::new(addr, 32 + len_pick * 4).unwrap_or_default())
            } else {
                let addr = Ipv4Addr::from(u32::try_from(rng.next_u64() >> 32).unwrap_or(0));
                IpNet::V4(Ipv4Net::new(addr, 16 + len_pick).unwrap_or_default())
            }
        })
        .collect()
}

/// Route inputs with `n` exclude CIDRs and the usual node exceptions.
pub fn route_inputs(n: usize, mode: RouteMode) -> RouteInputs {
    RouteInputs {
        mode,
        exclude_cidrs: cidrs(n, 0x5eed + n as u64),
        node_exceptions: cidrs(8, 7),
        primary_gateway: Some(Ipv4Addr::new(10, 224, 0, 1).into()),
    }
}

/// Load-balancer demand: `n` configurations spread over `pools` pools.
pub fn lb_demands(n: usize, pools: usize) -> Vec<egress_core::lb::PoolDemand> {
    (0..pools)
        .map(|p| egress_core::lb::PoolDemand {
            pool_uid: format!("pool-{p}"),
            subnet_id: "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/virtualNetworks/v/subnets/ilb".into(),
            rules: (0..n)
                .filter(|i| i % pools == p)
                .map(|i| egress_core::lb::RuleDemand {
                    lb_uid: format!("lb-{i:05}"),
                    sgc_uid: format!("sgc-{i:05}"),
                })
                .collect(),
        })
        .collect()
}

/// A gateway node's active configurations and pod endpoints.
pub use egress_core::testing::gateway_node_inputs as node_inputs;
