//! Network-namespace topologies for dataplane tests.
//!
//! Every namespace is named `egt<pid>-<n>-<label>` and deleted when its
//! [`Netns`] handle drops, so a failing or panicking test leaves nothing
//! behind. Namespaces left by a test process that was killed outright are
//! swept the next time any test creates one. Nothing here is ever linked to
//! the host's own interfaces.

use std::fs::File;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use nix::sched::{CloneFlags, setns};

use crate::Error;
use crate::process::run;

const PREFIX: &str = "egt";
static COUNTER: AtomicU32 = AtomicU32::new(0);
static SWEEP: Once = Once::new();

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a fresh namespace with loopback up. `label` only helps humans
    /// reading `ip netns list` while a test runs.
    pub fn create(label: &str) -> Result<Self, Error> {
        SWEEP.call_once(sweep_orphans);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{label}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace name as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n <ns> <args>`.
    pub fn ip(&self, args: &[&str]) -> Result<String, Error> {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Runs a program inside the namespace (`ip netns exec`).
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String, Error> {
        let mut full = vec!["netns", "exec", self.name.as_str(), program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// Sets a sysctl inside the namespace, e.g. `net.ipv4.ip_forward`.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), Error> {
        self.exec("sysctl", &["-q", "-w", &format!("{key}={value}")])
            .map(drop)
    }

    /// Adds an address to an interface in this namespace.
    pub fn addr(&self, dev: &str, cidr: &str) -> Result<(), Error> {
        self.ip(&["addr", "add", cidr, "dev", dev]).map(drop)
    }

    /// Adds a route, given as `ip route add` arguments.
    pub fn route(&self, spec: &[&str]) -> Result<(), Error> {
        let mut args = vec!["route", "add"];
        args.extend_from_slice(spec);
        self.ip(&args).map(drop)
    }

    /// Runs `f` on a new thread that has entered this namespace. Sockets,
    /// netlink requests, TUN devices and child processes created on that
    /// thread (and threads it spawns) belong to the namespace.
    pub fn spawn<F, R>(&self, f: F) -> JoinHandle<Result<R, Error>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let name = self.name.clone();
        std::thread::spawn(move || {
            enter(&name)?;
            Ok(f())
        })
    }

    /// Like [`Netns::spawn`], but waits for the result. A panic inside `f` is
    /// re-raised in the caller so the test fails with its message.
    pub fn run<F, R>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match self.spawn(f).join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Processes started with `exec` could keep the namespace alive.
        if let Ok(pids) = run("ip", &["netns", "pids", &self.name]) {
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// Connects two namespaces with a veth pair and addresses both ends.
/// Interface names are chosen by the caller (at most 15 bytes); they only
/// need to be unique within each namespace.
pub fn veth(
    a: &Netns,
    a_dev: &str,
    a_cidr: &str,
    b: &Netns,
    b_dev: &str,
    b_cidr: &str,
) -> Result<(), Error> {
    // Created directly in the target namespaces, so the names never touch the
    // host's namespace and parallel tests cannot collide.
    run(
        "ip",
        &[
            "link", "add", a_dev, "netns", &a.name, "type", "veth", "peer", "name", b_dev, "netns",
            &b.name,
        ],
    )?;
    for (ns, dev, cidr) in [(a, a_dev, a_cidr), (b, b_dev, b_cidr)] {
        ns.addr(dev, cidr)?;
        ns.ip(&["link", "set", dev, "up"])?;
    }
    Ok(())
}

pub(crate) fn enter(name: &str) -> Result<(), Error> {
    let err = |source| Error::Setns {
        name: name.to_string(),
        source,
    };
    let file = File::open(format!("/var/run/netns/{name}")).map_err(err)?;
    setns(file, CloneFlags::CLONE_NEWNET).map_err(|e| err(e.into()))
}

/// Deletes namespaces whose creating test process no longer exists.
pub(crate) fn sweep_orphans() {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run("ip", &["netns", "del", name]);
        }
    }
}
