//! The controller's cloud configuration file (AKS `azure.json` layout).
//!
//! Keys match case-insensitively (`subscriptionId` and `subscriptionID` both
//! work, as with upstream's JSON decoder), string values are trimmed, unknown
//! keys are ignored (the AKS file has many), and defaults follow upstream.
//! One deliberate difference: a workload-identity configuration with neither a
//! managed identity nor a client secret is accepted, where upstream rejects it.

use serde_json::{Map, Value};

use crate::Error;

/// Default name of the internal load balancer.
pub const DEFAULT_LB_NAME: &str = "kubeegressgateway-ilb";
/// Default ARM user agent.
pub const DEFAULT_USER_AGENT: &str = "kube-egress-gateway-controller";

/// How the controller authenticates to Azure.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// Federated workload identity (token file from the environment or config).
    WorkloadIdentity {
        /// Client ID, if configured.
        client_id: Option<String>,
        /// Token file, if configured.
        token_file: Option<String>,
    },
    /// A managed identity; `None` selects the system-assigned one.
    ManagedIdentity {
        /// User-assigned identity client or resource ID.
        user_assigned_id: Option<String>,
    },
    /// A service principal with a secret.
    ClientSecret {
        /// Client ID.
        client_id: String,
        /// The secret, never printed.
        secret: String,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::WorkloadIdentity {
                client_id,
                token_file,
            } => f
                .debug_struct("WorkloadIdentity")
                .field("client_id", client_id)
                .field("token_file", token_file)
                .finish(),
            Self::ManagedIdentity { user_assigned_id } => f
                .debug_struct("ManagedIdentity")
                .field("user_assigned_id", user_assigned_id)
                .finish(),
            Self::ClientSecret { client_id, .. } => f
                .debug_struct("ClientSecret")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
        }
    }
}

/// The validated cloud configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloudConfig {
    /// Azure cloud name, e.g. `AzurePublicCloud`.
    pub cloud: String,
    /// Tenant ID.
    pub tenant_id: String,
    /// Subscription ID.
    pub subscription_id: String,
    /// Region of created resources.
    pub location: String,
    /// Resource group of the gateway pools and managed prefixes.
    pub resource_group: String,
    /// Resource group of the internal load balancer.
    pub load_balancer_resource_group: String,
    /// Name of the internal load balancer.
    pub load_balancer_name: String,
    /// Virtual network of the gateway subnet.
    pub vnet_name: String,
    /// Resource group of the virtual network.
    pub vnet_resource_group: String,
    /// Subnet of the load balancer frontends.
    pub subnet_name: String,
    /// ARM user agent.
    pub user_agent: String,
    /// Resource Manager endpoint: `resourceManagerEndpoint`, or the cloud's.
    pub resource_manager_endpoint: String,
    /// How to authenticate.
    pub credential: Credential,
}

/// Resource Manager endpoint of a named cloud (names as in AKS files).
pub fn cloud_endpoint(cloud: &str) -> Result<&'static str, Error> {
    match cloud.to_ascii_lowercase().as_str() {
        "azurepubliccloud" | "azurecloud" => Ok("https://management.azure.com"),
        "azurechinacloud" => Ok("https://management.chinacloudapi.cn"),
        "azureusgovernmentcloud" | "azureusgovernment" => {
            Ok("https://management.usgovcloudapi.net")
        }
        _ => Err(Error::UnknownCloud(cloud.to_string())),
    }
}

/// Lower-cased key to (original key, value).
struct Fields(Map<String, Value>);

impl Fields {
    fn parse(text: &str) -> Result<Self, Error> {
        let value: Value = serde_json::from_str(text).map_err(Error::ConfigJson)?;
        let Value::Object(map) = value else {
            return Err(Error::ConfigType {
                field: "(top level)".into(),
                expected: "an object",
            });
        };
        Ok(Self(
            map.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        ))
    }

    fn string(&self, key: &str) -> Result<Option<String>, Error> {
        match self.0.get(&key.to_ascii_lowercase()) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string()).filter(|s| !s.is_empty())),
            Some(_) => Err(Error::ConfigType {
                field: key.into(),
                expected: "a string",
            }),
        }
    }

    fn flag(&self, key: &str) -> Result<bool, Error> {
        match self.0.get(&key.to_ascii_lowercase()) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Error::ConfigType {
                field: key.into(),
                expected: "a boolean",
            }),
        }
    }

    fn required(&self, key: &'static str) -> Result<String, Error> {
        self.string(key)?.ok_or(Error::ConfigRequired(key))
    }
}

impl CloudConfig {
    /// Parses and validates the file's text.
    pub fn from_json(text: &str) -> Result<Self, Error> {
        let f = Fields::parse(text)?;
        let resource_group = f.required("resourceGroup")?;
        let credential = if f.flag("useFederatedWorkloadIdentityExtension")? {
            Credential::WorkloadIdentity {
                client_id: f.string("aadClientId")?,
                token_file: f.string("aadFederatedTokenFile")?,
            }
        } else if f.flag("useManagedIdentityExtension")? {
            Credential::ManagedIdentity {
                user_assigned_id: f.string("userAssignedIdentityID")?,
            }
        } else {
            if f.string("userAssignedIdentityID")?.is_some() {
                return Err(Error::ConfigConflict(
                    "userAssignedIdentityID is set but useManagedIdentityExtension is false",
                ));
            }
            Credential::ClientSecret {
                client_id: f.required("aadClientId")?,
                secret: f.required("aadClientSecret")?,
            }
        };
        let cloud = f.required("cloud")?;
        let resource_manager_endpoint = match f.string("resourceManagerEndpoint")? {
            Some(e) => e,
            None => cloud_endpoint(&cloud)?.to_string(),
        };
        Ok(Self {
            cloud,
            resource_manager_endpoint,
            tenant_id: f.string("tenantId")?.unwrap_or_default(),
            subscription_id: f.required("subscriptionId")?,
            location: f.required("location")?,
            load_balancer_resource_group: f
                .string("loadBalancerResourceGroup")?
                .unwrap_or_else(|| resource_group.clone()),
            load_balancer_name: f
                .string("gatewayLoadBalancerName")?
                .unwrap_or_else(|| DEFAULT_LB_NAME.into()),
            vnet_name: f.required("vnetName")?,
            vnet_resource_group: f
                .string("vnetResourceGroup")?
                .unwrap_or_else(|| resource_group.clone()),
            subnet_name: f.required("subnetName")?,
            user_agent: f
                .string("userAgent")?
                .unwrap_or_else(|| DEFAULT_USER_AGENT.into()),
            resource_group,
            credential,
        })
    }

    /// ARM ID of the load-balancer frontend subnet.
    pub fn frontend_subnet_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/virtualNetworks/{}/subnets/{}",
            self.subscription_id, self.vnet_resource_group, self.vnet_name, self.subnet_name
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AKS: &str = r#"{
        "cloud": "AzurePublicCloud", "tenantId": "t", "subscriptionID": " sub ",
        "aadClientId": "msi", "aadClientSecret": "msi", "resourceGroup": "MC_rg",
        "location": "westeurope", "vmType": "vmss", "vnetName": "aks-vnet",
        "vnetResourceGroup": "", "subnetName": "aks-subnet", "useManagedIdentityExtension": true,
        "userAssignedIdentityID": "client-id", "cloudProviderBackoff": true
    }"#;

    #[test]
    fn reads_an_aks_file_with_upstream_defaults() {
        let c = CloudConfig::from_json(AKS).unwrap();
        assert_eq!(
            c.subscription_id, "sub",
            "key case and whitespace are forgiven"
        );
        assert_eq!(c.load_balancer_resource_group, "MC_rg");
        assert_eq!(
            c.vnet_resource_group, "MC_rg",
            "empty string falls back to the default"
        );
        assert_eq!(c.load_balancer_name, "kubeegressgateway-ilb");
        assert_eq!(c.user_agent, "kube-egress-gateway-controller");
        assert_eq!(c.resource_manager_endpoint, "https://management.azure.com");
        assert_eq!(
            c.credential,
            Credential::ManagedIdentity {
                user_assigned_id: Some("client-id".into())
            }
        );
        assert_eq!(
            c.frontend_subnet_id(),
            "/subscriptions/sub/resourceGroups/MC_rg/providers/Microsoft.Network/virtualNetworks/aks-vnet/subnets/aks-subnet"
        );
    }

    #[test]
    fn errors_name_the_field() {
        let no_sub = AKS.replace("\"subscriptionID\": \" sub \",", "");
        assert_eq!(
            CloudConfig::from_json(&no_sub).unwrap_err().to_string(),
            "cloud configuration field subscriptionId is required"
        );
        let bad_type = AKS.replace("\"location\": \"westeurope\"", "\"location\": 3");
        assert!(
            CloudConfig::from_json(&bad_type)
                .unwrap_err()
                .to_string()
                .contains("location must be a string")
        );
        let sp = AKS.replace(
            "\"useManagedIdentityExtension\": true",
            "\"useManagedIdentityExtension\": false",
        );
        assert!(matches!(
            CloudConfig::from_json(&sp),
            Err(Error::ConfigConflict(_))
        ));
        assert!(matches!(
            CloudConfig::from_json("[1]"),
            Err(Error::ConfigType { .. })
        ));
        assert!(matches!(
            CloudConfig::from_json("{"),
            Err(Error::ConfigJson(_))
        ));
    }

    #[test]
    fn other_clouds_need_a_known_name_or_an_endpoint() {
        let china = AKS.replace("AzurePublicCloud", "AzureChinaCloud");
        assert_eq!(
            CloudConfig::from_json(&china)
                .unwrap()
                .resource_manager_endpoint,
            "https://management.chinacloudapi.cn"
        );
        let stack = AKS.replace("AzurePublicCloud", "AzureStackCloud");
        assert!(matches!(
            CloudConfig::from_json(&stack),
            Err(Error::UnknownCloud(_))
        ));
        let stack = stack.replace(
            "\"cloud\":",
            "\"resourceManagerEndpoint\": \"https://management.local.azurestack.external/\", \"cloud\":",
        );
        assert_eq!(
            CloudConfig::from_json(&stack)
                .unwrap()
                .resource_manager_endpoint,
            "https://management.local.azurestack.external/"
        );
    }

    #[test]
    fn secrets_never_reach_debug_output() {
        let sp = AKS
            .replace("\"useManagedIdentityExtension\": true,", "")
            .replace("\"userAssignedIdentityID\": \"client-id\",", "")
            .replace(
                "\"aadClientSecret\": \"msi\"",
                "\"aadClientSecret\": \"s3cr3t\"",
            );
        let c = CloudConfig::from_json(&sp).unwrap();
        assert!(matches!(c.credential, Credential::ClientSecret { .. }));
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn workload_identity_without_secret_is_accepted() {
        let wi = AKS.replace(
            "\"useManagedIdentityExtension\": true",
            "\"useFederatedWorkloadIdentityExtension\": true",
        );
        assert!(matches!(
            CloudConfig::from_json(&wi).unwrap().credential,
            Credential::WorkloadIdentity { .. }
        ));
    }
}
