//! A shell into the guest, whichever agent the guest has: one interface
//! ([`Guest`]: run a command as a user, read, write and append files, wait
//! until the agent answers, set the clock) over two backends:
//!
//! - [`qga`]: the QEMU Guest Agent (`qemu-ga`) on the virtio-serial port
//!   `org.qemu.guest_agent.0`, spoken through the `qapi` crate;
//! - [`remote_shell`]: Tails' autotest remote shell on
//!   `org.tails.remote_shell.0`, which a Tails-based ISO starts when its
//!   kernel command line carries `autotest_never_use_this_option`.
//!
//! The vm-config names the agent (`[agent] kind = "qga" |
//! "tails-remote-shell"`); steps never do: they get a [`Guest`] for the
//! running VM ([`Guest::for_vm`]) and call the same methods either way.
//!
//! ```no_run
//! # async fn f(vm: &harness::vm::Vm) -> Result<(), harness::guest::Error> {
//! use std::time::Duration;
//! let guest = harness::guest::Guest::for_vm(vm);
//! guest.wait_ready(Duration::from_secs(30)).await?;
//! let out = guest.exec("nft list ruleset", Duration::from_secs(10)).await?;
//! out.ensure_success()?;
//! let me = guest.exec_as("amnesia", "id -un", Duration::from_secs(10)).await?;
//! assert_eq!(me.stdout.trim(), "amnesia");
//! # Ok(()) }
//! ```
//! Step phrases served: "When I run {string} in the guest" ([`Guest::exec`]),
//! "When I run {string} as {string} in the guest" ([`Guest::exec_as`]),
//! "Then the command succeeds" ([`ExecResult::ensure_success`]),
//! "Then its output contains {string}" ([`ExecResult::ensure_output_contains`]).

pub mod journal;
pub mod qga;
pub mod remote_shell;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use crate::vm::config::AgentKind;

/// Errors from talking to the guest's agent, whichever it is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the guest agent socket {socket}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the {agent} on {socket} did not answer within {waited:.1?} (last seen: {last}); is it running in the guest? see the serial log and the guest journal")]
    NotReady {
        agent: AgentKind,
        socket: PathBuf,
        waited: Duration,
        last: String,
    },
    #[error("the {agent} on {socket} did not answer {what} within {waited:.1?}")]
    Timeout {
        agent: AgentKind,
        socket: PathBuf,
        what: String,
        waited: Duration,
    },
    #[error("the guest agent on {socket} failed {what}")]
    Agent {
        socket: PathBuf,
        what: String,
        #[source]
        source: qapi::ExecuteError,
    },
    /// The remote shell answered `error` with the exception it caught.
    #[error("the remote shell on {socket} failed {what}: {message}")]
    Server {
        socket: PathBuf,
        what: String,
        message: String,
    },
    /// The remote shell's connection ended before its reply was complete.
    #[error("the remote shell on {socket} hung up during {what}{}", if partial.is_empty() { " before replying".to_owned() } else { format!(" in the middle of a reply ({partial:?})") })]
    Disconnected {
        socket: PathBuf,
        what: String,
        partial: String,
    },
    /// A reply that is not what the protocol says it should be.
    #[error("the remote shell on {socket} sent a malformed reply to {what}: {detail}")]
    Protocol {
        socket: PathBuf,
        what: String,
        detail: String,
    },
    #[error("writing {what} to the remote shell on {socket}")]
    Send {
        socket: PathBuf,
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` still running in the guest after {waited:.1?} (killed it)")]
    CommandTimeout { command: String, waited: Duration },
    #[error("`{command}` exited with {status} in the guest; expected success. stderr: {stderr}")]
    CommandFailed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` still failing in the guest after {waited:.1?} (last: {last})")]
    StillFailing {
        command: String,
        waited: Duration,
        last: String,
    },
    #[error("the output of `{command}` does not contain {expected:?}; it was:\n{stdout}")]
    OutputMismatch {
        command: String,
        expected: String,
        stdout: String,
    },
}

/// What a command run in the guest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    pub command: String,
    /// `None` when the command was killed by a signal.
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl ExecResult {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }

    /// `Ok` when the command exited with 0, else an error quoting stderr.
    pub fn ensure_success(&self) -> Result<&Self, Error> {
        if self.success() {
            return Ok(self);
        }
        let status = match (self.exit_code, self.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(sig)) => format!("signal {sig}"),
            (None, None) => "an unknown status".into(),
        };
        Err(Error::CommandFailed {
            command: self.command.clone(),
            status,
            stderr: self.stderr.trim().to_owned(),
        })
    }

    /// `Ok` when stdout contains `expected`.
    pub fn ensure_output_contains(&self, expected: &str) -> Result<&Self, Error> {
        if self.stdout.contains(expected) {
            Ok(self)
        } else {
            Err(Error::OutputMismatch {
                command: self.command.clone(),
                expected: expected.to_owned(),
                stdout: self.stdout.clone(),
            })
        }
    }
}

enum Backend {
    Qga(qga::Qga),
    RemoteShell(remote_shell::RemoteShell),
}

/// A client of one guest's agent. Cheap to create; connects lazily.
pub struct Guest {
    backend: Backend,
}

impl Guest {
    /// The agent `kind` behind the unix socket QEMU exposes for its port.
    pub fn connect(kind: AgentKind, socket: impl Into<PathBuf>) -> Guest {
        let backend = match kind {
            AgentKind::Qga => Backend::Qga(qga::Qga::new(socket)),
            AgentKind::TailsRemoteShell => {
                Backend::RemoteShell(remote_shell::RemoteShell::new(socket))
            }
        };
        Guest { backend }
    }

    /// The agent of a running VM, as its vm-config names it.
    pub fn for_vm(vm: &crate::vm::Vm) -> Guest {
        Guest::connect(vm.config().agent.kind, &vm.paths().agent_socket)
    }

    /// A QEMU Guest Agent client on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Guest {
        Guest::connect(AgentKind::Qga, socket)
    }

    pub fn kind(&self) -> AgentKind {
        match self.backend {
            Backend::Qga(_) => AgentKind::Qga,
            Backend::RemoteShell(_) => AgentKind::TailsRemoteShell,
        }
    }

    pub fn socket(&self) -> &Path {
        match &self.backend {
            Backend::Qga(q) => q.socket(),
            Backend::RemoteShell(r) => r.socket(),
        }
    }

    /// The remote-shell client, for what only that protocol has
    /// (`python_execute`, `sh_spawn`); `None` for QGA.
    pub fn remote_shell(&self) -> Option<&remote_shell::RemoteShell> {
        match &self.backend {
            Backend::RemoteShell(r) => Some(r),
            Backend::Qga(_) => None,
        }
    }

    /// Wait until the agent answers, reconnecting as needed. The remote
    /// shell is then also told `signal_ready`, as the Tails suite does once
    /// it can reach the guest (a guest that holds its boot for the harness
    /// carries on).
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        match &self.backend {
            Backend::Qga(q) => q.wait_ready(timeout).await,
            Backend::RemoteShell(r) => r.wait_ready(timeout).await,
        }
    }

    /// Run `command` with `/bin/sh -c` as root and wait up to `timeout` for
    /// it to finish. A command still running then is killed.
    pub async fn exec(&self, command: &str, timeout: Duration) -> Result<ExecResult, Error> {
        self.exec_as("root", command, timeout).await
    }

    /// Run `command` with `/bin/sh -c` as `user` (in the user's home, with
    /// the user's groups). The result names the command as given, plus
    /// "(as USER)" for other users than root.
    pub async fn exec_as(
        &self,
        user: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<ExecResult, Error> {
        let mut result = match &self.backend {
            Backend::Qga(q) => q.exec(&qga::as_user(user, command), timeout).await,
            Backend::RemoteShell(r) => r.exec_as(user, command, timeout).await,
        }?;
        result.command = if user == "root" {
            command.to_owned()
        } else {
            format!("{command} (as {user})")
        };
        Ok(result)
    }

    /// Run `command` (as root) until it succeeds (exit code 0), at most
    /// until `timeout`: for guest states with no event to wait on (a
    /// daemon's log line, a file appearing). Returns the successful run.
    pub async fn wait_for_success(
        &self,
        command: &str,
        timeout: Duration,
    ) -> Result<ExecResult, Error> {
        let start = Instant::now();
        let mut progress =
            crate::wait::Progress::new(format!("`{command}` to succeed in the guest"), timeout);
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            let last = match self.exec(command, left.max(Duration::from_secs(1))).await {
                Ok(out) if out.success() => return Ok(out),
                Ok(out) => format!("exit {:?}: {}", out.exit_code, out.stderr.trim()),
                Err(e @ (Error::CommandTimeout { .. } | Error::CommandFailed { .. })) => {
                    e.to_string()
                }
                Err(e) => return Err(e),
            };
            if start.elapsed() >= timeout {
                return Err(Error::StillFailing {
                    command: command.to_owned(),
                    waited: start.elapsed(),
                    last,
                });
            }
            progress.tick(Some(&last));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The whole content of a file in the guest (read as root).
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>, Error> {
        match &self.backend {
            Backend::Qga(q) => q.read_file(path).await,
            Backend::RemoteShell(r) => r.file_read(path).await,
        }
    }

    /// Create or replace a file in the guest with `content` (as root).
    pub async fn write_file(&self, path: &str, content: &[u8]) -> Result<(), Error> {
        match &self.backend {
            Backend::Qga(q) => q.write_file(path, content, "w").await,
            Backend::RemoteShell(r) => r.file_write(path, content).await.map(drop),
        }
    }

    /// Add `content` at the end of a file in the guest, creating it if
    /// needed (as root).
    pub async fn append_file(&self, path: &str, content: &[u8]) -> Result<(), Error> {
        match &self.backend {
            Backend::Qga(q) => q.write_file(path, content, "a").await,
            Backend::RemoteShell(r) => r.file_append(path, content).await.map(drop),
        }
    }

    /// Set the guest's clock to the host's: a VM restored from a
    /// checkpoint wakes up with the clock of the moment it was saved.
    pub async fn sync_clock(&self) -> Result<(), Error> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        // Not guest-set-time: qemu-ga follows it with `hwclock -w`, which
        // fails in a guest without hwclock and fails the whole command.
        self.exec(
            &format!("date -u -s @{now}"),
            crate::wait::scaled(Duration::from_secs(10)),
        )
        .await?
        .ensure_success()?;
        Ok(())
    }
}

/// Single-quote `s` for sh.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_explain_failures() {
        let r = ExecResult {
            command: "false".into(),
            exit_code: Some(1),
            signal: None,
            stdout: "abc".into(),
            stderr: "boom\n".into(),
        };
        let e = r.ensure_success().unwrap_err().to_string();
        assert!(e.contains("exit code 1") && e.contains("boom"), "{e}");
        assert!(r.ensure_output_contains("b").is_ok());
        assert!(r
            .ensure_output_contains("z")
            .unwrap_err()
            .to_string()
            .contains("abc"));
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn the_kind_follows_the_constructor() {
        assert_eq!(Guest::new("/x").kind(), AgentKind::Qga);
        let rs = Guest::connect(AgentKind::TailsRemoteShell, "/y");
        assert_eq!(rs.kind(), AgentKind::TailsRemoteShell);
        assert!(rs.remote_shell().is_some());
        assert_eq!(rs.socket(), Path::new("/y"));
    }
}
