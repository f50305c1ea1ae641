//! The view of any stored top-level resource, by kind.

use serde_json::Value;

use crate::providers::{lb, nic, pip, prefix, vm, vmss, vnet};
use crate::state::{Kind, State};

/// The resource as Azure returns it, or `None` when it does not exist.
pub fn of(state: &State, kind: Kind, key: &str) -> Option<Value> {
    match kind {
        Kind::VirtualNetwork => vnet::view(state, key),
        Kind::Vmss => vmss::view(state, key),
        Kind::VirtualMachine => vm::view(state, key),
        Kind::Nic => nic::view(state, key),
        Kind::LoadBalancer => lb::view(state, key),
        Kind::PublicIpPrefix => prefix::view(state, key),
        Kind::PublicIp => pip::view(state, key),
    }
}
