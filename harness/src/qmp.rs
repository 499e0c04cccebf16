//! A thin typed layer over the `qapi` crate's QMP client on tokio.
//!
//! Commands are the crate's generated types (`qapi::qmp::screendump` ...);
//! this module adds what a test harness needs around them: a timeout on every
//! command (a wedged QEMU must not hang a run), errors that say which command
//! failed and whether QEMU refused it or the socket died, and QMP events kept
//! in a buffer so a test can wait for one that arrived before it asked.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use qapi::futures::{QapiService, QmpStreamTokio};
use qapi::qmp;
use tokio::io::WriteHalf;
use tokio::net::UnixStream;
use tokio::sync::Notify;

type Writer = QmpStreamTokio<WriteHalf<UnixStream>>;

/// Errors from talking to QEMU over QMP.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not connect to the QMP socket {path}")]
    Connect {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("QMP capability negotiation failed on {path}")]
    Negotiate {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("QEMU refused `{command}`: {desc}")]
    Refused { command: &'static str, desc: String },
    #[error("QMP connection lost during `{command}` (did QEMU exit?)")]
    Disconnected {
        command: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("QEMU did not answer `{command}` within {timeout:?}")]
    CommandTimeout {
        command: &'static str,
        timeout: Duration,
    },
    #[error("timed out after {timeout:?} waiting for QMP event {what} (events seen: {seen})")]
    EventTimeout {
        what: String,
        timeout: Duration,
        seen: String,
    },
    #[error("QMP connection closed while waiting for event {what} (events seen: {seen})")]
    EventStreamClosed { what: String, seen: String },
}

/// A QMP event with its name (as QEMU spells it) for logs and matching.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub event: qmp::Event,
}

#[derive(Default)]
struct EventLog {
    /// Events not yet consumed by `wait_event`, oldest first.
    pending: VecDeque<Event>,
    /// Every event name seen, for error messages.
    seen: Vec<String>,
    closed: bool,
}

/// A connected, negotiated QMP session.
pub struct Qmp {
    service: QapiService<Writer>,
    events: Arc<Mutex<EventLog>>,
    notify: Arc<Notify>,
    reader: tokio::task::JoinHandle<()>,
    qemu_version: String,
    command_timeout: Duration,
}

impl Qmp {
    /// Connect to a QMP unix socket and negotiate capabilities.
    pub async fn connect(path: &Path) -> Result<Self, Error> {
        let display = path.display().to_string();
        let negotiation =
            QmpStreamTokio::open_uds(path)
                .await
                .map_err(|source| Error::Connect {
                    path: display.clone(),
                    source,
                })?;
        let v = &negotiation.capabilities.QMP.version.qemu;
        let qemu_version = format!("{}.{}.{}", v.major, v.minor, v.micro);
        let stream = negotiation
            .negotiate()
            .await
            .map_err(|source| Error::Negotiate {
                path: display,
                source,
            })?;
        let (service, mut stream_events) = stream.into_parts();
        let events = Arc::new(Mutex::new(EventLog::default()));
        let notify = Arc::new(Notify::new());
        // The reader task also routes command replies; it must run for
        // `execute` to complete.
        let reader = {
            let events = events.clone();
            let notify = notify.clone();
            tokio::spawn(async move {
                while let Some(item) = stream_events.next().await {
                    match item {
                        Ok(event) => {
                            let name = event_name(&event);
                            tracing::debug!(event = %name, "QMP event");
                            let mut log = events.lock().unwrap_or_else(|e| e.into_inner());
                            log.seen.push(name.clone());
                            log.pending.push_back(Event { name, event });
                        }
                        Err(err) => {
                            tracing::debug!(%err, "QMP stream ended with an error");
                            break;
                        }
                    }
                    notify.notify_waiters();
                }
                events.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
                notify.notify_waiters();
            })
        };
        Ok(Qmp {
            service,
            events,
            notify,
            reader,
            qemu_version,
            command_timeout: crate::wait::scaled(Duration::from_secs(30)),
        })
    }

    /// QEMU's version from the QMP greeting, e.g. "7.2.22".
    pub fn qemu_version(&self) -> &str {
        &self.qemu_version
    }

    /// Run one typed QMP command with the default timeout.
    pub async fn execute<C>(&self, command: C) -> Result<C::Ok, Error>
    where
        C: qapi::Command + qmp::QmpCommand,
    {
        self.execute_within(command, self.command_timeout).await
    }

    /// Run one typed QMP command, failing after `timeout`.
    pub async fn execute_within<C>(&self, command: C, timeout: Duration) -> Result<C::Ok, Error>
    where
        C: qapi::Command + qmp::QmpCommand,
    {
        let name = C::NAME;
        match tokio::time::timeout(timeout, self.service.execute(command)).await {
            Err(_) => Err(Error::CommandTimeout {
                command: name,
                timeout,
            }),
            Ok(Ok(v)) => Ok(v),
            Ok(Err(qapi::ExecuteError::Qapi(e))) => Err(Error::Refused {
                command: name,
                desc: e.desc,
            }),
            Ok(Err(qapi::ExecuteError::Io(source))) => Err(Error::Disconnected {
                command: name,
                source,
            }),
        }
    }

    /// Run an HMP command (for what QMP lacks in QEMU 7.2, such as a
    /// synchronous `savevm`); returns its text output.
    pub async fn hmp(&self, command_line: &str) -> Result<String, Error> {
        self.execute(qmp::human_monitor_command {
            command_line: command_line.to_owned(),
            cpu_index: None,
        })
        .await
    }

    /// Wait for the next event whose name is in `names` (oldest unconsumed
    /// first, so an event that arrived before the call counts), consuming it.
    /// Logs progress every 10 s while it waits.
    pub async fn wait_event(&self, names: &[&str], timeout: Duration) -> Result<Event, Error> {
        let what = format!("QMP event {}", names.join("|"));
        crate::wait::reporting(&what, timeout, self.next_event(names, timeout)).await
    }

    async fn next_event(&self, names: &[&str], timeout: Duration) -> Result<Event, Error> {
        let what = names.join("|");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before checking, so a notify between the
            // check and the await is not lost.
            let notified = self.notify.notified();
            {
                let mut log = self.events.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(i) = log
                    .pending
                    .iter()
                    .position(|e| names.contains(&e.name.as_str()))
                {
                    return Ok(log.pending.remove(i).expect("index from position"));
                }
                if log.closed {
                    return Err(Error::EventStreamClosed {
                        what,
                        seen: log.seen.join(", "),
                    });
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let log = self.events.lock().unwrap_or_else(|e| e.into_inner());
                return Err(Error::EventTimeout {
                    what,
                    timeout,
                    seen: log.seen.join(", "),
                });
            }
        }
    }

    /// Forget pending events (e.g. before an action whose event is awaited).
    pub fn clear_events(&self) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pending
            .clear();
    }

    /// Names of every event seen so far.
    pub fn events_seen(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seen
            .clone()
    }

    /// True once QEMU closed the socket.
    pub fn is_closed(&self) -> bool {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).closed
    }
}

impl Drop for Qmp {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The event's name as QEMU sends it ("SHUTDOWN", "RESET", ...).
fn event_name(event: &qmp::Event) -> String {
    serde_json::to_value(event)
        .ok()
        .and_then(|v| v.get("event").and_then(|n| n.as_str()).map(str::to_owned))
        .unwrap_or_else(|| "UNKNOWN".to_owned())
}
