//! The simulated Kubernetes API server.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;

use super::{Faults, lock, not_found};
use crate::model::{ConfigId, GatewayNode, GatewaySpec, GatewayStatus, SecretRef};
use crate::names::key_secret_name;
use crate::traits::{ChildUids, ClusterApi, ConfigObject, KeyInfo};
use crate::{Error, FailureKind, Layer};

/// One stored configuration of the simulated API server.
#[derive(Clone, Debug)]
pub struct StoredConfig {
    /// The object as listed.
    pub obj: ConfigObject,
    /// LB and VM configuration UIDs, once created.
    pub children: Option<ChildUids>,
    /// The key Secret, once created.
    pub key: Option<KeyInfo>,
}

/// The state of the simulated cluster.
#[derive(Debug, Default)]
pub struct ClusterState {
    /// Configurations by `namespace/name`.
    pub configs: BTreeMap<String, StoredConfig>,
    /// Writes per operation.
    pub writes: BTreeMap<&'static str, usize>,
    /// Events reported for invalid specs.
    pub events: Vec<(ConfigId, String)>,
    /// Failures to inject.
    pub faults: Faults,
    next_uid: u32,
}

/// A simulated Kubernetes API server holding gateway configurations.
#[derive(Debug, Default)]
pub struct InMemoryCluster {
    state: Mutex<ClusterState>,
}

impl InMemoryCluster {
    /// Direct access to the simulated state.
    pub fn state(&self) -> MutexGuard<'_, ClusterState> {
        lock(&self.state)
    }

    /// Creates or replaces the spec of `namespace/name`.
    pub fn apply(&self, namespace: &str, name: &str, spec: GatewaySpec) -> ConfigId {
        let mut st = self.state();
        let key = format!("{namespace}/{name}");
        if let Some(existing) = st.configs.get_mut(&key) {
            existing.obj.spec = spec;
            return existing.obj.id.clone();
        }
        st.next_uid += 1;
        let id = ConfigId {
            namespace: namespace.into(),
            name: name.into(),
            uid: format!("00000000-0000-4000-8000-{:012}", st.next_uid),
        };
        let obj = ConfigObject {
            id: id.clone(),
            spec,
            status: GatewayStatus::default(),
            nodes: Vec::new(),
            children: None,
            deleting: false,
            finalized: false,
        };
        st.configs.insert(
            key,
            StoredConfig {
                obj,
                children: None,
                key: None,
            },
        );
        id
    }

    /// Requests deletion, as `kubectl delete` does.
    pub fn delete(&self, namespace: &str, name: &str) {
        let mut st = self.state();
        let key = format!("{namespace}/{name}");
        let finalized = st.configs.get(&key).is_some_and(|c| c.obj.finalized);
        if finalized {
            if let Some(c) = st.configs.get_mut(&key) {
                c.obj.deleting = true;
            }
        } else {
            st.configs.remove(&key);
        }
    }

    /// The stored object, if it still exists.
    pub fn get(&self, namespace: &str, name: &str) -> Option<StoredConfig> {
        self.state()
            .configs
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }

    /// Queues failures for an operation.
    pub fn fail_next(&self, op: &'static str, kinds: &[FailureKind]) {
        self.state().faults.queue(op, kinds);
    }

    /// Total writes so far.
    pub fn total_writes(&self) -> usize {
        self.state().writes.values().sum()
    }

    fn with<T>(
        &self,
        op: &'static str,
        id: &ConfigId,
        write: bool,
        f: impl FnOnce(&mut StoredConfig, &mut u32) -> T,
    ) -> Result<T, Error> {
        let mut st = self.state();
        st.faults.check(Layer::Cluster, op)?;
        if write {
            *st.writes.entry(op).or_default() += 1;
        }
        let mut uid = st.next_uid;
        let out = st
            .configs
            .get_mut(&id.to_string())
            .map(|c| f(c, &mut uid))
            .ok_or_else(|| not_found(Layer::Cluster, op));
        st.next_uid = uid;
        out
    }
}

#[async_trait]
impl ClusterApi for InMemoryCluster {
    async fn list_configs(&self) -> Result<Vec<ConfigObject>, Error> {
        let mut st = self.state();
        st.faults.check(Layer::Cluster, "list_configs")?;
        Ok(st
            .configs
            .values()
            .map(|c| ConfigObject {
                children: c.children.clone(),
                ..c.obj.clone()
            })
            .collect())
    }

    async fn add_finalizer(&self, id: &ConfigId) -> Result<(), Error> {
        self.with("add_finalizer", id, true, |c, _| c.obj.finalized = true)
    }

    async fn remove_finalizer(&self, id: &ConfigId) -> Result<(), Error> {
        let deleting = self.with("remove_finalizer", id, true, |c, _| {
            c.obj.finalized = false;
            c.obj.deleting
        })?;
        if deleting {
            self.state().configs.remove(&id.to_string());
        }
        Ok(())
    }

    async fn ensure_key_secret(&self, id: &ConfigId) -> Result<KeyInfo, Error> {
        let existing = self.with("ensure_key_secret", id, false, |c, _| c.key.clone())?;
        if let Some(key) = existing {
            return Ok(key);
        }
        self.with("ensure_key_secret", id, true, |c, _| {
            let key = KeyInfo {
                secret: SecretRef {
                    namespace: "kube-egress-gateway-system".into(),
                    name: key_secret_name(&id.uid),
                },
                public_key: format!("public-key-of-{}", id.uid),
            };
            c.key = Some(key.clone());
            key
        })
    }

    async fn delete_key_secret(&self, id: &ConfigId) -> Result<(), Error> {
        self.with("delete_key_secret", id, true, |c, _| c.key = None)
    }

    async fn ensure_children(&self, id: &ConfigId, spec: &GatewaySpec) -> Result<ChildUids, Error> {
        if let Some(children) =
            self.with("ensure_children", id, false, |c, _| c.children.clone())?
            && children.applied == *spec
        {
            return Ok(children);
        }
        self.with("ensure_children", id, true, |c, uid| {
            let children = if let Some(existing) = c.children.take() {
                ChildUids {
                    applied: spec.clone(),
                    ..existing
                }
            } else {
                *uid += 2;
                ChildUids {
                    lb_uid: format!("00000000-0000-4000-a000-{:012}", *uid - 1),
                    vm_uid: format!("00000000-0000-4000-b000-{:012}", *uid),
                    applied: spec.clone(),
                }
            };
            c.children = Some(children.clone());
            children
        })
    }

    async fn delete_children(&self, id: &ConfigId) -> Result<(), Error> {
        self.with("delete_children", id, true, |c, _| c.children = None)
    }

    async fn write_status(
        &self,
        id: &ConfigId,
        status: &GatewayStatus,
        nodes: &[GatewayNode],
    ) -> Result<(), Error> {
        self.with("write_status", id, true, |c, _| {
            c.obj.status = status.clone();
            c.obj.nodes = nodes.to_vec();
        })
    }

    async fn report_invalid(&self, id: &ConfigId, errors: &[Error]) -> Result<(), Error> {
        let mut st = self.state();
        st.faults.check(Layer::Cluster, "report_invalid")?;
        for e in errors {
            st.events.push((id.clone(), e.to_string()));
        }
        Ok(())
    }
}
