//! Resource handlers, one file per resource type, and the dispatch from a route to them.

pub mod common;
pub mod lb;
pub mod nic;
pub mod pip;
pub mod prefix;
pub mod realize;
pub mod vm;
pub mod vmss;
pub mod vmss_vm;
pub mod vnet;

use serde_json::Value;

use crate::arm_error::ArmError;
use crate::exchange::Reply;
use crate::ids::key;
use crate::router::Route;
use crate::state::State;

use common::WriteCtx;

/// Runs the handler of a route (the method was already checked against the route).
pub fn dispatch(state: &mut State, route: &Route, ctx: &WriteCtx<'_>) -> Result<Reply, ArmError> {
    let m = ctx.req.method.as_str();
    match (route, m) {
        (Route::VmssList { scope }, _) => vmss::list(state, scope),
        (Route::Vmss { id }, "GET") => vmss::get(state, id),
        (Route::Vmss { id }, "PUT") => vmss::put(state, ctx, id),
        (Route::Vmss { id }, _) => vmss::patch(state, ctx, id),
        (Route::VmssVms { vmss }, _) => vmss_vm::list(state, vmss),
        (Route::VmssVm { vmss, instance }, "GET") => vmss_vm::get(state, vmss, instance),
        (Route::VmssVm { vmss, instance }, _) => vmss_vm::put(state, ctx, vmss, instance),
        (Route::ManualUpgrade { vmss }, _) => vmss_vm::manual_upgrade(state, ctx, vmss),
        (Route::VmssNics { vmss }, _) => vmss_vm::list_nics(state, vmss),
        (
            Route::VmssVmNic {
                vmss,
                instance,
                nic,
            },
            _,
        ) => vmss_vm::get_nic(state, vmss, instance, nic),
        (Route::VmList { scope }, _) => vm::list(state, scope),
        (Route::Vm { id }, _) => vm::get(state, id),
        (Route::NicList { scope }, _) => nic::list(state, scope),
        (Route::Nic { id }, "GET") => nic::get(state, id),
        (Route::Nic { id }, _) => nic::put(state, ctx, id),
        (Route::LbList { scope }, _) => lb::list(state, scope),
        (Route::Lb { id }, "GET") => lb::get(state, id),
        (Route::Lb { id }, "PUT") => lb::put(state, ctx, id),
        (Route::Lb { id }, _) => lb::remove(state, ctx, id),
        (Route::PrefixList { scope }, _) => prefix::list(state, scope),
        (Route::Prefix { id }, "GET") => prefix::get(state, id),
        (Route::Prefix { id }, "PUT") => prefix::put(state, ctx, id),
        (Route::Prefix { id }, _) => prefix::remove(state, ctx, id),
        (Route::PipList { scope }, _) => pip::list(state, scope),
        (Route::Pip { id }, "GET") => pip::get(state, id),
        (Route::Pip { id }, "PUT") => pip::put(state, ctx, id),
        (Route::Pip { id }, _) => pip::remove(state, ctx, id),
        (Route::Vnet { id }, _) => vnet::get(state, id),
        (Route::Subnet { vnet, name }, _) => vnet::get_subnet(state, vnet, name),
        (Route::OperationStatus { id, .. }, _) => crate::lro::status(state, id),
        (Route::OperationResult { id, .. }, _) => {
            crate::lro::result(state, ctx.req, id, |path| view_by_path(state, path))
        }
    }
}

/// The current view of the resource at an ARM path, if it exists.
pub fn view_by_path(state: &State, path: &str) -> Option<Value> {
    match Route::parse(path)? {
        Route::Vmss { id } => vmss::view(state, &key(&id)),
        Route::VmssVm { vmss, instance } => {
            vmss_vm::view(state, &key(&vmss), instance.parse().ok()?)
        }
        Route::Vm { id } => vm::view(state, &key(&id)),
        Route::Nic { id } => nic::view(state, &key(&id)),
        Route::Lb { id } => lb::view(state, &key(&id)),
        Route::Prefix { id } => prefix::view(state, &key(&id)),
        Route::Pip { id } => pip::view(state, &key(&id)),
        Route::Vnet { id } => vnet::view(state, &key(&id)),
        _ => None,
    }
}
