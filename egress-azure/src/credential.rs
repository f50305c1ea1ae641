//! How the ARM client gets its bearer token.
//!
//! In a cluster the credential comes from the cloud configuration, through
//! `azure_identity`: workload identity (which re-reads the projected token
//! file as it rotates), a managed identity (system-assigned, or user-assigned
//! by client or resource ID), or a client secret. The token cache lives in
//! those credentials. For the fake ARM server and local runs there is a
//! static bearer token, a kind of its own that is never chosen by default.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Once};

use azure_core::cloud::CloudConfiguration;
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, UserAssignedId, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};

use crate::Error;
use crate::config::{CloudConfig, Credential};

/// Installs the process's TLS crypto provider (ring) once. Both this crate's
/// HTTP client and `azure_identity`'s use rustls without a built-in provider.
pub(crate) fn ensure_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another component installed one first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The source of the ARM bearer token.
#[derive(Clone)]
pub enum ArmCredential {
    /// A fixed token: for the fake ARM server and local runs only.
    Static(Secret),
    /// An `azure_identity` credential.
    Azure {
        /// Which kind, for messages.
        kind: &'static str,
        /// The credential.
        credential: Arc<dyn TokenCredential>,
    },
}

impl fmt::Debug for ArmCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Static(_) => f.write_str("ArmCredential::Static(..)"),
            Self::Azure { kind, .. } => write!(f, "ArmCredential::Azure({kind})"),
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn cloud_of(name: &str) -> CloudConfiguration {
    match name.to_ascii_lowercase().as_str() {
        "azurechinacloud" => CloudConfiguration::AzureChina,
        "azureusgovernmentcloud" | "azureusgovernment" => CloudConfiguration::AzureGovernment,
        _ => CloudConfiguration::AzurePublic,
    }
}

fn build_error(kind: &'static str, e: &azure_core::Error) -> Error {
    Error::Credential {
        kind,
        message: e.to_string(),
    }
}

impl ArmCredential {
    /// A fixed bearer token.
    pub fn static_token(token: impl Into<String>) -> Self {
        Self::Static(Secret::new(token.into()))
    }

    /// The credential the cloud configuration names. For workload identity,
    /// the `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and `AZURE_FEDERATED_TOKEN_FILE`
    /// variables the webhook injects take precedence, as upstream does.
    pub fn from_config(config: &CloudConfig) -> Result<Self, Error> {
        ensure_crypto_provider();
        let options = ClientOptions {
            cloud: Some(Arc::new(cloud_of(&config.cloud))),
            ..ClientOptions::default()
        };
        let tenant = Some(config.tenant_id.clone()).filter(|t| !t.is_empty());
        match &config.credential {
            Credential::WorkloadIdentity {
                client_id,
                token_file,
            } => {
                const KIND: &str = "workload identity";
                let opts = WorkloadIdentityCredentialOptions {
                    credential_options: azure_identity::ClientAssertionCredentialOptions {
                        client_options: options,
                    },
                    client_id: env("AZURE_CLIENT_ID").or_else(|| client_id.clone()),
                    tenant_id: env("AZURE_TENANT_ID").or(tenant),
                    token_file_path: env("AZURE_FEDERATED_TOKEN_FILE")
                        .or_else(|| token_file.clone())
                        .map(PathBuf::from),
                };
                let credential = WorkloadIdentityCredential::new(Some(opts))
                    .map_err(|e| build_error(KIND, &e))?;
                Ok(Self::Azure {
                    kind: KIND,
                    credential,
                })
            }
            Credential::ManagedIdentity { user_assigned_id } => {
                const KIND: &str = "managed identity";
                let user_assigned_id = user_assigned_id.as_ref().map(|id| {
                    if id.starts_with('/') {
                        UserAssignedId::ResourceId(id.clone())
                    } else {
                        UserAssignedId::ClientId(id.clone())
                    }
                });
                let opts = ManagedIdentityCredentialOptions {
                    user_assigned_id,
                    client_options: options,
                };
                let credential = ManagedIdentityCredential::new(Some(opts))
                    .map_err(|e| build_error(KIND, &e))?;
                Ok(Self::Azure {
                    kind: KIND,
                    credential,
                })
            }
            Credential::ClientSecret { client_id, secret } => {
                const KIND: &str = "client secret";
                let tenant = tenant.ok_or(Error::ConfigRequired("tenantId"))?;
                let credential = ClientSecretCredential::new(
                    &tenant,
                    client_id.clone(),
                    Secret::new(secret.clone()),
                    Some(ClientSecretCredentialOptions {
                        client_options: options,
                    }),
                )
                .map_err(|e| build_error(KIND, &e))?;
                Ok(Self::Azure {
                    kind: KIND,
                    credential,
                })
            }
        }
    }

    /// A token for `scope`, kept out of every log and message.
    pub(crate) async fn token(&self, scope: &str) -> Result<Secret, Error> {
        match self {
            Self::Static(token) => Ok(token.clone()),
            Self::Azure { kind, credential } => credential
                .get_token(&[scope], None)
                .await
                .map(|t| t.token)
                .map_err(|e| build_error(kind, &e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(credential: Credential) -> CloudConfig {
        CloudConfig {
            cloud: "AzurePublicCloud".into(),
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            subscription_id: "s".into(),
            location: "l".into(),
            resource_group: "rg".into(),
            load_balancer_resource_group: "rg".into(),
            load_balancer_name: "lb".into(),
            vnet_name: "v".into(),
            vnet_resource_group: "rg".into(),
            subnet_name: "sn".into(),
            user_agent: "ua".into(),
            resource_manager_endpoint: "https://management.azure.com".into(),
            credential,
        }
    }

    #[test]
    fn each_configured_kind_builds_and_hides_its_secret() {
        let secret = ArmCredential::from_config(&config(Credential::ClientSecret {
            client_id: "app".into(),
            secret: "s3cr3t-value".into(),
        }))
        .unwrap();
        assert!(!format!("{secret:?}").contains("s3cr3t"));
        assert!(matches!(
            secret,
            ArmCredential::Azure {
                kind: "client secret",
                ..
            }
        ));

        let msi = ArmCredential::from_config(&config(Credential::ManagedIdentity {
            user_assigned_id: Some("0000-client".into()),
        }))
        .unwrap();
        assert!(matches!(
            msi,
            ArmCredential::Azure {
                kind: "managed identity",
                ..
            }
        ));

        let dir = std::env::temp_dir().join(format!("egress-azure-wi-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "projected-token").unwrap();
        let wi = ArmCredential::from_config(&config(Credential::WorkloadIdentity {
            client_id: Some("wi-client".into()),
            token_file: Some(file.display().to_string()),
        }));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(
            wi.unwrap(),
            ArmCredential::Azure {
                kind: "workload identity",
                ..
            }
        ));

        let st = ArmCredential::static_token("fake-token");
        assert_eq!(format!("{st:?}"), "ArmCredential::Static(..)");
    }

    #[test]
    fn a_client_secret_without_tenant_is_refused_by_name() {
        let mut c = config(Credential::ClientSecret {
            client_id: "app".into(),
            secret: "x".into(),
        });
        c.tenant_id.clear();
        assert_eq!(
            ArmCredential::from_config(&c).unwrap_err().to_string(),
            "cloud configuration field tenantId is required"
        );
    }
}
