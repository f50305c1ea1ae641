//! Address allocation: private addresses from a subnet's `addressPrefix`, public prefixes and
//! public addresses from the documentation ranges. The allocator is built from the whole state
//! at the start of a write, so an address is never handed out twice.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use serde_json::Value;

use crate::arm_error::ArmError;
use crate::ids::key;
use crate::json::{arr_at, str_at};
use crate::state::State;

/// The public ranges the fake hands out (RFC 5737 documentation ranges).
pub const PUBLIC_RANGES: [Ipv4Net; 3] = [
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 2, 0), 24),
    Ipv4Net::new_assert(Ipv4Addr::new(198, 51, 100, 0), 24),
    Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 0), 24),
];

/// Addresses in use, and the means to hand out more.
#[derive(Debug, Default)]
pub struct Allocator {
    private: BTreeMap<String, BTreeSet<Ipv4Addr>>,
    public: BTreeSet<Ipv4Addr>,
    prefixes: Vec<Ipv4Net>,
}

impl Allocator {
    /// Everything in use in `state`.
    pub fn from_state(state: &State) -> Self {
        let mut a = Allocator::default();
        let note_ipcs = |a: &mut Allocator, ipcs: &[Value]| {
            for ipc in ipcs {
                let subnet = str_at(ipc, &["properties", "subnet", "id"]);
                let addr =
                    str_at(ipc, &["properties", "privateIPAddress"]).and_then(|s| s.parse().ok());
                if let (Some(subnet), Some(addr)) = (subnet, addr) {
                    a.private.entry(key(subnet)).or_default().insert(addr);
                }
            }
        };
        for nic in state.nics.values() {
            note_ipcs(
                &mut a,
                arr_at(&nic.body, &["properties", "ipConfigurations"]),
            );
        }
        for lb in state.lbs.values() {
            note_ipcs(
                &mut a,
                arr_at(&lb.body, &["properties", "frontendIPConfigurations"]),
            );
        }
        for vmss in state.vmss.values() {
            for inst in vmss.instances.values() {
                for nic in &inst.nics {
                    note_ipcs(&mut a, arr_at(nic, &["properties", "ipConfigurations"]));
                }
                a.public.extend(inst.public_ips.values().map(|p| p.address));
            }
        }
        for pip in state.pips.values() {
            if let Some(addr) =
                str_at(&pip.body, &["properties", "ipAddress"]).and_then(|s| s.parse().ok())
            {
                a.public.insert(addr);
            }
        }
        for prefix in state.prefixes.values() {
            if let Some(net) =
                str_at(&prefix.body, &["properties", "ipPrefix"]).and_then(|s| s.parse().ok())
            {
                a.prefixes.push(net);
            }
        }
        a
    }

    /// Claims the lowest free address of a subnet. Azure reserves the network address, the
    /// next three and the broadcast address, so the first one handed out is `.4`.
    pub fn private(&mut self, subnet_id: &str, net: Ipv4Net) -> Result<Ipv4Addr, ArmError> {
        let used = self.private.entry(key(subnet_id)).or_default();
        let first = u32::from(net.network()).saturating_add(4);
        let last = u32::from(net.broadcast()).saturating_sub(1);
        let free = (first..=last)
            .map(Ipv4Addr::from)
            .find(|a| !used.contains(a));
        match free {
            Some(addr) => {
                used.insert(addr);
                Ok(addr)
            }
            None => Err(ArmError::bad_request(
                "SubnetIsFull",
                format!(
                    "Subnet {subnet_id} with address prefix {net} does not have enough capacity for 1 IP address."
                ),
            )),
        }
    }

    /// Claims a given (static) address of a subnet, unless `keep` says it is already ours.
    pub fn claim_private(
        &mut self,
        subnet_id: &str,
        net: Ipv4Net,
        addr: Ipv4Addr,
        keep: bool,
    ) -> Result<(), ArmError> {
        if !net.contains(&addr)
            || addr < net.network().saturating_add_4()
            || addr >= net.broadcast()
        {
            // Azure's code for a static address outside the subnet's usable range.
            return Err(ArmError::bad_request(
                "PrivateIPAddressNotInSubnet",
                format!(
                    "IP address {addr} does not belong to the usable range of subnet {subnet_id} ({net})."
                ),
            ));
        }
        let used = self.private.entry(key(subnet_id)).or_default();
        if used.contains(&addr) && !keep {
            return Err(ArmError::bad_request(
                "PrivateIPAddressInUse",
                format!("IP address {addr} in subnet {subnet_id} is already in use."),
            ));
        }
        used.insert(addr);
        Ok(())
    }

    /// Claims the lowest free address of a public IP prefix; `code` names the exhaustion.
    pub fn public_in(
        &mut self,
        prefix_id: &str,
        net: Ipv4Net,
        code: &str,
    ) -> Result<Ipv4Addr, ArmError> {
        match net.hosts_all().find(|a| !self.public.contains(a)) {
            Some(addr) => {
                self.public.insert(addr);
                Ok(addr)
            }
            None => Err(ArmError::bad_request(
                code,
                format!(
                    "Public IP prefix {prefix_id} ({net}) has no free IP addresses: all {} are allocated.",
                    net.hosts_all().count()
                ),
            )),
        }
    }

    /// Claims a public address outside every prefix (for public IPs made without a prefix),
    /// from the top of the documentation ranges down, so prefixes keep the low blocks.
    pub fn standalone_public(&mut self) -> Result<Ipv4Addr, ArmError> {
        let free = PUBLIC_RANGES
            .iter()
            .rev()
            .flat_map(|r| r.hosts_all().rev())
            .find(|a| !self.public.contains(a) && !self.prefixes.iter().any(|p| p.contains(a)));
        match free {
            Some(addr) => {
                self.public.insert(addr);
                Ok(addr)
            }
            // Chosen code: the fake's public pool (three /24s) is exhausted.
            None => Err(ArmError::bad_request(
                "PublicIPCountLimitReached",
                "No public IP address is left in the fake's documentation ranges.",
            )),
        }
    }

    /// Claims a free, aligned block of length `len` in the documentation ranges.
    pub fn prefix_block(&mut self, len: u8) -> Result<Ipv4Net, ArmError> {
        for range in PUBLIC_RANGES {
            let Ok(blocks) = range.subnets(len) else {
                continue;
            };
            for block in blocks {
                let overlaps = self
                    .prefixes
                    .iter()
                    .any(|p| p.contains(&block) || block.contains(p));
                let holds_public = self.public.iter().any(|a| block.contains(a));
                if !overlaps && !holds_public {
                    self.prefixes.push(block);
                    return Ok(block);
                }
            }
        }
        // Chosen code: the fake's public pool has no free block of that length.
        Err(ArmError::bad_request(
            "PublicIPPrefixCountLimitReached",
            format!("No free /{len} block is left in the fake's documentation ranges."),
        ))
    }
}

/// Every address of a network, network and broadcast included (public prefixes use them all).
trait AllHosts {
    fn hosts_all(&self) -> Box<dyn DoubleEndedIterator<Item = Ipv4Addr>>;
}

impl AllHosts for Ipv4Net {
    fn hosts_all(&self) -> Box<dyn DoubleEndedIterator<Item = Ipv4Addr>> {
        let first = u32::from(self.network());
        let last = u32::from(self.broadcast());
        Box::new((first..=last).map(Ipv4Addr::from))
    }
}

trait AddFour {
    fn saturating_add_4(self) -> Ipv4Addr;
}

impl AddFour for Ipv4Addr {
    fn saturating_add_4(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self).saturating_add(4))
    }
}

/// The `addressPrefix` of a subnet, or `None` when the subnet does not exist.
pub fn subnet_prefix(state: &State, subnet_id: &str) -> Option<Ipv4Net> {
    let subnet = crate::providers::vnet::find_subnet(state, subnet_id)?;
    str_at(subnet, &["properties", "addressPrefix"]).and_then(|s| s.parse().ok())
}

/// Gives an ipConfig-shaped object (`properties.subnet`, `privateIPAllocationMethod`,
/// `privateIPAddress`) its private address: a static one is claimed as given; a dynamic one
/// keeps the address of `old` (the same ipConfig before this write) when the subnet is
/// unchanged, or gets the lowest free one.
pub fn assign_private(
    state: &State,
    alloc: &mut Allocator,
    ipc: &mut Value,
    old: Option<&Value>,
    owner: &str,
) -> Result<(), ArmError> {
    use crate::json::set_at;
    use serde_json::json;
    let Some(subnet) = str_at(ipc, &["properties", "subnet", "id"]).map(str::to_owned) else {
        return Ok(());
    };
    let net =
        subnet_prefix(state, &subnet).ok_or_else(|| ArmError::invalid_reference(&subnet, owner))?;
    let same_subnet = old
        .and_then(|o| str_at(o, &["properties", "subnet", "id"]))
        .is_some_and(|s| key(s) == key(&subnet));
    let old_addr: Option<Ipv4Addr> = old
        .filter(|_| same_subnet)
        .and_then(|o| str_at(o, &["properties", "privateIPAddress"]))
        .and_then(|s| s.parse().ok());
    let method = str_at(ipc, &["properties", "privateIPAllocationMethod"]).unwrap_or("Dynamic");
    let addr = if method.eq_ignore_ascii_case("Static") {
        let given = str_at(ipc, &["properties", "privateIPAddress"]);
        let Some(addr) = given.and_then(|s| s.parse::<Ipv4Addr>().ok()) else {
            return Err(ArmError::bad_request(
                "InvalidRequestFormat",
                format!(
                    "IP configuration {owner} asks for a static private address but gives no valid privateIPAddress."
                ),
            ));
        };
        alloc.claim_private(&subnet, net, addr, old_addr == Some(addr))?;
        set_at(
            ipc,
            &["properties", "privateIPAllocationMethod"],
            json!("Static"),
        );
        addr
    } else {
        set_at(
            ipc,
            &["properties", "privateIPAllocationMethod"],
            json!("Dynamic"),
        );
        match old_addr {
            Some(a) => a,
            None => alloc.private(&subnet, net)?,
        }
    };
    set_at(
        ipc,
        &["properties", "privateIPAddress"],
        json!(addr.to_string()),
    );
    set_at(
        ipc,
        &["properties", "privateIPAddressVersion"],
        json!("IPv4"),
    );
    Ok(())
}

impl Allocator {
    /// Frees the private addresses of the `old` ipConfigs (by name) that a write does not keep:
    /// those whose name is gone from `new`, whose subnet changed, or that now ask for another
    /// static address. Kept ones stay claimed, so nothing else can take them meanwhile.
    pub fn release_unkept(&mut self, old: &[(String, &Value)], new: &[(String, &Value)]) {
        for (name, o) in old {
            let subnet = str_at(o, &["properties", "subnet", "id"]).map(key);
            let addr: Option<Ipv4Addr> =
                str_at(o, &["properties", "privateIPAddress"]).and_then(|s| s.parse().ok());
            let (Some(subnet), Some(addr)) = (subnet, addr) else {
                continue;
            };
            let kept = new.iter().any(|(n, v)| {
                let same_subnet = str_at(v, &["properties", "subnet", "id"])
                    .map(key)
                    .as_deref()
                    == Some(&subnet);
                let method =
                    str_at(v, &["properties", "privateIPAllocationMethod"]).unwrap_or("Dynamic");
                let same_addr = !method.eq_ignore_ascii_case("Static")
                    || str_at(v, &["properties", "privateIPAddress"]).and_then(|s| s.parse().ok())
                        == Some(addr);
                n.eq_ignore_ascii_case(name) && same_subnet && same_addr
            });
            if !kept && let Some(used) = self.private.get_mut(&subnet) {
                used.remove(&addr);
            }
        }
    }

    /// Frees a public address (an instance's, when its ipConfig or prefix goes away).
    pub fn release_public(&mut self, addr: Ipv4Addr) {
        self.public.remove(&addr);
    }

    /// Addresses of a public network not yet taken.
    pub fn free_in(&self, net: Ipv4Net) -> usize {
        net.hosts_all().filter(|a| !self.public.contains(a)).count()
    }
}

/// `(name, ipConfig)` pairs of a list of named ipConfig-shaped objects.
pub fn named(list: &[Value]) -> Vec<(String, &Value)> {
    list.iter()
        .map(|v| (str_at(v, &["name"]).unwrap_or_default().to_owned(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_skip_azure_reserved_ones() {
        let mut a = Allocator::default();
        let net: Ipv4Net = "10.0.1.0/29".parse().unwrap_or_default();
        assert_eq!(a.private("s", net).ok(), Some(Ipv4Addr::new(10, 0, 1, 4)));
        assert_eq!(a.private("s", net).ok(), Some(Ipv4Addr::new(10, 0, 1, 5)));
        assert_eq!(a.private("s", net).ok(), Some(Ipv4Addr::new(10, 0, 1, 6)));
        assert_eq!(
            a.private("s", net).map_err(|e| e.code),
            Err("SubnetIsFull".to_owned())
        );
    }

    #[test]
    fn prefixes_and_standalone_addresses_do_not_overlap() {
        let mut a = Allocator::default();
        let p1 = a.prefix_block(30).unwrap_or_default();
        let p2 = a.prefix_block(28).unwrap_or_default();
        assert_eq!(p1.to_string(), "192.0.2.0/30");
        assert_eq!(p2.to_string(), "192.0.2.16/28");
        assert_eq!(
            a.standalone_public().ok(),
            Some(Ipv4Addr::new(203, 0, 113, 255))
        );
        for _ in 0..4 {
            assert!(a.public_in("p", p1, "X").is_ok());
        }
        assert_eq!(
            a.public_in("p", p1, "X").map_err(|e| e.code),
            Err("X".to_owned())
        );
    }
}
