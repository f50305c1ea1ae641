//! Child processes that cannot outlive the test that started them.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::Error;

/// A server process killed (with its whole process group) on drop.
#[derive(Debug)]
pub(crate) struct Guarded {
    child: Child,
    log: PathBuf,
    what: &'static str,
}

impl Guarded {
    /// Spawns `cmd` with its output going to `log`.
    pub(crate) fn spawn(what: &'static str, mut cmd: Command, log: &Path) -> Result<Self, Error> {
        let io = |source| Error::Io {
            path: log.to_path_buf(),
            source,
        };
        let out = File::create(log).map_err(io)?;
        let err = out.try_clone().map_err(io)?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        #[allow(unsafe_code)]
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        // It makes the kernel kill the server if the test process dies without
        // running destructors (SIGKILL, abort), so no server is ever orphaned.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            program: what.to_string(),
            source,
        })?;
        Ok(Self {
            child,
            log: log.to_path_buf(),
            what,
        })
    }

    /// The process ID (in the host's PID namespace).
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for the process to exit; whether it did.
    pub(crate) fn wait_exit(&mut self, timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return true,
                Ok(None) if std::time::Instant::now() > deadline => return false,
                Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
    }

    /// Fails with the log tail if the process already exited.
    pub(crate) fn check_alive(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(Error::Exited {
                what: self.what,
                status,
                log: log_tail(&self.log, 30),
            }),
            Ok(None) => Ok(()),
            Err(source) => Err(Error::Spawn {
                program: self.what.to_string(),
                source,
            }),
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // Negative pid: the whole process group the server may have started.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(-pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of a log file, for error messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs a short helper command to completion and fails on a non-zero exit.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<String, Error> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            program: program.to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Command {
            command: format!("{program} {}", args.join(" ")),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
