//! One WireGuard interface in a lab namespace, run by Debian's userspace
//! `wireguard-go` (the host kernel has no WireGuard), configured with `wg`.
//!
//! Measured pitfalls (BRIDGES-VPN-NOTES.md) and what is done about them:
//! - wireguard-go's control socket lives in `/var/run/wireguard`, one
//!   folder for every namespace of the host, so two labs' `wg0` would
//!   collide ("UAPI listen error") and a killed daemon would leave its
//!   socket behind. Each daemon runs in a private mount namespace with a
//!   tmpfs of its own on `/run`: nothing of it is visible on the host, two
//!   labs never meet, and the socket goes away with the daemon. `wg` talks
//!   to it through `nsenter --mount --net`.
//! - it daemonizes unless `-f`: it runs with `-f`, as a [`ChildGuard`]
//!   (process group, PDEATHSIG), so it dies with the harness.
//! - it takes 1-3 s to exit after SIGTERM: nothing of its state outlives
//!   it, so [`Daemon::stop`] kills it at once (SIGKILL).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::process::{self, ChildGuard, Spec};
use crate::wait::{self, Check};

/// Errors from keys, the daemon and `wg`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`{command}` failed: {detail} (wireguard-tools installed? see scripts/debian-packages.txt)"
    )]
    Wg { command: String, detail: String },
    #[error("cannot start wireguard-go for {ifname} in {netns}")]
    Spawn {
        ifname: String,
        netns: PathBuf,
        #[source]
        source: process::Error,
    },
    #[error("wireguard-go for {ifname} exited ({status}) before it was ready; its log {log} ends with:\n{tail}")]
    Exited {
        ifname: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("wireguard-go for {ifname} did not become ready; its log {log} ends with:\n{tail}")]
    NotReady {
        ifname: String,
        #[source]
        timeout: Box<wait::Timeout>,
        log: PathBuf,
        tail: String,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`wg show {ifname} dump` printed something unexpected: {line:?}")]
    Dump { ifname: String, line: String },
}

/// A Curve25519 key pair, base64 as `wg` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPair {
    pub private: String,
    pub public: String,
}

/// Run `wg ARGS` with `input` on stdin; its stdout.
fn wg_with_input(args: &[&str], input: &str) -> Result<String, Error> {
    let command = format!("wg {}", args.join(" "));
    let failed = |detail: String| Error::Wg {
        command: command.clone(),
        detail,
    };
    let mut child = Command::new("wg")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        return Err(failed(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl KeyPair {
    /// A fresh key pair from `wg genkey` and `wg pubkey`.
    pub fn generate() -> Result<KeyPair, Error> {
        let private = wg_with_input(&["genkey"], "")?;
        let public = wg_with_input(&["pubkey"], &private)?;
        Ok(KeyPair { private, public })
    }
}

/// One peer as `wg show IF dump` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    pub public_key: String,
    /// Where its last packet came from; `None` before any.
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: String,
    /// The last completed handshake; `None` if there was none.
    pub latest_handshake: Option<SystemTime>,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// Parse `wg show IF dump`: the interface line, then one line per peer
/// (public key, preshared key, endpoint, allowed IPs, latest handshake in
/// seconds since the epoch, bytes received, bytes sent, keepalive).
pub fn parse_dump(ifname: &str, text: &str) -> Result<Vec<PeerStatus>, Error> {
    let bad = |line: &str| Error::Dump {
        ifname: ifname.to_owned(),
        line: line.to_owned(),
    };
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() < 8 {
                return Err(bad(line));
            }
            let endpoint = match f[2] {
                "(none)" => None,
                e => Some(e.parse().map_err(|_| bad(line))?),
            };
            let secs: u64 = f[4].parse().map_err(|_| bad(line))?;
            Ok(PeerStatus {
                public_key: f[0].to_owned(),
                endpoint,
                allowed_ips: f[3].to_owned(),
                latest_handshake: (secs > 0).then(|| UNIX_EPOCH + Duration::from_secs(secs)),
                rx_bytes: f[5].parse().map_err(|_| bad(line))?,
                tx_bytes: f[6].parse().map_err(|_| bad(line))?,
            })
        })
        .collect()
}

/// A running wireguard-go with its interface; killed on drop.
#[derive(Debug)]
pub struct Daemon {
    guard: ChildGuard,
    ifname: String,
    netns: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// Start wireguard-go for interface `ifname` in the namespace `netns`
    /// (`/run/netns/NAME`) and wait until its control socket answers.
    /// Its log goes to `log`.
    pub async fn start(netns: &Path, ifname: &str, log: &Path) -> Result<Daemon, Error> {
        // A tmpfs of its own on /run (so /var/run/wireguard) in a private
        // mount namespace; then exec, keeping the guard's PID.
        let script =
            format!("mount -t tmpfs -o mode=0755 tailor-wg /run && exec wireguard-go -f {ifname}");
        let spec = Spec::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(script)
            .netns(netns)
            .log(log);
        let guard = process::spawn(spec).map_err(|source| Error::Spawn {
            ifname: ifname.to_owned(),
            netns: netns.to_owned(),
            source,
        })?;
        let mut daemon = Daemon {
            guard,
            ifname: ifname.to_owned(),
            netns: netns.to_owned(),
            log: log.to_owned(),
        };
        daemon.wait_socket().await?;
        Ok(daemon)
    }

    /// The control socket, as the daemon's own mount namespace has it.
    fn socket(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/root/run/wireguard/{}.sock",
            self.guard.pid(),
            self.ifname
        ))
    }

    async fn wait_socket(&mut self) -> Result<(), Error> {
        let socket = self.socket();
        let ifname = self.ifname.clone();
        let log = self.log.clone();
        let guard = &mut self.guard;
        let result = wait::wait_until(
            &format!("wireguard-go's control socket for {ifname}"),
            wait::scaled(Duration::from_secs(10)),
            Duration::from_millis(20),
            || {
                let check = match guard.try_wait() {
                    Some(status) => Check::Fatal(Error::Exited {
                        ifname: ifname.clone(),
                        status: status.to_string(),
                        log: log.clone(),
                        tail: process::tail_of_file(&log, 20),
                    }),
                    None if socket.exists() => Check::Ready(()),
                    None => Check::NotYet(format!("no {} yet", socket.display())),
                };
                async move { check }
            },
        )
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(wait::WaitError::Fatal(e)) => Err(e),
            Err(wait::WaitError::Timeout(timeout)) => Err(Error::NotReady {
                ifname,
                timeout: Box::new(timeout),
                tail: process::tail_of_file(&log, 20),
                log,
            }),
        }
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    pub fn netns(&self) -> &Path {
        &self.netns
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Whether the daemon still runs.
    pub fn is_running(&mut self) -> bool {
        self.guard.try_wait().is_none()
    }

    /// `wg ARGS`, talking to this daemon.
    pub fn wg(&self, args: &[&str]) -> Result<String, Error> {
        let pid = self.guard.pid().to_string();
        let mut full = vec!["--target", &pid, "--mount", "--net", "--", "wg"];
        full.extend_from_slice(args);
        process::run_output("nsenter", &full).map_err(|e| Error::Wg {
            command: format!("wg {}", args.join(" ")),
            detail: e.to_string(),
        })
    }

    /// Replace the interface's configuration with `config` (`wg setconf`
    /// format; it holds a private key, so it goes through a file only root
    /// can read, in `dir`).
    pub fn set_config(&self, config: &str, dir: &Path) -> Result<(), Error> {
        let path = dir.join(format!("{}.conf", self.ifname));
        write_private(&path, config)?;
        let path_s = path.display().to_string();
        self.wg(&["setconf", &self.ifname, &path_s]).map(drop)
    }

    /// The peers and their handshakes.
    pub fn peers(&self) -> Result<Vec<PeerStatus>, Error> {
        parse_dump(&self.ifname, &self.wg(&["show", &self.ifname, "dump"])?)
    }

    /// The UDP port it listens on (0 before one is set).
    pub fn listen_port(&self) -> Result<u16, Error> {
        let out = self.wg(&["show", &self.ifname, "listen-port"])?;
        out.trim().parse().map_err(|_| Error::Dump {
            ifname: self.ifname.clone(),
            line: out,
        })
    }

    /// Kill it now: its socket, interface and mount namespace go with it.
    pub fn stop(&mut self) {
        self.guard.kill();
    }
}

/// Write a file only its owner can read (keys).
pub fn write_private(path: &Path, content: &str) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        f.write_all(content.as_bytes())
    };
    write().map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_lists_peers_with_their_handshakes() {
        let dump = "cPriv=\tcPub=\t51820\toff\n\
                    gPub=\t(none)\t10.203.0.57:43817\t10.204.0.2/32\t1796033102\t9480\t9192\toff\n\
                    pPub=\t(none)\t(none)\t10.204.0.3/32\t0\t0\t0\toff\n";
        let peers = parse_dump("wg0", dump).unwrap();
        assert_eq!(peers.len(), 2);
        assert_eq!(
            peers[0].endpoint,
            Some("10.203.0.57:43817".parse().unwrap())
        );
        assert_eq!(
            peers[0].latest_handshake,
            Some(UNIX_EPOCH + Duration::from_secs(1_796_033_102))
        );
        assert_eq!(peers[0].rx_bytes, 9480);
        assert_eq!(peers[1].endpoint, None);
        assert_eq!(peers[1].latest_handshake, None);
        let err = parse_dump("wg0", "if\nbroken line\n").unwrap_err();
        assert!(err.to_string().contains("broken line"), "{err}");
    }
}
