//! In-memory implementations of the three traits, for tests (feature
//! `test-util`). They behave like the real systems where the engine can tell
//! (Azure assigns addresses on write, deletions of absent objects succeed),
//! count every write per resource kind, and fail calls on request.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::{Error, FailureKind, Layer};

mod cloud;
mod cluster;
mod dataplane;

pub use cloud::{CloudState, InMemoryCloud};
pub use cluster::{ClusterState, InMemoryCluster, StoredConfig};
pub use dataplane::InMemoryDataplane;

/// The error an injected failure carries.
#[derive(Debug, thiserror::Error)]
#[error("injected failure of {0}")]
pub struct Injected(pub &'static str);

/// Failures to inject, per operation name (the trait method's name).
#[derive(Debug, Default)]
pub struct Faults {
    pub(crate) queued: BTreeMap<&'static str, VecDeque<FailureKind>>,
    pub(crate) always: BTreeMap<&'static str, FailureKind>,
}

impl Faults {
    pub(crate) fn check(&mut self, layer: Layer, op: &'static str) -> Result<(), Error> {
        let kind = self
            .queued
            .get_mut(op)
            .and_then(VecDeque::pop_front)
            .or_else(|| self.always.get(op).copied());
        kind.map_or(Ok(()), |kind| {
            Err(Error::adapter(layer, op, kind, Injected(op)))
        })
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn not_found(layer: Layer, op: &'static str) -> Error {
    Error::adapter(layer, op, FailureKind::NotFound, Injected(op))
}
