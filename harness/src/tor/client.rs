//! A Tor client inside the lab namespace, for the harness's own checks (the
//! integration tests, a probe that the network carries traffic before a
//! guest relies on it). The guest runs its own tor with the same
//! [`Network::client_lines`](super::Network::client_lines).

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Error;
use crate::process::{self, ChildGuard, Namespace, Spec};
use crate::wait::{self, Check};

/// A running client `tor` with a SOCKS port; stops on drop.
#[derive(Debug)]
pub struct Client {
    guard: ChildGuard,
    socks: SocketAddrV4,
    log: PathBuf,
}

impl Client {
    /// Start a client in the lab (entered as `namespace` says; a path is
    /// joined) with its torrc, data and log under `dir`, listening for
    /// SOCKS on `socks` (inside the namespace).
    pub fn start(
        namespace: impl Into<Namespace>,
        dir: &Path,
        socks: SocketAddrV4,
        client_lines: &[String],
    ) -> Result<Self, Error> {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(Error::io("create", &data))?;
        let mut torrc = String::from("# Written by Tailor (harness::tor): a lab client.\n");
        for line in client_lines {
            torrc.push_str(line);
            torrc.push('\n');
        }
        torrc.push_str(&format!(
            "DataDirectory {}\nSocksPort {socks}\nLog notice stdout\nSafeLogging 0\nRunAsDaemon 0\n",
            data.display()
        ));
        let torrc_path = dir.join("torrc");
        std::fs::write(&torrc_path, torrc).map_err(Error::io("write", &torrc_path))?;
        let log = dir.join("tor.log");
        let guard = process::spawn(
            namespace.into().apply(
                Spec::new("tor")
                    .arg("-f")
                    .arg(&torrc_path)
                    // No host-wide /etc/tor/torrc-defaults may change the lab.
                    .args(["--defaults-torrc", "/nonexistent"])
                    .log(&log),
            ),
        )
        .map_err(|source| Error::Spawn {
            nickname: "client".into(),
            source,
        })?;
        Ok(Client { guard, socks, log })
    }

    /// Wait until the client logs "Bootstrapped 100%"; returns how long
    /// that took from this call. `timeout` is scaled here.
    pub async fn wait_bootstrapped(&mut self, timeout: Duration) -> Result<Duration, Error> {
        let start = Instant::now();
        let log = self.log.clone();
        let guard = &mut self.guard;
        let result = wait::wait_until(
            "the lab Tor client to log \"Bootstrapped 100%\"",
            wait::scaled(timeout),
            Duration::from_millis(100),
            || {
                let check = match guard.try_wait() {
                    Some(status) => Check::Fatal(Error::Exited {
                        nickname: "client".into(),
                        status: status.to_string(),
                        log: log.clone(),
                        tail: process::tail_of_file(&log, 20),
                    }),
                    None => {
                        let text = std::fs::read_to_string(&log).unwrap_or_default();
                        match last_bootstrap(&text) {
                            Some(100) => Check::Ready(()),
                            Some(p) => Check::NotYet(format!("Bootstrapped {p}%")),
                            None => Check::NotYet("no bootstrap progress logged".into()),
                        }
                    }
                };
                async move { check }
            },
        )
        .await;
        match result {
            Ok(()) => Ok(start.elapsed()),
            Err(wait::WaitError::Fatal(e)) => Err(e),
            Err(wait::WaitError::Timeout(timeout)) => Err(Error::ClientNotBootstrapped {
                timeout: Box::new(timeout),
                tail: process::tail_of_file(&self.log, 20),
                log: self.log.clone(),
            }),
        }
    }

    /// Where to point `curl --socks5-hostname` (inside the namespace).
    pub fn socks(&self) -> SocketAddrV4 {
        self.socks
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Stop the client and wait until it is gone.
    pub fn stop(&mut self) {
        self.guard.stop(Duration::from_secs(5));
    }
}

/// The last "Bootstrapped N%" a tor log reports.
pub fn last_bootstrap(log: &str) -> Option<u8> {
    log.lines().rev().find_map(|line| {
        let rest = &line[line.find("Bootstrapped ")? + "Bootstrapped ".len()..];
        rest.split('%').next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_bootstrap_percentage() {
        let log = "\
Nov 25 08:32:06.000 [notice] Bootstrapped 0% (starting): Starting
Nov 25 08:32:07.000 [notice] Bootstrapped 95% (circuit_create): Establishing a Tor circuit
Nov 25 08:32:08.000 [notice] Other line
";
        assert_eq!(last_bootstrap(log), Some(95));
        let done = format!("{log}Nov 25 08:32:09.000 [notice] Bootstrapped 100% (done): Done\n");
        assert_eq!(last_bootstrap(&done), Some(100));
        assert_eq!(last_bootstrap("nothing"), None);
        assert_eq!(last_bootstrap("Bootstrapped x%"), None);
    }
}
