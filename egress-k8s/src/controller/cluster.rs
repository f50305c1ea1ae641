//! Core's [`ClusterApi`] over kube-rs: reads from the stores, writes what
//! upstream writes, with upstream's names, labels, finalizers and owners.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use egress_core::model::{ConfigId, GatewayNode, GatewaySpec, GatewayStatus};
use egress_core::names::{SGC_FINALIZER, key_secret_name};
use egress_core::traits::{ChildUids, ClusterApi, ConfigObject, KeyInfo};
use egress_core::{Error as CoreError, FailureKind, Layer};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::convert;
use super::report::Verdict;
use super::stores::Stores;
use crate::crd::{GatewayLBConfiguration, GatewayVMConfiguration, StaticGatewayConfiguration};

/// Field manager of every write.
pub const FIELD_MANAGER: &str = "egress-gateway-controller";

/// The controller's view of the Kubernetes API.
pub struct KubeCluster {
    pub(super) client: Client,
    pub(super) stores: Stores,
    pub(super) secret_namespace: String,
    pub(super) recorder: Recorder,
    /// What the conditions of each configuration (by UID) last said.
    pub(super) verdicts: Mutex<HashMap<String, Verdict>>,
    writes: Mutex<BTreeMap<&'static str, u64>>,
}

impl std::fmt::Debug for KubeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCluster")
            .field("stores", &self.stores)
            .field("secret_namespace", &self.secret_namespace)
            .finish_non_exhaustive()
    }
}

/// Maps a client error to core's error, keeping it as the source.
pub(super) fn kube_err(
    op: &'static str,
    object: impl Into<String>,
) -> impl FnOnce(kube::Error) -> CoreError {
    let object = object.into();
    move |source| {
        let kind = crate::error::failure_kind(&source);
        CoreError::adapter(
            Layer::Cluster,
            op,
            kind,
            crate::Error::Kube { op, object, source },
        )
    }
}

fn malformed(op: &'static str, object: String, problem: &str) -> CoreError {
    CoreError::adapter(
        Layer::Cluster,
        op,
        FailureKind::Permanent,
        crate::Error::Malformed {
            object,
            problem: problem.to_string(),
        },
    )
}

fn is_code(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// The controller owner of `meta`, if its UID is `uid`.
fn controlled_by(meta: &ObjectMeta, uid: &str) -> bool {
    meta.owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

fn has_finalizer(meta: &ObjectMeta, f: &str) -> bool {
    meta.finalizers.iter().flatten().any(|x| x == f)
}

fn owner_ref<K: Resource<DynamicType = ()>>(name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: name.to_string(),
        uid: uid.to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A child's spec as a merge patch: absent optional fields become `null`, so
/// a value left by an earlier writer is removed.
fn spec_patch(spec: &GatewaySpec) -> serde_json::Value {
    let mut v = serde_json::to_value(convert::lb_spec(spec)).unwrap_or_default();
    if let Some(map) = v.as_object_mut() {
        for key in [
            "gatewayNodepoolName",
            "gatewayVmssProfile",
            "publicIpPrefixId",
        ] {
            map.entry(key).or_insert(serde_json::Value::Null);
        }
    }
    v
}

impl KubeCluster {
    /// The cluster API over `stores`; key Secrets live in `secret_namespace`;
    /// events name `instance` as the reporting instance.
    pub fn new(client: Client, stores: Stores, secret_namespace: &str, instance: &str) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: Some(instance.to_string()),
            },
        );
        Self {
            client,
            stores,
            secret_namespace: secret_namespace.to_string(),
            recorder,
            verdicts: Mutex::new(HashMap::new()),
            writes: Mutex::new(BTreeMap::new()),
        }
    }

    /// The stores it reads.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Writes to the API server so far, by kind of write.
    pub fn writes(&self) -> BTreeMap<&'static str, u64> {
        self.writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(super) fn count(&self, op: &'static str) {
        *self
            .writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(op)
            .or_default() += 1;
    }

    pub(super) fn params() -> PatchParams {
        PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        }
    }

    fn sgc_api(&self, id: &ConfigId) -> Api<StaticGatewayConfiguration> {
        Api::namespaced(self.client.clone(), &id.namespace)
    }

    fn config_object(&self, sgc: &StaticGatewayConfiguration) -> Option<ConfigObject> {
        let namespace = sgc.namespace()?;
        let name = sgc.name_any();
        let uid = sgc.uid()?;
        let spec = convert::sgc_spec(&sgc.spec);
        let key = |n: &str| (n.to_string(), namespace.clone());
        let (n, ns) = key(&name);
        let lb = self
            .stores
            .lb
            .get(&ObjectRef::new(&n).within(&ns))
            .filter(|lb| controlled_by(lb.meta(), &uid));
        let vm = self
            .stores
            .vm
            .get(&ObjectRef::new(&n).within(&ns))
            .filter(|vm| {
                lb.as_ref()
                    .and_then(|lb| lb.uid())
                    .is_some_and(|lb_uid| controlled_by(vm.meta(), &lb_uid))
            });
        let nodes = vm
            .as_ref()
            .map(|vm| {
                convert::nodes(
                    vm.status
                        .as_ref()
                        .and_then(|s| s.gateway_vm_profiles.as_ref()),
                )
            })
            .unwrap_or_default();
        let children = match (&lb, &vm) {
            (Some(lb), Some(vm)) => {
                let s = &lb.spec;
                let lb_spec = convert::child_spec(
                    s.gateway_nodepool_name.as_ref(),
                    s.gateway_vmss_profile.as_ref(),
                    s.provision_public_ips,
                    s.public_ip_prefix_id.as_ref(),
                    &spec,
                );
                let s = &vm.spec;
                let vm_spec = convert::child_spec(
                    s.gateway_nodepool_name.as_ref(),
                    s.gateway_vmss_profile.as_ref(),
                    s.provision_public_ips,
                    s.public_ip_prefix_id.as_ref(),
                    &spec,
                );
                // A write interrupted between the two children leaves one
                // behind: report that one, so the next pass writes both.
                let applied = if lb_spec == spec { vm_spec } else { lb_spec };
                Some(ChildUids {
                    lb_uid: lb.uid()?,
                    vm_uid: vm.uid()?,
                    applied,
                })
            }
            _ => None,
        };
        Some(ConfigObject {
            id: ConfigId {
                namespace,
                name,
                uid,
            },
            status: convert::sgc_status(sgc.status.as_ref()),
            spec,
            nodes,
            children,
            deleting: sgc.meta().deletion_timestamp.is_some(),
            finalized: has_finalizer(sgc.meta(), SGC_FINALIZER),
        })
    }

    /// Adds or removes the SGC finalizer against a fresh read, guarded by
    /// its resource version.
    async fn set_finalizer(&self, id: &ConfigId, present: bool) -> Result<(), CoreError> {
        let op = if present {
            "add_finalizer"
        } else {
            "remove_finalizer"
        };
        let api = self.sgc_api(id);
        let Some(obj) = api
            .get_opt(&id.name)
            .await
            .map_err(kube_err(op, id.to_string()))?
        else {
            return if present {
                Err(malformed(op, id.to_string(), "does not exist"))
            } else {
                Ok(())
            };
        };
        if obj.uid().as_deref() != Some(id.uid.as_str()) {
            return if present {
                Err(malformed(
                    op,
                    id.to_string(),
                    "was replaced by a new object",
                ))
            } else {
                Ok(())
            };
        }
        if has_finalizer(obj.meta(), SGC_FINALIZER) == present {
            return Ok(());
        }
        let mut list: Vec<String> = obj.finalizers().to_vec();
        if present {
            list.push(SGC_FINALIZER.into());
        } else {
            list.retain(|f| f != SGC_FINALIZER);
        }
        let patch = json!({"metadata": {
            "finalizers": list,
            "resourceVersion": obj.resource_version(),
        }});
        self.count(op);
        api.patch(&id.name, &Self::params(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err(op, id.to_string()))?;
        Ok(())
    }
}

#[async_trait]
impl ClusterApi for KubeCluster {
    async fn list_configs(&self) -> Result<Vec<ConfigObject>, CoreError> {
        Ok(self
            .stores
            .sgc
            .state()
            .iter()
            .filter_map(|s| self.config_object(s))
            .collect())
    }

    async fn add_finalizer(&self, id: &ConfigId) -> Result<(), CoreError> {
        self.set_finalizer(id, true).await
    }

    async fn remove_finalizer(&self, id: &ConfigId) -> Result<(), CoreError> {
        self.set_finalizer(id, false).await
    }

    async fn ensure_key_secret(&self, id: &ConfigId) -> Result<KeyInfo, CoreError> {
        self.key_secret(id).await
    }

    async fn delete_key_secret(&self, id: &ConfigId) -> Result<(), CoreError> {
        let name = key_secret_name(&id.uid);
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.secret_namespace);
        self.count("delete_key_secret");
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, 404) => Ok(()),
            Err(e) => Err(kube_err(
                "delete_key_secret",
                format!("{}/{name}", self.secret_namespace),
            )(e)),
        }
    }

    async fn ensure_children(
        &self,
        id: &ConfigId,
        spec: &GatewaySpec,
    ) -> Result<ChildUids, CoreError> {
        let lb_uid = self
            .ensure_child::<GatewayLBConfiguration>(
                id,
                owner_ref::<StaticGatewayConfiguration>(&id.name, &id.uid),
                egress_core::names::LB_FINALIZER,
                spec,
                |lb| {
                    let s = &lb.spec;
                    convert::child_spec(
                        s.gateway_nodepool_name.as_ref(),
                        s.gateway_vmss_profile.as_ref(),
                        s.provision_public_ips,
                        s.public_ip_prefix_id.as_ref(),
                        spec,
                    ) == *spec
                },
                &self.stores.lb,
            )
            .await?;
        let vm_uid = self
            .ensure_child::<GatewayVMConfiguration>(
                id,
                owner_ref::<GatewayLBConfiguration>(&id.name, &lb_uid),
                egress_core::names::VM_FINALIZER,
                spec,
                |vm| {
                    let s = &vm.spec;
                    convert::child_spec(
                        s.gateway_nodepool_name.as_ref(),
                        s.gateway_vmss_profile.as_ref(),
                        s.provision_public_ips,
                        s.public_ip_prefix_id.as_ref(),
                        spec,
                    ) == *spec
                },
                &self.stores.vm,
            )
            .await?;
        Ok(ChildUids {
            lb_uid,
            vm_uid,
            applied: spec.clone(),
        })
    }

    async fn delete_children(&self, id: &ConfigId) -> Result<(), CoreError> {
        self.delete_child::<GatewayVMConfiguration>(id, egress_core::names::VM_FINALIZER)
            .await?;
        self.delete_child::<GatewayLBConfiguration>(id, egress_core::names::LB_FINALIZER)
            .await
    }

    async fn write_status(
        &self,
        id: &ConfigId,
        status: &GatewayStatus,
        nodes: &[GatewayNode],
    ) -> Result<(), CoreError> {
        self.status_chain(id, status, nodes).await
    }

    async fn report_invalid(&self, id: &ConfigId, errors: &[CoreError]) -> Result<(), CoreError> {
        self.rejected(id, errors).await
    }
}

impl KubeCluster {
    /// Creates a child or brings its spec, finalizer and controller owner to
    /// what they must be; returns its UID. Reads the store first, so a child
    /// already as wanted costs no call.
    #[allow(clippy::too_many_arguments)]
    async fn ensure_child<K>(
        &self,
        id: &ConfigId,
        owner: OwnerReference,
        finalizer: &str,
        spec: &GatewaySpec,
        same_spec: impl Fn(&K) -> bool + Send + Sync,
        store: &kube::runtime::reflector::Store<K>,
    ) -> Result<String, CoreError>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let op = "ensure_children";
        let object = format!("{} {id}", K::kind(&()));
        let api: Api<K> = Api::namespaced(self.client.clone(), &id.namespace);
        let wanted = |k: &K| {
            same_spec(k)
                && has_finalizer(k.meta(), finalizer)
                && controlled_by(k.meta(), &owner.uid)
        };
        if let Some(cached) = store.get(&ObjectRef::new(&id.name).within(&id.namespace))
            && wanted(&cached)
            && let Some(uid) = cached.uid()
        {
            return Ok(uid);
        }
        let fetched = api
            .get_opt(&id.name)
            .await
            .map_err(kube_err(op, object.clone()))?;
        let current = if let Some(c) = fetched {
            c
        } else {
            {
                let body = json!({
                    "apiVersion": K::api_version(&()),
                    "kind": K::kind(&()),
                    "metadata": {
                        "name": id.name,
                        "namespace": id.namespace,
                        "ownerReferences": [owner],
                        "finalizers": [finalizer],
                    },
                    "spec": convert::lb_spec(spec),
                });
                let obj: K = serde_json::from_value(body)
                    .map_err(|e| malformed(op, object.clone(), &e.to_string()))?;
                self.count("create_child");
                match api.create(&PostParams::default(), &obj).await {
                    Ok(created) => {
                        return created
                            .uid()
                            .ok_or_else(|| malformed(op, object, "created without a UID"));
                    }
                    Err(e) if is_code(&e, 409) => api
                        .get(&id.name)
                        .await
                        .map_err(kube_err(op, object.clone()))?,
                    Err(e) => return Err(kube_err(op, object)(e)),
                }
            }
        };
        if wanted(&current) {
            return current
                .uid()
                .ok_or_else(|| malformed(op, object, "has no UID"));
        }
        let foreign = current
            .meta()
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && o.uid != owner.uid);
        if foreign {
            return Err(malformed(
                op,
                object,
                "is controlled by another object (a configuration of the same name that was deleted and recreated?)",
            ));
        }
        let mut metadata = json!({"resourceVersion": current.resource_version()});
        if !has_finalizer(current.meta(), finalizer) {
            let mut list = current.finalizers().to_vec();
            list.push(finalizer.to_string());
            metadata["finalizers"] = json!(list);
        }
        if !controlled_by(current.meta(), &owner.uid) {
            let mut list = current.owner_references().to_vec();
            list.push(owner);
            metadata["ownerReferences"] = json!(list);
        }
        let patch = json!({"metadata": metadata, "spec": spec_patch(spec)});
        self.count("update_child");
        let updated = api
            .patch(&id.name, &Self::params(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err(op, object.clone()))?;
        updated
            .uid()
            .ok_or_else(|| malformed(op, object, "has no UID"))
    }

    /// Removes our finalizer from a child and deletes it; absent is success.
    async fn delete_child<K>(&self, id: &ConfigId, finalizer: &str) -> Result<(), CoreError>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        let op = "delete_children";
        let object = format!("{} {id}", K::kind(&()));
        let api: Api<K> = Api::namespaced(self.client.clone(), &id.namespace);
        let Some(current) = api
            .get_opt(&id.name)
            .await
            .map_err(kube_err(op, object.clone()))?
        else {
            return Ok(());
        };
        if has_finalizer(current.meta(), finalizer) {
            let list: Vec<String> = current
                .finalizers()
                .iter()
                .filter(|f| *f != finalizer)
                .cloned()
                .collect();
            let patch = json!({"metadata": {
                "finalizers": list,
                "resourceVersion": current.resource_version(),
            }});
            self.count("remove_child_finalizer");
            match api
                .patch(&id.name, &Self::params(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(e) if is_code(&e, 404) => return Ok(()),
                Err(e) => return Err(kube_err(op, object)(e)),
            }
        }
        if current.meta().deletion_timestamp.is_some() {
            return Ok(());
        }
        self.count("delete_child");
        match api.delete(&id.name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(e) if is_code(&e, 404) => Ok(()),
            Err(e) => Err(kube_err(op, object)(e)),
        }
    }
}
