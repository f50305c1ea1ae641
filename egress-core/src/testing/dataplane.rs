//! The simulated gateway node.

use std::collections::BTreeSet;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Faults, lock};
use crate::node::{self, NodeOp, NodeState};
use crate::traits::Dataplane;
use crate::{Error, FailureKind, Layer};

/// A simulated gateway node: a model of its kernel state.
#[derive(Debug, Default)]
pub struct InMemoryDataplane {
    state: Mutex<(NodeState, usize, Faults)>,
}

impl InMemoryDataplane {
    /// The node's current state.
    pub fn node_state(&self) -> NodeState {
        lock(&self.state).0.clone()
    }

    /// Operations applied so far (each is one or more kernel writes).
    pub fn applied(&self) -> usize {
        lock(&self.state).1
    }

    /// Queues failures for `observe` or `apply`.
    pub fn fail_next(&self, op: &'static str, kinds: &[FailureKind]) {
        lock(&self.state).2.queue(op, kinds);
    }

    /// Interfaces present, for leak checks.
    pub fn interfaces(&self) -> BTreeSet<String> {
        lock(&self.state).0.interfaces.keys().cloned().collect()
    }
}

#[async_trait]
impl Dataplane for InMemoryDataplane {
    async fn observe(&self) -> Result<NodeState, Error> {
        let mut st = lock(&self.state);
        st.2.check(Layer::Dataplane, "observe")?;
        Ok(st.0.clone())
    }

    async fn apply(&self, op: &NodeOp) -> Result<(), Error> {
        let mut st = lock(&self.state);
        st.2.check(Layer::Dataplane, "apply")?;
        node::apply(&mut st.0, op);
        st.1 += 1;
        Ok(())
    }
}
