//! Child processes that never outlive the test that started them.
//!
//! A handle stops its process on drop (also during a panic's unwinding). A process started for
//! a shared control plane lives in a `static` that is never dropped, and a test binary can be
//! killed outright; for those cases each child gets a watchdog: a tiny shell whose stdin is a
//! pipe only this process holds. When this process exits for any reason the pipe closes, the
//! watchdog's `read` returns, and it terminates the child.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Error;

pub struct Supervised {
    name: String,
    child: Child,
    log: PathBuf,
    // Held only to keep the watchdog's pipe open; dropping it releases the watchdog.
    _watchdog_pipe: Option<ChildStdin>,
    watchdog: Option<Child>,
}

impl Supervised {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Self, Error> {
        let out = File::create(log).map_err(Error::io(format!("create {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(Error::io(format!("clone {}", log.display())))?;
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = command.spawn().map_err(|source| Error::Spawn {
            name: name.to_string(),
            program: format!("{:?}", command.get_program()),
            source,
        })?;
        let (watchdog, pipe) = match spawn_watchdog(child.id()) {
            Ok((w, p)) => (Some(w), Some(p)),
            Err(e) => {
                tracing::warn!(process = name, error = %e, "no watchdog: the process may outlive a killed test");
                (None, None)
            }
        };
        Ok(Self {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            _watchdog_pipe: pipe,
            watchdog,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Errs when the process has exited, quoting the end of its log.
    pub fn check_running(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(Error::Exited {
                name: self.name.clone(),
                status: status.to_string(),
                log_tail: log_tail(&self.log, 40),
            }),
            Err(e) => Err(Error::io(format!("wait for {}", self.name))(e)),
        }
    }

    /// SIGTERM, a grace period, then SIGKILL; waits for the exit.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop();
        self._watchdog_pipe.take();
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

fn spawn_watchdog(pid: u32) -> std::io::Result<(Child, ChildStdin)> {
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(r#"read _ignored; kill -TERM "$1" 2>/dev/null; sleep 10; kill -KILL "$1" 2>/dev/null; true"#)
        .arg("switchyard-watchdog")
        .arg(pid.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let pipe = watchdog
        .stdin
        .take()
        .ok_or_else(|| std::io::Error::other("watchdog stdin was not piped"))?;
    Ok((watchdog, pipe))
}

/// Sends a signal by name with the `kill` utility (no unsafe code needed).
pub fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The last `lines` lines of a log file, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
