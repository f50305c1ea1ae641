//! Sandbox records: which pod the container runtime attached in which
//! sandbox (container ID and network namespace), as the runtime named them
//! in a CNI ADD.
//!
//! The node agent binds a pod's tunnel to the sandbox the runtime named,
//! never to an address: an address can be reused by another pod while an
//! old one is still listed. So every ADD leaves a record here, written by
//! the agent when it answers, or by the plugin itself when the agent cannot
//! be reached (failure mode open); a DEL removes it. A restarted agent, or
//! one that learns later that a running pod opts in, finds the pod's sandbox
//! in these records.
//!
//! One file per sandbox, named by its container ID, written to a temporary
//! file and renamed, so a reader never sees half a record. The directory
//! belongs under `/run` (a tmpfs): sandboxes do not survive a reboot, nor
//! should their records.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// The default directory of the records, beside the agent's socket.
pub const DEFAULT_DIR: &str = "/run/egress-gateway/cni/sandboxes";

/// One sandbox as the runtime named it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxRecord {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: String,
    /// `CNI_IFNAME` (the pod's primary interface).
    pub ifname: String,
    /// `K8S_POD_NAMESPACE`.
    pub pod_namespace: String,
    /// `K8S_POD_NAME`.
    pub pod_name: String,
    /// `K8S_POD_UID`, when the runtime passes it (containerd and CRI-O do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_uid: Option<String>,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

/// Whether `id` can name a file of the store (the invocation parser
/// already allows only letters, digits, `.`, `_` and `-`).
fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// The records of one node, in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxStore {
    dir: PathBuf,
}

impl SandboxStore {
    /// The store in `dir` (created on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, container_id: &str) -> Result<PathBuf, Error> {
        if safe_id(container_id) {
            Ok(self.dir.join(format!("{container_id}.json")))
        } else {
            Err(Error::Config(format!(
                "container ID {container_id:?} cannot name a sandbox record"
            )))
        }
    }

    /// Writes (or replaces) the record of `r.container_id`.
    pub fn put(&self, r: &SandboxRecord) -> Result<(), Error> {
        let path = self.path(&r.container_id)?;
        fs::create_dir_all(&self.dir)
            .map_err(io(format!("cannot create {}", self.dir.display())))?;
        let tmp = self.dir.join(format!(".{}.tmp", r.container_id));
        let bytes = serde_json::to_vec(r).map_err(|e| Error::Config(e.to_string()))?;
        let what = || format!("cannot write {}", tmp.display());
        let mut f = fs::File::create(&tmp).map_err(io(what()))?;
        f.write_all(&bytes).map_err(io(what()))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io(format!("cannot rename into {}", path.display())))
    }

    /// The record of `container_id`, if there is one.
    pub fn get(&self, container_id: &str) -> Result<Option<SandboxRecord>, Error> {
        let path = self.path(container_id)?;
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Config(format!("sandbox record {}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(format!("cannot read {}", path.display()))(e)),
        }
    }

    /// Removes the record of `container_id`; absent is success.
    pub fn remove(&self, container_id: &str) -> Result<(), Error> {
        let path = self.path(container_id)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("cannot remove {}", path.display()))(e)),
        }
    }

    /// Every record, oldest write first. An unreadable or malformed file is
    /// skipped (and named in the second list) rather than failing the rest.
    pub fn list(&self) -> Result<(Vec<SandboxRecord>, Vec<PathBuf>), Error> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), Vec::new()));
            }
            Err(e) => return Err(io(format!("cannot list {}", self.dir.display()))(e)),
        };
        let mut found = Vec::new();
        let mut bad = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            // Only the store's own names (`<id>.json`); temporary files start with '.'.
            let json = Path::new(&name).extension().is_some_and(|e| e == "json");
            if name.starts_with('.') || !json {
                continue;
            }
            let modified = entry.metadata().and_then(|m| m.modified()).ok();
            match fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<SandboxRecord>(&b).ok())
            {
                Some(r) if format!("{}.json", r.container_id) == name => {
                    found.push((modified, r));
                }
                _ => bad.push(path),
            }
        }
        found.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.container_id.cmp(&b.1.container_id))
        });
        Ok((found.into_iter().map(|(_, r)| r).collect(), bad))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn record(id: &str, pod: &str) -> SandboxRecord {
        SandboxRecord {
            container_id: id.into(),
            netns: format!("/var/run/netns/cni-{id}"),
            ifname: "eth0".into(),
            pod_namespace: "apps".into(),
            pod_name: pod.into(),
            pod_uid: Some(format!("uid-{pod}")),
        }
    }

    #[test]
    fn records_are_written_read_listed_and_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SandboxStore::new(tmp.path().join("s"));
        assert_eq!(store.list().unwrap(), (vec![], vec![]));
        assert_eq!(store.get("abc").unwrap(), None);
        store.put(&record("abc", "web")).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        store.put(&record("def", "db")).unwrap();
        assert_eq!(store.get("abc").unwrap(), Some(record("abc", "web")));
        let (all, bad) = store.list().unwrap();
        assert!(bad.is_empty());
        assert_eq!(all, vec![record("abc", "web"), record("def", "db")]);
        store.remove("abc").unwrap();
        store.remove("abc").unwrap();
        assert_eq!(store.list().unwrap().0, vec![record("def", "db")]);
    }

    #[test]
    fn a_malformed_record_is_named_and_the_rest_still_read() {
        let tmp = tempfile::tempdir().unwrap();
        let store = SandboxStore::new(tmp.path());
        store.put(&record("good", "web")).unwrap();
        fs::write(tmp.path().join("broken.json"), b"{not json").unwrap();
        // A record whose file name is not its container ID is not trusted.
        fs::write(
            tmp.path().join("other.json"),
            serde_json::to_vec(&record("elsewhere", "x")).unwrap(),
        )
        .unwrap();
        let (all, mut bad) = store.list().unwrap();
        bad.sort();
        assert_eq!(all, vec![record("good", "web")]);
        assert_eq!(
            bad,
            vec![
                tmp.path().join("broken.json"),
                tmp.path().join("other.json")
            ]
        );
    }

    #[test]
    fn container_ids_that_are_not_file_names_are_refused() {
        let store = SandboxStore::new("/nonexistent");
        for id in ["", "..", "a/b", "../x"] {
            assert!(store.get(id).is_err(), "{id:?}");
            assert!(store.remove(id).is_err(), "{id:?}");
        }
    }
}
