//! Typed calls for every ARM operation the adapter uses, named by Azure's
//! operationIds (also the metric keys).

use reqwest::Method;
use serde_json::json;

use super::{ArmClient, Fetched, Precondition};
use crate::Error;
use crate::models::{
    LoadBalancer, NetworkInterface, NetworkProfile, PublicIp, PublicIpPrefix, Subnet,
    VirtualMachine, Vmss, VmssVm,
};

/// API versions.
pub mod api {
    /// `Microsoft.Compute`.
    pub const COMPUTE: &str = "2024-07-01";
    /// `Microsoft.Network`.
    pub const NETWORK: &str = "2024-03-01";
    /// Scale-set instance NICs (a compute path served by the network provider).
    pub const VMSS_NICS: &str = "2018-10-01";
}

/// Operation names (Azure's operationIds).
pub mod op {
    #![allow(missing_docs)]
    pub const VMSS_LIST: &str = "VirtualMachineScaleSets_List";
    pub const VMSS_GET: &str = "VirtualMachineScaleSets_Get";
    pub const VMSS_UPDATE: &str = "VirtualMachineScaleSets_Update";
    pub const VMSS_UPDATE_INSTANCES: &str = "VirtualMachineScaleSets_UpdateInstances";
    pub const VMSS_VM_LIST: &str = "VirtualMachineScaleSetVMs_List";
    pub const VMSS_VM_GET: &str = "VirtualMachineScaleSetVMs_Get";
    pub const VMSS_VM_UPDATE: &str = "VirtualMachineScaleSetVMs_Update";
    pub const VMSS_NIC_LIST: &str = "NetworkInterfaces_ListVirtualMachineScaleSetNetworkInterfaces";
    pub const VM_LIST: &str = "VirtualMachines_List";
    pub const NIC_LIST: &str = "NetworkInterfaces_List";
    pub const NIC_GET: &str = "NetworkInterfaces_Get";
    pub const NIC_PUT: &str = "NetworkInterfaces_CreateOrUpdate";
    pub const LB_GET: &str = "LoadBalancers_Get";
    pub const LB_PUT: &str = "LoadBalancers_CreateOrUpdate";
    pub const LB_DELETE: &str = "LoadBalancers_Delete";
    pub const PREFIX_LIST: &str = "PublicIPPrefixes_List";
    pub const PREFIX_GET: &str = "PublicIPPrefixes_Get";
    pub const PREFIX_PUT: &str = "PublicIPPrefixes_CreateOrUpdate";
    pub const PREFIX_DELETE: &str = "PublicIPPrefixes_Delete";
    pub const PIP_LIST: &str = "PublicIPAddresses_List";
    pub const PIP_GET: &str = "PublicIPAddresses_Get";
    pub const PIP_PUT: &str = "PublicIPAddresses_CreateOrUpdate";
    pub const PIP_DELETE: &str = "PublicIPAddresses_Delete";
    pub const SUBNET_GET: &str = "Subnets_Get";
}

impl ArmClient {
    fn rg(&self, rg: &str) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{rg}/providers",
            self.subscription()
        )
    }

    fn vmss_path(&self, rg: &str, vmss: &str) -> String {
        format!(
            "{}/Microsoft.Compute/virtualMachineScaleSets/{vmss}",
            self.rg(rg)
        )
    }

    fn network_path(&self, rg: &str, kind: &str, name: &str) -> String {
        format!("{}/Microsoft.Network/{kind}/{name}", self.rg(rg))
    }

    /// Scale sets of a resource group.
    pub async fn list_vmss(&self, rg: &str) -> Result<Vec<Vmss>, Error> {
        let path = format!("{}/Microsoft.Compute/virtualMachineScaleSets", self.rg(rg));
        self.list(op::VMSS_LIST, &path, api::COMPUTE).await
    }

    /// One scale set.
    pub async fn get_vmss(&self, rg: &str, vmss: &str) -> Result<Option<Fetched<Vmss>>, Error> {
        self.get(op::VMSS_GET, &self.vmss_path(rg, vmss), api::COMPUTE)
            .await
    }

    /// Writes only the model's NIC configurations (a PATCH of
    /// `properties.virtualMachineProfile.networkProfile.networkInterfaceConfigurations`),
    /// never the rest of the model, conditional on `if_match`.
    pub async fn patch_vmss_network(
        &self,
        rg: &str,
        vmss: &str,
        network: &NetworkProfile,
        if_match: Option<&str>,
    ) -> Result<Fetched<Vmss>, Error> {
        let body = json!({"properties": {"virtualMachineProfile": {"networkProfile": {
            "networkInterfaceConfigurations": network.network_interface_configurations,
        }}}});
        self.write(
            op::VMSS_UPDATE,
            Method::PATCH,
            &self.vmss_path(rg, vmss),
            api::COMPUTE,
            &body,
            if_match.into(),
        )
        .await
    }

    /// Applies the scale set's current model to these instances.
    pub async fn update_instances(
        &self,
        rg: &str,
        vmss: &str,
        ids: &[String],
    ) -> Result<(), Error> {
        let path = format!("{}/manualupgrade", self.vmss_path(rg, vmss));
        self.action(
            op::VMSS_UPDATE_INSTANCES,
            &path,
            api::COMPUTE,
            &json!({ "instanceIds": ids }),
        )
        .await
    }

    /// Instances of a scale set.
    pub async fn list_vmss_vms(&self, rg: &str, vmss: &str) -> Result<Vec<VmssVm>, Error> {
        let path = format!("{}/virtualMachines", self.vmss_path(rg, vmss));
        self.list(op::VMSS_VM_LIST, &path, api::COMPUTE).await
    }

    /// One instance.
    pub async fn get_vmss_vm(
        &self,
        rg: &str,
        vmss: &str,
        instance: &str,
    ) -> Result<Option<Fetched<VmssVm>>, Error> {
        let path = format!("{}/virtualMachines/{instance}", self.vmss_path(rg, vmss));
        self.get(op::VMSS_VM_GET, &path, api::COMPUTE).await
    }

    /// Writes one instance's NIC configurations only, conditional on `if_match`.
    pub async fn put_vmss_vm_network(
        &self,
        rg: &str,
        vmss: &str,
        instance: &str,
        location: Option<&str>,
        network: &NetworkProfile,
        if_match: Option<&str>,
    ) -> Result<Fetched<VmssVm>, Error> {
        let path = format!("{}/virtualMachines/{instance}", self.vmss_path(rg, vmss));
        let mut body = json!({"properties": {"networkProfileConfiguration": {
            "networkInterfaceConfigurations": network.network_interface_configurations,
        }}});
        if let Some(location) = location {
            body["location"] = json!(location);
        }
        self.write(
            op::VMSS_VM_UPDATE,
            Method::PUT,
            &path,
            api::COMPUTE,
            &body,
            if_match.into(),
        )
        .await
    }

    /// Every instance NIC of a scale set, with assigned addresses.
    pub async fn list_vmss_nics(
        &self,
        rg: &str,
        vmss: &str,
    ) -> Result<Vec<NetworkInterface>, Error> {
        let path = format!("{}/networkInterfaces", self.vmss_path(rg, vmss));
        self.list(op::VMSS_NIC_LIST, &path, api::VMSS_NICS).await
    }

    /// Virtual machines of a resource group.
    pub async fn list_vms(&self, rg: &str) -> Result<Vec<VirtualMachine>, Error> {
        let path = format!("{}/Microsoft.Compute/virtualMachines", self.rg(rg));
        self.list(op::VM_LIST, &path, api::COMPUTE).await
    }

    /// Network interfaces of a resource group.
    pub async fn list_nics(&self, rg: &str) -> Result<Vec<NetworkInterface>, Error> {
        let path = format!("{}/Microsoft.Network/networkInterfaces", self.rg(rg));
        self.list(op::NIC_LIST, &path, api::NETWORK).await
    }

    /// One network interface.
    pub async fn get_nic(
        &self,
        rg: &str,
        name: &str,
    ) -> Result<Option<Fetched<NetworkInterface>>, Error> {
        self.get(
            op::NIC_GET,
            &self.network_path(rg, "networkInterfaces", name),
            api::NETWORK,
        )
        .await
    }

    /// Writes a network interface (the whole NIC as read, edited).
    pub async fn put_nic(
        &self,
        rg: &str,
        name: &str,
        nic: &NetworkInterface,
        if_match: Option<&str>,
    ) -> Result<Fetched<NetworkInterface>, Error> {
        self.write(
            op::NIC_PUT,
            Method::PUT,
            &self.network_path(rg, "networkInterfaces", name),
            api::NETWORK,
            nic,
            if_match.into(),
        )
        .await
    }

    /// A load balancer.
    pub async fn get_lb(
        &self,
        rg: &str,
        name: &str,
    ) -> Result<Option<Fetched<LoadBalancer>>, Error> {
        self.get(
            op::LB_GET,
            &self.network_path(rg, "loadBalancers", name),
            api::NETWORK,
        )
        .await
    }

    /// Creates or updates a load balancer.
    pub async fn put_lb(
        &self,
        rg: &str,
        name: &str,
        lb: &LoadBalancer,
        if_match: Option<&str>,
    ) -> Result<Fetched<LoadBalancer>, Error> {
        self.write(
            op::LB_PUT,
            Method::PUT,
            &self.network_path(rg, "loadBalancers", name),
            api::NETWORK,
            lb,
            if_match.into(),
        )
        .await
    }

    /// Creates a load balancer that must not exist yet (`If-None-Match: *`).
    pub async fn create_lb(
        &self,
        rg: &str,
        name: &str,
        lb: &LoadBalancer,
    ) -> Result<Fetched<LoadBalancer>, Error> {
        self.write(
            op::LB_PUT,
            Method::PUT,
            &self.network_path(rg, "loadBalancers", name),
            api::NETWORK,
            lb,
            Precondition::IfNoneMatch,
        )
        .await
    }

    /// Deletes a load balancer; `false` when it did not exist.
    pub async fn delete_lb(
        &self,
        rg: &str,
        name: &str,
        if_match: Option<&str>,
    ) -> Result<bool, Error> {
        self.delete(
            op::LB_DELETE,
            &self.network_path(rg, "loadBalancers", name),
            api::NETWORK,
            if_match,
        )
        .await
    }

    /// Public IP prefixes of a resource group.
    pub async fn list_prefixes(&self, rg: &str) -> Result<Vec<PublicIpPrefix>, Error> {
        let path = format!("{}/Microsoft.Network/publicIPPrefixes", self.rg(rg));
        self.list(op::PREFIX_LIST, &path, api::NETWORK).await
    }

    /// A public IP prefix (in any subscription the credential can read).
    pub async fn get_prefix_in(
        &self,
        subscription: &str,
        rg: &str,
        name: &str,
    ) -> Result<Option<Fetched<PublicIpPrefix>>, Error> {
        let path = format!(
            "/subscriptions/{subscription}/resourceGroups/{rg}/providers/Microsoft.Network/publicIPPrefixes/{name}"
        );
        self.get(op::PREFIX_GET, &path, api::NETWORK).await
    }

    /// A public IP prefix of this subscription.
    pub async fn get_prefix(
        &self,
        rg: &str,
        name: &str,
    ) -> Result<Option<Fetched<PublicIpPrefix>>, Error> {
        self.get(
            op::PREFIX_GET,
            &self.network_path(rg, "publicIPPrefixes", name),
            api::NETWORK,
        )
        .await
    }

    /// Creates or updates a public IP prefix.
    pub async fn put_prefix(
        &self,
        rg: &str,
        name: &str,
        prefix: &PublicIpPrefix,
        if_match: Option<&str>,
    ) -> Result<Fetched<PublicIpPrefix>, Error> {
        self.write(
            op::PREFIX_PUT,
            Method::PUT,
            &self.network_path(rg, "publicIPPrefixes", name),
            api::NETWORK,
            prefix,
            if_match.into(),
        )
        .await
    }

    /// Deletes a public IP prefix; `false` when it did not exist.
    pub async fn delete_prefix(&self, rg: &str, name: &str) -> Result<bool, Error> {
        self.delete(
            op::PREFIX_DELETE,
            &self.network_path(rg, "publicIPPrefixes", name),
            api::NETWORK,
            None,
        )
        .await
    }

    /// Public IPs of a resource group.
    pub async fn list_public_ips(&self, rg: &str) -> Result<Vec<PublicIp>, Error> {
        let path = format!("{}/Microsoft.Network/publicIPAddresses", self.rg(rg));
        self.list(op::PIP_LIST, &path, api::NETWORK).await
    }

    /// A public IP.
    pub async fn get_public_ip(
        &self,
        rg: &str,
        name: &str,
    ) -> Result<Option<Fetched<PublicIp>>, Error> {
        self.get(
            op::PIP_GET,
            &self.network_path(rg, "publicIPAddresses", name),
            api::NETWORK,
        )
        .await
    }

    /// Creates or updates a public IP.
    pub async fn put_public_ip(
        &self,
        rg: &str,
        name: &str,
        ip: &PublicIp,
        if_match: Option<&str>,
    ) -> Result<Fetched<PublicIp>, Error> {
        self.write(
            op::PIP_PUT,
            Method::PUT,
            &self.network_path(rg, "publicIPAddresses", name),
            api::NETWORK,
            ip,
            if_match.into(),
        )
        .await
    }

    /// Deletes a public IP; `false` when it did not exist.
    pub async fn delete_public_ip(&self, rg: &str, name: &str) -> Result<bool, Error> {
        self.delete(
            op::PIP_DELETE,
            &self.network_path(rg, "publicIPAddresses", name),
            api::NETWORK,
            None,
        )
        .await
    }

    /// A subnet.
    pub async fn get_subnet(
        &self,
        rg: &str,
        vnet: &str,
        subnet: &str,
    ) -> Result<Option<Fetched<Subnet>>, Error> {
        let path = format!(
            "{}/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}",
            self.rg(rg)
        );
        self.get(op::SUBNET_GET, &path, api::NETWORK).await
    }
}
