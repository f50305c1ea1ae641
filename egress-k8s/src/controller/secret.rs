//! The key Secret `sgw-<SGC UID>`, as upstream writes it: in the
//! controller's namespace, labelled with its configuration's namespace and
//! name, data `PrivateKey` and `PublicKey` holding the base64 key text, no
//! owner reference. An existing key is never rotated; a missing one is made.

use std::collections::BTreeMap;

use egress_core::Error as CoreError;
use egress_core::model::{ConfigId, SecretRef};
use egress_core::names::key_secret_name;
use egress_core::traits::KeyInfo;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{Api, Patch, PostParams};
use kube::runtime::reflector::ObjectRef;
use serde_json::json;

use super::cluster::{KubeCluster, kube_err};
use super::keys::KeyPair;
use super::stores::{LABEL_OWNER_NAME, LABEL_OWNER_NAMESPACE};

/// Data key of the private key.
pub const PRIVATE_KEY: &str = "PrivateKey";
/// Data key of the public key.
pub const PUBLIC_KEY: &str = "PublicKey";

/// The public key a Secret holds, when its private key is usable. A missing
/// or wrong `PublicKey` is derived again from the private key.
fn public_key(s: &Secret) -> Option<String> {
    let data = s.data.as_ref()?;
    let private = data.get(PRIVATE_KEY)?;
    let derived = KeyPair::public_of(&private.0)?;
    Some(derived)
}

fn labels_ok(s: &Secret, id: &ConfigId) -> bool {
    let l = s.labels();
    l.get(LABEL_OWNER_NAMESPACE) == Some(&id.namespace) && l.get(LABEL_OWNER_NAME) == Some(&id.name)
}

fn stored_public_ok(s: &Secret, public: &str) -> bool {
    s.data
        .as_ref()
        .and_then(|d| d.get(PUBLIC_KEY))
        .is_some_and(|p| p.0 == public.as_bytes())
}

impl KubeCluster {
    #[allow(clippy::too_many_lines)] // one read-create-or-repair sequence
    pub(super) async fn key_secret(&self, id: &ConfigId) -> Result<KeyInfo, CoreError> {
        let op = "ensure_key_secret";
        let name = key_secret_name(&id.uid);
        let object = format!("Secret {}/{name}", self.secret_namespace);
        let info = |public: String| KeyInfo {
            secret: SecretRef {
                namespace: self.secret_namespace.clone(),
                name: name.clone(),
            },
            public_key: public,
        };
        let cached = self
            .stores
            .secrets
            .get(&ObjectRef::new(&name).within(&self.secret_namespace));
        if let Some(s) = &cached
            && let Some(public) = public_key(s)
            && labels_ok(s, id)
            && stored_public_ok(s, &public)
        {
            return Ok(info(public));
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &self.secret_namespace);
        let fetched = api
            .get_opt(&name)
            .await
            .map_err(kube_err(op, object.clone()))?;
        let current = if let Some(s) = fetched {
            s
        } else {
            {
                let key = KeyPair::generate();
                let secret = Secret {
                    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(self.secret_namespace.clone()),
                        labels: Some(BTreeMap::from([
                            (LABEL_OWNER_NAMESPACE.to_string(), id.namespace.clone()),
                            (LABEL_OWNER_NAME.to_string(), id.name.clone()),
                        ])),
                        ..Default::default()
                    },
                    data: Some(BTreeMap::from([
                        (
                            PRIVATE_KEY.to_string(),
                            ByteString(key.private.into_bytes()),
                        ),
                        (
                            PUBLIC_KEY.to_string(),
                            ByteString(key.public.clone().into_bytes()),
                        ),
                    ])),
                    ..Secret::default()
                };
                self.count("create_key_secret");
                match api.create(&PostParams::default(), &secret).await {
                    Ok(_) => {
                        tracing::info!(config = %id, secret = %name, "generated the gateway key pair");
                        return Ok(info(key.public));
                    }
                    Err(e) if matches!(&e, kube::Error::Api(s) if s.code == 409) => {
                        api.get(&name).await.map_err(kube_err(op, object.clone()))?
                    }
                    Err(e) => return Err(kube_err(op, object)(e)),
                }
            }
        };
        // It exists: fix labels, a missing or wrong public key, or make a key
        // when it holds none (as upstream does).
        let mut data = serde_json::Map::new();
        let public = if let Some(public) = public_key(&current) {
            if !stored_public_ok(&current, &public) {
                data.insert(
                    PUBLIC_KEY.into(),
                    json!(ByteString(public.clone().into_bytes())),
                );
            }
            public
        } else {
            let key = KeyPair::generate();
            data.insert(
                PRIVATE_KEY.into(),
                json!(ByteString(key.private.into_bytes())),
            );
            data.insert(
                PUBLIC_KEY.into(),
                json!(ByteString(key.public.clone().into_bytes())),
            );
            tracing::info!(config = %id, secret = %name, "generated the gateway key pair");
            key.public
        };
        if data.is_empty() && labels_ok(&current, id) {
            return Ok(info(public));
        }
        let patch = json!({
            "metadata": {
                "resourceVersion": current.resource_version(),
                "labels": {LABEL_OWNER_NAMESPACE: id.namespace, LABEL_OWNER_NAME: id.name},
            },
            "data": data,
        });
        self.count("update_key_secret");
        api.patch(&name, &Self::params(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err(op, object))?;
        Ok(info(public))
    }
}
