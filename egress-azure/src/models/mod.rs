//! Typed ARM models for the resources this project touches, and only the
//! fields it reads or writes.
//!
//! Every struct keeps the fields it does not model in a flattened `extra`
//! map, and every list is an `Option<Vec<_>>`, so absent stays absent and
//! `[]` stays `[]`. Parsing a body and serialising it again therefore gives
//! the same JSON value (key order aside): a read-modify-write never drops
//! what Azure returned, such as a VMSS's user-assigned identities, its
//! extensions or an empty `dnsServers` list.

mod common;
mod lb;
mod nic;
mod public_ip;
mod subnet;
mod vm;
mod vmss;

pub use common::{Extra, ListPage, SubResource, Tags};
pub use lb::{
    BackendPool, BackendPoolProperties, Frontend, FrontendProperties, LoadBalancer,
    LoadBalancerProperties, LoadBalancingRule, Probe, ProbeProperties, RuleProperties, Sku,
};
pub use nic::{NetworkInterface, NicIpConfig, NicIpConfigProperties, NicProperties};
pub use public_ip::{PublicIp, PublicIpPrefix, PublicIpPrefixProperties, PublicIpProperties};
pub use subnet::{Subnet, SubnetProperties};
pub use vm::{
    NicReference, NicReferenceProperties, OsProfile, VirtualMachine, VmNetworkProfile, VmProperties,
};
pub use vmss::{
    NetworkProfile, NicConfig, NicConfigProperties, PublicIpConfig, PublicIpConfigProperties,
    VmProfile, Vmss, VmssIpConfig, VmssIpConfigProperties, VmssProperties, VmssVm,
    VmssVmProperties,
};

#[cfg(test)]
mod tests;
