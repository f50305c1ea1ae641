//! The host resources a test cluster borrows: cgroups, scratch directories and
//! the kernel settings the kubelet changes. Each is returned on drop, and what
//! a killed test run left behind is swept when the next cluster starts.
//!
//! Everything is named `egt<pid>-c<n>...` after the test process that made it,
//! like the network namespaces of [`crate::netns`], so a sweep can tell a
//! leftover (its process is gone) from a cluster another test is running.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::Error;

const PREFIX: &str = "egt";
const CGROUP_FS: &str = "/sys/fs/cgroup";
/// cgroup v1 hierarchies the kubelet expects its `cgroupRoot` to exist in.
pub(crate) const KUBELET_HIERARCHIES: [&str; 9] = [
    "cpuset", "memory", "pids", "cpu", "cpuacct", "blkio", "devices", "freezer", "systemd",
];
/// Machine-wide settings the kubelet writes at start-up (not per namespace).
const KUBELET_SYSCTLS: [&str; 3] = [
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
];
const SAVED_SYSCTLS: &str = "sysctls.saved";

static CLUSTERS: AtomicU32 = AtomicU32::new(0);
/// Clusters of this process holding the kernel settings (see [`SysctlGuard`]).
static SYSCTL_HOLDERS: Mutex<u32> = Mutex::new(0);

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The directory holding every test cluster's scratch directory.
pub(crate) fn base_dir() -> PathBuf {
    std::env::temp_dir().join("egress-testkit-clusters")
}

/// A fresh, process-unique cluster id such as `egt1234-c0`.
pub(crate) fn next_cluster_id() -> String {
    let n = CLUSTERS.fetch_add(1, Ordering::Relaxed);
    format!("{PREFIX}{}-c{n}", std::process::id())
}

/// The test process that made a resource named `egt<pid>-...`, if the name is ours.
fn owner(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Every cgroup hierarchy mounted under `/sys/fs/cgroup` (v1 controllers, the
/// named `systemd` one and the unified one), as directories.
fn hierarchies() -> Vec<PathBuf> {
    std::fs::read_dir(CGROUP_FS)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_dir() && !p.is_symlink())
                .collect()
        })
        .unwrap_or_default()
}

/// Creates `name` in every hierarchy the kubelet needs, with the parent's
/// CPUs and memory nodes (a new cpuset is empty and would admit no task).
pub(crate) fn create_cgroup(name: &str) -> Result<(), Error> {
    if Path::new(CGROUP_FS).join("cgroup.controllers").exists() {
        return Err(Error::Unsupported(
            "the host uses cgroup v2 only; the test cluster's kubelets are configured for the \
             cgroup v1 hierarchies"
                .into(),
        ));
    }
    for h in KUBELET_HIERARCHIES {
        let dir = Path::new(CGROUP_FS).join(h).join(name);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        if h == "cpuset" {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let parent = Path::new(CGROUP_FS).join(h).join(file);
                let value = std::fs::read_to_string(&parent).map_err(io_err(&parent))?;
                let path = dir.join(file);
                std::fs::write(&path, value.trim()).map_err(io_err(&path))?;
            }
        }
    }
    Ok(())
}

/// Host PIDs of every process in `name` and its children, from the pids hierarchy.
pub(crate) fn cgroup_pids(name: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    let mut stack = vec![Path::new(CGROUP_FS).join("pids").join(name)];
    while let Some(dir) = stack.pop() {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        if let Ok(entries) = std::fs::read_dir(&dir) {
            stack.extend(
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.is_dir()),
            );
        }
    }
    pids
}

/// Kills whatever still runs in `name` and removes it from every hierarchy,
/// deepest directories first. Retries while dying tasks keep a cgroup busy.
pub(crate) fn remove_cgroup(name: &str) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        for pid in cgroup_pids(name) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let mut left = Vec::new();
        for h in hierarchies() {
            let top = h.join(name);
            if top.exists() {
                let mut dirs = Vec::new();
                collect_dirs(&top, &mut dirs);
                // Children sort after their parents; remove in reverse.
                dirs.sort();
                for d in dirs.iter().rev() {
                    let _ = std::fs::remove_dir(d);
                }
                if top.exists() {
                    left.push(top);
                }
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(Error::Io {
                path: left.swap_remove(0),
                source: std::io::Error::other("cgroup still busy after 20 s"),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() {
                collect_dirs(&p, out);
            }
        }
    }
}

/// Mount points at or below `dir`, deepest first.
pub(crate) fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort();
    found.reverse();
    found
}

/// Lazily unmounts everything at or below `dir`, then removes the directory.
pub(crate) fn remove_dir(dir: &Path) {
    for m in mounts_under(dir) {
        let _ = crate::process::run("umount", &["-l", &m.to_string_lossy()]);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Removes what test processes that no longer exist left behind: cgroups,
/// scratch directories (with anything mounted below them), network namespaces
/// and, when no test cluster is running at all, the kernel settings they
/// changed. Network namespaces are swept with [`crate::netns`]'s own sweep.
pub(crate) fn sweep_leftovers() {
    crate::netns::sweep_orphans();
    for h in hierarchies() {
        let Ok(entries) = std::fs::read_dir(&h) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if owner(&name).is_some_and(|pid| !alive(pid)) {
                let _ = remove_cgroup(&name);
            }
        }
    }
    let base = base_dir();
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            if owner(&name).is_some_and(|pid| !alive(pid)) {
                remove_dir(&e.path());
            }
        }
    }
    let holders = SYSCTL_HOLDERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *holders == 0 && !other_live_clusters() {
        restore_sysctls();
    }
}

/// Whether a cluster of another live process exists (its scratch directory does).
fn other_live_clusters() -> bool {
    let me = std::process::id();
    std::fs::read_dir(base_dir()).is_ok_and(|entries| {
        entries.filter_map(Result::ok).any(|e| {
            owner(&e.file_name().to_string_lossy()).is_some_and(|pid| pid != me && alive(pid))
        })
    })
}

fn restore_sysctls() {
    let saved = base_dir().join(SAVED_SYSCTLS);
    let Ok(text) = std::fs::read_to_string(&saved) else {
        return;
    };
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=')
            && KUBELET_SYSCTLS.contains(&key)
        {
            let _ = std::fs::write(Path::new("/proc/sys").join(key), value);
        }
    }
    let _ = std::fs::remove_file(saved);
}

/// Holds the machine-wide kernel settings for one test cluster. The first
/// holder on the machine records their values in a file (so a killed run's
/// changes are undone by the next sweep); the last one writes them back.
#[derive(Debug)]
pub(crate) struct SysctlGuard(());

impl SysctlGuard {
    pub(crate) fn acquire() -> Result<Self, Error> {
        let mut holders = SYSCTL_HOLDERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let saved = base_dir().join(SAVED_SYSCTLS);
        if !saved.exists() {
            let mut text = String::new();
            for key in KUBELET_SYSCTLS {
                let path = Path::new("/proc/sys").join(key);
                let value = std::fs::read_to_string(&path).map_err(io_err(&path))?;
                let _ = writeln!(text, "{key}={}", value.trim());
            }
            std::fs::create_dir_all(base_dir()).map_err(io_err(&base_dir()))?;
            let tmp = saved.with_extension("tmp");
            std::fs::write(&tmp, text).map_err(io_err(&tmp))?;
            std::fs::rename(&tmp, &saved).map_err(io_err(&saved))?;
        }
        *holders += 1;
        Ok(Self(()))
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        let mut holders = SYSCTL_HOLDERS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *holders = holders.saturating_sub(1);
        if *holders == 0 && !other_live_clusters() {
            restore_sysctls();
        }
    }
}

/// Current values of the kernel settings the kubelet changes, as `key=value`.
pub fn kubelet_sysctls() -> Vec<String> {
    KUBELET_SYSCTLS
        .iter()
        .map(|key| {
            let value =
                std::fs::read_to_string(Path::new("/proc/sys").join(key)).unwrap_or_default();
            format!("{key}={}", value.trim())
        })
        .collect()
}
