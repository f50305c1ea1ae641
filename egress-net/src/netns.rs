//! Work inside a network namespace.
//!
//! Netlink sockets and child processes belong to the namespace of the thread
//! that creates them. A [`NsWorker`] is one thread parked in a namespace: it
//! opens the namespace's rtnetlink connection (which then serves requests from
//! any thread) and runs the blocking calls that must happen inside it (nft,
//! sysctl, starting wireguard-go, the kernel WireGuard API).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use nix::sched::{CloneFlags, setns};
use tokio::sync::oneshot;

use crate::Error;

/// Which network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NsRef {
    /// The namespace the process was started in.
    Current,
    /// A namespace bound to a file, such as `/var/run/netns/<name>`.
    Path(PathBuf),
}

impl NsRef {
    fn open(&self) -> Result<File, Error> {
        let path = match self {
            Self::Current => PathBuf::from("/proc/self/ns/net"),
            Self::Path(p) => p.clone(),
        };
        File::open(&path).map_err(|source| Error::Netns { path, source })
    }

    /// A printable name.
    pub fn describe(&self) -> String {
        match self {
            Self::Current => "the daemon's own namespace".to_string(),
            Self::Path(p) => p.display().to_string(),
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// A thread parked in a network namespace, with the namespace's rtnetlink
/// handle and an open file for moving links into it.
#[derive(Debug)]
pub struct NsWorker {
    jobs: mpsc::Sender<Job>,
    handle: rtnetlink::Handle,
    file: File,
    ns: NsRef,
}

impl NsWorker {
    /// Starts the worker. Must be called inside a Tokio runtime, which drives
    /// the netlink connection.
    pub async fn start(ns: NsRef) -> Result<Self, Error> {
        let file = ns.open()?;
        let thread_file = file.try_clone().map_err(|source| Error::Netns {
            path: PathBuf::from(ns.describe()),
            source,
        })?;
        let runtime = tokio::runtime::Handle::current();
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let describe = ns.describe();
        std::thread::Builder::new()
            .name("egress-netns".into())
            .spawn(move || {
                let entered = setns(thread_file.as_fd(), CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::Netns {
                        path: PathBuf::from(&describe),
                        source: e.into(),
                    })
                    .and_then(|()| {
                        let _guard = runtime.enter();
                        rtnetlink::new_connection().map_err(|source| Error::Netns {
                            path: PathBuf::from(&describe),
                            source,
                        })
                    });
                match entered {
                    Ok((conn, handle, _)) => {
                        runtime.spawn(conn);
                        let _ = ready_tx.send(Ok(handle));
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                }
                let _guard = runtime.enter();
                while let Ok(job) = rx.recv() {
                    job();
                }
            })
            .map_err(|source| Error::Netns {
                path: PathBuf::from(ns.describe()),
                source,
            })?;
        let handle = ready_rx.await.map_err(|_| Error::WorkerGone)??;
        Ok(Self {
            jobs,
            handle,
            file,
            ns,
        })
    }

    /// Runs `f` on the worker thread, inside the namespace.
    pub async fn run<F, R>(&self, f: F) -> Result<R, Error>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = tx.send(f());
            }))
            .map_err(|_| Error::WorkerGone)?;
        rx.await.map_err(|_| Error::WorkerGone)
    }

    /// The namespace's rtnetlink handle.
    pub fn rtnl(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// A file descriptor naming the namespace, for moving links into it.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Which namespace this is.
    pub fn ns(&self) -> &NsRef {
        &self.ns
    }
}

/// Creates a named network namespace at `path` (as `ip netns add` does) if
/// nothing is bound there yet. Returns whether it was created.
pub fn ensure_named(path: &Path) -> Result<bool, Error> {
    use nix::mount::{MsFlags, mount};
    let err = |source: std::io::Error| Error::Netns {
        path: path.to_path_buf(),
        source,
    };
    if File::open(path).is_ok_and(|f| is_netns(&f)) {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(err)?;
    let target = path.to_path_buf();
    // unshare moves only the calling thread, so use a short-lived one.
    std::thread::spawn(move || -> Result<(), Error> {
        let err = |e: nix::Error| Error::Netns {
            path: target.clone(),
            source: e.into(),
        };
        nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(err)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(err)
    })
    .join()
    .map_err(|_| Error::WorkerGone)??;
    Ok(true)
}

/// Unbinds and removes a named network namespace; absent is success.
pub fn remove_named(path: &Path) -> Result<(), Error> {
    if !path.exists() {
        return Ok(());
    }
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    std::fs::remove_file(path).map_err(|source| Error::Netns {
        path: path.to_path_buf(),
        source,
    })
}

fn is_netns(f: &File) -> bool {
    // A bound namespace file reads as an nsfs inode; a plain file does not
    // let setns-style ioctls through. Checking the filesystem magic is enough.
    nix::sys::statfs::fstatfs(f).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}
