//! Bridges of the lab's private Tor network: Tor relays that are not in the
//! consensus, which a client reaches only when it knows their bridge line.
//!
//! [`Bridges::start`] runs them next to a running [`Network`] (they need
//! its authorities to bootstrap), on the lab address with ports of their
//! own: by default one vanilla bridge (`bridge0`, ORPort 6000) and two
//! obfs4 bridges (`obfs4bridge0`/`1`, ORPorts 6001/6002, obfs4 on
//! 6101/6102) whose server side is Debian's `obfs4proxy`, started by tor
//! itself (`ServerTransportPlugin`). Each bridge has
//! `PublishServerDescriptor 0`: a client fetches its descriptor from the
//! bridge itself, and no authority ever lists it (BRIDGES-VPN-NOTES.md).
//!
//! Lines: a vanilla bridge's is its address and fingerprint; an obfs4
//! bridge's is the one tor writes to `DATADIR/bridgelines` once
//! obfs4proxy has registered (the certificate comes from obfs4proxy's
//! `pt_state/obfs4_state.json`). Identity keys are cached like the relays'
//! (see [`super::default_key_cache`]) and so is the obfs4 state, so the
//! lines stay the same from run to run.
//!
//! Every bridge (and the obfs4proxy it starts, in its process group, which
//! also exits when tor closes its stdin) is a [`ChildGuard`]: stopping or
//! dropping [`Bridges`] ends them, and a SIGKILLed harness takes them with
//! it.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::bridge_line::BridgeLine;
use super::{last_bootstrap, make_keys, set_private, DirAuthority, Error, Network, Node, Role};
use crate::process::{self, ChildGuard, Namespace, Spec};
use crate::wait::{self, Check};

/// Where Debian installs the obfs4 transport, on the host and in the
/// reference derivative alike.
pub const OBFS4PROXY: &str = "/usr/bin/obfs4proxy";

/// How clients reach a bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BridgeKind {
    /// Plain Tor at its ORPort.
    Vanilla,
    /// obfs4 at this port (its ORPort is for tor's own use).
    Obfs4 { port: u16 },
}

/// One bridge of the lab, before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    /// Letters and digits only (tor's rule for nicknames).
    pub nickname: String,
    pub or_port: u16,
    pub kind: BridgeKind,
}

/// The lab's bridges.
#[derive(Debug, Clone)]
pub struct BridgesSpec {
    /// How the bridges enter the lab (as [`super::NetworkSpec::namespace`]).
    pub namespace: Namespace,
    /// Where each bridge's torrc, data and log go; must be new or empty.
    pub run_dir: PathBuf,
    pub bridges: Vec<BridgeSpec>,
    /// As [`super::NetworkSpec::key_cache`]; also keeps the obfs4 state.
    pub key_cache: Option<PathBuf>,
    /// How long the bridges may take to bootstrap and register their
    /// transports (scaled). Measured here: a few seconds.
    pub ready_timeout: Duration,
}

impl BridgesSpec {
    /// One vanilla bridge and two obfs4 bridges (ports 6000-6002, obfs4
    /// on 6101 and 6102).
    pub fn new(namespace: impl Into<Namespace>, run_dir: impl Into<PathBuf>) -> Self {
        let bridge = |nickname: &str, or_port, kind| BridgeSpec {
            nickname: nickname.into(),
            or_port,
            kind,
        };
        BridgesSpec {
            namespace: namespace.into(),
            run_dir: run_dir.into(),
            bridges: vec![
                bridge("bridge0", 6000, BridgeKind::Vanilla),
                bridge("obfs4bridge0", 6001, BridgeKind::Obfs4 { port: 6101 }),
                bridge("obfs4bridge1", 6002, BridgeKind::Obfs4 { port: 6102 }),
            ],
            key_cache: super::default_key_cache(),
            ready_timeout: Duration::from_secs(60),
        }
    }
}

/// A running bridge of the lab.
#[derive(Debug)]
pub struct Bridge {
    pub spec: BridgeSpec,
    /// What a client needs to use it.
    pub line: BridgeLine,
    pub fingerprint: String,
    log: PathBuf,
    data_dir: PathBuf,
    guard: ChildGuard,
}

impl Bridge {
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// The bridge's ORPort (a vanilla bridge's clients connect there).
    pub fn or_endpoint(&self, address: Ipv4Addr) -> SocketAddrV4 {
        SocketAddrV4::new(address, self.spec.or_port)
    }
}

/// The lab's running bridges; see the module docs. Stop on drop.
#[derive(Debug)]
pub struct Bridges {
    address: Ipv4Addr,
    run_dir: PathBuf,
    bridges: Vec<Bridge>,
    bring_up: Duration,
}

/// The full torrc of one lab bridge.
pub fn bridge_torrc(
    spec: &BridgeSpec,
    address: Ipv4Addr,
    data_dir: &Path,
    authorities: &[DirAuthority],
) -> String {
    let mut t = String::from("# Written by Tailor (harness::tor::bridges): a lab bridge.\n");
    let mut line = |s: &str| {
        t.push_str(s);
        t.push('\n');
    };
    for l in super::client_lines(authorities) {
        line(&l);
    }
    line(&format!("Nickname {}", spec.nickname));
    line(&format!("DataDirectory {}", data_dir.display()));
    line(&format!("Address {address}"));
    line(&format!("ORPort {address}:{}", spec.or_port));
    line("SocksPort 0");
    line("RunAsDaemon 0");
    line("Log notice stdout");
    line("SafeLogging 0");
    line("ContactInfo tailor-lab@localhost");
    line("ShutdownWaitLength 0");
    line("AssumeReachable 1");
    // A bridge: never in the consensus, never an exit.
    line("BridgeRelay 1");
    line("PublishServerDescriptor 0");
    line("ExitRelay 0");
    line("ExitPolicy reject *:*");
    // Its usage statistics would need GeoIP files the lab has no use for.
    line("BridgeRecordUsageByCountry 0");
    if let BridgeKind::Obfs4 { port } = spec.kind {
        line("ExtORPort auto");
        line(&format!("ServerTransportPlugin obfs4 exec {OBFS4PROXY}"));
        line(&format!("ServerTransportListenAddr obfs4 {address}:{port}"));
    }
    t
}

impl Bridges {
    /// Key, start and wait for the bridges of `spec` next to `network`.
    pub async fn start(network: &Network, spec: BridgesSpec) -> Result<Bridges, Error> {
        let started = Instant::now();
        if std::fs::read_dir(&spec.run_dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(Error::RunDirNotEmpty {
                path: spec.run_dir.clone(),
            });
        }
        let address = network.address();
        let nodes: Vec<Node> = spec
            .bridges
            .iter()
            .map(|b| Node {
                nickname: b.nickname.clone(),
                role: Role::Relay,
                address,
                or_port: b.or_port,
                dir_port: None,
            })
            .collect();
        let keyed = futures::future::try_join_all(nodes.iter().map(|node| {
            make_keys(
                node,
                spec.run_dir.join(&node.nickname),
                spec.key_cache.as_deref(),
            )
        }))
        .await?;
        let mut running = Bridges {
            address,
            run_dir: spec.run_dir.clone(),
            bridges: Vec::new(),
            bring_up: Duration::ZERO,
        };
        for (b, (fingerprint, _)) in spec.bridges.iter().zip(keyed) {
            let dir = spec.run_dir.join(&b.nickname);
            let data_dir = dir.join("data");
            if let (BridgeKind::Obfs4 { .. }, Some(cache)) = (b.kind, &spec.key_cache) {
                restore_obfs4_state(&cache.join(pt_cache_name(b, address)), &data_dir)?;
            }
            let torrc = dir.join("torrc");
            std::fs::write(
                &torrc,
                bridge_torrc(b, address, &data_dir, network.dir_authorities()),
            )
            .map_err(Error::io("write", &torrc))?;
            let log = dir.join("tor.log");
            let guard = process::spawn(
                spec.namespace.apply(
                    Spec::new("tor")
                        .arg("-f")
                        .arg(&torrc)
                        .args(["--defaults-torrc", "/nonexistent"])
                        .log(&log),
                ),
            )
            .map_err(|source| Error::Spawn {
                nickname: b.nickname.clone(),
                source,
            })?;
            let line = match b.kind {
                BridgeKind::Vanilla => BridgeLine::vanilla(
                    SocketAddr::V4(SocketAddrV4::new(address, b.or_port)),
                    &fingerprint,
                ),
                // Known once obfs4proxy has registered; see `wait_ready`.
                BridgeKind::Obfs4 { port } => BridgeLine {
                    transport: Some("obfs4".into()),
                    addr: SocketAddr::V4(SocketAddrV4::new(address, port)),
                    fingerprint: Some(fingerprint.clone()),
                    args: Vec::new(),
                },
            };
            running.bridges.push(Bridge {
                spec: b.clone(),
                line,
                fingerprint,
                log,
                data_dir,
                guard,
            });
        }
        // On error `running` drops here and ends the bridges started so far.
        running.wait_ready(spec.ready_timeout).await?;
        if let Some(cache) = &spec.key_cache {
            for b in &running.bridges {
                if let BridgeKind::Obfs4 { .. } = b.spec.kind {
                    store_obfs4_state(&b.data_dir, &cache.join(pt_cache_name(&b.spec, address)));
                }
            }
        }
        running.bring_up = started.elapsed();
        tracing::info!(
            "{} lab bridges ready after {:.1?}",
            running.bridges.len(),
            running.bring_up
        );
        Ok(running)
    }

    /// Ready: every bridge bootstrapped (it can extend circuits) and every
    /// obfs4 bridge's line written by tor.
    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), Error> {
        let what = format!(
            "all {} lab bridges bootstrapped with their transports registered",
            self.bridges.len()
        );
        let result = wait::wait_until(
            &what,
            wait::scaled(timeout),
            Duration::from_millis(200),
            || {
                let check = self.check_ready();
                async move { check }
            },
        )
        .await;
        match result {
            Ok(lines) => {
                for (b, line) in self.bridges.iter_mut().zip(lines) {
                    b.line = line;
                }
                Ok(())
            }
            Err(wait::WaitError::Fatal(e)) => Err(e),
            Err(wait::WaitError::Timeout(timeout)) => {
                let first = self
                    .bridges
                    .iter()
                    .find(|b| {
                        last_bootstrap(&std::fs::read_to_string(&b.log).unwrap_or_default())
                            != Some(100)
                    })
                    .unwrap_or(&self.bridges[0]);
                Err(Error::BridgesNotReady {
                    timeout: Box::new(timeout),
                    run_dir: self.run_dir.clone(),
                    log: first.log.clone(),
                    tail: process::tail_of_file(&first.log, 20),
                })
            }
        }
    }

    fn check_ready(&mut self) -> Check<Vec<BridgeLine>, Error> {
        let mut lines = Vec::new();
        let mut behind = Vec::new();
        for b in &mut self.bridges {
            if let Some(status) = b.guard.try_wait() {
                return Check::Fatal(Error::Exited {
                    nickname: b.spec.nickname.clone(),
                    status: status.to_string(),
                    log: b.log.clone(),
                    tail: process::tail_of_file(&b.log, 20),
                });
            }
            let log = std::fs::read_to_string(&b.log).unwrap_or_default();
            match last_bootstrap(&log) {
                Some(100) => {}
                p => behind.push(format!("{} at {}%", b.spec.nickname, p.unwrap_or(0))),
            }
            match b.spec.kind {
                BridgeKind::Vanilla => lines.push(b.line.clone()),
                BridgeKind::Obfs4 { .. } => match read_bridgeline(&b.data_dir) {
                    Ok(line) if line.addr == b.line.addr => lines.push(line),
                    Ok(line) => {
                        return Check::Fatal(Error::KeyFile {
                            path: b.data_dir.join("bridgelines"),
                            expected: "the obfs4 address this bridge was given",
                            seen: line.to_string(),
                        })
                    }
                    Err(why) => behind.push(format!("{}: {why}", b.spec.nickname)),
                },
            }
        }
        if behind.is_empty() {
            Check::Ready(lines)
        } else {
            Check::NotYet(behind.join(", "))
        }
    }

    /// Every bridge, vanilla first as started.
    pub fn all(&self) -> &[Bridge] {
        &self.bridges
    }

    /// The bridges a client reaches through `transport` (`None`: vanilla).
    pub fn with_transport(&self, transport: Option<&str>) -> Vec<&Bridge> {
        self.bridges
            .iter()
            .filter(|b| b.line.transport.as_deref() == transport)
            .collect()
    }

    /// The bridge called `nickname`.
    pub fn named(&self, nickname: &str) -> Option<&Bridge> {
        self.bridges.iter().find(|b| b.spec.nickname == nickname)
    }

    /// The lines of every bridge.
    pub fn lines(&self) -> Vec<BridgeLine> {
        self.bridges.iter().map(|b| b.line.clone()).collect()
    }

    /// The address every bridge listens on.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Every bridge's log, for artifacts.
    pub fn logs(&self) -> Vec<PathBuf> {
        self.bridges.iter().map(|b| b.log.clone()).collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.bridges.iter().map(|b| b.guard.pid()).collect()
    }

    /// From `start` to ready.
    pub fn bring_up_time(&self) -> Duration {
        self.bring_up
    }

    /// End every bridge (and its transport) and wait until all are gone.
    pub fn stop(&mut self) -> Result<(), Error> {
        if self.bridges.is_empty() {
            return Ok(());
        }
        let stopped = super::stop_all(self.bridges.iter_mut().map(|b| &mut b.guard));
        // Forgotten either way: a second stop (on drop) has nothing to end.
        self.bridges.clear();
        stopped?;
        tracing::info!("lab bridges stopped");
        Ok(())
    }
}

impl Drop for Bridges {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("{e}");
        }
    }
}

/// The line tor wrote to `DATADIR/bridgelines`, or why there is none yet.
fn read_bridgeline(data_dir: &Path) -> Result<BridgeLine, String> {
    let path = data_dir.join("bridgelines");
    let text = std::fs::read_to_string(&path)
        .map_err(|_| "obfs4 not registered yet (no bridgelines file)".to_owned())?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("Bridge obfs4 "))
        .ok_or_else(|| format!("no `Bridge obfs4` line in {}", path.display()))?;
    line.parse::<BridgeLine>().map_err(|e| e.to_string())
}

/// Where an obfs4 bridge's state is cached: bound to its nickname, address
/// and ORPort like its keys (see `cache_entry_name`).
fn pt_cache_name(spec: &BridgeSpec, address: Ipv4Addr) -> String {
    format!("{}-{address}-{}-obfs4", spec.nickname, spec.or_port)
}

const OBFS4_STATE: &str = "obfs4_state.json";

/// Put a cached obfs4 state where obfs4proxy finds it, so the bridge keeps
/// its certificate (and its line).
fn restore_obfs4_state(entry: &Path, data_dir: &Path) -> Result<(), Error> {
    let cached = entry.join(OBFS4_STATE);
    if !cached.is_file() {
        return Ok(());
    }
    let pt_state = data_dir.join("pt_state");
    std::fs::create_dir_all(&pt_state).map_err(Error::io("create", &pt_state))?;
    set_private(&pt_state)?;
    let target = pt_state.join(OBFS4_STATE);
    std::fs::copy(&cached, &target).map_err(Error::io("copy the obfs4 state to", &target))?;
    Ok(())
}

/// Best effort, whole or not at all (as the keys' cache).
fn store_obfs4_state(data_dir: &Path, entry: &Path) {
    let state = data_dir.join("pt_state").join(OBFS4_STATE);
    if entry.join(OBFS4_STATE).is_file() || !state.is_file() {
        return;
    }
    let Some(cache) = entry.parent() else { return };
    let tmp = cache.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        entry.file_name().unwrap_or_default().to_string_lossy()
    ));
    let result = (|| -> Result<(), Error> {
        std::fs::create_dir_all(&tmp).map_err(Error::io("create", &tmp))?;
        set_private(cache)?;
        set_private(&tmp)?;
        std::fs::copy(&state, tmp.join(OBFS4_STATE)).map_err(Error::io("copy", &state))?;
        std::fs::rename(&tmp, entry).map_err(Error::io("rename into", entry))
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        tracing::debug!("not caching the obfs4 state: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auths() -> Vec<DirAuthority> {
        vec![DirAuthority {
            nickname: "auth0".into(),
            address: Ipv4Addr::new(10, 203, 0, 1),
            or_port: 5000,
            dir_port: 7000,
            v3ident: format!("{:040X}", 1),
            fingerprint: format!("{:040X}", 2),
        }]
    }

    #[test]
    fn default_bridges_are_one_vanilla_and_two_obfs4_on_their_own_ports() {
        let spec = BridgesSpec::new(Path::new("/run/netns/x"), "/tmp/x");
        let kinds: Vec<(&str, u16, BridgeKind)> = spec
            .bridges
            .iter()
            .map(|b| (b.nickname.as_str(), b.or_port, b.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("bridge0", 6000, BridgeKind::Vanilla),
                ("obfs4bridge0", 6001, BridgeKind::Obfs4 { port: 6101 }),
                ("obfs4bridge1", 6002, BridgeKind::Obfs4 { port: 6102 }),
            ]
        );
        for b in &spec.bridges {
            assert!(b.nickname.chars().all(|c| c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn a_bridge_stays_out_of_the_consensus_and_serves_obfs4_when_asked() {
        let spec = BridgesSpec::new(Path::new("/n"), "/r");
        let addr = Ipv4Addr::new(10, 203, 0, 1);
        let obfs4 = bridge_torrc(&spec.bridges[1], addr, Path::new("/d"), &auths());
        for want in [
            "BridgeRelay 1",
            "PublishServerDescriptor 0",
            "ORPort 10.203.0.1:6001",
            "ExtORPort auto",
            "ServerTransportPlugin obfs4 exec /usr/bin/obfs4proxy",
            "ServerTransportListenAddr obfs4 10.203.0.1:6101",
            "ExitPolicy reject *:*",
            "TestingTorNetwork 1",
        ] {
            assert!(
                obfs4.lines().any(|l| l == want),
                "missing {want:?}:\n{obfs4}"
            );
        }
        assert!(obfs4.contains("DirAuthority auth0 "), "{obfs4}");
        let vanilla = bridge_torrc(&spec.bridges[0], addr, Path::new("/d"), &auths());
        assert!(vanilla.lines().any(|l| l == "BridgeRelay 1"), "{vanilla}");
        assert!(!vanilla.contains("obfs4"), "{vanilla}");
    }

    #[test]
    fn the_bridgeline_file_gives_the_obfs4_line() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_bridgeline(dir.path()).is_err());
        std::fs::write(
            dir.path().join("bridgelines"),
            "# comment\nBridge obfs4 10.203.0.1:6101 82276CAEBBB8B7873279163E1DC803A51D62CCAB cert=WRnV1r2T iat-mode=0\n",
        )
        .unwrap();
        let line = read_bridgeline(dir.path()).unwrap();
        assert_eq!(line.arg("cert"), Some("WRnV1r2T"));
        assert_eq!(line.addr, "10.203.0.1:6101".parse().unwrap());
    }

    #[test]
    fn the_obfs4_state_round_trips_through_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(data.join("pt_state")).unwrap();
        std::fs::write(
            data.join("pt_state").join(OBFS4_STATE),
            "{\"node-id\":\"1\"}",
        )
        .unwrap();
        let entry = dir.path().join("cache/obfs4bridge0-10.203.0.1-6001-obfs4");
        std::fs::create_dir_all(entry.parent().unwrap()).unwrap();
        store_obfs4_state(&data, &entry);
        let fresh = dir.path().join("fresh");
        restore_obfs4_state(&entry, &fresh).unwrap();
        assert_eq!(
            std::fs::read_to_string(fresh.join("pt_state").join(OBFS4_STATE)).unwrap(),
            "{\"node-id\":\"1\"}"
        );
        // Nothing cached: nothing restored, no error.
        let other = dir.path().join("other");
        restore_obfs4_state(&dir.path().join("cache/none"), &other).unwrap();
        assert!(!other.exists());
    }
}
