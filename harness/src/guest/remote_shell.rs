//! The Tails remote-shell backend of [`super::Guest`]: a client of Tails'
//! autotest remote shell, the test backdoor a Tails-based ISO runs on the
//! virtio-serial port `org.tails.remote_shell.0` when its kernel command
//! line carries `autotest_never_use_this_option`. QEMU exposes the port as
//! a unix socket:
//!
//! ```text
//! -chardev socket,id=agent0,path=DIR/agent.sock,server=on,wait=off
//! -device virtio-serial-pci
//! -device virtserialport,chardev=agent0,name=org.tails.remote_shell.0
//! ```
//!
//! The protocol, as Tails' guest server and its test suite speak it (read
//! from their sources, see [`wire`]): every message is one JSON array on
//! one line, ended by `\n`. A request is `[id, type, args...]`; the reply
//! echoes the id: `[id, "success", results...]`, or `[id, "error",
//! "ExceptionName: text"]` when the server caught an exception.
//!
//! | type | arguments | results |
//! | --- | --- | --- |
//! | `sh_call` | user, environment (object), command | returncode, stdout, stderr |
//! | `sh_spawn` | user, environment, command | none: no reply at all |
//! | `python_execute` | user, environment, code | exception or null, stdout, stderr |
//! | `file_read` | path | the content, base64 |
//! | `file_write`, `file_append` | path, the content in base64 | bytes written |
//! | `signal_ready` | | (nothing) |
//!
//! Commands run with `/bin/sh -c` as the requested user (its groups, its
//! home as the working directory, its login environment updated with the
//! given one); a returncode below zero is the signal that killed it. File
//! requests run as the server's user (root). `signal_ready` tells a guest
//! that holds its boot for the test suite (Tails' systemd unit is
//! `Type=notify`) to carry on.
//!
//! The server handles one request at a time and only while a client is
//! connected: a reply it could not deliver (the client gave up) arrives on
//! the next connection first. Hence the ids: this client opens one
//! connection per request, as Tails' does, and drops replies that carry
//! another id. Every request has a timeout, and a connection that ends in
//! the middle of a reply is an error that says so, never a hang.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{shell_quote, AgentKind, Error, ExecResult};

/// The virtio-serial port name Tails' server listens on.
pub const PORT: &str = "org.tails.remote_shell.0";

/// The kernel option that makes a Tails-based ISO start its remote shell.
pub const KERNEL_OPTION: &str = "autotest_never_use_this_option";

/// How messages look on the wire. Requests are written like Tails' Ruby
/// client writes them (compact JSON, UTF-8); replies are read whatever
/// their spacing or escaping (Tails' Python server writes `", "` between
/// items and escapes every non-ASCII character).
pub mod wire {
    use serde_json::Value;

    /// One request line: `[id, type, args...]` and `\n`.
    pub fn request(id: u64, kind: &str, args: &[Value]) -> Vec<u8> {
        let mut message = vec![Value::from(id), Value::from(kind)];
        message.extend(args.iter().cloned());
        let mut line = serde_json::to_vec(&Value::Array(message)).expect("JSON values serialize");
        line.push(b'\n');
        line
    }

    /// What a reply says, after its id.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Status {
        /// `"success"` and the results.
        Success(Vec<Value>),
        /// `"error"` and the server's text for the exception it caught.
        Error(String),
    }

    /// A reply line (without its `\n`): its id and what it says. `Err`
    /// says why the line is not a reply.
    pub fn reply(line: &[u8]) -> Result<(Value, Status), String> {
        let value: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON ({e})"))?;
        let Value::Array(mut items) = value else {
            return Err("not a JSON array".into());
        };
        if items.len() < 2 {
            return Err(format!(
                "{} item(s); a reply has an id and a status at least",
                items.len()
            ));
        }
        let rest = items.split_off(2);
        let status = items.pop().expect("two items");
        let id = items.pop().expect("one item");
        match status.as_str() {
            Some("success") => Ok((id, Status::Success(rest))),
            // The server sends exactly one string with an error.
            Some("error") => match rest.as_slice() {
                [Value::String(text)] => Ok((id, Status::Error(text.clone()))),
                other => Ok((
                    id,
                    Status::Error(format!("uncaught exception: error: {other:?}")),
                )),
            },
            _ => Err(format!("unknown status {status}")),
        }
    }
}

/// What `sh_call` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellOutput {
    /// The exit code, or minus the signal that killed the command.
    pub returncode: i64,
    pub stdout: String,
    pub stderr: String,
}

impl ShellOutput {
    fn into_exec_result(self, command: &str) -> ExecResult {
        let (exit_code, signal) = if self.returncode < 0 {
            (None, Some(-self.returncode as i32))
        } else {
            (Some(self.returncode as i32), None)
        };
        ExecResult {
            command: command.to_owned(),
            exit_code,
            signal,
            stdout: self.stdout,
            stderr: self.stderr,
        }
    }
}

/// What `python_execute` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonOutput {
    /// `"ExceptionName: text"` if the code raised, else `None`.
    pub exception: Option<String>,
    pub stdout: String,
    pub stderr: String,
}

/// Request ids: unique within this process, and starting from a clock
/// value so a later run's ids differ from those of replies an earlier run
/// left in a guest. Kept below 2^53 for JSON readers that use doubles.
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let base = || {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(1);
        (secs % (1 << 24)) << 24
    };
    let _ = NEXT.compare_exchange(0, base().max(1), Ordering::Relaxed, Ordering::Relaxed);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A client of one guest's remote shell. Cheap to create; each request
/// opens its own connection.
pub struct RemoteShell {
    socket: PathBuf,
    /// How long a request other than a command may take.
    request_timeout: Duration,
}

/// Time a reply may take beyond the command's own timeout.
const REPLY_MARGIN: Duration = Duration::from_secs(10);

impl RemoteShell {
    pub fn new(socket: impl Into<PathBuf>) -> RemoteShell {
        RemoteShell {
            socket: socket.into(),
            request_timeout: crate::wait::scaled(Duration::from_secs(20)),
        }
    }

    /// Change how long requests other than commands may take.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Send one request and, if `reply`, wait up to `timeout` for the reply
    /// with its id; its results.
    async fn communicate(
        &self,
        what: &str,
        kind: &str,
        args: Vec<Value>,
        timeout: Duration,
        reply: bool,
    ) -> Result<Vec<Value>, Error> {
        let id = next_id();
        // Lines that were no reply at all: the tail of a reply an earlier
        // client stopped reading. Skipped, but named if nothing else comes.
        let mut garbage: Option<String> = None;
        let exchange = async {
            let mut stream = tokio::net::UnixStream::connect(&self.socket)
                .await
                .map_err(|source| Error::Connect {
                    socket: self.socket.clone(),
                    source,
                })?;
            stream
                .write_all(&wire::request(id, kind, &args))
                .await
                .map_err(|source| Error::Send {
                    socket: self.socket.clone(),
                    what: what.to_owned(),
                    source,
                })?;
            if !reply {
                // Let the bytes reach QEMU before the connection closes.
                stream.flush().await.ok();
                return Ok(Vec::new());
            }
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            loop {
                line.clear();
                let read = reader
                    .read_until(b'\n', &mut line)
                    .await
                    .map_err(|source| Error::Send {
                        socket: self.socket.clone(),
                        what: format!("reading the reply to {what}"),
                        source,
                    })?;
                if read == 0 || line.last() != Some(&b'\n') {
                    return Err(Error::Disconnected {
                        socket: self.socket.clone(),
                        what: what.to_owned(),
                        partial: String::from_utf8_lossy(&line).into_owned(),
                    });
                }
                line.pop();
                match wire::reply(&line) {
                    Err(why) => {
                        tracing::debug!(
                            "remote shell: skipped a line that is no reply ({why}): {}",
                            String::from_utf8_lossy(&line)
                        );
                        garbage = Some(format!("{why}: {}", String::from_utf8_lossy(&line)));
                    }
                    Ok((reply_id, _)) if reply_id != json!(id) => {
                        tracing::debug!(
                            "remote shell: dropped a reply to request {reply_id} while waiting for {id}"
                        );
                    }
                    Ok((_, wire::Status::Success(results))) => return Ok(results),
                    Ok((_, wire::Status::Error(message))) => {
                        return Err(Error::Server {
                            socket: self.socket.clone(),
                            what: what.to_owned(),
                            message,
                        })
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(match garbage {
                Some(detail) => Error::Protocol {
                    socket: self.socket.clone(),
                    what: what.to_owned(),
                    detail: format!("no reply within {timeout:.1?}; the last line was {detail}"),
                },
                None => Error::Timeout {
                    agent: AgentKind::TailsRemoteShell,
                    socket: self.socket.clone(),
                    what: what.to_owned(),
                    waited: timeout,
                },
            }),
        }
    }

    fn malformed(&self, what: &str, detail: String) -> Error {
        Error::Protocol {
            socket: self.socket.clone(),
            what: what.to_owned(),
            detail,
        }
    }

    /// `sh_call`: run `command` with `/bin/sh -c` as `user` with `env`
    /// added to the user's environment; the server answers when it ends.
    /// The request may take `timeout`; the server itself never gives up.
    pub async fn sh_call(
        &self,
        user: &str,
        env: &[(&str, &str)],
        command: &str,
        timeout: Duration,
    ) -> Result<ShellOutput, Error> {
        let what = format!("sh_call `{command}` as {user}");
        let results = self
            .communicate(
                &what,
                "sh_call",
                vec![json!(user), env_object(env), json!(command)],
                timeout,
                true,
            )
            .await?;
        match results.as_slice() {
            [Value::Number(code), Value::String(stdout), Value::String(stderr)]
                if code.as_i64().is_some() =>
            {
                Ok(ShellOutput {
                    returncode: code.as_i64().expect("checked"),
                    stdout: stdout.clone(),
                    stderr: stderr.clone(),
                })
            }
            other => Err(self.malformed(
                &what,
                format!("expected [returncode, stdout, stderr], got {other:?}"),
            )),
        }
    }

    /// `sh_spawn`: start `command` as `user` and return at once; the server
    /// does not reply (Tails' older servers acknowledged with `[0, "",
    /// ""]`, which the next request drops as a stale reply).
    pub async fn sh_spawn(
        &self,
        user: &str,
        env: &[(&str, &str)],
        command: &str,
    ) -> Result<(), Error> {
        let what = format!("sh_spawn `{command}` as {user}");
        self.communicate(
            &what,
            "sh_spawn",
            vec![json!(user), env_object(env), json!(command)],
            self.request_timeout,
            false,
        )
        .await
        .map(drop)
    }

    /// `python_execute`: run Python `code` in the server's Python session
    /// for `user` (Tails' server only; others answer with an error).
    pub async fn python_execute(
        &self,
        user: &str,
        env: &[(&str, &str)],
        code: &str,
        timeout: Duration,
    ) -> Result<PythonOutput, Error> {
        let what = format!("python_execute as {user}");
        let results = self
            .communicate(
                &what,
                "python_execute",
                vec![json!(user), env_object(env), json!(code)],
                timeout,
                true,
            )
            .await?;
        match results.as_slice() {
            [exception, Value::String(stdout), Value::String(stderr)]
                if exception.is_null() || exception.is_string() =>
            {
                Ok(PythonOutput {
                    exception: exception.as_str().map(str::to_owned),
                    stdout: stdout.clone(),
                    stderr: stderr.clone(),
                })
            }
            other => Err(self.malformed(
                &what,
                format!("expected [exception, stdout, stderr], got {other:?}"),
            )),
        }
    }

    /// `file_read`: the whole content of `path`.
    pub async fn file_read(&self, path: &str) -> Result<Vec<u8>, Error> {
        let what = format!("file_read {path}");
        let results = self
            .communicate(
                &what,
                "file_read",
                vec![json!(path)],
                self.request_timeout,
                true,
            )
            .await?;
        match results.as_slice() {
            [Value::String(encoded)] => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| self.malformed(&what, format!("the content is not base64: {e}"))),
            other => Err(self.malformed(&what, format!("expected [base64], got {other:?}"))),
        }
    }

    /// `file_write`: replace `path` with `content`; the bytes written.
    pub async fn file_write(&self, path: &str, content: &[u8]) -> Result<usize, Error> {
        self.put("file_write", path, content).await
    }

    /// `file_append`: add `content` at the end of `path`; the bytes written.
    pub async fn file_append(&self, path: &str, content: &[u8]) -> Result<usize, Error> {
        self.put("file_append", path, content).await
    }

    async fn put(&self, kind: &str, path: &str, content: &[u8]) -> Result<usize, Error> {
        let what = format!("{kind} {path}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(content);
        let results = self
            .communicate(
                &what,
                kind,
                vec![json!(path), json!(encoded)],
                self.request_timeout,
                true,
            )
            .await?;
        match results.as_slice() {
            [Value::Number(n)] if n.as_u64() == Some(content.len() as u64) => Ok(content.len()),
            other => Err(self.malformed(
                &what,
                format!(
                    "expected [{}] (bytes written), got {other:?}",
                    content.len()
                ),
            )),
        }
    }

    /// `signal_ready`: tell a guest that waits for the test suite that it
    /// may carry on booting.
    pub async fn signal_ready(&self) -> Result<(), Error> {
        self.communicate(
            "signal_ready",
            "signal_ready",
            Vec::new(),
            self.request_timeout,
            true,
        )
        .await
        .map(drop)
    }

    /// Wait until the server runs a command (`echo`, as the Tails suite
    /// checks it), then send `signal_ready`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), Error> {
        const HELLO: &str = "hello?";
        let start = Instant::now();
        let mut progress = crate::wait::Progress::new("the remote shell to answer", timeout);
        let mut last = String::from("nothing yet");
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(Error::NotReady {
                    agent: AgentKind::TailsRemoteShell,
                    socket: self.socket.clone(),
                    waited: start.elapsed(),
                    last,
                });
            }
            let attempt = left.min(Duration::from_secs(3));
            match self
                .sh_call(
                    "root",
                    &[],
                    &format!("echo {}", shell_quote(HELLO)),
                    attempt,
                )
                .await
            {
                Ok(out) if out.stdout.trim_end() == HELLO => {
                    tracing::debug!(socket = %self.socket.display(), elapsed = ?start.elapsed(), "remote shell ready");
                    return match self.signal_ready().await {
                        // Servers older than signal_ready (Tails 5) say
                        // "unknown command type": they hold nothing back.
                        Err(Error::Server { message, .. }) => {
                            tracing::debug!("the remote shell knows no signal_ready: {message}");
                            Ok(())
                        }
                        other => other,
                    };
                }
                Ok(out) => last = format!("`echo` answered {out:?}"),
                Err(e) => last = e.to_string(),
            }
            progress.tick(Some(&last));
            // The socket may not exist yet (QEMU starting): a short pause
            // between attempts, bounded by the timeout.
            tokio::time::sleep(
                Duration::from_millis(200).min(timeout.saturating_sub(start.elapsed())),
            )
            .await;
        }
    }

    /// Run `command` as `user` within `timeout`. The server never stops a
    /// command and serves nothing else meanwhile, so the command runs
    /// under `timeout -s KILL` in the guest (coreutils and busybox alike).
    pub async fn exec_as(
        &self,
        user: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<ExecResult, Error> {
        let secs = timeout.as_secs_f64().ceil().max(1.0) as u64;
        let wrapped = format!("timeout -s KILL {secs} /bin/sh -c {}", shell_quote(command));
        let start = Instant::now();
        let out = self
            .sh_call(
                user,
                &[],
                &wrapped,
                timeout + crate::wait::scaled(REPLY_MARGIN),
            )
            .await
            .map_err(|e| match e {
                Error::Timeout { waited, .. } => Error::CommandTimeout {
                    command: command.to_owned(),
                    waited,
                },
                other => other,
            })?;
        // Killed by `timeout`: busybox's is replaced by the command and dies
        // of the signal (-9); coreutils' reports 128 + 9.
        if start.elapsed() >= timeout && matches!(out.returncode, -9 | 137) {
            return Err(Error::CommandTimeout {
                command: command.to_owned(),
                waited: start.elapsed(),
            });
        }
        Ok(out.into_exec_result(command))
    }
}

fn env_object(env: &[(&str, &str)]) -> Value {
    Value::Object(
        env.iter()
            .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::UnixListener;

    /// A scripted server: for each connection, read one request line and
    /// call `answer` with the request and the stream.
    fn serve<F, Fut>(listener: UnixListener, answer: F) -> tokio::task::JoinHandle<()>
    where
        F: Fn(Value, tokio::net::UnixStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                    continue;
                }
                let request: Value = serde_json::from_str(&line).expect("the client sends JSON");
                answer(request, reader.into_inner()).await;
            }
        })
    }

    fn socket() -> (tempfile::TempDir, PathBuf, UnixListener) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rs.sock");
        let listener = UnixListener::bind(&path).unwrap();
        (dir, path, listener)
    }

    fn client(path: &Path) -> RemoteShell {
        RemoteShell::new(path).with_request_timeout(Duration::from_secs(2))
    }

    #[test]
    fn requests_are_one_compact_line() {
        let line = wire::request(7, "sh_call", &[json!("root"), json!({}), json!("echo é")]);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "[7,\"sh_call\",\"root\",{},\"echo é\"]\n"
        );
        assert_eq!(
            wire::request(8, "signal_ready", &[]),
            b"[8,\"signal_ready\"]\n"
        );
    }

    #[test]
    fn replies_as_tails_python_server_writes_them() {
        // Python's json.dumps: ", " between items, non-ASCII escaped.
        let (id, status) = wire::reply(br#"[3, "success", 0, "caf\u00e9\n", ""]"#).unwrap();
        assert_eq!(id, json!(3));
        assert_eq!(
            status,
            wire::Status::Success(vec![json!(0), json!("café\n"), json!("")])
        );
        let (_, status) = wire::reply(
            br#"[4, "error", "FileNotFoundError: [Errno 2] No such file or directory: '/x'"]"#,
        )
        .unwrap();
        assert!(matches!(status, wire::Status::Error(t) if t.starts_with("FileNotFoundError")));
        assert!(wire::reply(b"[4]").is_err());
        assert!(wire::reply(b"{}").is_err());
        assert!(wire::reply(b"[4, \"maybe\"]").is_err());
        assert!(wire::reply(b"ccess\", 0]").is_err());
    }

    #[tokio::test]
    async fn a_reply_in_pieces_is_one_reply() {
        let (_dir, path, listener) = socket();
        let _server = serve(listener, |request, mut stream| async move {
            let id = request[0].clone();
            let reply = format!("[{id}, \"success\", 0, \"hello\\n\", \"\"]\n");
            // Byte by byte, with pauses: the client must wait for the newline.
            for chunk in reply.as_bytes().chunks(5) {
                stream.write_all(chunk).await.unwrap();
                stream.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let out = client(&path)
            .sh_call("root", &[], "echo hello", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(out.returncode, 0);
        assert_eq!(out.stdout, "hello\n");
    }

    #[tokio::test]
    async fn stale_replies_and_leftovers_are_dropped() {
        let (_dir, path, listener) = socket();
        let _server = serve(listener, |request, mut stream| async move {
            let id = request[0].as_u64().unwrap();
            // The tail of a reply an earlier client gave up on, a whole
            // reply to an older request, then ours.
            let text = format!(
                "ess\", 0, \"\", \"\"]\n[{}, \"success\", 1, \"old\", \"\"]\n[{id}, \"success\", 0, \"new\", \"\"]\n",
                id - 1
            );
            stream.write_all(text.as_bytes()).await.unwrap();
        });
        let out = client(&path)
            .sh_call("amnesia", &[], "true", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(out.stdout, "new");
    }

    #[tokio::test]
    async fn an_error_reply_carries_the_servers_text() {
        let (_dir, path, listener) = socket();
        let _server = serve(listener, |request, mut stream| async move {
            assert_eq!(request[1], "file_read");
            let reply = json!([
                request[0],
                "error",
                format!(
                    "FileNotFoundError: [Errno 2] No such file or directory: {}",
                    request[2]
                )
            ]);
            stream
                .write_all(format!("{reply}\n").as_bytes())
                .await
                .unwrap();
        });
        let err = client(&path).file_read("/nope").await.unwrap_err();
        assert!(matches!(err, Error::Server { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("file_read /nope") && text.contains("FileNotFoundError"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_server_dying_mid_reply_is_a_clear_error() {
        let (_dir, path, listener) = socket();
        let _server = serve(listener, |request, mut stream| async move {
            let half = format!("[{}, \"success\", 0, \"hal", request[0]);
            stream.write_all(half.as_bytes()).await.unwrap();
            // The stream drops here: the connection ends mid-line.
        });
        let start = Instant::now();
        let err = client(&path)
            .sh_call("root", &[], "echo half", Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5), "no hang");
        assert!(matches!(err, Error::Disconnected { .. }), "{err:?}");
        assert!(err.to_string().contains("\"hal"), "{err}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let (_dir, path, listener) = socket();
        // Accepts and reads, never answers: a guest whose server is not
        // running, behind QEMU's socket.
        let _server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf).await;
                held.push(s);
            }
        });
        let start = Instant::now();
        let err = client(&path)
            .sh_call("root", &[], "sleep 100", Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(3));
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        let err = client(&path)
            .wait_ready(Duration::from_millis(700))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotReady { .. }), "{err:?}");
        assert!(err.to_string().contains("remote shell"), "{err}");
    }

    #[tokio::test]
    async fn garbage_instead_of_a_reply_is_named_on_timeout() {
        let (_dir, path, listener) = socket();
        let _server = serve(listener, |_request, mut stream| async move {
            stream.write_all(b"not json at all\n").await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let err = client(&path)
            .sh_call("root", &[], "true", Duration::from_millis(400))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
        assert!(err.to_string().contains("not json at all"), "{err}");
    }

    #[tokio::test]
    async fn missing_socket_is_a_connect_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = client(&dir.path().join("none.sock"))
            .signal_ready()
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Connect { .. }), "{err:?}");
        let err = client(&dir.path().join("none.sock"))
            .wait_ready(Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("none.sock"), "{err}");
    }

    #[tokio::test]
    async fn files_travel_in_base64_and_writes_are_counted() {
        let (_dir, path, listener) = socket();
        let _server = serve(listener, |request, mut stream| async move {
            let reply = match request[1].as_str().unwrap() {
                "file_read" => json!([request[0], "success", "AAEC/w=="]),
                "file_write" => {
                    assert_eq!(request[3], "aGk=");
                    json!([request[0], "success", 2])
                }
                // A server that wrote less than it was given.
                "file_append" => json!([request[0], "success", 1]),
                other => panic!("unexpected {other}"),
            };
            stream
                .write_all(format!("{reply}\n").as_bytes())
                .await
                .unwrap();
        });
        let shell = client(&path);
        assert_eq!(shell.file_read("/bin").await.unwrap(), vec![0, 1, 2, 255]);
        assert_eq!(shell.file_write("/tmp/x", b"hi").await.unwrap(), 2);
        let err = shell.file_append("/tmp/x", b"hi").await.unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn ready_means_echo_then_signal_ready() {
        let (_dir, path, listener) = socket();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let _server = serve(listener, move |request, mut stream| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(request.clone());
                let reply = match request[1].as_str().unwrap() {
                    "sh_call" => json!([request[0], "success", 0, "hello?\n", ""]),
                    _ => json!([request[0], "success"]),
                };
                stream
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        client(&path)
            .wait_ready(Duration::from_secs(5))
            .await
            .unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0][1], "sh_call");
        assert_eq!(seen[0][2], "root");
        assert_eq!(seen[0][3], json!({}));
        assert_eq!(seen[1][1], "signal_ready");
        assert_eq!(seen[1].as_array().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_server_without_signal_ready_is_ready_too() {
        // Tails 5's server answers signal_ready like any unknown type.
        let (_dir, path, listener) = socket();
        let _server = serve(listener, |request, mut stream| async move {
            let reply = match request[1].as_str().unwrap() {
                "sh_call" => json!([request[0], "success", 0, "hello?\n", ""]),
                _ => json!([request[0], "error", "ValueError: unknown command type"]),
            };
            stream
                .write_all(format!("{reply}\n").as_bytes())
                .await
                .unwrap();
        });
        client(&path)
            .wait_ready(Duration::from_secs(5))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn commands_run_under_timeout_as_the_user() {
        let (_dir, path, listener) = socket();
        let _server = serve(listener, |request, mut stream| async move {
            assert_eq!(request[2], "amnesia");
            assert_eq!(
                request[4],
                "timeout -s KILL 7 /bin/sh -c 'echo '\\''a b'\\'''"
            );
            let reply = json!([request[0], "success", -15, "", "Terminated\n"]);
            stream
                .write_all(format!("{reply}\n").as_bytes())
                .await
                .unwrap();
        });
        let out = client(&path)
            .exec_as("amnesia", "echo 'a b'", Duration::from_millis(6500))
            .await
            .unwrap();
        assert_eq!((out.exit_code, out.signal), (None, Some(15)));
        assert_eq!(out.command, "echo 'a b'");
    }

    #[tokio::test]
    async fn spawn_does_not_wait_for_a_reply() {
        let (_dir, path, listener) = socket();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let _server = serve(listener, move |request, _stream| {
            let tx = tx.clone();
            async move {
                tx.send(request).unwrap();
            }
        });
        client(&path)
            .sh_spawn("root", &[("DISPLAY", ":0")], "sleep 1000")
            .await
            .unwrap();
        let request = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(request[1], "sh_spawn");
        assert_eq!(request[3], json!({"DISPLAY": ":0"}));
    }

    #[test]
    fn ids_are_unique_and_json_safe() {
        let a = next_id();
        let b = next_id();
        assert!(b > a && b < (1u64 << 53));
    }
}
