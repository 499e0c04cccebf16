//! The QEMU Guest Agent (QGA) backend of [`super::Guest`]: the QGA protocol,
//! via the `qapi` crate, over the unix socket QEMU exposes for the guest's
//! virtio-serial port (by default `org.qemu.guest_agent.0`):
//!
//! ```text
//! -chardev socket,id=agent0,path=DIR/agent.sock,server=on,wait=off
//! -device virtio-serial-pci
//! -device virtserialport,chardev=agent0,name=org.qemu.guest_agent.0
//! ```
//!
//! Every request has a timeout, so a dead or not yet started agent gives a
//! [`Error::Timeout`] and never a hang. After a timeout the connection is
//! dropped and the next call reconnects and re-synchronizes (`guest-sync`
//! with a fresh id), because a late reply to the abandoned request could
//! otherwise be taken for the answer to the next one. QGA runs everything
//! as root: another user's command goes through `su` ([`as_user`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qapi::qga;
use tokio::sync::Mutex;

use super::{shell_quote, AgentKind, Error, ExecResult};

type Service = qapi::futures::QapiService<
    qapi::futures::QgaStreamTokio<tokio::io::WriteHalf<tokio::net::UnixStream>>,
>;

/// A client of one guest's QEMU Guest Agent. Cheap to create; connects
/// lazily.
pub struct Qga {
    socket: PathBuf,
    conn: Mutex<Option<Service>>,
    /// How long one request may take before the agent counts as dead.
    request_timeout: Duration,
}

/// Chunk size for file transfers: QGA caps a read at 48 MiB, but smaller
/// chunks keep each request well inside its timeout.
const CHUNK: usize = 64 * 1024;

impl Qga {
    pub fn new(socket: impl Into<PathBuf>) -> Qga {
        Qga {
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

    /// Wait until the agent answers `guest-sync`, reconnecting as needed.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        let start = Instant::now();
        let mut last = String::from("nothing yet");
        let mut next_report = Duration::from_secs(10);
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(Error::NotReady {
                    agent: AgentKind::Qga,
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
                        agent: AgentKind::Qga,
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
                    agent: AgentKind::Qga,
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

    /// Write `content` to a file in the guest opened with `mode` ("w":
    /// create or replace; "a": append, creating it if needed).
    pub async fn write_file(&self, path: &str, content: &[u8], mode: &str) -> Result<(), Error> {
        let what = format!("writing {path}");
        let handle = self
            .request(
                &what,
                qga::guest_file_open {
                    path: path.into(),
                    mode: Some(mode.into()),
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

/// `command` as `user` through `su` (root needs no password for it).
pub fn as_user(user: &str, command: &str) -> String {
    if user == "root" {
        return command.to_owned();
    }
    format!(
        "su -s /bin/sh {} -c {}",
        shell_quote(user),
        shell_quote(command)
    )
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
        let guest = Qga::new(dir.path().join("qga.sock"));
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
        let guest = Qga::new(&path);
        let start = Instant::now();
        let err = guest
            .wait_ready(Duration::from_millis(800))
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(err.to_string().contains("guest-sync"), "{err}");
    }

    #[test]
    fn other_users_go_through_su() {
        assert_eq!(as_user("root", "id -u"), "id -u");
        assert_eq!(
            as_user("amnesia", "echo 'hi'"),
            r#"su -s /bin/sh 'amnesia' -c 'echo '\''hi'\'''"#
        );
    }
}
