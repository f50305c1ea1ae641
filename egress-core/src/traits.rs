//! The three seams between the pure engine and the world. Each takes and
//! returns core types; adapters translate to and from their SDKs and report
//! failures as [`Error::Adapter`] with a
//! [`FailureKind`](crate::FailureKind) that drives retries.

use async_trait::async_trait;
use ipnet::IpNet;

use crate::Error;
use crate::arm::ArmId;
use crate::lb::LoadBalancer;
use crate::model::{ConfigId, GatewayNode, GatewaySpec, GatewayStatus, PoolSelector, SecretRef};
use crate::node::{NodeOp, NodeState};
use crate::vmss::{Instance, Nic};

/// A gateway pool as the cloud reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolInfo {
    /// Unique ID: names the pool's ILB frontend and backend pool. Two
    /// selectors that reach the same machines give the same ID, so the
    /// controller groups configurations by it.
    pub uid: String,
    /// Prefix length from the pool's `aks-managed-gatewayIPPrefixSize` tag.
    pub prefix_len_tag: Option<u8>,
    /// The pool's machines.
    pub kind: PoolKind,
}

impl PoolInfo {
    /// Number of gateway nodes.
    pub fn node_count(&self) -> usize {
        match &self.kind {
            PoolKind::Vmss { instances, .. } => instances.len(),
            PoolKind::Vm { nics } => nics.len(),
        }
    }
}

/// The machines of a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolKind {
    /// A VMSS: its model's NIC configurations and its instances.
    Vmss {
        /// Resource group.
        resource_group: String,
        /// VMSS name.
        name: String,
        /// The model's NIC configurations.
        model: Vec<Nic>,
        /// The VMSS's `ETag` when read: a model write sends it as `If-Match`.
        etag: Option<String>,
        /// Instances.
        instances: Vec<Instance>,
    },
    /// A VM pool: its pre-created NICs, one per possible node. Each carries
    /// its own `ETag`.
    Vm {
        /// The NICs.
        nics: Vec<Nic>,
    },
}

/// One instance write: its new NIC configurations, guarded by the `ETag` the
/// plan was made from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceUpdate {
    /// Instance ID.
    pub id: String,
    /// The instance's NIC configurations as they must become.
    pub nics: Vec<Nic>,
    /// The instance's `ETag` when read.
    pub etag: Option<String>,
}

/// A public IP prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicIpPrefix {
    /// ARM ID.
    pub id: String,
    /// Prefix length.
    pub len: u8,
    /// The allocated range, once Azure assigned it.
    pub prefix: Option<IpNet>,
}

/// A standalone public IP in the cluster's resource group (VM pools attach
/// one per NIC and configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicIp {
    /// Name.
    pub name: String,
    /// ARM ID.
    pub id: String,
    /// The prefix it was allocated from (ARM ID).
    pub prefix_id: Option<String>,
    /// The ipConfig it is attached to (ARM ID), if any.
    pub attached_to: Option<String>,
}

/// Which public IP prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrefixRef {
    /// One this system manages, by name, in the cluster's resource group.
    Managed(String),
    /// A user's prefix.
    Byo(ArmId),
}

/// Azure, as the controller needs it.
///
/// The implementations follow Azure's rules, and the controller relies on
/// them: a write that references an object that does not exist is refused;
/// an object still referenced cannot be removed (a backend pool used by an
/// ipConfig, a prefix with addresses allocated, an attached public IP); and a
/// write guarded by an `ETag` is refused with [`FailureKind::Conflict`] when
/// the object changed since it was read. Every write call blocks until Azure's
/// long-running operation ends.
///
/// [`FailureKind::Conflict`]: crate::FailureKind::Conflict
#[async_trait]
pub trait CloudProvider: Send + Sync {
    /// Reads a gateway pool: for a VMSS its model, `ETag`, instances and the
    /// private addresses Azure assigned; for a VM pool its NICs.
    async fn get_pool(&self, pool: &PoolSelector) -> Result<PoolInfo, Error>;
    /// Writes a VMSS model's NIC configurations (and nothing else of the
    /// model), guarded by `etag`.
    async fn put_vmss_model(
        &self,
        resource_group: &str,
        vmss: &str,
        nics: &[Nic],
        etag: Option<&str>,
    ) -> Result<(), Error>;
    /// Writes the NIC configurations of several instances of one VMSS. The
    /// implementation may run them in parallel or as one upgrade call; it
    /// fails if any of them failed.
    async fn update_vmss_instances(
        &self,
        resource_group: &str,
        vmss: &str,
        updates: &[InstanceUpdate],
    ) -> Result<(), Error>;
    /// Writes one NIC of a VM pool, guarded by its `etag`.
    async fn put_nic(&self, nic: &Nic) -> Result<(), Error>;
    /// Reads the internal load balancer, with its `ETag` and which backend
    /// pools ipConfigs still reference.
    async fn get_load_balancer(&self) -> Result<Option<LoadBalancer>, Error>;
    /// Creates or updates the internal load balancer, guarded by `lb.etag`
    /// (`None`: it must not exist yet); returns it as stored.
    async fn put_load_balancer(&self, lb: &LoadBalancer) -> Result<LoadBalancer, Error>;
    /// Deletes the internal load balancer, guarded by `etag`; absent is success.
    async fn delete_load_balancer(&self, etag: Option<&str>) -> Result<(), Error>;
    /// Reads a public IP prefix.
    async fn get_public_ip_prefix(
        &self,
        prefix: &PrefixRef,
    ) -> Result<Option<PublicIpPrefix>, Error>;
    /// Creates a managed public IP prefix.
    async fn create_public_ip_prefix(&self, name: &str, len: u8) -> Result<PublicIpPrefix, Error>;
    /// The public IP prefixes of the cluster's resource group (where managed
    /// prefixes live).
    async fn list_public_ip_prefixes(&self) -> Result<Vec<PublicIpPrefix>, Error>;
    /// Deletes a managed public IP prefix; absent is success. Refused while
    /// ipConfigs or public IPs use it.
    async fn delete_public_ip_prefix(&self, name: &str) -> Result<(), Error>;
    /// The public IPs of the cluster's resource group.
    async fn list_public_ips(&self) -> Result<Vec<PublicIp>, Error>;
    /// Creates (if absent) a public IP from a prefix; returns its ARM ID.
    async fn ensure_public_ip(&self, name: &str, prefix_id: &str) -> Result<String, Error>;
    /// Deletes a public IP; absent is success. Refused while attached.
    async fn delete_public_ip(&self, name: &str) -> Result<(), Error>;
}

/// A configuration as the cluster holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigObject {
    /// Identity.
    pub id: ConfigId,
    /// Spec as written.
    pub spec: GatewaySpec,
    /// Status as last written.
    pub status: GatewayStatus,
    /// Gateway nodes as last written.
    pub nodes: Vec<GatewayNode>,
    /// The LB and VM configuration objects, if they exist.
    pub children: Option<ChildUids>,
    /// Deletion requested.
    pub deleting: bool,
    /// Our finalizer is present.
    pub finalized: bool,
}

/// The key material of a configuration's gateway, by reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyInfo {
    /// The Secret holding the private key.
    pub secret: SecretRef,
    /// The public key.
    pub public_key: String,
}

/// A configuration's LB and VM configuration objects: their UIDs name its
/// Azure objects, and the spec they carry is the one provisioned in Azure
/// (upstream's children carry the same copy of the spec).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildUids {
    /// Names the ILB rule and probe.
    pub lb_uid: String,
    /// Names the ipConfigs and the managed prefix.
    pub vm_uid: String,
    /// The spec the children carry: what Azure holds, or is being brought to.
    /// It trails the user's spec while a change is not yet known to be safe
    /// (a move to another pool, an edit the controller rejects).
    pub applied: GatewaySpec,
}

/// The Kubernetes API, as the controller needs it.
#[async_trait]
pub trait ClusterApi: Send + Sync {
    /// Every static gateway configuration.
    async fn list_configs(&self) -> Result<Vec<ConfigObject>, Error>;
    /// Adds our finalizer.
    async fn add_finalizer(&self, id: &ConfigId) -> Result<(), Error>;
    /// Removes our finalizer, letting deletion finish.
    async fn remove_finalizer(&self, id: &ConfigId) -> Result<(), Error>;
    /// Creates the key Secret if absent (never rotating an existing key).
    async fn ensure_key_secret(&self, id: &ConfigId) -> Result<KeyInfo, Error>;
    /// Deletes the key Secret; absent is success.
    async fn delete_key_secret(&self, id: &ConfigId) -> Result<(), Error>;
    /// Creates the LB and VM configuration objects, or sets the spec they
    /// carry to `spec`.
    async fn ensure_children(&self, id: &ConfigId, spec: &GatewaySpec) -> Result<ChildUids, Error>;
    /// Deletes the LB and VM configuration objects; absent is success.
    async fn delete_children(&self, id: &ConfigId) -> Result<(), Error>;
    /// Writes status up the chain.
    async fn write_status(
        &self,
        id: &ConfigId,
        status: &GatewayStatus,
        nodes: &[GatewayNode],
    ) -> Result<(), Error>;
    /// Tells the user why a spec is rejected (event and condition).
    async fn report_invalid(&self, id: &ConfigId, errors: &[Error]) -> Result<(), Error>;
}

/// A gateway node's kernel state, as the daemon needs it.
#[async_trait]
pub trait Dataplane: Send + Sync {
    /// Reads what the node holds.
    async fn observe(&self) -> Result<NodeState, Error>;
    /// Applies one idempotent operation.
    async fn apply(&self, op: &NodeOp) -> Result<(), Error>;
    /// Applies operations with the effect of applying them one by one, in
    /// order. An adapter may group them into fewer kernel transactions (all
    /// peer changes of a device in one set, all table changes of a pass in
    /// one transaction) as long as the end state is the same; on failure the
    /// next pass observes and finishes the rest.
    async fn apply_all(&self, ops: &[NodeOp]) -> Result<(), Error> {
        for op in ops {
            self.apply(op).await?;
        }
        Ok(())
    }
}

/// Brings a node to `desired`: observe, diff, apply in order. Returns the
/// number of operations applied; a pass with nothing to do applies none.
pub async fn sync_node<D: Dataplane + ?Sized>(
    dataplane: &D,
    desired: &NodeState,
) -> Result<usize, Error> {
    let observed = dataplane.observe().await?;
    let ops = crate::node::diff(desired, &observed);
    dataplane.apply_all(&ops).await?;
    Ok(ops.len())
}

#[cfg(test)]
mod tests {
    use futures::executor::block_on;

    use super::*;
    use crate::FailureKind;
    use crate::node::desired;
    use crate::testing::{InMemoryDataplane, gateway_node_inputs};

    #[test]
    fn sync_node_converges_after_a_failure_and_then_does_nothing() {
        let (configs, endpoints) = gateway_node_inputs(100, 10_000);
        let want = desired(&configs, &endpoints, 1420);
        let dp = InMemoryDataplane::default();
        let first = block_on(sync_node(&dp, &want)).unwrap();
        assert_eq!(
            first, 10_202,
            "plumbing + 1 frontend + 100 creates + 100 configures + 10,000 peers"
        );
        assert_eq!(dp.node_state(), want);
        assert_eq!(
            block_on(sync_node(&dp, &want)).unwrap(),
            0,
            "no-op pass makes no kernel writes"
        );

        // Half the interfaces exist; the next pass fails on its first write,
        // and the one after completes exactly the missing half.
        let fresh = InMemoryDataplane::default();
        let mut half = want.clone();
        half.interfaces.retain(|name, _| name.as_str() < "wg-6050");
        block_on(sync_node(&fresh, &half)).unwrap();
        fresh.fail_next("apply", &[FailureKind::Transient]);
        assert!(block_on(sync_node(&fresh, &want)).is_err());
        assert_eq!(block_on(sync_node(&fresh, &want)).unwrap(), 50 * 2 + 5_000);
        assert_eq!(fresh.node_state(), want);
    }
}
