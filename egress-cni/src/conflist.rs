//! Installing the chained configuration beside the node's primary one.
//!
//! The primary file is never written. The chained conflist (the primary's
//! plugins followed by ours) goes into a file of its own whose name sorts
//! first, so the runtime picks it; it is written to a temporary file and
//! renamed into place. If a file of that name already existed and was not
//! ours, its bytes are kept in a backup and put back on uninstall, so the
//! directory ends exactly as it was found. A primary configuration that is
//! missing or not valid JSON is reported and nothing is written; if our
//! chained file is already there it is withdrawn first (as [`uninstall`]
//! does), because it is a copy of a primary that is gone: left in place it
//! would sort first and the runtime would keep wiring pods into a network
//! the node no longer has. The next [`install`] after the primary is back
//! chains it again.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::Error;

/// The key our conflist carries so it is recognised as ours.
pub const OWNER_KEY: &str = "egressGatewayChainedFrom";

/// Where the chained configuration goes and where backups are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The CNI configuration directory (`/etc/cni/net.d`).
    pub dir: PathBuf,
    /// Our file name; it must sort before the primary's.
    pub file: String,
    /// A directory outside `dir` for the backup of a replaced file.
    pub backup_dir: PathBuf,
}

impl Layout {
    fn ours(&self) -> PathBuf {
        self.dir.join(&self.file)
    }

    fn backup(&self) -> PathBuf {
        self.backup_dir.join(&self.file)
    }
}

/// What [`install`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    /// The primary configuration chained from.
    pub primary: PathBuf,
    /// Whether a foreign file of our name was backed up.
    pub backed_up: bool,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { what, source }
}

fn is_config(name: &str) -> bool {
    [".conflist", ".conf", ".json"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// The primary configuration: the first file by name (regular or a symlink
/// to one) with a CNI extension, other than ours.
pub fn find_primary(layout: &Layout) -> Result<PathBuf, Error> {
    let mut names: Vec<String> = fs::read_dir(&layout.dir)
        .map_err(io(format!("cannot list {}", layout.dir.display())))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_config(n) && !n.eq_ignore_ascii_case(&layout.file))
        .filter(|n| layout.dir.join(n).metadata().is_ok_and(|m| m.is_file()))
        .collect();
    names.sort();
    names.first().map(|n| layout.dir.join(n)).ok_or_else(|| {
        Error::Config(format!(
            "no primary CNI configuration in {}: the node's network plugin is not installed yet",
            layout.dir.display()
        ))
    })
}

/// The chained conflist: the primary's plugins, then `plugin`, marked as
/// ours. A single-plugin `.conf` is wrapped into a list.
pub fn chain(primary_name: &str, primary: &[u8], plugin: &Value) -> Result<Vec<u8>, Error> {
    let bad = |why: &str| Error::Config(format!("primary CNI configuration {primary_name}: {why}"));
    let value: Value = serde_json::from_slice(primary).map_err(|e| bad(&e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(bad("not a JSON object"));
    };
    let version = obj
        .get("cniVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no cniVersion"))?
        .to_string();
    let name = obj
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no name"))?
        .to_string();
    let mut plugins = match obj.get("plugins") {
        Some(Value::Array(list)) if !list.is_empty() => list.clone(),
        Some(_) => return Err(bad("\"plugins\" is not a non-empty list")),
        None if obj.contains_key("type") => {
            let mut single = obj.clone();
            single.remove("cniVersion");
            single.remove("name");
            vec![Value::Object(single)]
        }
        None => return Err(bad("neither \"plugins\" nor \"type\"")),
    };
    let our_type = plugin.get("type").cloned();
    plugins.retain(|p| p.get("type") != our_type.as_ref());
    plugins.push(plugin.clone());
    let mut out = Map::new();
    out.insert("cniVersion".into(), Value::String(version));
    out.insert("name".into(), Value::String(name));
    if let Some(d) = obj.get("disableCheck") {
        out.insert("disableCheck".into(), d.clone());
    }
    out.insert("plugins".into(), Value::Array(plugins));
    out.insert(OWNER_KEY.into(), Value::String(primary_name.to_string()));
    let mut text =
        serde_json::to_vec_pretty(&Value::Object(out)).map_err(|e| Error::Config(e.to_string()))?;
    text.push(b'\n');
    Ok(text)
}

fn is_ours(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes).is_ok_and(|v| v.get(OWNER_KEY).is_some())
}

/// Writes `bytes` to `path` atomically: a temporary file beside it (an
/// extension the runtime ignores), synced, then renamed over.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension("egress-tmp");
    let what = || format!("cannot write {}", tmp.display());
    let mut f = fs::File::create(&tmp).map_err(io(what()))?;
    f.write_all(bytes).map_err(io(what()))?;
    f.sync_all().map_err(io(what()))?;
    fs::rename(&tmp, path).map_err(io(format!("cannot rename into {}", path.display())))
}

/// Installs (or refreshes) the chained configuration. When there is no
/// usable primary (none left, or it cannot be read or parsed) our chained
/// file is withdrawn and the error says so ([`Error::Withdrawn`]).
pub fn install(layout: &Layout, plugin: &Value) -> Result<Installed, Error> {
    let primary = match find_primary(layout) {
        Ok(p) => p,
        // The directory cannot even be listed: nothing is known about the
        // primary, so ours stays as it is.
        Err(e @ Error::Io { .. }) => return Err(e),
        Err(e) => return Err(withdraw(layout, e)),
    };
    let primary_name = primary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let chained = fs::read(&primary)
        .map_err(io(format!("cannot read {}", primary.display())))
        .and_then(|bytes| chain(&primary_name, &bytes, plugin));
    let chained = match chained {
        Ok(c) => c,
        Err(e) => return Err(withdraw(layout, e)),
    };
    let ours = layout.ours();
    let mut backed_up = false;
    match fs::read(&ours) {
        Ok(existing) if !is_ours(&existing) => {
            fs::create_dir_all(&layout.backup_dir)
                .map_err(io(format!("cannot create {}", layout.backup_dir.display())))?;
            if !layout.backup().exists() {
                write_atomic(&layout.backup(), &existing)?;
            }
            backed_up = true;
        }
        Ok(existing) if existing == chained => {
            return Ok(Installed { primary, backed_up });
        }
        _ => {}
    }
    write_atomic(&ours, &chained)?;
    Ok(Installed { primary, backed_up })
}

/// Withdraws our chained file (as [`uninstall`]) because the primary is not
/// usable for `reason`; the error to report. Nothing of ours installed:
/// `reason` itself.
fn withdraw(layout: &Layout, reason: Error) -> Error {
    let ours = layout.ours();
    let installed = layout.backup().exists() || fs::read(&ours).is_ok_and(|b| is_ours(&b));
    if !installed {
        return reason;
    }
    match uninstall(layout) {
        Ok(()) => Error::Withdrawn {
            file: ours,
            reason: Box::new(reason),
        },
        // Both are worth reading: why it had to go, and why it could not.
        Err(e) => Error::Config(format!(
            "{reason}; and the chained configuration {} could not be withdrawn: {e}",
            ours.display()
        )),
    }
}

/// Removes the chained configuration and puts back what it replaced, byte
/// for byte. A configuration that is not ours is left alone.
pub fn uninstall(layout: &Layout) -> Result<(), Error> {
    let ours = layout.ours();
    let backup = layout.backup();
    match fs::read(&backup) {
        Ok(original) => {
            write_atomic(&ours, &original)?;
            fs::remove_file(&backup).map_err(io(format!("cannot remove {}", backup.display())))
        }
        Err(_) => match fs::read(&ours) {
            Ok(existing) if is_ours(&existing) => {
                fs::remove_file(&ours).map_err(io(format!("cannot remove {}", ours.display())))
            }
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod withdraw_tests;
