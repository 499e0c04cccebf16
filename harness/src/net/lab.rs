//! The lab: one isolated network namespace per run, where the guest lives.
//!
//! ```text
//! netns tailor-<pid>-<seq>        (no default route, no link to the host)
//!   lo
//!   br0   10.203.0.1/24  02:00:00:00:00:01   dnsmasq: DHCP 10.203.0.50-150, DNS
//!   tap0  -> QEMU -netdev tap,ifname=tap0,script=no,downscript=no,vnet_hdr=off
//!   vh-N  -> netns tailor-<pid>-<seq>-<host>   optional lab hosts (eth0 02:00:00:00:01:N)
//! ```
//!
//! Addresses: 10.203.0.0/24 is private, unlikely to clash with a host's own
//! networks, and never routed: the namespace has no default route and no
//! interface that leads out, which [`Lab::verify_isolation`] proves by
//! inspection (links, routes, `ip route get` of an outside address answering
//! "unreachable"), sending nothing. The lab's own IPv6 is disabled so the
//! capture holds only what the guest chose to send, unless
//! [`LabConfig::ipv6_router_advertisements`] asks for an IPv6 LAN: then the
//! bridge alone gets `fd00:203::1/64` and dnsmasq advertises that prefix
//! (SLAAC, a router lifetime so the guest believes it has IPv6 Internet)
//! every few seconds; still no route leads anywhere.
//!
//! dnsmasq hands out leases with itself (10.203.0.1) as router and DNS
//! server: a guest that tries to reach the Internet directly or resolve a
//! name in the clear then sends those packets onto the link, where the
//! capture sees them, instead of failing silently with "network
//! unreachable". They go no further: the namespace does not forward and has
//! nowhere to forward to. dnsmasq answers every name with 10.203.0.2 (where
//! the tor module's "Internet" web server sits) and logs every query and
//! DHCP step to `dnsmasq.log` in the lab's state directory.
//!
//! Root gets a plain named namespace (`ip netns add`). Another user gets a
//! user+network namespace held by a child process (see [`Mode`]); that
//! needs an openable `/dev/net/tun` for the tap, which is checked first.
//!
//! Censorship: [`Lab::censor`] drops what comes in from the LAN for some
//! ports of the lab's address (the consensus relays' ORPorts and DirPorts,
//! say) with an nft table in the lab's namespace, so a guest's direct
//! connections to Tor go unanswered while its bridges, on other ports,
//! stay reachable; the [`Censor`] it returns lifts it on drop.
//!
//! Clean-up: [`Lab::stop`] (or drop) stops dnsmasq and deletes the
//! namespaces, which takes the bridge, tap and veths with them. A run that
//! was SIGKILLed leaves its namespaces behind (its daemons die with it
//! through `PR_SET_PDEATHSIG`); the next [`Lab::start`] removes every
//! `tailor-<pid>-...` namespace whose `<pid>` is dead or is now another
//! process (start time recorded in `/run/tailor/`), and every temporary
//! state folder `tailor-<pid>-<n>-*` whose `<pid>` is dead
//! ([`crate::leftovers`]). A rootless lab's namespaces die with its holder.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::process::{self, ChildGuard, Namespace, RunError, Spec};
use crate::wait::{self, Check, WaitError};

use super::analysis::MacAddr;

/// The bridge's address; also dnsmasq's, the router's and the relays'.
pub const BRIDGE_ADDR: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 1);
pub const PREFIX_LEN: u8 = 24;
/// The stand-in for "the Internet", reached only through Tor exits.
pub const INTERNET_ADDR: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 2);
pub const DHCP_FIRST: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 50);
pub const DHCP_LAST: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 150);
/// Fixed so a policy can name the lab's side of the link.
pub const BRIDGE_MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
pub const BRIDGE: &str = "br0";
/// The bridge's IPv6 address when the lab advertises IPv6.
pub const BRIDGE_ADDR_V6: std::net::Ipv6Addr =
    std::net::Ipv6Addr::new(0xfd00, 0x203, 0, 0, 0, 0, 0, 1);
/// Seconds between unsolicited router advertisements.
pub const RA_INTERVAL_SECS: u32 = 5;
pub const TAP: &str = "tap0";
/// Where root labs record their owner's start time.
const OWNER_DIR: &str = "/run/tailor";
const NETNS_DIR: &str = "/run/netns";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Errors setting up, using or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("setting up lab {lab}")]
    Command {
        lab: String,
        #[source]
        source: RunError,
    },
    #[error("cannot create state directory {path} for lab {lab}")]
    StateDir {
        lab: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start dnsmasq in lab {lab}")]
    DnsmasqSpawn {
        lab: String,
        #[source]
        source: process::Error,
    },
    #[error(
        "dnsmasq in lab {lab} exited ({status}) before it was ready; its output ({log}):\n{tail}"
    )]
    DnsmasqExited {
        lab: String,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("lab {lab}: {what}")]
    Timeout {
        lab: String,
        what: &'static str,
        #[source]
        source: wait::Timeout,
    },
    #[error("lab {lab} is not isolated: expected {expected}, saw {seen}")]
    NotIsolated {
        lab: String,
        expected: &'static str,
        seen: String,
    },
    #[error(
        "/dev/net/tun is mode {mode:04o} and not open to this user (uid {uid}): a rootless lab \
         cannot give QEMU a tap device. Run as root, or make /dev/net/tun mode 0666 as most \
         distributions ship it"
    )]
    TunPermission { mode: u32, uid: u32 },
    #[error("cannot create a user+network namespace as uid {uid} (are unprivileged user namespaces disabled?)")]
    Unshare {
        uid: u32,
        #[source]
        source: process::Error,
    },
    #[error("the namespace holder of lab {lab} exited ({status}); its output:\n{tail}")]
    HolderExited {
        lab: String,
        status: String,
        tail: String,
    },
    #[error("lab {lab} was not cleaned up: {what}")]
    Leftover { lab: String, what: String },
}

/// How the lab's namespace is made and entered.
#[derive(Debug)]
pub enum Mode {
    /// `ip netns add`: a named namespace under /run/netns.
    Root,
    /// A child in its own user+network namespace holds it; commands enter
    /// it with `nsenter --user --net`.
    Rootless { holder: ChildGuard },
}

/// A host on the lab's bridge in a namespace of its own (e.g. the
/// "Internet" web server, or a DHCP client in tests).
#[derive(Debug, Clone)]
pub struct LabHost {
    /// Namespace name.
    pub name: String,
    pub netns: PathBuf,
    /// Its interface inside its namespace.
    pub ifname: String,
    pub mac: MacAddr,
}

/// A namespace of the lab that is not on its bridge ([`Lab::add_namespace`]).
#[derive(Debug, Clone)]
pub struct LabNamespace {
    pub name: String,
    pub netns: PathBuf,
}

/// A lease dnsmasq acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
}

/// A DNS query dnsmasq received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuery {
    pub qtype: String,
    pub name: String,
    pub from: String,
}

/// Where the lab keeps dnsmasq's files; `None` picks a fresh temporary
/// directory that is removed with the lab.
#[derive(Debug, Clone, Default)]
pub struct LabConfig {
    pub state_dir: Option<PathBuf>,
    /// Offer IPv6 on the link: router advertisements of fd00:203::/64
    /// every [`RA_INTERVAL_SECS`], as a real LAN with IPv6 would.
    pub ipv6_router_advertisements: bool,
}

/// A running lab. Dropping it stops it.
#[derive(Debug)]
pub struct Lab {
    name: String,
    mode: Mode,
    netns: PathBuf,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    dnsmasq: Option<ChildGuard>,
    hosts: Vec<LabHost>,
    stopped: bool,
    router_advertisements: bool,
}

/// The advertised prefix: the bridge's /64.
fn ipv6_prefix() -> std::net::Ipv6Addr {
    let s = BRIDGE_ADDR_V6.segments();
    std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0)
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

impl Lab {
    /// Create the namespace, bridge and tap, start dnsmasq and wait until
    /// it serves DHCP. Removes provable leftovers of killed runs first.
    pub async fn start(config: LabConfig) -> Result<Lab, LabError> {
        if is_root() {
            for name in cleanup_leftovers() {
                tracing::info!("removed lab {name} left behind by a run that was killed");
            }
        }
        let name = format!(
            "tailor-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let (dir, tmp) = match config.state_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|source| LabError::StateDir {
                    lab: name.clone(),
                    path: dir.clone(),
                    source,
                })?;
                (dir, None)
            }
            None => {
                // `tailor-<pid>-<seq>-*`: a killed run's is removed here.
                let seq = name.rsplit('-').next().unwrap_or_default();
                let tmp =
                    crate::leftovers::tempdir("tailor-", &format!("{seq}-")).map_err(|source| {
                        LabError::StateDir {
                            lab: name.clone(),
                            path: std::env::temp_dir(),
                            source,
                        }
                    })?;
                (tmp.path().to_owned(), Some(tmp))
            }
        };
        let (mode, netns) = if is_root() {
            record_owner(&name);
            run(&name, "ip", &["netns", "add", &name])?;
            (Mode::Root, Path::new(NETNS_DIR).join(&name))
        } else {
            check_tun()?;
            let holder = rootless_holder(&dir)?;
            let netns = PathBuf::from(format!("/proc/{}/ns/net", holder.pid()));
            (Mode::Rootless { holder }, netns)
        };
        let mut lab = Lab {
            name,
            mode,
            netns,
            dir,
            _tmp: tmp,
            dnsmasq: None,
            hosts: Vec::new(),
            stopped: false,
            router_advertisements: config.ipv6_router_advertisements,
        };
        lab.build().await?;
        Ok(lab)
    }

    async fn build(&mut self) -> Result<(), LabError> {
        let addr = format!("{BRIDGE_ADDR}/{PREFIX_LEN}");
        let mac = BRIDGE_MAC.to_string();
        self.sysctl_no_ipv6(None)?;
        self.ip(&["link", "set", "lo", "up"])?;
        self.ip(&["link", "add", BRIDGE, "address", &mac, "type", "bridge"])?;
        self.ip(&["addr", "add", &addr, "dev", BRIDGE])?;
        if self.router_advertisements {
            // The bridge alone speaks IPv6 and never takes a route from
            // what it hears.
            let keys = ["disable_ipv6=0", "accept_ra=0", "forwarding=0"]
                .map(|kv| format!("net.ipv6.conf.{BRIDGE}.{kv}"));
            let mut sysctl = vec!["sysctl", "-qw"];
            sysctl.extend(keys.iter().map(String::as_str));
            self.exec(&sysctl)?;
            let addr6 = format!("{BRIDGE_ADDR_V6}/64");
            self.ip(&["-6", "addr", "add", &addr6, "dev", BRIDGE, "nodad"])?;
        }
        self.ip(&["link", "set", BRIDGE, "up"])?;
        self.ip(&["tuntap", "add", "dev", TAP, "mode", "tap"])?;
        self.ip(&["link", "set", TAP, "master", BRIDGE])?;
        self.ip(&["link", "set", TAP, "up"])?;
        self.verify_isolation()?;
        self.start_dnsmasq().await
    }

    /// The namespace's name (`tailor-<pid>-<seq>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace, for [`Spec::netns`] as root. Prefer [`Lab::spec`],
    /// which also works rootless.
    pub fn netns_path(&self) -> &Path {
        &self.netns
    }

    /// The tap QEMU attaches to (`-netdev tap,ifname=...`).
    pub fn tap(&self) -> &str {
        TAP
    }

    /// The lab's state directory (dnsmasq's log and leases).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn dnsmasq_log(&self) -> PathBuf {
        self.dir.join("dnsmasq.log")
    }

    /// How a process gets into the lab: as root by joining the namespace
    /// before exec, rootless by going through `nsenter`.
    pub fn namespace(&self) -> Namespace {
        match &self.mode {
            Mode::Root => Namespace::Join(self.netns.clone()),
            Mode::Rootless { holder } => Namespace::UserAndNet {
                target: holder.pid(),
            },
        }
    }

    /// `spec` made to run inside the lab.
    pub fn spec(&self, spec: Spec) -> Spec {
        self.namespace().apply(spec)
    }

    /// Where a VM plugs in: the lab's tap, entered the lab's way.
    pub fn attachment(&self) -> crate::vm::LabAttachment {
        crate::vm::LabAttachment {
            namespace: self.namespace(),
            tap: TAP.to_owned(),
        }
    }

    /// The command line prefix that runs a short command in the lab.
    fn prefix(&self, ns: Option<&str>) -> Vec<String> {
        match (&self.mode, ns) {
            (Mode::Root, ns) => vec![
                "ip".into(),
                "netns".into(),
                "exec".into(),
                ns.unwrap_or(&self.name).into(),
            ],
            (Mode::Rootless { holder }, _) => vec![
                "nsenter".into(),
                "--target".into(),
                holder.pid().to_string(),
                "--user".into(),
                "--net".into(),
                "--preserve-credentials".into(),
                "--".into(),
            ],
        }
    }

    /// Run a short command inside the lab and return its stdout.
    pub fn exec(&self, args: &[&str]) -> Result<String, LabError> {
        self.exec_in(None, args)
    }

    fn exec_in(&self, ns: Option<&str>, args: &[&str]) -> Result<String, LabError> {
        let mut full = self.prefix(ns);
        full.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        run(&self.name, refs[0], &refs[1..])
    }

    /// Close every TCP connection the lab's own side (Tor relays, web
    /// server, on the bridge and Internet addresses) holds with a guest.
    ///
    /// A killed VM never closes its connections, and the next VM restored
    /// from the same checkpoint comes back with the same MAC, the same
    /// address and often the same source ports. A relay still holding the
    /// old connection answers the new SYN with a bare ACK, and the guest's
    /// Tor took two minutes to bootstrap (seen in CI). Call it between VMs.
    pub fn close_guest_connections(&self) -> Result<(), LabError> {
        let mask = u32::MAX << (32 - PREFIX_LEN);
        let subnet = Ipv4Addr::from(u32::from(BRIDGE_ADDR) & mask);
        let (subnet, bridge, internet) = (
            format!("{subnet}/{PREFIX_LEN}"),
            BRIDGE_ADDR.to_string(),
            INTERNET_ADDR.to_string(),
        );
        self.exec(&[
            "ss", "-K", "-tn", "dst", &subnet, "and", "not", "dst", &bridge, "and", "not", "dst",
            &internet,
        ])
        .map(drop)
    }

    /// Censor the lab: drop every TCP packet that comes in from the LAN
    /// (the guest's side of the bridge) for `addr` on one of `ports`, as a
    /// censor between the guest and the Tor network does, while the rest
    /// of the lab (bridges on other ports, DHCP, the lab's own traffic on
    /// loopback) stays reachable. Lasts until the returned [`Censor`] is
    /// dropped (or the lab stops: the rules live in its namespace).
    pub fn censor(&self, addr: Ipv4Addr, ports: &[u16]) -> Result<Censor, LabError> {
        if ports.is_empty() {
            return Err(LabError::NotIsolated {
                lab: self.name.clone(),
                expected: "at least one port to block",
                seen: "none".into(),
            });
        }
        let mut ports: Vec<u16> = ports.to_vec();
        ports.sort_unstable();
        ports.dedup();
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        let rules = format!(
            "# Written by Tailor (harness::net::lab): the lab blocks direct connections.\n\
             table inet {CENSOR_TABLE} {{\n\
             \x20   counter {CENSOR_COUNTER} {{}}\n\
             \x20   chain input {{\n\
             \x20       type filter hook input priority filter - 10; policy accept;\n\
             \x20       iifname \"{BRIDGE}\" ip daddr {addr} tcp dport {{ {} }} counter name {CENSOR_COUNTER} drop\n\
             \x20   }}\n\
             }}\n",
            list.join(", ")
        );
        let file = self.dir.join("censor.nft");
        std::fs::write(&file, rules).map_err(|source| LabError::StateDir {
            lab: self.name.clone(),
            path: file.clone(),
            source,
        })?;
        // One censor at a time: a new one replaces the last.
        let _ = self.exec(&["nft", "delete", "table", "inet", CENSOR_TABLE]);
        self.exec(&["nft", "-f", &file.display().to_string()])?;
        tracing::info!(%addr, ports = %list.join(","), "the lab now blocks direct connections");
        Ok(Censor {
            lab: self.name.clone(),
            prefix: self.prefix(None),
            ports,
            lifted: false,
        })
    }

    fn ip(&self, args: &[&str]) -> Result<String, LabError> {
        match self.mode {
            // `ip -n` avoids a fork of `ip netns exec` per command.
            Mode::Root => {
                let mut full = vec!["-n", self.name.as_str()];
                full.extend_from_slice(args);
                run(&self.name, "ip", &full)
            }
            Mode::Rootless { .. } => {
                let mut full = vec!["ip"];
                full.extend_from_slice(args);
                self.exec(&full)
            }
        }
    }

    fn sysctl_no_ipv6(&self, ns: Option<&str>) -> Result<(), LabError> {
        self.exec_in(
            ns,
            &[
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )
        .map(drop)
    }

    /// Prove the lab leads nowhere, by inspection only: its links are
    /// loopback, the bridge, the tap and lab veths; it has no default route;
    /// and the kernel answers "unreachable" for an outside address.
    pub fn verify_isolation(&self) -> Result<(), LabError> {
        let not_isolated = |expected, seen: String| LabError::NotIsolated {
            lab: self.name.clone(),
            expected,
            seen,
        };
        let links = self.ip(&["-o", "link", "show"])?;
        for line in links.lines() {
            let ifname = line
                .split(':')
                .nth(1)
                .map(|s| s.trim().split('@').next().unwrap_or("").to_owned())
                .unwrap_or_default();
            let ok =
                ifname == "lo" || ifname == BRIDGE || ifname == TAP || ifname.starts_with("vh-");
            if !ok {
                return Err(not_isolated(
                    "only lo, br0, tap0 and lab veths",
                    line.to_owned(),
                ));
            }
        }
        for family in ["-4", "-6"] {
            let routes = self.ip(&[family, "route", "show", "table", "all"])?;
            if let Some(line) = routes.lines().find(|l| l.starts_with("default")) {
                return Err(not_isolated("no default route", line.to_owned()));
            }
        }
        // Asking the kernel sends nothing.
        self.expect_unreachable(&["route", "get", "1.1.1.1"])?;
        if self.router_advertisements {
            self.expect_unreachable(&["-6", "route", "get", "2001:db8::1"])?;
        }
        Ok(())
    }

    /// `ip ARGS` (a route lookup) must answer "unreachable".
    fn expect_unreachable(&self, args: &[&str]) -> Result<(), LabError> {
        match self.ip(args) {
            Err(LabError::Command {
                source: RunError::Failed { stderr, .. },
                ..
            }) if stderr.contains("unreachable") => Ok(()),
            Err(e) => Err(e),
            Ok(out) => Err(LabError::NotIsolated {
                lab: self.name.clone(),
                expected: "a route lookup of an outside address to answer unreachable",
                seen: format!("`ip {}`: {}", args.join(" "), out.trim()),
            }),
        }
    }

    async fn start_dnsmasq(&mut self) -> Result<(), LabError> {
        let log = self.dnsmasq_log();
        let out = self.dir.join("dnsmasq.out");
        let mut args: Vec<String> = vec![
            "--keep-in-foreground".into(),
            // Ignore the host's /etc/dnsmasq.conf, resolv.conf and hosts.
            "--conf-file=/dev/null".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--no-poll".into(),
            format!("--interface={BRIDGE}"),
            "--bind-interfaces".into(),
            format!("--listen-address={BRIDGE_ADDR}"),
            format!("--dhcp-range={DHCP_FIRST},{DHCP_LAST},255.255.255.0,12h"),
            // Answer a guest that asks for a lease of a previous run at once.
            "--dhcp-authoritative".into(),
            // No ICMP echo to an address before offering it: that frame
            // would sit in the guest's capture as traffic nobody asked for.
            "--no-ping".into(),
            format!(
                "--dhcp-leasefile={}",
                self.dir.join("dnsmasq.leases").display()
            ),
            format!("--address=/#/{INTERNET_ADDR}"),
            "--log-queries".into(),
            "--log-dhcp".into(),
            format!("--log-facility={}", log.display()),
        ];
        if self.router_advertisements {
            args.extend([
                "--enable-ra".into(),
                format!("--dhcp-range={},ra-only,64,12h", ipv6_prefix()),
                // Interval, then router lifetime: a default router, so a
                // guest that leaks IPv6 sends it onto the link.
                format!("--ra-param={BRIDGE},{RA_INTERVAL_SECS},1800"),
            ]);
        }
        match self.mode {
            // Keep root's uid and gid: the state directory may be closed to
            // "nobody", and a changed gid (Debian's default is "dip") makes
            // the kernel clear PR_SET_PDEATHSIG, so a killed harness would
            // leave dnsmasq running.
            Mode::Root => args.extend([
                "--user=root".into(),
                "--group=root".into(),
                format!("--pid-file={}", self.dir.join("dnsmasq.pid").display()),
            ]),
            // In a user namespace only one uid and gid are mapped and
            // setgroups(2) is denied, so dnsmasq must not change
            // credentials at all: --no-daemon (debug mode) skips that. It
            // also logs to stderr (dnsmasq.out) and writes no pid file.
            Mode::Rootless { .. } => args.push("--no-daemon".into()),
        }
        let spec = self.spec(Spec::new("dnsmasq").args(args).log(&out));
        let guard = process::spawn(spec).map_err(|source| LabError::DnsmasqSpawn {
            lab: self.name.clone(),
            source,
        })?;
        self.dnsmasq = Some(guard);
        // dnsmasq writes "DHCP, IP range ..." once its DHCP socket is bound.
        let result = wait::wait_until(
            "dnsmasq to log its DHCP range",
            wait::scaled(Duration::from_secs(10)),
            Duration::from_millis(20),
            || {
                let ready = std::fs::read_to_string(&log)
                    .map(|t| t.contains("DHCP, IP range"))
                    .unwrap_or(false);
                let exited = self.dnsmasq.as_mut().and_then(|g| g.try_wait());
                async move {
                    match (ready, exited) {
                        (true, _) => Check::Ready(()),
                        (false, Some(status)) => Check::Fatal(Exited(status)),
                        (false, None) => Check::NotYet("no DHCP line in its log yet".into()),
                    }
                }
            },
        )
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(WaitError::Fatal(Exited(status))) => Err(LabError::DnsmasqExited {
                lab: self.name.clone(),
                status: status.to_string(),
                log: out.clone(),
                tail: format!(
                    "{}\n{}",
                    process::tail_of_file(&out, 20),
                    process::tail_of_file(&log, 20)
                ),
            }),
            Err(WaitError::Timeout(source)) => Err(LabError::Timeout {
                lab: self.name.clone(),
                what: "dnsmasq did not become ready",
                source,
            }),
        }
    }

    /// Add a host on the bridge in a namespace of its own, with a static
    /// address if given (else it is for a DHCP client to configure).
    pub fn add_host(&mut self, addr: Option<Ipv4Addr>) -> Result<LabHost, LabError> {
        let n = self.hosts.len() + 1;
        let name = format!("{}-h{n}", self.name);
        let mac = MacAddr([0x02, 0, 0, 0, 0x01, n as u8]);
        let veth = format!("vh-{n}");
        if !matches!(self.mode, Mode::Root) {
            // A second namespace would need a second holder; nothing needs
            // that rootless yet.
            return Err(LabError::NotIsolated {
                lab: self.name.clone(),
                expected: "root for lab hosts",
                seen: "a rootless lab".into(),
            });
        }
        run(&self.name, "ip", &["netns", "add", &name])?;
        let host = LabHost {
            name: name.clone(),
            netns: Path::new(NETNS_DIR).join(&name),
            ifname: "eth0".into(),
            mac,
        };
        self.hosts.push(host.clone());
        self.sysctl_no_ipv6(Some(&name))?;
        let mac_s = mac.to_string();
        self.ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "address", &mac_s,
            "netns", &name,
        ])?;
        self.ip(&["link", "set", &veth, "master", BRIDGE])?;
        self.ip(&["link", "set", &veth, "up"])?;
        run(&self.name, "ip", &["-n", &name, "link", "set", "lo", "up"])?;
        run(
            &self.name,
            "ip",
            &["-n", &name, "link", "set", "eth0", "up"],
        )?;
        if let Some(a) = addr {
            let cidr = format!("{a}/{PREFIX_LEN}");
            run(
                &self.name,
                "ip",
                &["-n", &name, "addr", "add", &cidr, "dev", "eth0"],
            )?;
        }
        Ok(host)
    }

    /// Add a namespace that belongs to the lab (removed with it, and by
    /// [`cleanup_leftovers`] after a killed run, like a host) but is not
    /// on the bridge: for what the guest's LAN must not reach, linked to a
    /// host by its caller.
    pub fn add_namespace(&mut self) -> Result<LabNamespace, LabError> {
        if !matches!(self.mode, Mode::Root) {
            return Err(LabError::NotIsolated {
                lab: self.name.clone(),
                expected: "root for lab namespaces",
                seen: "a rootless lab".into(),
            });
        }
        let n = self.hosts.len() + 1;
        let name = format!("{}-h{n}", self.name);
        run(&self.name, "ip", &["netns", "add", &name])?;
        self.hosts.push(LabHost {
            name: name.clone(),
            netns: Path::new(NETNS_DIR).join(&name),
            ifname: String::new(),
            mac: MacAddr([0x02, 0, 0, 0, 0x01, n as u8]),
        });
        self.sysctl_no_ipv6(Some(&name))?;
        run(&self.name, "ip", &["-n", &name, "link", "set", "lo", "up"])?;
        Ok(LabNamespace {
            netns: Path::new(NETNS_DIR).join(&name),
            name,
        })
    }

    /// DHCP acknowledgements in dnsmasq's log, oldest first.
    pub fn leases(&self) -> Vec<Lease> {
        parse_leases(&std::fs::read_to_string(self.dnsmasq_log()).unwrap_or_default())
    }

    /// DNS queries in dnsmasq's log, oldest first.
    pub fn dns_queries(&self) -> Vec<DnsQuery> {
        parse_queries(&std::fs::read_to_string(self.dnsmasq_log()).unwrap_or_default())
    }

    /// Router advertisements dnsmasq has logged sending (`RTR-ADVERT`).
    pub fn router_advertisements(&self) -> usize {
        count_router_advertisements(
            &std::fs::read_to_string(self.dnsmasq_log()).unwrap_or_default(),
        )
    }

    /// Wait until dnsmasq sends one more router advertisement than `seen`.
    /// It does not keep to `RA_INTERVAL_SECS`: gaps of 1 to 15 s were
    /// measured, so a fixed capture window may hold none.
    pub async fn wait_for_router_advertisement(
        &self,
        seen: usize,
        timeout: Duration,
    ) -> Result<(), LabError> {
        self.wait_in_log(
            "a router advertisement in dnsmasq's log",
            "no router advertisement (is the lab's IPv6 on?)",
            timeout,
            |log| match count_router_advertisements(log) {
                now if now > seen => Ok(()),
                now => Err(format!("{now} RTR-ADVERT lines in all")),
            },
        )
        .await
    }

    /// Wait until dnsmasq acknowledges a lease (for `mac`, if given).
    pub async fn wait_for_lease(
        &self,
        mac: Option<MacAddr>,
        timeout: Duration,
    ) -> Result<Lease, LabError> {
        self.wait_in_log(
            "a DHCP lease in dnsmasq's log",
            "no DHCP lease",
            timeout,
            |log| {
                parse_leases(log)
                    .into_iter()
                    .find(|l| mac.is_none_or(|m| m == l.mac))
                    .ok_or_else(|| "no matching DHCPACK yet".into())
            },
        )
        .await
    }

    /// Wait until `found` finds its line in dnsmasq's log; until then it
    /// says what it saw instead, for the timeout's message.
    async fn wait_in_log<T>(
        &self,
        what: &str,
        missing: &'static str,
        timeout: Duration,
        found: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, LabError> {
        wait::wait_until::<_, std::convert::Infallible, _, _>(
            what,
            wait::scaled(timeout),
            Duration::from_millis(50),
            || {
                let log = std::fs::read_to_string(self.dnsmasq_log()).unwrap_or_default();
                let check = match found(&log) {
                    Ok(value) => Check::Ready(value),
                    Err(seen) => Check::NotYet(seen),
                };
                async move { check }
            },
        )
        .await
        .map_err(|e| match e {
            WaitError::Timeout(source) => LabError::Timeout {
                lab: self.name.clone(),
                what: missing,
                source,
            },
            WaitError::Fatal(never) => match never {},
        })
    }

    /// Stop dnsmasq and delete the namespaces. Idempotent.
    pub fn stop(&mut self) -> Result<(), LabError> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        if let Some(mut d) = self.dnsmasq.take() {
            d.stop(Duration::from_secs(3));
        }
        let mut first_err = None;
        match &mut self.mode {
            Mode::Root => {
                for host in self.hosts.drain(..) {
                    if let Err(e) = run(&self.name, "ip", &["netns", "del", &host.name]) {
                        first_err.get_or_insert(e);
                    }
                }
                if let Err(e) = run(&self.name, "ip", &["netns", "del", &self.name]) {
                    first_err.get_or_insert(e);
                }
                let _ = std::fs::remove_file(Path::new(OWNER_DIR).join(&self.name));
                if Path::new(NETNS_DIR).join(&self.name).exists() {
                    first_err.get_or_insert(LabError::Leftover {
                        lab: self.name.clone(),
                        what: "its namespace is still listed".into(),
                    });
                }
            }
            // The namespace dies with its last process: the holder.
            Mode::Rootless { holder } => {
                holder.stop(Duration::from_secs(3));
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("stopping lab: {e}");
        }
    }
}

/// The nft table a [`Censor`] keeps in the lab's namespace.
const CENSOR_TABLE: &str = "tailor_censor";
const CENSOR_COUNTER: &str = "censored";

/// The lab's censorship of some ports ([`Lab::censor`]); lifted on drop.
#[derive(Debug)]
pub struct Censor {
    lab: String,
    /// How to run a command in the lab's namespace.
    prefix: Vec<String>,
    ports: Vec<u16>,
    lifted: bool,
}

impl Censor {
    fn nft(&self, args: &[&str]) -> Result<String, LabError> {
        let mut full: Vec<&str> = self.prefix.iter().map(String::as_str).collect();
        full.push("nft");
        full.extend_from_slice(args);
        run(&self.lab, full[0], &full[1..])
    }

    /// The ports it blocks.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// How many packets it has dropped so far.
    pub fn blocked_packets(&self) -> Result<u64, LabError> {
        let text = self.nft(&["list", "counter", "inet", CENSOR_TABLE, CENSOR_COUNTER])?;
        parse_counter_packets(&text).ok_or_else(|| LabError::NotIsolated {
            lab: self.lab.clone(),
            expected: "`packets N` in the censor's counter",
            seen: text.trim().to_owned(),
        })
    }

    /// Stop blocking. Idempotent; a lab already gone took the rules with it.
    pub fn lift(&mut self) -> Result<(), LabError> {
        if self.lifted {
            return Ok(());
        }
        self.lifted = true;
        match self.nft(&["delete", "table", "inet", CENSOR_TABLE]) {
            Ok(_) => {
                tracing::info!("the lab no longer blocks direct connections");
                Ok(())
            }
            Err(_) if !lab_exists(&self.lab, &self.prefix) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for Censor {
    fn drop(&mut self) {
        if let Err(e) = self.lift() {
            tracing::warn!("lifting the lab's censorship: {e}");
        }
    }
}

/// Whether the lab's namespace is still there to run commands in.
fn lab_exists(lab: &str, prefix: &[String]) -> bool {
    match prefix.first().map(String::as_str) {
        Some("ip") => Path::new(NETNS_DIR).join(lab).exists(),
        // nsenter --target PID: the holder process.
        _ => prefix
            .get(2)
            .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists()),
    }
}

/// `packets N` from `nft list counter`.
fn parse_counter_packets(text: &str) -> Option<u64> {
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "packets" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// A child's exit, as the fatal outcome of a wait.
#[derive(Debug, thiserror::Error)]
#[error("exited: {0}")]
struct Exited(std::process::ExitStatus);

fn run(lab: &str, program: &str, args: &[&str]) -> Result<String, LabError> {
    process::run_output(program, args).map_err(|source| LabError::Command {
        lab: lab.to_owned(),
        source,
    })
}

/// A process's start time (clock ticks since boot), to tell a PID from a
/// later process that reused it.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22; the command name (field 2) may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(19)?.parse().ok()
}

fn record_owner(name: &str) {
    let Some(start) = start_time(std::process::id()) else {
        return;
    };
    // Without the record, a dead PID still proves the lab is a leftover;
    // the record only adds protection against PID reuse.
    if std::fs::create_dir_all(OWNER_DIR).is_ok() {
        let _ = std::fs::write(Path::new(OWNER_DIR).join(name), start.to_string());
    }
}

/// `tailor-<pid>-<seq>` or `tailor-<pid>-<seq>-h<n>`: the owner's PID.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("tailor-")?;
    let mut parts = rest.split('-');
    let pid = parts.next()?.parse().ok()?;
    parts.next()?.parse::<u32>().ok()?;
    match parts.next() {
        None => {}
        Some(h) if h.starts_with('h') && h[1..].parse::<u32>().is_ok() => {}
        Some(_) => return None,
    }
    parts.next().is_none().then_some(pid)
}

/// Whether the process that made lab `name` is gone.
fn owner_is_gone(name: &str) -> bool {
    let Some(pid) = owner_pid(name) else {
        return false;
    };
    if pid == std::process::id() {
        return false;
    }
    let base = name.split("-h").next().unwrap_or(name);
    let recorded: Option<u64> = std::fs::read_to_string(Path::new(OWNER_DIR).join(base))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    match (start_time(pid), recorded) {
        (None, _) => true,
        (Some(now), Some(then)) => now != then,
        (Some(_), None) => false,
    }
}

/// Remove the namespaces of labs whose owning process is dead (root only).
/// Kills anything still running inside them first. Returns their names.
pub fn cleanup_leftovers() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| owner_is_gone(n))
        .collect();
    names.sort();
    names.retain(|name| {
        kill_processes_in(&Path::new(NETNS_DIR).join(name));
        let ok = process::run_output("ip", &["netns", "del", name]).is_ok();
        if ok && !name.contains("-h") {
            let _ = std::fs::remove_file(Path::new(OWNER_DIR).join(name));
        }
        ok
    });
    names
}

/// SIGKILL every process whose network namespace is the one bound at `ns`.
fn kill_processes_in(ns: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(ns) else {
        return;
    };
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(entry.path().join("ns/net")) else {
            continue;
        };
        if meta.ino() == target.ino() && meta.dev() == target.dev() {
            tracing::info!(pid, ns = %ns.display(), "killing a process left in a stale lab");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Rootless QEMU needs to open /dev/net/tun itself; say so plainly if it
/// cannot, instead of failing later inside QEMU with EPERM.
fn check_tun() -> Result<(), LabError> {
    use nix::unistd::{access, AccessFlags};
    if access("/dev/net/tun", AccessFlags::R_OK | AccessFlags::W_OK).is_ok() {
        return Ok(());
    }
    let mode = std::fs::metadata("/dev/net/tun")
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0);
    Err(LabError::TunPermission {
        mode,
        uid: nix::unistd::getuid().as_raw(),
    })
}

/// A child that unshares a user and a network namespace (mapping our uid to
/// root inside, so it may configure links) and then waits forever; the
/// namespaces live as long as it does.
fn rootless_holder(dir: &Path) -> Result<ChildGuard, LabError> {
    let uid = nix::unistd::getuid().as_raw();
    // `unshare(1)` is nix::sched::unshare plus the uid/gid map writes,
    // which must happen in the child between unshare and exec; doing that
    // by hand after fork in a threaded process would allocate.
    let spec = Spec::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--net",
            "--",
            "sleep",
            "infinity",
        ])
        .log(dir.join("holder.out"));
    let mut holder = process::spawn(spec).map_err(|source| LabError::Unshare { uid, source })?;
    // The holder is ready once its network namespace differs from ours.
    let ours = std::fs::read_link("/proc/self/ns/net").ok();
    let path = format!("/proc/{}/ns/net", holder.pid());
    for _ in 0..500 {
        if let Some(status) = holder.try_wait() {
            return Err(LabError::HolderExited {
                lab: format!("rootless lab of uid {uid}"),
                status: status.to_string(),
                tail: holder.log_tail(10),
            });
        }
        let theirs = std::fs::read_link(&path).ok();
        let user_ns_ready = std::fs::read_link(format!("/proc/{}/ns/user", holder.pid())).ok()
            != std::fs::read_link("/proc/self/ns/user").ok();
        if theirs.is_some() && theirs != ours && user_ns_ready {
            return Ok(holder);
        }
        std::thread::yield_now();
        std::thread::sleep(Duration::from_millis(2));
    }
    Err(LabError::HolderExited {
        lab: format!("rootless lab of uid {uid}"),
        status: "still running but never entered its namespaces".into(),
        tail: holder.log_tail(10),
    })
}

/// `DHCPACK(br0) 10.203.0.57 02:00:00:aa:bb:cc [hostname]` lines.
pub fn parse_leases(log: &str) -> Vec<Lease> {
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find("DHCPACK(")?..];
            let mut words = rest.split_whitespace().skip(1);
            let ip = words.next()?.parse().ok()?;
            let mac = words.next()?.parse().ok()?;
            Some(Lease { ip, mac })
        })
        .collect()
}

/// `RTR-ADVERT(br0) fd00:203::` lines.
pub fn count_router_advertisements(log: &str) -> usize {
    log.lines().filter(|l| l.contains(": RTR-ADVERT(")).count()
}

/// `query[A] example.com from 10.203.0.57` lines.
pub fn parse_queries(log: &str) -> Vec<DnsQuery> {
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find(": query[")? + 2..];
            let qtype = rest.get(6..rest.find(']')?)?.to_owned();
            let mut words = rest.split_whitespace().skip(1);
            let name = words.next()?.to_owned();
            (words.next()? == "from").then_some(())?;
            let from = words.next()?.to_owned();
            Some(DnsQuery { qtype, name, from })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_censors_counter() {
        let text =
            "table inet tailor_censor {\n\tcounter censored {\n\t\tpackets 12 bytes 720\n\t}\n}\n";
        assert_eq!(parse_counter_packets(text), Some(12));
        assert_eq!(parse_counter_packets("nothing"), None);
    }

    const LOG: &str = "\
Nov 25 09:01:02 dnsmasq[77]: started, version 2.90 cachesize 150
Nov 25 09:01:02 dnsmasq-dhcp[77]: DHCP, IP range 10.203.0.50 -- 10.203.0.150, lease time 12h
Nov 25 09:01:03 dnsmasq-dhcp[77]: 3180 DHCPDISCOVER(br0) 02:00:00:00:01:01
Nov 25 09:01:03 dnsmasq-dhcp[77]: 3180 DHCPOFFER(br0) 10.203.0.93 02:00:00:00:01:01
Nov 25 09:01:03 dnsmasq-dhcp[77]: 3180 DHCPACK(br0) 10.203.0.93 02:00:00:00:01:01 client
Nov 25 09:01:04 dnsmasq[77]: query[A] example.com from 10.203.0.93
Nov 25 09:01:04 dnsmasq[77]: config example.com is 10.203.0.2
Nov 25 09:01:05 dnsmasq[77]: query[AAAA] check.torproject.org from 10.203.0.93
Nov 25 09:01:06 dnsmasq-dhcp[77]: RTR-ADVERT(br0) fd00:203::
Nov 25 09:01:21 dnsmasq-dhcp[77]: RTR-ADVERT(br0) fd00:203::
";

    #[test]
    fn router_advertisements_are_counted() {
        assert_eq!(count_router_advertisements(LOG), 2);
        assert_eq!(count_router_advertisements(""), 0);
    }

    #[test]
    fn leases_are_read_from_dhcpack_lines() {
        assert_eq!(
            parse_leases(LOG),
            [Lease {
                ip: "10.203.0.93".parse().unwrap(),
                mac: "02:00:00:00:01:01".parse().unwrap()
            }]
        );
    }

    #[test]
    fn queries_are_read_with_type_name_and_client() {
        let q = parse_queries(LOG);
        assert_eq!(q.len(), 2);
        assert_eq!(
            q[1],
            DnsQuery {
                qtype: "AAAA".into(),
                name: "check.torproject.org".into(),
                from: "10.203.0.93".into()
            }
        );
    }

    #[test]
    fn only_our_names_have_an_owner() {
        assert_eq!(owner_pid("tailor-123-0"), Some(123));
        assert_eq!(owner_pid("tailor-123-4-h2"), Some(123));
        assert_eq!(owner_pid("tailor-tor-1"), None);
        assert_eq!(owner_pid("tailor-123"), None);
        assert_eq!(owner_pid("tailor-123-0-x"), None);
        assert_eq!(owner_pid("other-1-2"), None);
    }

    #[test]
    fn our_own_start_time_is_readable() {
        assert!(start_time(std::process::id()).is_some());
        assert!(!owner_is_gone(&format!("tailor-{}-0", std::process::id())));
    }
}
