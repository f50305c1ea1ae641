//! `Microsoft.Compute/virtualMachines` (virtual-machine pools; read-only over HTTP, seeded).

use serde_json::Value;

use crate::arm_error::ArmError;
use crate::exchange::Reply;
use crate::ids::key;
use crate::state::State;

use super::common::{decorate, got, in_scope, list_scope};

/// A virtual machine as Azure returns it.
pub fn view(state: &State, k: &str) -> Option<Value> {
    state.vms.get(k).map(decorate)
}

/// `VirtualMachines_Get`.
pub fn get(state: &State, id: &str) -> Result<Reply, ArmError> {
    view(state, &key(id))
        .map(got)
        .ok_or_else(|| ArmError::not_found(id))
}

/// `VirtualMachines_List`.
pub fn list(state: &State, scope: &str) -> Result<Reply, ArmError> {
    list_scope(state, scope)?;
    Ok(Reply::list(
        in_scope(&state.vms, scope)
            .filter_map(|(k, _)| view(state, k))
            .collect(),
    ))
}
