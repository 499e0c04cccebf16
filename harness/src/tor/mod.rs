//! A private Tor network of real `tor` daemons inside the lab namespace, and
//! the web server that stands for "the Internet" behind its exits.
//!
//! The guest's Tor must really bootstrap, build circuits and reach a web
//! server without the Internet. [`Network::start`] runs directory
//! authorities (keys from `tor-gencert`), middle relays and exits, all on
//! one lab address with `TestingTorNetwork 1` and fast voting (see
//! `torrc.rs` and TOR-LAB-NOTES.md), and returns once every authority's
//! consensus lists every relay and every relay has bootstrapped from it
//! (13-31 s here; see BENCHMARKS.md). From that consensus come the traffic
//! policy's allow-list ([`Network::or_endpoints`]); from the layout come
//! the lines a client's torrc needs ([`Network::client_lines`]).
//!
//! Exits accept everything (`ExitPolicy accept *:*`); that is safe only
//! because the lab has no route out, so `start` proves it has none
//! ([`check_no_route_out`]) before any daemon runs.
//!
//! Every daemon enters the lab the lab's way ([`Namespace`]): as root by
//! joining the named namespace, as another user through `nsenter` into the
//! lab's user and network namespaces, so the whole network runs rootless.
//!
//! Every daemon is a [`ChildGuard`] (process group, PDEATHSIG): dropping or
//! [`Network::stop`]ping the network ends them all and waits until they are
//! gone, and a SIGKILLed harness takes them with it. A new network on the
//! same ports while the old daemons still exit would keep a guest at
//! "Bootstrapped 95%".
//!
//! The run directory (one folder per daemon: `torrc`, `tor.log`, `data/`)
//! belongs to the caller, who keeps it as an artifact on failure;
//! [`run_dir`] makes one that a killed run's successor removes. Identity
//! keys are kept between runs in [`default_key_cache`] (making them is the
//! slowest part of a bring-up on a loaded host); `key_cache: None` makes
//! fresh ones.
//!
//! Bridges ([`Bridges`], `bridges.rs`) run next to a network for
//! derivatives that reach Tor through them; [`BridgeLine`] is the line a
//! client needs for one.
//!
//! What the guest steps use:
//! - "Given the Tor network is running": [`Network::start`] and
//!   [`WebServer::start`], once per run (shared by its scenarios); the
//!   guest may boot meanwhile (`start` is async).
//! - before the guest's tor starts: write [`Network::client_torrc`] into
//!   its torrc.
//! - "When I fetch {string} through Tor in the guest": the body must equal
//!   [`WebServer::page`] when the URL is [`WebServer::url`].
//! - "Then all Internet traffic has only flowed through Tor": the capture
//!   policy allows [`Network::or_endpoints`] (plus DHCP/ARP), and every
//!   [`WebServer::requests`] entry comes from [`Network::address`] (the
//!   exits' address), none from the guest's.
//!
//! ```no_run
//! # async fn demo(lab: &harness::net::lab::Lab, run: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
//! use harness::tor::{Network, NetworkSpec, WebServer};
//! let addr = "10.203.0.1".parse()?;
//! let network = Network::start(NetworkSpec::new(lab.namespace(), addr, run.join("tor"))).await?;
//! let web = WebServer::start(lab.namespace(), "10.203.0.2:80".parse()?, &run.join("web")).await?;
//! let allow_list = network.or_endpoints(); // for the capture policy
//! let torrc_lines = network.client_lines(); // into the guest's torrc
//! // ... the guest fetches web.url() through Tor ...
//! let from_exits = web.requests()?.iter().all(|r| *r.source.ip() == network.address());
//! # Ok(()) }
//! ```

pub mod bridge_line;
pub mod bridges;
mod client;
mod consensus;
mod torrc;
pub mod web;

pub use bridge_line::{BridgeLine, BridgeLineError};
pub use bridges::{Bridge, BridgeKind, BridgeSpec, Bridges, BridgesSpec};
pub use client::{last_bootstrap, Client};
pub use consensus::{Consensus, ParseError, Relay};
pub use torrc::{client_lines, daemon_torrc, DirAuthority, Node, Role};
pub use web::{parse_log, Error as WebError, Request, WebServer};

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;

use crate::process::{self, ChildGuard, Namespace, RunError, Spec};
use crate::wait::{self, Check};

/// The size and place of a lab Tor network.
#[derive(Debug, Clone)]
pub struct NetworkSpec {
    /// How the daemons enter the lab ([`Lab::namespace`]); a path
    /// (`/run/netns/NAME`) converts to a namespace that is joined.
    ///
    /// [`Lab::namespace`]: crate::net::lab::Lab::namespace
    pub namespace: Namespace,
    /// The address every daemon binds to (the lab bridge's address).
    pub address: Ipv4Addr,
    /// Where each daemon's torrc, data and log go; created if missing, and
    /// must be empty if it exists.
    pub run_dir: PathBuf,
    /// Directory authorities (they also relay); at least 3.
    pub authorities: usize,
    /// Middle relays (no exit).
    pub relays: usize,
    /// Exit relays; at least 2.
    pub exits: usize,
    /// ORPorts are `first_or_port..`, one per daemon, authorities first.
    pub first_or_port: u16,
    /// The authorities' DirPorts are `first_dir_port..`.
    pub first_dir_port: u16,
    /// Where identity keys are kept between runs (making them took 3-13 s
    /// here, most of a bring-up's spare time). `None` makes fresh keys every
    /// time. Stable keys also keep the client lines the same across runs.
    pub key_cache: Option<PathBuf>,
    /// How long the first full consensus may take (scaled by
    /// TAILOR_TIMEOUT_SCALE). Measured here: 10-20 s.
    pub ready_timeout: Duration,
}

impl NetworkSpec {
    /// 3 authorities, 2 middle relays, 2 exits; ORPorts 5000+, DirPorts 7000+.
    pub fn new(
        namespace: impl Into<Namespace>,
        address: Ipv4Addr,
        run_dir: impl Into<PathBuf>,
    ) -> Self {
        NetworkSpec {
            namespace: namespace.into(),
            address,
            run_dir: run_dir.into(),
            authorities: 3,
            relays: 2,
            exits: 2,
            first_or_port: 5000,
            first_dir_port: 7000,
            key_cache: default_key_cache(),
            ready_timeout: Duration::from_secs(90),
        }
    }

    /// The daemons this spec describes, or why it cannot work.
    pub fn layout(&self) -> Result<Vec<Node>, SpecError> {
        if self.authorities < 3 {
            return Err(SpecError::TooFewAuthorities {
                got: self.authorities,
            });
        }
        if self.exits < 2 {
            return Err(SpecError::TooFewExits { got: self.exits });
        }
        let total = self.authorities + self.relays + self.exits;
        let range = |first: u16, count: usize| -> Result<std::ops::Range<u32>, SpecError> {
            let end = u32::from(first) + count as u32;
            if first == 0 || end > u32::from(u16::MAX) + 1 {
                return Err(SpecError::PortRange { first, count });
            }
            Ok(u32::from(first)..end)
        };
        let or_ports = range(self.first_or_port, total)?;
        let dir_ports = range(self.first_dir_port, self.authorities)?;
        if or_ports.start < dir_ports.end && dir_ports.start < or_ports.end {
            return Err(SpecError::PortsOverlap {
                or_ports: or_ports.clone(),
                dir_ports,
            });
        }
        let roles = std::iter::repeat_n(Role::Authority, self.authorities)
            .chain(std::iter::repeat_n(Role::Relay, self.relays))
            .chain(std::iter::repeat_n(Role::Exit, self.exits));
        let mut counters = [0usize; 3];
        Ok(roles
            .zip(or_ports)
            .map(|(role, or_port)| {
                let n = &mut counters[role as usize];
                let node = Node {
                    nickname: format!("{}{n}", role.prefix()),
                    role,
                    address: self.address,
                    or_port: or_port as u16,
                    dir_port: (role == Role::Authority).then(|| self.first_dir_port + *n as u16),
                };
                *n += 1;
                node
            })
            .collect())
    }
}

/// `TAILOR_TOR_KEY_CACHE`, else `$XDG_CACHE_HOME/tailor/tor-keys`, else
/// `~/.cache/tailor/tor-keys`; `None` without a home.
pub fn default_key_cache() -> Option<PathBuf> {
    let var = |name| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("TAILOR_TOR_KEY_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("tailor/tor-keys")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/tailor/tor-keys")))
}

/// A [`NetworkSpec`] that cannot make a working network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error(
        "expected at least 3 directory authorities (fewer cannot outvote one bad vote), got {got}"
    )]
    TooFewAuthorities { got: usize },
    #[error("expected at least 2 exits (scenarios need a choice of exit), got {got}")]
    TooFewExits { got: usize },
    #[error("{count} ports from {first} do not fit in 1..=65535")]
    PortRange { first: u16, count: usize },
    #[error("ORPorts {or_ports:?} overlap DirPorts {dir_ports:?}")]
    PortsOverlap {
        or_ports: std::ops::Range<u32>,
        dir_ports: std::ops::Range<u32>,
    },
}

/// Errors from the lab Tor network and its client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid Tor network layout")]
    Spec(#[from] SpecError),
    #[error("could not {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("expected a new or empty run directory, but {path} has files of an earlier run")]
    RunDirNotEmpty { path: PathBuf },
    #[error("could not ask the lab namespace {namespace} whether it has a route out")]
    Netns {
        namespace: String,
        #[source]
        source: RunError,
    },
    #[error(
        "refusing to start exits with `ExitPolicy accept *:*`: expected no route out of \
         {namespace}, but it has a route to {target}: {route}"
    )]
    RouteOut {
        namespace: String,
        target: IpAddr,
        route: String,
    },
    #[error("`{command}` for {nickname} failed ({status}): {stderr}")]
    KeyTool {
        nickname: String,
        command: String,
        status: String,
        stderr: String,
    },
    #[error("expected {expected} in {path}, saw {seen:?}")]
    KeyFile {
        path: PathBuf,
        expected: &'static str,
        seen: String,
    },
    #[error("could not start tor {nickname}")]
    Spawn {
        nickname: String,
        #[source]
        source: process::Error,
    },
    #[error("tor {nickname} exited ({status}); its log {log} ends with:\n{tail}")]
    Exited {
        nickname: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error(
        "expected all {expected} lab relays bootstrapped and listed in every authority's \
         consensus; logs are under {run_dir}; {log} ends with:\n{tail}"
    )]
    NotReady {
        expected: usize,
        #[source]
        timeout: Box<wait::Timeout>,
        run_dir: PathBuf,
        log: PathBuf,
        tail: String,
    },
    #[error("the consensus in {path} is unreadable")]
    Consensus {
        path: PathBuf,
        #[source]
        source: ParseError,
    },
    #[error(
        "expected every lab bridge bootstrapped with its transport registered; logs are under \
         {run_dir}; {log} ends with:\n{tail}"
    )]
    BridgesNotReady {
        #[source]
        timeout: Box<wait::Timeout>,
        run_dir: PathBuf,
        log: PathBuf,
        tail: String,
    },
    #[error("expected every tor of the network gone after stop, but pids {pids:?} remain")]
    Lingering { pids: Vec<u32> },
    #[error("expected the lab Tor client to bootstrap; its log {log} ends with:\n{tail}")]
    ClientNotBootstrapped {
        #[source]
        timeout: Box<wait::Timeout>,
        log: PathBuf,
        tail: String,
    },
}

impl Error {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.to_owned();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

/// One running daemon of the network.
#[derive(Debug)]
struct Daemon {
    node: Node,
    fingerprint: String,
    log: PathBuf,
    data_dir: PathBuf,
    guard: ChildGuard,
    /// Sent SIGHUP once the consensus existed (see `check_consensus`).
    nudged: bool,
}

/// A running lab Tor network; see the module docs. Stops on drop.
#[derive(Debug)]
pub struct Network {
    address: Ipv4Addr,
    run_dir: PathBuf,
    authorities: Vec<DirAuthority>,
    daemons: Vec<Daemon>,
    consensus: Option<Consensus>,
    bring_up: Duration,
    started: Instant,
    consensus_complete: bool,
}

impl Network {
    /// Lay out, key, start and wait for the network; see the module docs.
    pub async fn start(spec: NetworkSpec) -> Result<Network, Error> {
        let started = Instant::now();
        let nodes = spec.layout()?;
        // Keys and a cached consensus left by an earlier network would pass
        // for this one's.
        if std::fs::read_dir(&spec.run_dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(Error::RunDirNotEmpty {
                path: spec.run_dir.clone(),
            });
        }
        check_no_route_out(&spec.namespace)?;
        let keyed = futures::future::try_join_all(nodes.iter().map(|node| {
            make_keys(
                node,
                spec.run_dir.join(&node.nickname),
                spec.key_cache.as_deref(),
            )
        }))
        .await?;
        let authorities: Vec<DirAuthority> = keyed
            .iter()
            .filter_map(|(_, authority)| authority.clone())
            .collect();
        let mut network = Network {
            address: spec.address,
            run_dir: spec.run_dir.clone(),
            authorities,
            daemons: Vec::new(),
            consensus: None,
            bring_up: Duration::ZERO,
            started,
            consensus_complete: false,
        };
        tracing::info!(
            daemons = nodes.len(),
            run_dir = %spec.run_dir.display(),
            "keys ready after {:.1?}; starting the lab Tor network",
            started.elapsed()
        );
        // Authorities first (the order of `nodes`), so relays find them.
        for (node, (fingerprint, _)) in nodes.into_iter().zip(keyed) {
            let dir = spec.run_dir.join(&node.nickname);
            let data_dir = dir.join("data");
            let torrc = dir.join("torrc");
            std::fs::write(&torrc, daemon_torrc(&node, &data_dir, &network.authorities))
                .map_err(Error::io("write", &torrc))?;
            let log = dir.join("tor.log");
            let guard = process::spawn(
                spec.namespace.apply(
                    Spec::new("tor")
                        .arg("-f")
                        .arg(&torrc)
                        // No host-wide /etc/tor/torrc-defaults may change the lab.
                        .args(["--defaults-torrc", "/nonexistent"])
                        .log(&log),
                ),
            )
            .map_err(|source| Error::Spawn {
                nickname: node.nickname.clone(),
                source,
            })?;
            network.daemons.push(Daemon {
                node,
                fingerprint,
                log,
                data_dir,
                guard,
                nudged: false,
            });
        }
        // On error `network` drops here and ends the daemons started so far.
        let consensus = network.wait_for_consensus(spec.ready_timeout).await?;
        network.consensus = Some(consensus);
        network.bring_up = started.elapsed();
        tracing::info!(
            "lab Tor network ready after {:.1?}: {} relays in the consensus",
            network.bring_up,
            network.relays().len()
        );
        Ok(network)
    }

    // Ready when every authority's consensus lists every daemon, running
    // and valid, exits with an exit policy, and every daemon has
    // bootstrapped from it. Each authority writes the consensus it serves
    // to DATADIR/cached-consensus and each daemon logs its bootstrap:
    // reading files needs no way into the namespace.
    async fn wait_for_consensus(&mut self, timeout: Duration) -> Result<Consensus, Error> {
        let expected = self.daemons.len();
        let result = wait::wait_until(
            &format!("all {expected} lab relays bootstrapped and in every authority's consensus"),
            wait::scaled(timeout),
            Duration::from_millis(250),
            || {
                let check = self.check_consensus();
                async move { check }
            },
        )
        .await;
        match result {
            Ok(consensus) => Ok(consensus),
            Err(wait::WaitError::Fatal(e)) => Err(e),
            Err(wait::WaitError::Timeout(timeout)) => {
                // Quote the first daemon still bootstrapping, else auth0.
                let first = self
                    .daemons
                    .iter()
                    .find(|d| {
                        let log = std::fs::read_to_string(&d.log).unwrap_or_default();
                        last_bootstrap(&log) != Some(100)
                    })
                    .unwrap_or(&self.daemons[0]);
                Err(Error::NotReady {
                    expected,
                    timeout: Box::new(timeout),
                    run_dir: self.run_dir.clone(),
                    log: first.log.clone(),
                    tail: process::tail_of_file(&first.log, 20),
                })
            }
        }
    }

    fn check_consensus(&mut self) -> Check<Consensus, Error> {
        for d in &mut self.daemons {
            if let Some(status) = d.guard.try_wait() {
                return Check::Fatal(Error::Exited {
                    nickname: d.node.nickname.clone(),
                    status: status.to_string(),
                    log: d.log.clone(),
                    tail: process::tail_of_file(&d.log, 20),
                });
            }
        }
        let mut first = None;
        for auth in self
            .daemons
            .iter()
            .filter(|d| d.node.role == Role::Authority)
        {
            let path = auth.data_dir.join("cached-consensus");
            let Ok(text) = std::fs::read_to_string(&path) else {
                return Check::NotYet(format!("{} has no consensus yet", auth.node.nickname));
            };
            let consensus = match Consensus::parse(&text) {
                Ok(c) => c,
                Err(source) => return Check::Fatal(Error::Consensus { path, source }),
            };
            let missing: Vec<&str> = self
                .daemons
                .iter()
                .filter(|d| !listed_and_usable(&consensus, d))
                .map(|d| d.node.nickname.as_str())
                .collect();
            if !missing.is_empty() {
                return Check::NotYet(format!(
                    "{}'s consensus of {} lacks (or has not yet flagged) {}",
                    auth.node.nickname,
                    consensus.valid_after,
                    missing.join(", ")
                ));
            }
            first.get_or_insert(consensus);
        }
        let Some(consensus) = first else {
            return Check::NotYet("no authority".into());
        };
        if !self.consensus_complete {
            self.consensus_complete = true;
            tracing::info!(
                "consensus valid after {} lists all {} relays, {:.1?} after start",
                consensus.valid_after,
                self.daemons.len(),
                self.started.elapsed()
            );
        }
        let mut behind = Vec::new();
        for d in &mut self.daemons {
            let log = std::fs::read_to_string(&d.log).unwrap_or_default();
            match last_bootstrap(&log) {
                Some(100) => {}
                progress => {
                    // Relays asked for a consensus before the first existed,
                    // got 404s and back off exponentially (one waited 9 s).
                    // SIGHUP makes tor reset those failures and fetch at
                    // once; only after it logged progress, since SIGHUP
                    // kills a tor that has not yet installed its handlers.
                    if progress.is_some() && !d.nudged {
                        d.nudged = true;
                        tracing::debug!(nickname = %d.node.nickname, "SIGHUP: the consensus exists now");
                        let _ = kill(Pid::from_raw(d.guard.pid() as i32), Signal::SIGHUP);
                    }
                    behind.push(format!(
                        "{} at {}%",
                        d.node.nickname,
                        progress.unwrap_or_default()
                    ));
                }
            }
        }
        if behind.is_empty() {
            Check::Ready(consensus)
        } else {
            // An exit without a consensus of its own refused a client's
            // first streams ("Have tried resolving or connecting to address
            // ... at 3 different places"): wait for every daemon.
            Check::NotYet(format!(
                "consensus complete; bootstrapping: {}",
                behind.join(", ")
            ))
        }
    }

    /// The relays of the consensus the network became ready with.
    pub fn relays(&self) -> &[Relay] {
        self.consensus
            .as_ref()
            .map(|c| c.relays.as_slice())
            .unwrap_or_default()
    }

    /// Every consensus relay's (address, ORPort): what a Tor client may
    /// connect to. This is the traffic policy's allow-list.
    pub fn or_endpoints(&self) -> Vec<SocketAddrV4> {
        self.relays()
            .iter()
            .map(|r| SocketAddrV4::new(r.address, r.or_port))
            .collect()
    }

    /// The authorities' (address, DirPort). Clients of tor 0.4.9 fetch
    /// directory documents over ORPorts, so the guest should never use
    /// these; a policy may still list them.
    pub fn dir_endpoints(&self) -> Vec<SocketAddrV4> {
        self.relays()
            .iter()
            .filter_map(|r| Some(SocketAddrV4::new(r.address, r.dir_port?)))
            .collect()
    }

    /// The consensus the network became ready with.
    pub fn consensus(&self) -> Option<&Consensus> {
        self.consensus.as_ref()
    }

    /// The lines a client's torrc needs to use this network (the guest's
    /// tor gets them before it starts).
    pub fn client_lines(&self) -> Vec<String> {
        client_lines(&self.authorities)
    }

    /// [`Network::client_lines`] as torrc text, one option per line.
    pub fn client_torrc(&self) -> String {
        self.client_lines().into_iter().map(|l| l + "\n").collect()
    }

    pub fn dir_authorities(&self) -> &[DirAuthority] {
        &self.authorities
    }

    /// The address every daemon binds to; exit traffic leaves from it too.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// Every daemon's log, for artifacts.
    pub fn logs(&self) -> Vec<PathBuf> {
        self.daemons.iter().map(|d| d.log.clone()).collect()
    }

    /// The pids of the running daemons.
    pub fn pids(&self) -> Vec<u32> {
        self.daemons.iter().map(|d| d.guard.pid()).collect()
    }

    /// From `start` to a ready consensus.
    pub fn bring_up_time(&self) -> Duration {
        self.bring_up
    }

    /// End every daemon and wait until all are gone, so a next network can
    /// reuse the ports at once.
    pub fn stop(&mut self) -> Result<(), Error> {
        if self.daemons.is_empty() {
            return Ok(());
        }
        let stopped = stop_all(self.daemons.iter_mut().map(|d| &mut d.guard));
        // Forgotten either way: a second stop (on drop) has nothing to end.
        self.daemons.clear();
        stopped?;
        tracing::info!("lab Tor network stopped");
        Ok(())
    }
}

/// End every daemon (and its process group) and wait until all are gone.
pub(crate) fn stop_all<'a>(guards: impl Iterator<Item = &'a mut ChildGuard>) -> Result<(), Error> {
    let mut guards: Vec<&mut ChildGuard> = guards.collect();
    let pids: Vec<u32> = guards.iter().map(|g| g.pid()).collect();
    // SIGTERM all first: they exit in parallel instead of one by one.
    for &pid in &pids {
        if pid != 0 {
            let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGTERM);
        }
    }
    for guard in &mut guards {
        guard.stop(Duration::from_secs(10));
    }
    // The guards reaped their children, so a pid still in /proc is a
    // process that escaped (or a reused pid, which a caller can tell).
    let lingering: Vec<u32> = pids
        .into_iter()
        .filter(|p| *p != 0 && Path::new(&format!("/proc/{p}")).exists())
        .collect();
    if lingering.is_empty() {
        Ok(())
    } else {
        Err(Error::Lingering { pids: lingering })
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("{e}");
        }
    }
}

fn listed_and_usable(consensus: &Consensus, d: &Daemon) -> bool {
    consensus.relay(&d.fingerprint).is_some_and(|r| {
        r.address == d.node.address
            && r.or_port == d.node.or_port
            && r.has_flag("Running")
            && r.has_flag("Valid")
            // TestingDirAuthVoteExit flags every relay Exit; what makes a
            // client pick one for a stream is its policy summary.
            && (d.node.role != Role::Exit
                || r.has_flag("Exit")
                    && r.exit_policy.as_deref().is_some_and(|p| p.starts_with("accept")))
    })
}

/// Prove that the namespace routes nowhere outside the lab: the kernel's
/// route lookup (`ip route get`, which sends nothing) of an outside IPv4
/// and IPv6 address must answer "unreachable" (or that the family is not
/// there at all). It runs inside the lab the lab's way, so it works
/// rootless too; anything else it says is an error, never a pass.
pub fn check_no_route_out(namespace: &Namespace) -> Result<(), Error> {
    let targets: [IpAddr; 2] = [
        Ipv4Addr::new(1, 1, 1, 1).into(),
        std::net::Ipv6Addr::new(0x2606, 0x4700, 0x4700, 0, 0, 0, 0, 0x1111).into(),
    ];
    for target in targets {
        let family = if target.is_ipv4() { "-4" } else { "-6" };
        let lookup = namespace.apply(Spec::new("ip").args([
            family.to_owned(),
            "route".into(),
            "get".into(),
            target.to_string(),
        ]));
        match process::run_spec(&lookup) {
            Ok(route) => {
                return Err(Error::RouteOut {
                    namespace: namespace.to_string(),
                    target,
                    route: route.trim().to_owned(),
                })
            }
            Err(RunError::Failed { stderr, .. })
                if stderr.contains("unreachable")
                    || stderr.contains("Address family not supported") => {}
            Err(source) => {
                return Err(Error::Netns {
                    namespace: namespace.to_string(),
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Prefix of [`run_dir`]'s folders.
pub const RUN_DIR_PREFIX: &str = "tailor-internet-";

/// A temporary run directory for a lab Tor network and its web server
/// (`tailor-internet-<pid>-*`), removed when dropped. Folders of runs
/// that were killed (their pid is gone) are removed first.
pub fn run_dir() -> std::io::Result<tempfile::TempDir> {
    crate::leftovers::tempdir(RUN_DIR_PREFIX, "")
}

/// Give a daemon its identity keys (and an authority its v3 keys), from
/// `cache` when it holds fresh ones for this node, else made with the tools
/// (and then stored there). Returns its relay fingerprint and, for an
/// authority, its `DirAuthority` entry. Runs on the host: making keys needs
/// no network.
async fn make_keys(
    node: &Node,
    dir: PathBuf,
    cache: Option<&Path>,
) -> Result<(String, Option<DirAuthority>), Error> {
    let data = dir.join("data");
    let keys = data.join("keys");
    std::fs::create_dir_all(&keys).map_err(Error::io("create", &keys))?;
    // tor refuses a DataDirectory others can read; it would fix it itself
    // but warns on every start.
    set_private(&data)?;
    set_private(&keys)?;
    let entry = cache.map(|c| c.join(cache_entry_name(node)));
    match &entry {
        Some(entry) if cache_entry_is_fresh(entry, node) => {
            copy_files(&entry.join("keys"), &keys)?;
            copy_files(entry, &data)?;
        }
        _ => {
            generate_keys(node, &data).await?;
            if let Some(entry) = &entry {
                store_in_cache(&data, entry, node);
            }
        }
    }
    read_identity(node, &data)
}

/// Where a node's keys live in the cache: they are bound to its nickname
/// and, for an authority, to the address in its certificate.
fn cache_entry_name(node: &Node) -> String {
    format!(
        "{}-{}-{}-{}",
        node.nickname,
        node.address,
        node.or_port,
        node.dir_port.unwrap_or_default()
    )
}

/// The authority certificate lasts 12 months (`tor-gencert -m 12`);
/// regenerate well before that.
const CERT_REUSE: Duration = Duration::from_secs(300 * 24 * 3600);

fn cache_entry_is_fresh(entry: &Path, node: &Node) -> bool {
    let fingerprint_ok = std::fs::read_to_string(entry.join("fingerprint"))
        .is_ok_and(|t| t.split_whitespace().nth(1).is_some_and(|f| f.len() == 40));
    let identity_ok = entry.join("keys/secret_id_key").is_file();
    let cert_ok = node.dir_port.is_none()
        || std::fs::metadata(entry.join("keys/authority_certificate"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < CERT_REUSE);
    fingerprint_ok && identity_ok && cert_ok
}

/// Copy the regular files of `from` into `to` (modes kept: keys stay 0600).
fn copy_files(from: &Path, to: &Path) -> Result<(), Error> {
    for entry in std::fs::read_dir(from).map_err(Error::io("read", from))? {
        let entry = entry.map_err(Error::io("read", from))?;
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            let target = to.join(entry.file_name());
            std::fs::copy(entry.path(), &target).map_err(Error::io("copy keys to", &target))?;
        }
    }
    Ok(())
}

/// Best effort: a cache that cannot be written only costs time next run.
/// The entry appears whole or not at all (rename), so parallel runs never
/// read half of one.
fn store_in_cache(data: &Path, entry: &Path, node: &Node) {
    let Some(cache) = entry.parent() else { return };
    let tmp = cache.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        entry.file_name().unwrap_or_default().to_string_lossy()
    ));
    let result = (|| -> Result<(), Error> {
        std::fs::create_dir_all(tmp.join("keys")).map_err(Error::io("create", &tmp))?;
        set_private(cache)?;
        set_private(&tmp)?;
        copy_files(&data.join("keys"), &tmp.join("keys"))?;
        let fingerprint = data.join("fingerprint");
        std::fs::copy(&fingerprint, tmp.join("fingerprint"))
            .map_err(Error::io("copy", &fingerprint))?;
        // A stale entry goes; a fresh one another run stored meanwhile
        // stays (the rename then fails and this copy is dropped).
        if !cache_entry_is_fresh(entry, node) {
            let _ = std::fs::remove_dir_all(entry);
        }
        std::fs::rename(&tmp, entry).map_err(Error::io("rename into", entry))
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        tracing::debug!("not caching tor keys: {e}");
    }
}

/// Run `tor-gencert` (authorities) and `tor --list-fingerprint`, which
/// makes the relay identity and writes DATADIR/fingerprint.
async fn generate_keys(node: &Node, data: &Path) -> Result<(), Error> {
    let keys = data.join("keys");
    if let Some(dir_port) = node.dir_port {
        let args = vec![
            "--create-identity-key".to_owned(),
            "-m".into(),
            "12".into(),
            "-a".into(),
            format!("{}:{dir_port}", node.address),
            "-i".into(),
            keys.join("authority_identity_key").display().to_string(),
            "-s".into(),
            keys.join("authority_signing_key").display().to_string(),
            "-c".into(),
            keys.join("authority_certificate").display().to_string(),
            "--passphrase-fd".into(),
            "0".into(),
        ];
        // An empty passphrase on stdin: the lab's keys need no protection.
        run_tool(&node.nickname, "tor-gencert", &args, b"\n").await?;
    }
    let args = vec![
        "--list-fingerprint".to_owned(),
        "--defaults-torrc".into(),
        "/nonexistent".into(),
        "--ignore-missing-torrc".into(),
        "-f".into(),
        "/nonexistent".into(),
        "--DataDirectory".into(),
        data.display().to_string(),
        "--ORPort".into(),
        format!("{}:{}", node.address, node.or_port),
        "--Address".into(),
        node.address.to_string(),
        "--Nickname".into(),
        node.nickname.clone(),
    ];
    run_tool(&node.nickname, "tor", &args, b"").await
}

/// The relay fingerprint (and an authority's entry) from a keyed data dir.
fn read_identity(node: &Node, data: &Path) -> Result<(String, Option<DirAuthority>), Error> {
    let fingerprint_file = data.join("fingerprint");
    let line = read_key_line(&fingerprint_file, "", "`NICKNAME FINGERPRINT`")?;
    let fingerprint = match line.split_once(' ') {
        Some((_, f)) if f.len() == 40 && f.bytes().all(|b| b.is_ascii_hexdigit()) => f.to_owned(),
        _ => {
            return Err(Error::KeyFile {
                path: fingerprint_file,
                expected: "`NICKNAME FINGERPRINT` with 40 hex digits",
                seen: line,
            })
        }
    };
    let authority = match node.dir_port {
        Some(dir_port) => Some(DirAuthority {
            nickname: node.nickname.clone(),
            address: node.address,
            or_port: node.or_port,
            dir_port,
            v3ident: read_key_line(
                &data.join("keys/authority_certificate"),
                "fingerprint ",
                "a `fingerprint` line",
            )?,
            fingerprint: fingerprint.clone(),
        }),
        None => None,
    };
    Ok((fingerprint, authority))
}

fn set_private(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(Error::io("restrict", dir))
}

/// The first line of `path` starting with `prefix`, without the prefix.
fn read_key_line(path: &Path, prefix: &str, expected: &'static str) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(Error::io("read", path))?;
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|v| v.trim().to_owned())
        .ok_or_else(|| Error::KeyFile {
            path: path.to_owned(),
            expected,
            seen: text.lines().next().unwrap_or_default().to_owned(),
        })
}

/// Run a short key tool to completion, feeding `stdin`.
async fn run_tool(
    nickname: &str,
    program: &str,
    args: &[String],
    stdin: &[u8],
) -> Result<(), Error> {
    let command = format!("{program} {}", args.join(" "));
    let tool_err = |status: String, stderr: String| Error::KeyTool {
        nickname: nickname.to_owned(),
        command: command.clone(),
        status,
        stderr,
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            let hint = process::install_hint(program);
            tool_err("not started".into(), format!("{e} (install it: {hint})"))
        })?;
    if let Some(mut input) = child.stdin.take() {
        // A tool that does not read stdin closes it early; that is fine.
        let _ = input.write_all(stdin).await;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| tool_err("not waited for".into(), e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        // tor writes its complaints to stdout, tor-gencert to stderr.
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let tail: Vec<&str> = text.lines().rev().take(10).collect();
        Err(tool_err(
            out.status.to_string(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> NetworkSpec {
        NetworkSpec::new(
            Path::new("/run/netns/x"),
            Ipv4Addr::new(10, 203, 0, 1),
            "/tmp/x",
        )
    }

    #[test]
    fn default_layout_numbers_ports_and_nicknames() {
        let nodes = spec().layout().unwrap();
        let summary: Vec<(String, u16, Option<u16>)> = nodes
            .iter()
            .map(|n| (n.nickname.clone(), n.or_port, n.dir_port))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("auth0".into(), 5000, Some(7000)),
                ("auth1".into(), 5001, Some(7001)),
                ("auth2".into(), 5002, Some(7002)),
                ("relay0".into(), 5003, None),
                ("relay1".into(), 5004, None),
                ("exit0".into(), 5005, None),
                ("exit1".into(), 5006, None),
            ]
        );
        assert_eq!(nodes.iter().filter(|n| n.role == Role::Exit).count(), 2);
    }

    #[test]
    fn key_cache_entries_are_fresh_only_when_complete() {
        let nodes = spec().layout().unwrap();
        let (auth, relay) = (&nodes[0], &nodes[3]);
        assert_eq!(cache_entry_name(auth), "auth0-10.203.0.1-5000-7000");
        assert_eq!(cache_entry_name(relay), "relay0-10.203.0.1-5003-0");
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("e");
        assert!(!cache_entry_is_fresh(&entry, relay));
        std::fs::create_dir_all(entry.join("keys")).unwrap();
        std::fs::write(entry.join("keys/secret_id_key"), "k").unwrap();
        std::fs::write(entry.join("fingerprint"), "relay0 short\n").unwrap();
        assert!(!cache_entry_is_fresh(&entry, relay), "bad fingerprint");
        std::fs::write(entry.join("fingerprint"), format!("relay0 {:040X}\n", 7)).unwrap();
        assert!(cache_entry_is_fresh(&entry, relay));
        assert!(!cache_entry_is_fresh(&entry, auth), "no certificate");
        std::fs::write(entry.join("keys/authority_certificate"), "c").unwrap();
        assert!(cache_entry_is_fresh(&entry, auth));
    }

    #[test]
    fn layout_refuses_what_cannot_work() {
        let mut s = spec();
        s.authorities = 2;
        assert_eq!(s.layout(), Err(SpecError::TooFewAuthorities { got: 2 }));
        let mut s = spec();
        s.exits = 1;
        assert_eq!(s.layout(), Err(SpecError::TooFewExits { got: 1 }));
        let mut s = spec();
        s.first_or_port = 65533;
        assert!(matches!(s.layout(), Err(SpecError::PortRange { .. })));
        let mut s = spec();
        s.first_dir_port = 5004;
        assert!(matches!(s.layout(), Err(SpecError::PortsOverlap { .. })));
    }
}
