//! ARM paths to routes, and routes to Azure's operation names and api-versions.
//! Literal segments match case-insensitively, as ARM's do; ids keep the caller's case.

use http::Method;

use crate::arm_error::ArmError;
use crate::log::CallKind;
use crate::state::Provider;

/// A recognised ARM path. Ids are the path's own prefix, in the caller's case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `…/Microsoft.Compute/virtualMachineScaleSets` in a resource group.
    VmssList { scope: String },
    /// One scale set.
    Vmss { id: String },
    /// Its instances.
    VmssVms { vmss: String },
    /// One instance.
    VmssVm { vmss: String, instance: String },
    /// `manualupgrade`.
    ManualUpgrade { vmss: String },
    /// Every instance's NICs.
    VmssNics { vmss: String },
    /// One instance NIC.
    VmssVmNic {
        vmss: String,
        instance: String,
        nic: String,
    },
    /// Virtual machines in a resource group.
    VmList { scope: String },
    /// One virtual machine.
    Vm { id: String },
    /// NICs in a resource group.
    NicList { scope: String },
    /// One NIC.
    Nic { id: String },
    /// Load balancers in a resource group.
    LbList { scope: String },
    /// One load balancer.
    Lb { id: String },
    /// Public IP prefixes in a resource group.
    PrefixList { scope: String },
    /// One public IP prefix.
    Prefix { id: String },
    /// Public IPs in a resource group.
    PipList { scope: String },
    /// One public IP.
    Pip { id: String },
    /// One virtual network.
    Vnet { id: String },
    /// One subnet.
    Subnet { vnet: String, name: String },
    /// A long-running operation's status (`Azure-AsyncOperation`).
    OperationStatus { provider: Provider, id: String },
    /// A long-running operation's result (`Location`).
    OperationResult { provider: Provider, id: String },
}

impl Route {
    /// Parses an ARM path.
    pub fn parse(path: &str) -> Option<Route> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let lower: Vec<String> = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
        let l: Vec<&str> = lower.iter().map(String::as_str).collect();
        let id = |n: usize| format!("/{}", segs[..n].join("/"));
        if segs.iter().any(|s| s.is_empty()) {
            return None;
        }
        match l.as_slice() {
            ["subscriptions", _, "providers", ns, "locations", _, kind, _] => {
                let provider = provider_of(ns)?;
                let op = segs[7].to_owned();
                match *kind {
                    "operations" => Some(Route::OperationStatus { provider, id: op }),
                    "operationresults" => Some(Route::OperationResult { provider, id: op }),
                    _ => None,
                }
            }
            [
                "subscriptions",
                _,
                "resourcegroups",
                _,
                "providers",
                ns,
                rest @ ..,
            ] => {
                let scope = id(4);
                match (*ns, rest) {
                    ("microsoft.compute", ["virtualmachinescalesets"]) => {
                        Some(Route::VmssList { scope })
                    }
                    ("microsoft.compute", ["virtualmachinescalesets", _]) => {
                        Some(Route::Vmss { id: id(8) })
                    }
                    ("microsoft.compute", ["virtualmachinescalesets", _, "virtualmachines"]) => {
                        Some(Route::VmssVms { vmss: id(8) })
                    }
                    ("microsoft.compute", ["virtualmachinescalesets", _, "virtualmachines", _]) => {
                        Some(Route::VmssVm {
                            vmss: id(8),
                            instance: segs[9].to_owned(),
                        })
                    }
                    ("microsoft.compute", ["virtualmachinescalesets", _, "manualupgrade"]) => {
                        Some(Route::ManualUpgrade { vmss: id(8) })
                    }
                    ("microsoft.compute", ["virtualmachinescalesets", _, "networkinterfaces"]) => {
                        Some(Route::VmssNics { vmss: id(8) })
                    }
                    (
                        "microsoft.compute",
                        [
                            "virtualmachinescalesets",
                            _,
                            "virtualmachines",
                            _,
                            "networkinterfaces",
                            _,
                        ],
                    ) => Some(Route::VmssVmNic {
                        vmss: id(8),
                        instance: segs[9].to_owned(),
                        nic: segs[11].to_owned(),
                    }),
                    ("microsoft.compute", ["virtualmachines"]) => Some(Route::VmList { scope }),
                    ("microsoft.compute", ["virtualmachines", _]) => Some(Route::Vm { id: id(8) }),
                    ("microsoft.network", ["networkinterfaces"]) => Some(Route::NicList { scope }),
                    ("microsoft.network", ["networkinterfaces", _]) => {
                        Some(Route::Nic { id: id(8) })
                    }
                    ("microsoft.network", ["loadbalancers"]) => Some(Route::LbList { scope }),
                    ("microsoft.network", ["loadbalancers", _]) => Some(Route::Lb { id: id(8) }),
                    ("microsoft.network", ["publicipprefixes"]) => {
                        Some(Route::PrefixList { scope })
                    }
                    ("microsoft.network", ["publicipprefixes", _]) => {
                        Some(Route::Prefix { id: id(8) })
                    }
                    ("microsoft.network", ["publicipaddresses"]) => Some(Route::PipList { scope }),
                    ("microsoft.network", ["publicipaddresses", _]) => {
                        Some(Route::Pip { id: id(8) })
                    }
                    ("microsoft.network", ["virtualnetworks", _]) => {
                        Some(Route::Vnet { id: id(8) })
                    }
                    ("microsoft.network", ["virtualnetworks", _, "subnets", _]) => {
                        Some(Route::Subnet {
                            vnet: id(8),
                            name: segs[9].to_owned(),
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The provider whose api-versions apply. The VMSS network-interface paths live under
    /// Microsoft.Compute but are served by the network provider, with its own versions.
    pub fn api_provider(&self) -> ApiFamily {
        match self {
            Route::VmssNics { .. } | Route::VmssVmNic { .. } => ApiFamily::VmssNetwork,
            Route::OperationStatus { provider, .. } | Route::OperationResult { provider, .. } => {
                match provider {
                    Provider::Compute => ApiFamily::Compute,
                    Provider::Network => ApiFamily::Network,
                }
            }
            Route::VmssList { .. }
            | Route::Vmss { .. }
            | Route::VmssVms { .. }
            | Route::VmssVm { .. }
            | Route::ManualUpgrade { .. }
            | Route::VmList { .. }
            | Route::Vm { .. } => ApiFamily::Compute,
            _ => ApiFamily::Network,
        }
    }

    /// Azure's operation name for a method on this route, and the kind of call; `Err` with 405
    /// when the route does not serve the method.
    pub fn operation(&self, method: &Method) -> Result<(&'static str, CallKind), ArmError> {
        use CallKind::{Poll, Read, Write};
        let m = method.as_str();
        let found = match (self, m) {
            (Route::VmssList { .. }, "GET") => Some(("VirtualMachineScaleSets_List", Read)),
            (Route::Vmss { .. }, "GET") => Some(("VirtualMachineScaleSets_Get", Read)),
            (Route::Vmss { .. }, "PUT") => Some(("VirtualMachineScaleSets_CreateOrUpdate", Write)),
            (Route::Vmss { .. }, "PATCH") => Some(("VirtualMachineScaleSets_Update", Write)),
            (Route::VmssVms { .. }, "GET") => Some(("VirtualMachineScaleSetVMs_List", Read)),
            (Route::VmssVm { .. }, "GET") => Some(("VirtualMachineScaleSetVMs_Get", Read)),
            (Route::VmssVm { .. }, "PUT") => Some(("VirtualMachineScaleSetVMs_Update", Write)),
            (Route::ManualUpgrade { .. }, "POST") => {
                Some(("VirtualMachineScaleSets_UpdateInstances", Write))
            }
            (Route::VmssNics { .. }, "GET") => Some((
                "NetworkInterfaces_ListVirtualMachineScaleSetNetworkInterfaces",
                Read,
            )),
            (Route::VmssVmNic { .. }, "GET") => Some((
                "NetworkInterfaces_GetVirtualMachineScaleSetNetworkInterface",
                Read,
            )),
            (Route::VmList { .. }, "GET") => Some(("VirtualMachines_List", Read)),
            (Route::Vm { .. }, "GET") => Some(("VirtualMachines_Get", Read)),
            (Route::NicList { .. }, "GET") => Some(("NetworkInterfaces_List", Read)),
            (Route::Nic { .. }, "GET") => Some(("NetworkInterfaces_Get", Read)),
            (Route::Nic { .. }, "PUT") => Some(("NetworkInterfaces_CreateOrUpdate", Write)),
            (Route::LbList { .. }, "GET") => Some(("LoadBalancers_List", Read)),
            (Route::Lb { .. }, "GET") => Some(("LoadBalancers_Get", Read)),
            (Route::Lb { .. }, "PUT") => Some(("LoadBalancers_CreateOrUpdate", Write)),
            (Route::Lb { .. }, "DELETE") => Some(("LoadBalancers_Delete", Write)),
            (Route::PrefixList { .. }, "GET") => Some(("PublicIPPrefixes_List", Read)),
            (Route::Prefix { .. }, "GET") => Some(("PublicIPPrefixes_Get", Read)),
            (Route::Prefix { .. }, "PUT") => Some(("PublicIPPrefixes_CreateOrUpdate", Write)),
            (Route::Prefix { .. }, "DELETE") => Some(("PublicIPPrefixes_Delete", Write)),
            (Route::PipList { .. }, "GET") => Some(("PublicIPAddresses_List", Read)),
            (Route::Pip { .. }, "GET") => Some(("PublicIPAddresses_Get", Read)),
            (Route::Pip { .. }, "PUT") => Some(("PublicIPAddresses_CreateOrUpdate", Write)),
            (Route::Pip { .. }, "DELETE") => Some(("PublicIPAddresses_Delete", Write)),
            (Route::Vnet { .. }, "GET") => Some(("VirtualNetworks_Get", Read)),
            (Route::Subnet { .. }, "GET") => Some(("Subnets_Get", Read)),
            (Route::OperationStatus { .. }, "GET") => Some(("AsyncOperation_GetStatus", Poll)),
            (Route::OperationResult { .. }, "GET") => Some(("AsyncOperation_GetResult", Poll)),
            _ => None,
        };
        // Chosen answer for a method a path does not serve: 405 `MethodNotAllowed`, as ARM's
        // front door answers for methods a resource type does not register.
        found.ok_or_else(|| {
            ArmError::new(
                405,
                "MethodNotAllowed",
                format!("The fake ARM server does not serve {m} on this resource path."),
            )
        })
    }
}

/// The api-version families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFamily {
    /// Microsoft.Compute.
    Compute,
    /// Microsoft.Network.
    Network,
    /// The VMSS network-interface paths (Microsoft.Compute paths served by Microsoft.Network).
    VmssNetwork,
}

impl ApiFamily {
    /// The api-versions the fake accepts.
    pub fn supported(self) -> &'static [&'static str] {
        match self {
            ApiFamily::Compute => &["2024-07-01"],
            ApiFamily::Network => &["2024-03-01"],
            ApiFamily::VmssNetwork => &["2018-10-01"],
        }
    }

    /// The resource type named in api-version errors.
    pub fn type_name(self) -> &'static str {
        match self {
            ApiFamily::Compute => "Microsoft.Compute",
            ApiFamily::Network => "Microsoft.Network",
            ApiFamily::VmssNetwork => "Microsoft.Compute/virtualMachineScaleSets/networkInterfaces",
        }
    }

    /// Checks the `api-version` query parameter the way ARM does: missing is
    /// `MissingApiVersionParameter`, malformed `InvalidApiVersionParameter`, well-formed but not
    /// served `NoRegisteredProviderFound`; all 400, all naming the version.
    pub fn check(self, version: Option<&str>) -> Result<(), ArmError> {
        let supported = self.supported();
        let Some(v) = version else {
            return Err(ArmError::bad_request(
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        };
        if supported.contains(&v) {
            return Ok(());
        }
        if !well_formed(v) {
            return Err(ArmError::bad_request(
                "InvalidApiVersionParameter",
                format!(
                    "The api-version '{v}' is invalid. The supported versions are '{}'.",
                    supported.join(",")
                ),
            ));
        }
        Err(ArmError::bad_request(
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for API version '{v}' and type '{}'. The supported api-versions are '{}'.",
                self.type_name(),
                supported.join(", ")
            ),
        ))
    }
}

fn provider_of(ns: &str) -> Option<Provider> {
    match ns {
        "microsoft.compute" => Some(Provider::Compute),
        "microsoft.network" => Some(Provider::Network),
        _ => None,
    }
}

/// `YYYY-MM-DD` with an optional `-preview`-style suffix.
fn well_formed(v: &str) -> bool {
    let date = v.get(..10).unwrap_or_default();
    let b = date.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && (v.len() == 10 || v[10..].starts_with('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_case_insensitively() {
        let r = Route::parse(
            "/subscriptions/s/resourcegroups/RG/providers/microsoft.network/LOADBALANCERS/MyLb",
        );
        assert_eq!(
            r,
            Some(Route::Lb { id: "/subscriptions/s/resourcegroups/RG/providers/microsoft.network/LOADBALANCERS/MyLb".into() })
        );
        let r = Route::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/v/virtualMachines/3/networkInterfaces/nic",
        );
        assert!(matches!(r, Some(Route::VmssVmNic { ref instance, .. }) if instance == "3"));
        assert_eq!(
            Route::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/x/y"),
            None
        );
    }

    #[test]
    fn api_versions_are_checked_per_family() {
        assert!(ApiFamily::Network.check(Some("2024-03-01")).is_ok());
        let code = |r: Result<(), ArmError>| r.err().map(|e| e.code);
        assert_eq!(
            code(ApiFamily::Network.check(None)).as_deref(),
            Some("MissingApiVersionParameter")
        );
        assert_eq!(
            code(ApiFamily::Network.check(Some("2024-07-01"))).as_deref(),
            Some("NoRegisteredProviderFound")
        );
        assert_eq!(
            code(ApiFamily::Compute.check(Some("latest"))).as_deref(),
            Some("InvalidApiVersionParameter")
        );
        assert!(ApiFamily::VmssNetwork.check(Some("2018-10-01")).is_ok());
    }
}
