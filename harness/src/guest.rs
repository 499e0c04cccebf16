//! A remote shell into the guest: the QEMU Guest Agent (QGA) protocol, via
//! the `qapi` crate, over the unix socket QEMU exposes for the guest's
//! virtio-serial port `org.qemu.guest_agent.0`:
//!
//! ```text
//! -chardev socket,id=qga0,path=DIR/qga.sock,server=on,wait=off
//! -device virtio-serial-pci
//! -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0
//! ```
//!
//! Every request has a timeout, so a dead or not yet started agent gives a
//! [`Error::Timeout`] and never a hang. After a timeout the connection is
//! dropped and the next call reconnects and re-synchronizes (`guest-sync`
//! with a fresh id), because a late reply to the abandoned request could
//! otherwise be taken for the answer to the next one.
//!
//! ```no_run
//! # async fn f() -> Result<(), harness::guest::Error> {
//! use std::time::Duration;
//! let guest = harness::guest::Guest::new("/tmp/vm/qga.sock");
//! guest.wait_ready(Duration::from_secs(30)).await?;
//! let out = guest.exec("nft list ruleset", Duration::from_secs(10)).await?;
//! out.ensure_success()?;
//! assert!(out.stdout.contains("table inet tailor"));
//! # Ok(()) }
//! ```
//! Step phrases served: "When I run {string} in the guest" ([`Guest::exec`]),
//! "Then the command succeeds" ([`ExecResult::ensure_success`]),
//! "Then its output contains {string}" ([`ExecResult::ensure_output_contains`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qapi::qga;
use tokio::sync::Mutex;

type Service = qapi::futures::QapiService<
    qapi::futures::QgaStreamTokio<tokio::io::WriteHalf<tokio::net::UnixStream>>,
>;

/// Errors from talking to the guest agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the guest agent socket {socket}")]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the guest agent on {socket} did not answer guest-sync within {waited:.1?} (last seen: {last}); is qemu-ga running in the guest? see the serial log")]
    NotReady {
        socket: PathBuf,
        waited: Duration,
        last: String,
    },
    #[error("the guest agent on {socket} did not answer {what} within {waited:.1?}")]
    Timeout {
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

/// A client of one guest's agent. Cheap to create; connects lazily.
pub struct Guest {
    socket: PathBuf,
    conn: Mutex<Option<Service>>,
    /// How long one request may take before the agent counts as dead.
    request_timeout: Duration,
}

/// Chunk size for file transfers: QGA caps a read at 48 MiB, but smaller
/// chunks keep each request well inside its timeout.
const CHUNK: usize = 64 * 1024;

impl Guest {
    pub fn new(socket: impl Into<PathBuf>) -> Guest {
        Guest {
            socket: socket.into(),
            conn: Mutex::new(None),
            request_timeout: crate::wait::scaled(Duration::from_secs(10)),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn connect(&self) -> Result<Service, Error> {
        let stream = qapi::futures::QgaStreamTokio::open_uds(&self.socket)
            .await
            .map_err(|source| Error::Connect {
                socket: self.socket.clone(),
                source,
            })?;
        // The reader task ends when the socket closes or the service drops.
        let (service, _reader) = stream.spawn_tokio();
        Ok(service)
    }

    /// Connect and synchronize once, within `timeout`.
    async fn sync_once(&self, timeout: Duration) -> Result<Service, String> {
        let service = self
            .connect()
            .await
            .map_err(|e| format!("{e}: {}", source_text(&e)))?;
        // A fresh id per attempt: a reply to an older, abandoned sync must
        // not count.
        let id = rand_i32() & 0x7fff_ffff;
        match tokio::time::timeout(timeout, service.guest_sync(id)).await {
            Ok(Ok(())) => Ok(service),
            Ok(Err(e)) => Err(format!("guest-sync failed: {e}")),
            Err(_) => Err(format!("no answer to guest-sync within {timeout:?}")),
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
        self.exec(&format!("date -u -s @{now}"), self.request_timeout)
            .await?
            .ensure_success()?;
        Ok(())
    }

    /// Wait until the agent answers `guest-sync`, reconnecting as needed.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let start = Instant::now();
        let mut last = String::from("nothing yet");
        let mut next_report = Duration::from_secs(10);
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(Error::NotReady {
                    socket: self.socket.clone(),
                    waited: start.elapsed(),
                    last,
                });
            }
            match self.sync_once(left.min(Duration::from_secs(2))).await {
                Ok(service) => {
                    *self.conn.lock().await = Some(service);
                    tracing::debug!(socket = %self.socket.display(), elapsed = ?start.elapsed(), "guest agent ready");
                    return Ok(());
                }
                Err(seen) => last = seen,
            }
            if start.elapsed() >= next_report {
                tracing::info!(
                    "waiting for the guest agent: {:.0}s of {:.0}s ({last})",
                    start.elapsed().as_secs_f64(),
                    timeout.as_secs_f64()
                );
                next_report += Duration::from_secs(10);
            }
            // The socket may not exist yet (QEMU starting) or the agent not
            // be up: a short pause between attempts, bounded by the timeout.
            tokio::time::sleep(
                Duration::from_millis(200).min(timeout.saturating_sub(start.elapsed())),
            )
            .await;
        }
    }

    /// Run one QGA command with the request timeout; on a timeout or a
    /// broken connection the connection is dropped (see the module doc).
    async fn request<C>(&self, what: &str, command: C) -> Result<C::Ok, Error>
    where
        C: qapi::Command + qga::QgaCommand + serde::Serialize + 'static,
    {
        let mut conn = self.conn.lock().await;
        if conn.is_none() {
            let service =
                self.sync_once(self.request_timeout)
                    .await
                    .map_err(|last| Error::NotReady {
                        socket: self.socket.clone(),
                        waited: self.request_timeout,
                        last,
                    })?;
            *conn = Some(service);
        }
        let service = conn.as_ref().expect("connection set above");
        match tokio::time::timeout(self.request_timeout, service.execute(command)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => {
                if matches!(source, qapi::ExecuteError::Io(_)) {
                    *conn = None;
                }
                Err(Error::Agent {
                    socket: self.socket.clone(),
                    what: what.to_owned(),
                    source,
                })
            }
            Err(_) => {
                *conn = None;
                Err(Error::Timeout {
                    socket: self.socket.clone(),
                    what: what.to_owned(),
                    waited: self.request_timeout,
                })
            }
        }
    }

    /// Run `command` with `/bin/sh -c` as root in the guest and wait up to
    /// `timeout` for it to finish. A command still running then is killed.
    pub async fn exec(&self, command: &str, timeout: Duration) -> Result<ExecResult, Error> {
        let started = self
            .request(
                &format!("guest-exec `{command}`"),
                qga::guest_exec {
                    path: "/bin/sh".into(),
                    arg: Some(vec!["-c".into(), command.into()]),
                    capture_output: Some(qga::GuestExecCaptureOutput::flag(true)),
                    env: None,
                    input_data: None,
                },
            )
            .await?;
        let start = Instant::now();
        let mut progress = crate::wait::Progress::new(format!("`{command}` in the guest"), timeout);
        loop {
            let status = self
                .request(
                    &format!("guest-exec-status for `{command}`"),
                    qga::guest_exec_status { pid: started.pid },
                )
                .await?;
            if status.exited {
                let text = |d: Option<Vec<u8>>| {
                    String::from_utf8_lossy(&d.unwrap_or_default()).into_owned()
                };
                return Ok(ExecResult {
                    command: command.to_owned(),
                    exit_code: status.exitcode.map(|c| c as i32),
                    signal: status.signal.map(|s| s as i32),
                    stdout: text(status.out_data),
                    stderr: text(status.err_data),
                });
            }
            if start.elapsed() >= timeout {
                // Best effort: the caller gets the timeout either way.
                let _ = self
                    .request(
                        "guest-exec kill",
                        qga::guest_exec {
                            path: "/bin/kill".into(),
                            arg: Some(vec!["-9".into(), started.pid.to_string()]),
                            capture_output: None,
                            env: None,
                            input_data: None,
                        },
                    )
                    .await;
                return Err(Error::CommandTimeout {
                    command: command.to_owned(),
                    waited: start.elapsed(),
                });
            }
            progress.tick(None);
            // QGA has no completion event: poll guest-exec-status.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Run `command` until it succeeds (exit code 0), at most until
    /// `timeout`: for guest states with no event to wait on (a daemon's log
    /// line, a file appearing). Returns the successful run.
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

    /// The whole content of a file in the guest.
    pub async fn read_file(&self, path: &str) -> Result<Vec<u8>, Error> {
        let what = format!("reading {path}");
        let handle = self
            .request(
                &what,
                qga::guest_file_open {
                    path: path.into(),
                    mode: Some("r".into()),
                },
            )
            .await?;
        let mut data = Vec::new();
        let result = loop {
            match self
                .request(
                    &what,
                    qga::guest_file_read {
                        handle,
                        count: Some(CHUNK as i64),
                    },
                )
                .await
            {
                Ok(chunk) => {
                    data.extend(chunk.buf_b64);
                    if chunk.eof || chunk.count == 0 {
                        break Ok(data);
                    }
                }
                Err(e) => break Err(e),
            }
        };
        let _ = self.request(&what, qga::guest_file_close { handle }).await;
        result
    }

    /// Create or replace a file in the guest with `content`.
    pub async fn write_file(&self, path: &str, content: &[u8]) -> Result<(), Error> {
        let what = format!("writing {path}");
        let handle = self
            .request(
                &what,
                qga::guest_file_open {
                    path: path.into(),
                    mode: Some("w".into()),
                },
            )
            .await?;
        let mut result = Ok(());
        for chunk in content.chunks(CHUNK) {
            if let Err(e) = self
                .request(
                    &what,
                    qga::guest_file_write {
                        handle,
                        buf_b64: chunk.to_vec(),
                        count: Some(chunk.len() as i64),
                    },
                )
                .await
            {
                result = Err(e);
                break;
            }
        }
        let closed = self.request(&what, qga::guest_file_close { handle }).await;
        result.and(closed.map(drop))
    }
}

fn source_text(e: &Error) -> String {
    std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_default()
}

/// A little entropy for guest-sync ids without a random-number crate.
fn rand_i32() -> i32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_socket_is_not_ready_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let guest = Guest::new(dir.path().join("qga.sock"));
        let err = guest
            .wait_ready(Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotReady { .. }), "{err}");
        assert!(err.to_string().contains("qga.sock"), "{err}");
    }

    #[tokio::test]
    async fn silent_agent_times_out() {
        // A socket that accepts and never answers, like QEMU's chardev when
        // qemu-ga is not running in the guest.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qga.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let _server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let guest = Guest::new(&path);
        let start = Instant::now();
        let err = guest
            .wait_ready(Duration::from_millis(800))
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("guest-sync"), "{err}");
    }

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
}
