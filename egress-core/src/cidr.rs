//! Prefix arithmetic shared by IPv4 and IPv6, on a `u128` representation.
//!
//! A `Prefix` is a network address with its host bits cleared and a length,
//! in an address space of 32 or 128 bits. `normalise` turns any list into the
//! unique minimal sorted list of disjoint prefixes covering the same addresses.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The two address families.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4, 32-bit addresses.
    V4,
    /// IPv6, 128-bit addresses.
    V6,
}

impl Family {
    /// Address width in bits.
    pub const fn bits(self) -> u8 {
        match self {
            Self::V4 => 32,
            Self::V6 => 128,
        }
    }

    /// The family of an address.
    pub const fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }
}

/// A prefix with host bits cleared, ordered by network address then length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Prefix {
    pub(crate) start: u128,
    pub(crate) len: u8,
}

pub(crate) fn addr_bits(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Mask of the host part of a prefix of `len` in a `width`-bit space.
const fn host_mask(len: u8, width: u8) -> u128 {
    let host_bits = width - len;
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

impl Prefix {
    /// The prefix covering `net`, host bits cleared.
    pub(crate) fn from_net(net: IpNet) -> Self {
        let width = Family::of(net.addr()).bits();
        let len = net.prefix_len();
        Self {
            start: addr_bits(net.addr()) & !host_mask(len, width),
            len,
        }
    }

    /// Last address of the prefix.
    pub(crate) const fn end(self, width: u8) -> u128 {
        self.start | host_mask(self.len, width)
    }

    pub(crate) const fn contains_addr(self, addr: u128, width: u8) -> bool {
        addr >= self.start && addr <= self.end(width)
    }

    pub(crate) const fn contains(self, other: Self, width: u8) -> bool {
        other.len >= self.len && self.contains_addr(other.start, width)
    }

    /// Back to an `IpNet` of the given family.
    pub(crate) fn to_net(self, family: Family) -> IpNet {
        match family {
            // Both truncations are exact: a V4 prefix's start fits in 32 bits
            // and its length is at most 32, so the constructors cannot fail.
            Family::V4 => {
                let addr = Ipv4Addr::from(u32::try_from(self.start).unwrap_or(u32::MAX));
                Ipv4Net::new(addr, self.len)
                    .map_or_else(|_| IpNet::V4(Ipv4Net::default()), IpNet::V4)
            }
            Family::V6 => Ipv6Net::new(Ipv6Addr::from(self.start), self.len)
                .map_or_else(|_| IpNet::V6(Ipv6Net::default()), IpNet::V6),
        }
    }
}

/// Sorts, drops covered prefixes and merges sibling halves until nothing
/// changes. The result is the unique minimal list of disjoint prefixes that
/// covers exactly the addresses of the input.
pub(crate) fn normalise(mut prefixes: Vec<Prefix>, width: u8) -> Vec<Prefix> {
    prefixes.sort_unstable();
    let mut out: Vec<Prefix> = Vec::with_capacity(prefixes.len());
    for p in prefixes {
        // Sorted by start then length, so any prefix covering `p` is the last
        // one kept: kept prefixes are disjoint and in address order.
        if out.last().is_some_and(|last| last.contains(p, width)) {
            continue;
        }
        out.push(p);
        // Merge upwards while the two newest entries are the halves of one parent.
        while out.len() >= 2 {
            let b = out[out.len() - 1];
            let a = out[out.len() - 2];
            if a.len == b.len && a.len > 0 && a.end(width).wrapping_add(1) == b.start {
                let parent = Prefix {
                    start: a.start,
                    len: a.len - 1,
                };
                if parent.start & host_mask(parent.len, width) == 0 {
                    out.truncate(out.len() - 2);
                    out.push(parent);
                    continue;
                }
            }
            break;
        }
    }
    out
}

/// The prefix in a normalised list that contains `addr`, if any.
pub(crate) fn find(list: &[Prefix], addr: u128, width: u8) -> Option<Prefix> {
    let idx = list.partition_point(|p| p.start <= addr);
    idx.checked_sub(1)
        .map(|i| list[i])
        .filter(|p| p.contains_addr(addr, width))
}

/// The prefix in a normalised list that contains prefix `p`, if any.
pub(crate) fn find_container(list: &[Prefix], p: Prefix, width: u8) -> Option<Prefix> {
    find(list, p.start, width).filter(|q| q.contains(p, width))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        Prefix::from_net(s.parse().unwrap())
    }

    fn norm(list: &[&str]) -> Vec<String> {
        let width = if list.first().is_some_and(|s| s.contains(':')) {
            128
        } else {
            32
        };
        let fam = if width == 32 { Family::V4 } else { Family::V6 };
        normalise(list.iter().map(|s| p(s)).collect(), width)
            .into_iter()
            .map(|x| x.to_net(fam).to_string())
            .collect()
    }

    #[test]
    fn merges_siblings_drops_covered_and_clears_host_bits() {
        assert_eq!(norm(&["10.0.0.0/25", "10.0.0.128/25"]), ["10.0.0.0/24"]);
        assert_eq!(
            norm(&["10.0.0.0/8", "10.1.2.0/24", "10.0.0.0/8"]),
            ["10.0.0.0/8"]
        );
        assert_eq!(norm(&["10.1.2.3/8"]), ["10.0.0.0/8"]);
        // Adjacent but not siblings: 10.0.1.0/24 and 10.0.2.0/24 cannot merge.
        assert_eq!(
            norm(&["10.0.2.0/24", "10.0.1.0/24"]),
            ["10.0.1.0/24", "10.0.2.0/24"]
        );
        // Cascading merge of four quarters.
        assert_eq!(
            norm(&[
                "192.0.2.0/26",
                "192.0.2.64/26",
                "192.0.2.128/26",
                "192.0.2.192/26"
            ]),
            ["192.0.2.0/24"]
        );
        assert_eq!(norm(&["0.0.0.0/1", "128.0.0.0/1"]), ["0.0.0.0/0"]);
        assert_eq!(norm(&["::/1", "8000::/1"]), ["::/0"]);
        assert_eq!(norm(&["fd00::1/64", "fd00::/48"]), ["fd00::/48"]);
    }

    #[test]
    fn find_locates_the_covering_prefix() {
        let list = normalise(vec![p("10.0.0.0/8"), p("192.0.2.0/24")], 32);
        let a = |s: &str| addr_bits(s.parse().unwrap());
        assert_eq!(find(&list, a("10.9.9.9"), 32), Some(p("10.0.0.0/8")));
        assert_eq!(find(&list, a("192.0.2.255"), 32), Some(p("192.0.2.0/24")));
        assert_eq!(find(&list, a("11.0.0.0"), 32), None);
        assert_eq!(find(&list, a("9.255.255.255"), 32), None);
    }
}
