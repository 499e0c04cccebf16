//! The lab's "Internet": one web server on a lab address, inside the lab
//! namespace, serving a known page and logging every request with the
//! client's address. The guest can only reach it through a Tor exit (its
//! firewall allows nothing else), so its log shows where a request came
//! from: the relays' address for a request through Tor, the guest's own
//! address for a direct one.
//!
//! It is busybox's `httpd` (busybox-static is a host package already): in the
//! foreground with `-vv` it writes `IP:PORT: url:/PATH` and
//! `IP:PORT: response:CODE` for every request to stderr.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::process::{self, ChildGuard, Namespace, Spec};
use crate::wait::{self, Check};

/// Errors from the lab web server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not prepare the web server's directory {path}")]
    Prepare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("could not start the lab web server")]
    Spawn(#[source] process::Error),
    #[error(
        "the lab web server exited ({status}) instead of listening on {address}; \
         its log {log} ends with:\n{tail}"
    )]
    Exited {
        address: SocketAddrV4,
        status: std::process::ExitStatus,
        log: PathBuf,
        tail: String,
    },
    #[error("the lab web server did not listen on {address}; its log {log} ends with:\n{tail}")]
    NotListening {
        address: SocketAddrV4,
        #[source]
        timeout: Box<wait::Timeout>,
        log: PathBuf,
        tail: String,
    },
    #[error("could not read the web server's request log {path}")]
    ReadLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One request the web server saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Where the TCP connection came from.
    pub source: SocketAddrV4,
    /// The path requested, e.g. `/` or `/index.html`.
    pub path: String,
    /// The HTTP status sent back, once it was logged.
    pub status: Option<u16>,
}

/// A running lab web server; stops on drop.
#[derive(Debug)]
pub struct WebServer {
    guard: ChildGuard,
    address: SocketAddrV4,
    root: PathBuf,
    log: PathBuf,
    page: String,
}

impl WebServer {
    /// Serve a fresh known page from `dir/www` on `address` inside the lab
    /// (entered as `namespace` says; a path is joined) and wait until the
    /// socket listens. The log is `dir/httpd.log`.
    pub async fn start(
        namespace: impl Into<Namespace>,
        address: SocketAddrV4,
        dir: &Path,
    ) -> Result<Self, Error> {
        let root = dir.join("www");
        let prepare = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Prepare { path, source }
        };
        std::fs::create_dir_all(&root).map_err(prepare(&root))?;
        // A token per server, so a page served by anything else (a stale
        // server, a cache) cannot pass for this one.
        let token = format!(
            "{:x}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        let page = format!("Tailor lab Internet: you are reading page {token}.\n");
        let index = root.join("index.html");
        std::fs::write(&index, &page).map_err(prepare(&index))?;
        let log = dir.join("httpd.log");
        // The log is appended to; requests of an earlier server must not
        // count as this one's.
        match std::fs::remove_file(&log) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Prepare {
                    path: log,
                    source: e,
                })
            }
            _ => {}
        }
        let guard = process::spawn(
            namespace.into().apply(
                Spec::new("busybox")
                    .args(["httpd", "-f", "-vv", "-p"])
                    .arg(address.to_string())
                    .arg("-h")
                    .arg(&root)
                    .log(&log),
            ),
        )
        .map_err(Error::Spawn)?;
        let mut server = WebServer {
            guard,
            address,
            root,
            log,
            page,
        };
        server.wait_listening().await?;
        tracing::info!(%address, log = %server.log.display(), "lab web server listening");
        Ok(server)
    }

    // httpd prints nothing when it is ready; its listening socket shows in
    // /proc/PID/net/tcp, which lists the sockets of the process's namespace
    // without entering it.
    async fn wait_listening(&mut self) -> Result<(), Error> {
        let tcp = PathBuf::from(format!("/proc/{}/net/tcp", self.guard.pid()));
        let address = self.address;
        let log = self.log.clone();
        let guard = &mut self.guard;
        let result = wait::wait_until(
            &format!("the lab web server to listen on {address}"),
            wait::scaled(Duration::from_secs(10)),
            Duration::from_millis(20),
            || {
                let check = match guard.try_wait() {
                    Some(status) => Check::Fatal(Error::Exited {
                        address,
                        status,
                        log: log.clone(),
                        tail: process::tail_of_file(&log, 20),
                    }),
                    None => match std::fs::read_to_string(&tcp) {
                        Ok(text) if listening(&text).contains(&address) => Check::Ready(()),
                        Ok(_) => Check::NotYet(format!("nothing listens on {address} yet")),
                        Err(e) => Check::NotYet(format!("{}: {e}", tcp.display())),
                    },
                };
                async move { check }
            },
        )
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(wait::WaitError::Fatal(e)) => Err(e),
            Err(wait::WaitError::Timeout(timeout)) => Err(Error::NotListening {
                address,
                timeout: Box::new(timeout),
                tail: process::tail_of_file(&log, 20),
                log,
            }),
        }
    }

    /// The URL of the known page, e.g. `http://10.203.0.2/`.
    pub fn url(&self) -> String {
        match self.address.port() {
            80 => format!("http://{}/", self.address.ip()),
            port => format!("http://{}:{port}/", self.address.ip()),
        }
    }

    /// The server's PID (it runs until [`WebServer::stop`]).
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    pub fn address(&self) -> SocketAddrV4 {
        self.address
    }

    /// The exact body a fetch of [`WebServer::url`] returns.
    pub fn page(&self) -> &str {
        &self.page
    }

    /// The directory served (put more pages here if a scenario needs them).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Every request logged so far, oldest first.
    pub fn requests(&self) -> Result<Vec<Request>, Error> {
        let text = std::fs::read_to_string(&self.log).map_err(|source| Error::ReadLog {
            path: self.log.clone(),
            source,
        })?;
        Ok(parse_log(&text))
    }

    /// Stop the server and wait until it is gone.
    pub fn stop(&mut self) {
        self.guard.stop(Duration::from_secs(3));
    }
}

/// Requests in busybox httpd's `-vv` log. Lines of other shapes (startup
/// messages, errors) are skipped; a `response:` line completes the request
/// from the same source that has none yet.
pub fn parse_log(text: &str) -> Vec<Request> {
    let mut requests: Vec<Request> = Vec::new();
    for line in text.lines() {
        let Some((source, message)) = line.split_once(": ") else {
            continue;
        };
        let Ok(source) = source.parse::<SocketAddrV4>() else {
            continue;
        };
        if let Some(path) = message.strip_prefix("url:") {
            requests.push(Request {
                source,
                path: path.to_owned(),
                status: None,
            });
        } else if let Some(code) = message.strip_prefix("response:") {
            let open = requests
                .iter_mut()
                .rev()
                .find(|r| r.source == source && r.status.is_none());
            if let (Some(request), Ok(code)) = (open, code.trim().parse()) {
                request.status = Some(code);
            }
        }
    }
    requests
}

/// The IPv4 addresses in LISTEN state in a `/proc/PID/net/tcp` text.
pub fn listening(proc_net_tcp: &str) -> Vec<SocketAddrV4> {
    proc_net_tcp
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let local = fields.nth(1)?;
            let state = fields.nth(1)?;
            if state != "0A" {
                return None;
            }
            let (ip, port) = local.split_once(':')?;
            // The kernel prints the address as the in-memory u32 in host
            // byte order, so native-endian bytes give the address back.
            let ip = u32::from_str_radix(ip, 16).ok()?.to_ne_bytes();
            let port = u16::from_str_radix(port, 16).ok()?;
            Some(SocketAddrV4::new(Ipv4Addr::from(ip), port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_busybox_httpd_log() {
        let log = "\
10.203.0.1:52674: url:/
10.203.0.3:40000: url:/missing
10.203.0.1:52674: response:200
10.203.0.3:40000: response:404
httpd: bind: Address in use
10.203.0.9:1: url:/half
garbage line
";
        let r = parse_log(log);
        assert_eq!(
            r,
            vec![
                Request {
                    source: "10.203.0.1:52674".parse().unwrap(),
                    path: "/".into(),
                    status: Some(200)
                },
                Request {
                    source: "10.203.0.3:40000".parse().unwrap(),
                    path: "/missing".into(),
                    status: Some(404)
                },
                Request {
                    source: "10.203.0.9:1".parse().unwrap(),
                    path: "/half".into(),
                    status: None
                },
            ]
        );
    }

    #[test]
    fn finds_listening_sockets_in_proc_net_tcp() {
        let ip = u32::from_ne_bytes([10, 203, 0, 2]);
        let text = format!(
            "  sl  local_address rem_address   st tx_queue rx_queue\n\
             \x20  0: {ip:08X}:0050 00000000:0000 0A 00000000:00000000 00:00000000\n\
             \x20  1: {ip:08X}:C350 0100CB0A:1388 01 00000000:00000000 00:00000000\n\
             \x20  2: broken\n"
        );
        assert_eq!(listening(&text), vec!["10.203.0.2:80".parse().unwrap()]);
    }
}
