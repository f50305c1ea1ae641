//! Renders the CRD manifests from the Rust types.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::Error;
use crate::crd::{
    GatewayLBConfiguration, GatewayStatus, GatewayVMConfiguration, PodEndpoint,
    StaticGatewayConfiguration,
};

/// All five CRDs, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        StaticGatewayConfiguration::crd(),
        GatewayLBConfiguration::crd(),
        GatewayVMConfiguration::crd(),
        GatewayStatus::crd(),
        PodEndpoint::crd(),
    ]
}

/// Manifest file name to YAML text, one file per CRD.
pub fn manifests() -> Result<BTreeMap<String, String>, Error> {
    crds()
        .into_iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            let body = serde_yaml::to_string(&crd).map_err(|source| Error::Render {
                name: name.clone(),
                source,
            })?;
            Ok((
                format!("{name}.yaml"),
                format!(
                    "# Generated from the Rust types by `egressctl crds`; do not edit.\n{body}"
                ),
            ))
        })
        .collect()
}

/// Writes every manifest into `dir`, replacing what is there.
pub fn write(dir: &Path) -> Result<Vec<String>, Error> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let manifests = manifests()?;
    for (file, text) in &manifests {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|source| Error::Io { path, source })?;
    }
    Ok(manifests.into_keys().collect())
}

/// Fails with [`Error::Stale`] unless `dir` holds exactly the generated manifests.
pub fn check(dir: &Path) -> Result<(), Error> {
    let manifests = manifests()?;
    let mut stale = Vec::new();
    for (file, text) in &manifests {
        let path = dir.join(file);
        match std::fs::read_to_string(&path) {
            Ok(on_disk) if on_disk == *text => {}
            Ok(_) => stale.push(format!("{file} differs")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                stale.push(format!("{file} missing"));
            }
            Err(source) => return Err(Error::Io { path, source }),
        }
    }
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_yaml = std::path::Path::new(&name)
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("yaml"));
        if is_yaml && !manifests.contains_key(&name) {
            stale.push(format!("{name} unexpected"));
        }
    }
    if stale.is_empty() {
        Ok(())
    } else {
        Err(Error::Stale { files: stale })
    }
}
