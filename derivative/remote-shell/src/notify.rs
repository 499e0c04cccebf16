//! Telling the guest that the test suite is ready, as `signal_ready` asks.
//!
//! Tails' server runs as a systemd `Type=notify` unit ordered before the
//! display manager: `READY=1` on systemd's notification socket lets the
//! boot carry on. Where it holds the boot for the suite, it sends that
//! only on `signal_ready`; otherwise at once. This server does the same
//! when started by systemd (`NOTIFY_SOCKET` set) and, for an init without
//! systemd such as the reference derivative's, also creates a file the
//! init can wait for.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use crate::failure::Failure;

/// Where readiness is announced.
#[derive(Debug, Default)]
pub struct Readiness {
    /// Created when ready.
    file: Option<PathBuf>,
    /// systemd's notification socket (`NOTIFY_SOCKET`).
    notify_socket: Option<String>,
}

impl Readiness {
    /// From the environment (`NOTIFY_SOCKET`) and the `--ready-file`.
    pub fn new(file: Option<PathBuf>) -> Readiness {
        Readiness {
            file,
            notify_socket: std::env::var("NOTIFY_SOCKET")
                .ok()
                .filter(|s| !s.is_empty()),
        }
    }

    /// Only a ready file (tests).
    #[cfg(test)]
    pub fn with_file(file: PathBuf) -> Readiness {
        Readiness {
            file: Some(file),
            notify_socket: None,
        }
    }

    /// Announce readiness (again: harmless).
    pub fn mark_ready(&self) -> Result<(), Failure> {
        if let Some(socket) = &self.notify_socket {
            notify(socket, "READY=1\nSTATUS=Processing requests...\n")?;
        }
        if let Some(file) = &self.file {
            let path = file.to_string_lossy().into_owned();
            std::fs::write(file, b"").map_err(|e| Failure::io(&e, Some(&path)))?;
        }
        Ok(())
    }
}

/// One sd_notify datagram; `@name` is an abstract socket.
fn notify(socket: &str, message: &str) -> Result<(), Failure> {
    let sock = UnixDatagram::unbound().map_err(|e| Failure::io(&e, None))?;
    let sent = match socket.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .map_err(|e| Failure::io(&e, Some(socket)))?;
            sock.send_to_addr(message.as_bytes(), &addr)
        }
        None => sock.send_to(message.as_bytes(), socket),
    };
    sent.map(drop).map_err(|e| Failure::io(&e, Some(socket)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_reaches_systemds_socket_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("notify");
        let listener = UnixDatagram::bind(&socket).unwrap();
        let ready = Readiness {
            file: Some(dir.path().join("ready")),
            notify_socket: Some(socket.to_string_lossy().into_owned()),
        };
        ready.mark_ready().unwrap();
        let mut buf = [0u8; 128];
        let n = listener.recv(&mut buf).unwrap();
        assert!(std::str::from_utf8(&buf[..n])
            .unwrap()
            .starts_with("READY=1\n"));
        assert!(dir.path().join("ready").exists());
    }

    #[test]
    fn a_ready_file_that_cannot_be_made_is_an_error() {
        let ready = Readiness::with_file("/nonexistent/dir/ready".into());
        let err = ready.mark_ready().unwrap_err().to_string();
        assert!(err.starts_with("FileNotFoundError"), "{err}");
    }
}
