//! A VPN in the lab: a WireGuard server on the guest's LAN, and "the
//! Internet" that only the tunnel's far side reaches.
//!
//! ```text
//! lab netns (br0 10.203.0.1/24, the guest's tap, dnsmasq: the LAN)
//!   └─ veth ── server netns <lab>-hN           "the VPN provider"
//!                eth0  10.203.0.3/24           endpoint: UDP 51820 (wireguard-go)
//!                wg0   10.204.0.1/24           the tunnel's far side
//!                wan   198.51.100.1/24         the VPN's address on "the Internet":
//!                  │                           what comes out of the tunnel is
//!                  │                           forwarded here and masqueraded
//!                  └─ veth ── internet netns   "the Internet", on no LAN
//!                               198.51.100.80  web server (busybox httpd, port 80)
//!                               198.51.100.53  resolver (dnsmasq: every name is .80)
//!                probe 10.207.0.1/30 ── probe netns: a WireGuard client of the
//!                                       lab's own, to prove the server works
//! ```
//!
//! The guest's LAN cannot reach the Internet addresses: the lab namespace
//! (its router) has no route to them, and the server namespace forwards
//! only what comes out of the tunnel (`wg0` to `wan`; the reverse only for
//! established connections), which [`VpnLab::verify_isolation`] proves by
//! inspection. No namespace has a default route or a link out of the lab,
//! so 198.51.100.0/24 (TEST-NET-2, never routed on the Internet) stays in
//! here like every other lab address.
//!
//! The web server sees every request through the VPN come from
//! [`EXIT_ADDR`], never from a guest's LAN address or tunnel address;
//! the resolver's log shows the same for names.
//!
//! Bring-up ([`VpnLab::start`]): namespaces and links, forwarding and NAT,
//! web server and resolver (each waited on: listening socket, log line),
//! fresh keys for the server, the guest and the probe (`wg genkey`, per
//! run), wireguard-go ([`wireguard::Daemon`]), then the probe: a
//! wireguard-go client in its own namespace completes a handshake, resolves
//! a name and fetches the page through the tunnel. Only a proven server
//! counts as started; a stopped one is started again the same way
//! ([`VpnLab::start_server`]).
//!
//! The guest is handed [`VpnLab::client_config`] (a wg-quick file, as VPN
//! providers hand them out) before Start; [`VpnLab::guest_handshake`]
//! tells when the server completed a handshake with it, from which address
//! and port.
//!
//! Clean-up: the namespaces are the lab's ([`Lab::add_host`],
//! [`Lab::add_namespace`]), removed with it; every daemon is a
//! [`ChildGuard`] (process group, PDEATHSIG) and wireguard-go's control
//! socket lives in a private mount namespace, so after a SIGKILL nothing
//! is left but namespaces the next lab removes, and two labs never share a
//! name or a socket.
//!
//! ```no_run
//! # async fn demo(lab: &mut harness::net::lab::Lab, dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
//! use harness::vpn::VpnLab;
//! let vpn = VpnLab::start(lab, dir).await?;
//! let for_the_guest = vpn.client_config(); // to /etc/tailor/vpn/client.conf
//! let allowed = vpn.endpoint(); // the only thing the guest may send to
//! // ... the guest connects ...
//! let handshake = vpn.guest_handshake()?; // when, and from where
//! let only_vpn = vpn.web().requests()?.iter().all(|r| *r.source.ip() == harness::vpn::EXIT_ADDR);
//! # Ok(()) }
//! ```

pub mod wireguard;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::net::analysis::MacAddr;
use crate::net::lab::{DnsQuery, Lab, LabError, LabHost, LabNamespace};
use crate::process::{self, ChildGuard, RunError, Spec};
use crate::tor::WebServer;
use crate::wait::{self, Check};
use wireguard::{Daemon, KeyPair, PeerStatus};

/// The VPN server's address on the guest's LAN.
pub const ENDPOINT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 203, 0, 3);
pub const ENDPOINT_PORT: u16 = 51820;
/// The tunnel's network: the server's side and the guest's address.
pub const TUNNEL_SERVER: Ipv4Addr = Ipv4Addr::new(10, 204, 0, 1);
pub const TUNNEL_GUEST: Ipv4Addr = Ipv4Addr::new(10, 204, 0, 2);
const TUNNEL_PROBE: Ipv4Addr = Ipv4Addr::new(10, 204, 0, 3);
const TUNNEL_PREFIX: u8 = 24;
/// The VPN's own address on "the Internet": every request through the
/// tunnel reaches the web server from here.
pub const EXIT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// "The Internet": a web server and a resolver, behind the VPN only.
pub const WEB_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 80);
pub const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 53);
const INTERNET_PREFIX: u8 = 24;
const INTERNET_NET: &str = "198.51.100.0/24";
/// The probe's private link to the server.
const PROBE_SERVER: Ipv4Addr = Ipv4Addr::new(10, 207, 0, 1);
const PROBE_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 207, 0, 2);
/// A name the resolver answers (every name resolves to [`WEB_ADDR`]).
pub const WEB_NAME: &str = "www.example.com";
/// The server's WireGuard interface (its own namespace: no clash).
const SERVER_IF: &str = "wg0";
/// The guest's keepalive: also what makes it handshake as soon as its
/// interface is up.
const GUEST_KEEPALIVE_SECS: u32 = 25;

/// Errors setting up or using the lab's VPN.
#[derive(Debug, thiserror::Error)]
pub enum VpnError {
    #[error("preparing the lab's VPN")]
    Lab(#[from] LabError),
    #[error("preparing the lab's VPN: `{command}`")]
    Command {
        command: String,
        #[source]
        source: RunError,
    },
    #[error("the lab's WireGuard server")]
    WireGuard(#[from] wireguard::Error),
    #[error("the lab's web server behind the VPN")]
    Web(#[from] crate::tor::WebError),
    #[error("cannot prepare {path}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the VPN's resolver (dnsmasq)")]
    ResolverSpawn(#[source] process::Error),
    #[error("the VPN's resolver (dnsmasq) did not start; its log {log} ends with:\n{tail}")]
    ResolverNotReady { log: PathBuf, tail: String },
    #[error(
        "the probe through the lab's VPN failed: expected {expected}, saw {seen}; \
         logs in {dir}"
    )]
    Probe {
        expected: &'static str,
        seen: String,
        dir: PathBuf,
    },
    #[error("the lab's VPN is not isolated: expected {expected}, saw {seen}")]
    NotIsolated {
        expected: &'static str,
        seen: String,
    },
    #[error("the lab's VPN server is not running (it was stopped)")]
    ServerStopped,
    #[error(
        "the lab's VPN needs root: its server and Internet are namespaces of their own \
         (`ip netns`), which a rootless lab cannot make yet; run as root"
    )]
    NeedsRoot,
}

/// A completed handshake with the guest's key, as the server saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub at: SystemTime,
    /// The guest's address and port its tunnel packets came from.
    pub from: SocketAddr,
}

/// The lab's VPN: server, Internet, keys. Dropping it stops its daemons;
/// its namespaces go with the lab.
#[derive(Debug)]
pub struct VpnLab {
    server_ns: LabHost,
    internet_ns: LabNamespace,
    probe_ns: LabNamespace,
    dir: PathBuf,
    server_keys: KeyPair,
    guest_keys: KeyPair,
    probe_keys: KeyPair,
    server: Option<Daemon>,
    web: WebServer,
    resolver: ChildGuard,
    resolver_log: PathBuf,
}

fn run(command: &[&str]) -> Result<String, VpnError> {
    process::run_output(command[0], &command[1..]).map_err(|source| VpnError::Command {
        command: command.join(" "),
        source,
    })
}

/// `ip -n NS ARGS`.
fn ip(ns: &str, args: &[&str]) -> Result<String, VpnError> {
    let mut full = vec!["ip", "-n", ns];
    full.extend_from_slice(args);
    run(&full)
}

/// `ip netns exec NS ARGS`.
fn in_ns(ns: &str, args: &[&str]) -> Result<String, VpnError> {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    run(&full)
}

/// A veth pair from `a` (named `a_if`, address `a_addr`) to `b`.
fn link(
    a: &str,
    a_if: &str,
    a_addr: &str,
    b: &str,
    b_if: &str,
    b_addrs: &[String],
) -> Result<(), VpnError> {
    ip(
        a,
        &[
            "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
        ],
    )?;
    ip(a, &["addr", "add", a_addr, "dev", a_if])?;
    ip(a, &["link", "set", a_if, "up"])?;
    for addr in b_addrs {
        ip(b, &["addr", "add", addr, "dev", b_if])?;
    }
    ip(b, &["link", "set", b_if, "up"])?;
    Ok(())
}

/// Forward only what comes out of the tunnel to the Internet (and its
/// answers back), masqueraded as the VPN's address; the LAN and the probe
/// link are never forwarded anywhere.
fn server_firewall() -> String {
    format!(
        "table ip tailor-vpn {{\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy drop;\n\
         \t\tiifname \"{SERVER_IF}\" oifname \"wan\" accept\n\
         \t\tiifname \"wan\" oifname \"{SERVER_IF}\" ct state established,related accept\n\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"wan\" masquerade\n\
         \t}}\n\
         }}\n"
    )
}

impl VpnLab {
    /// Build the VPN's namespaces in `lab`, start the Internet and the
    /// server, and prove the server with a probe. `dir` receives keys,
    /// configurations and logs (created; it must be fresh for each lab).
    pub async fn start(lab: &mut Lab, dir: &Path) -> Result<VpnLab, VpnError> {
        if !nix::unistd::geteuid().is_root() {
            return Err(VpnError::NeedsRoot);
        }
        std::fs::create_dir_all(dir).map_err(|source| VpnError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let server_ns = lab.add_host(Some(ENDPOINT_ADDR))?;
        let internet_ns = lab.add_namespace()?;
        let probe_ns = lab.add_namespace()?;
        let (s, i, p) = (
            server_ns.name.as_str(),
            internet_ns.name.as_str(),
            probe_ns.name.as_str(),
        );
        link(
            s,
            "wan",
            &format!("{EXIT_ADDR}/{INTERNET_PREFIX}"),
            i,
            "eth0",
            &[
                format!("{WEB_ADDR}/{INTERNET_PREFIX}"),
                format!("{DNS_ADDR}/{INTERNET_PREFIX}"),
            ],
        )?;
        link(
            s,
            "probe",
            &format!("{PROBE_SERVER}/30"),
            p,
            "eth0",
            &[format!("{PROBE_CLIENT}/30")],
        )?;
        in_ns(s, &["sysctl", "-qw", "net.ipv4.ip_forward=1"])?;
        let rules = dir.join("server-firewall.nft");
        std::fs::write(&rules, server_firewall()).map_err(|source| VpnError::Dir {
            path: rules.clone(),
            source,
        })?;
        in_ns(s, &["nft", "-f", &rules.display().to_string()])?;

        let web = WebServer::start(
            &internet_ns.netns,
            SocketAddrV4::new(WEB_ADDR, 80),
            &dir.join("web"),
        )
        .await?;
        let resolver_log = dir.join("resolver.log");
        let resolver = start_resolver(&internet_ns.netns, &resolver_log).await?;

        let mut vpn = VpnLab {
            server_ns,
            internet_ns,
            probe_ns,
            dir: dir.to_owned(),
            server_keys: KeyPair::generate()?,
            guest_keys: KeyPair::generate()?,
            probe_keys: KeyPair::generate()?,
            server: None,
            web,
            resolver,
            resolver_log,
        };
        vpn.verify_isolation()?;
        vpn.start_server().await?;
        Ok(vpn)
    }

    /// Start the WireGuard server (again, after [`VpnLab::stop_server`]),
    /// with the same keys and peers, and prove it with the probe.
    pub async fn start_server(&mut self) -> Result<(), VpnError> {
        if let Some(mut old) = self.server.take() {
            old.stop();
        }
        let s = self.server_ns.name.clone();
        let daemon = Daemon::start(
            &self.server_ns.netns,
            SERVER_IF,
            &self.dir.join("wireguard-go-server.log"),
        )
        .await?;
        let config = format!(
            "[Interface]\nPrivateKey = {}\nListenPort = {ENDPOINT_PORT}\n\n\
             # The guest\n[Peer]\nPublicKey = {}\nAllowedIPs = {TUNNEL_GUEST}/32\n\n\
             # The lab's probe\n[Peer]\nPublicKey = {}\nAllowedIPs = {TUNNEL_PROBE}/32\n",
            self.server_keys.private, self.guest_keys.public, self.probe_keys.public
        );
        daemon.set_config(&config, &self.dir)?;
        ip(
            &s,
            &[
                "addr",
                "add",
                &format!("{TUNNEL_SERVER}/{TUNNEL_PREFIX}"),
                "dev",
                SERVER_IF,
            ],
        )?;
        ip(&s, &["link", "set", SERVER_IF, "up"])?;
        self.server = Some(daemon);
        self.probe().await?;
        tracing::info!(endpoint = %self.endpoint(), "lab VPN server up (probe handshake done)");
        Ok(())
    }

    /// Stop the WireGuard server (the tunnel's far side disappears; the
    /// Internet stays). For scenarios where the VPN goes down.
    pub fn stop_server(&mut self) {
        if let Some(mut daemon) = self.server.take() {
            daemon.stop();
            tracing::info!("lab VPN server stopped");
        }
    }

    /// Whether the server runs.
    pub fn server_running(&mut self) -> bool {
        self.server.as_mut().is_some_and(Daemon::is_running)
    }

    /// A client of the lab's own, in its own namespace behind a private
    /// link: a handshake, a name resolved and the page fetched, all through
    /// the tunnel. Proves the server, the forwarding and the Internet.
    async fn probe(&self) -> Result<(), VpnError> {
        let p = self.probe_ns.name.clone();
        let dir = self.dir.join("probe");
        std::fs::create_dir_all(&dir).map_err(|source| VpnError::Dir {
            path: dir.clone(),
            source,
        })?;
        let fail = |expected: &'static str, seen: String| VpnError::Probe {
            expected,
            seen,
            dir: self.dir.clone(),
        };
        let mut client =
            Daemon::start(&self.probe_ns.netns, "wg0", &dir.join("wireguard-go.log")).await?;
        let config = format!(
            "[Interface]\nPrivateKey = {}\n\n[Peer]\nPublicKey = {}\nEndpoint = {PROBE_SERVER}:{ENDPOINT_PORT}\nAllowedIPs = 0.0.0.0/0\nPersistentKeepalive = 1\n",
            self.probe_keys.private, self.server_keys.public
        );
        client.set_config(&config, &dir)?;
        ip(
            &p,
            &["addr", "add", &format!("{TUNNEL_PROBE}/32"), "dev", "wg0"],
        )?;
        ip(&p, &["link", "set", "wg0", "up"])?;
        ip(&p, &["route", "add", INTERNET_NET, "dev", "wg0"])?;
        let probe_key = self.probe_keys.public.clone();
        let handshake = self
            .wait_handshake(&probe_key, None, Duration::from_secs(10))
            .await;
        let outcome = match handshake {
            Err(e) => Err(fail(
                "a handshake between the probe and the server",
                e.to_string(),
            )),
            Ok(_) => {
                // busybox also asks for AAAA, which the resolver refuses:
                // its exit status says nothing, its answer does.
                let dns = std::process::Command::new("ip")
                    .args(["netns", "exec", &p, "busybox", "nslookup", WEB_NAME])
                    .arg(DNS_ADDR.to_string())
                    .stdin(std::process::Stdio::null())
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
                let page = in_ns(
                    &p,
                    &[
                        "curl",
                        "--silent",
                        "--show-error",
                        "--max-time",
                        "10",
                        &format!("http://{WEB_ADDR}/"),
                    ],
                );
                match (dns, page) {
                    (Ok(answer), _) if !answer.contains(&format!("Address: {WEB_ADDR}")) => {
                        Err(fail(
                            "the VPN's resolver to answer with the web server's address",
                            answer,
                        ))
                    }
                    (Err(e), _) => Err(fail("a name resolved through the tunnel", e.to_string())),
                    (_, Err(e)) => Err(fail(
                        "the web page through the tunnel",
                        format!(
                            "{e}: {}",
                            std::error::Error::source(&e)
                                .map(|s| s.to_string())
                                .unwrap_or_default()
                        ),
                    )),
                    (_, Ok(body)) if body != self.web.page() => {
                        Err(fail("the lab's web page through the tunnel", body))
                    }
                    (_, Ok(_)) => Ok(()),
                }
            }
        };
        client.stop();
        outcome
    }

    /// The latest handshake of the peer with `key`, once it is newer than
    /// `after` (any, if `None`).
    async fn wait_handshake(
        &self,
        key: &str,
        after: Option<SystemTime>,
        timeout: Duration,
    ) -> Result<Handshake, VpnError> {
        let server = self.server.as_ref().ok_or(VpnError::ServerStopped)?;
        let result = wait::wait_until::<_, wireguard::Error, _, _>(
            "a WireGuard handshake on the lab's server",
            wait::scaled(timeout),
            Duration::from_millis(50),
            || {
                let check = match server.peers() {
                    Err(e) => Check::Fatal(e),
                    Ok(peers) => match handshake_of(&peers, key) {
                        Some(h) if after.is_none_or(|t| h.at >= t) => Check::Ready(h),
                        Some(h) => Check::NotYet(format!("the last one was at {:?}", h.at)),
                        None => Check::NotYet("none yet".into()),
                    },
                };
                async move { check }
            },
        )
        .await;
        match result {
            Ok(h) => Ok(h),
            Err(wait::WaitError::Fatal(e)) => Err(e.into()),
            Err(wait::WaitError::Timeout(t)) => Err(VpnError::Probe {
                expected: "a handshake",
                seen: t.to_string(),
                dir: self.dir.clone(),
            }),
        }
    }

    /// The server's last completed handshake with the guest's key, if any.
    pub fn guest_handshake(&self) -> Result<Option<Handshake>, VpnError> {
        let server = self.server.as_ref().ok_or(VpnError::ServerStopped)?;
        Ok(handshake_of(&server.peers()?, &self.guest_keys.public))
    }

    /// What the guest is handed before Start: a wg-quick file with its
    /// key, its tunnel address, the VPN's resolver and the endpoint.
    pub fn client_config(&self) -> String {
        client_config(
            &self.guest_keys.private,
            &self.server_keys.public,
            self.endpoint(),
        )
    }

    /// The only thing the guest may send to: the server's UDP port.
    pub fn endpoint(&self) -> SocketAddrV4 {
        SocketAddrV4::new(ENDPOINT_ADDR, ENDPOINT_PORT)
    }

    /// The server's MAC on the LAN (the lab's side of the link).
    pub fn server_mac(&self) -> MacAddr {
        self.server_ns.mac
    }

    /// The web server behind the VPN.
    pub fn web(&self) -> &WebServer {
        &self.web
    }

    /// Queries the VPN's resolver logged, oldest first.
    pub fn resolver_queries(&self) -> Vec<DnsQuery> {
        crate::net::lab::parse_queries(
            &std::fs::read_to_string(&self.resolver_log).unwrap_or_default(),
        )
    }

    /// The daemons' PIDs (server, web server, resolver), for checks that
    /// they are gone.
    pub fn daemon_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.server.iter().map(Daemon::pid).collect();
        pids.push(self.web.pid());
        pids.push(self.resolver.pid());
        pids
    }

    /// The folder with the VPN's keys, configurations and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Prove by inspection that the guest's LAN cannot reach the Internet
    /// except through the tunnel: the LAN's router (the lab namespace) and
    /// the Internet have no route to each other, and the server forwards
    /// only from its tunnel.
    pub fn verify_isolation(&self) -> Result<(), VpnError> {
        let lab = self
            .server_ns
            .name
            .rsplit_once("-h")
            .map(|(lab, _)| lab.to_owned())
            .unwrap_or_default();
        let unreachable = |ns: &str, to: Ipv4Addr| -> Result<(), VpnError> {
            match ip(ns, &["route", "get", &to.to_string()]) {
                Err(VpnError::Command {
                    source: RunError::Failed { stderr, .. },
                    ..
                }) if stderr.contains("unreachable") => Ok(()),
                Err(e) => Err(e),
                Ok(out) => Err(VpnError::NotIsolated {
                    expected: "no route between the guest's LAN and the Internet",
                    seen: format!("in {ns}: {}", out.trim()),
                }),
            }
        };
        unreachable(&lab, WEB_ADDR)?;
        unreachable(&lab, DNS_ADDR)?;
        unreachable(&self.internet_ns.name, crate::net::lab::BRIDGE_ADDR)?;
        for ns in [
            &lab,
            &self.server_ns.name,
            &self.internet_ns.name,
            &self.probe_ns.name,
        ] {
            let routes = ip(ns, &["-4", "route", "show", "table", "all"])?;
            if let Some(line) = routes.lines().find(|l| l.starts_with("default")) {
                return Err(VpnError::NotIsolated {
                    expected: "no default route in any of the VPN's namespaces",
                    seen: format!("in {ns}: {line}"),
                });
            }
        }
        let rules = in_ns(
            &self.server_ns.name,
            &["nft", "list", "chain", "ip", "tailor-vpn", "forward"],
        )?;
        if !rules.contains("policy drop") {
            return Err(VpnError::NotIsolated {
                expected: "the VPN server to drop what it is not told to forward",
                seen: rules,
            });
        }
        Ok(())
    }

    /// Stop every daemon (the namespaces go with the lab).
    pub fn stop(&mut self) {
        self.stop_server();
        self.web.stop();
        self.resolver.stop(Duration::from_secs(3));
    }
}

impl Drop for VpnLab {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The latest handshake of the peer with public key `key`.
fn handshake_of(peers: &[PeerStatus], key: &str) -> Option<Handshake> {
    let peer = peers.iter().find(|p| p.public_key == key)?;
    Some(Handshake {
        at: peer.latest_handshake?,
        from: peer.endpoint?,
    })
}

/// A wg-quick configuration for the guest: all IPv4 into the tunnel, the
/// VPN's resolver, a keepalive (which also makes it handshake at once).
pub fn client_config(private_key: &str, server_public: &str, endpoint: SocketAddrV4) -> String {
    format!(
        "# The lab's VPN, as a provider would hand it out (written by Tailor).\n\
         [Interface]\n\
         PrivateKey = {private_key}\n\
         Address = {TUNNEL_GUEST}/32\n\
         DNS = {DNS_ADDR}\n\
         \n\
         [Peer]\n\
         PublicKey = {server_public}\n\
         Endpoint = {endpoint}\n\
         AllowedIPs = 0.0.0.0/0\n\
         PersistentKeepalive = {GUEST_KEEPALIVE_SECS}\n"
    )
}

/// What the VPN variant's client reports of itself
/// ([`crate::derivative::GUEST_VPN_STATE`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestVpnState {
    /// `connecting`, `connected`, `reconnecting` or `unconfigured`.
    pub state: String,
    /// With `connected`: the address and port its tunnel packets leave
    /// from, which the server sees as the peer's endpoint.
    pub local: Option<SocketAddr>,
}

impl GuestVpnState {
    /// Parse the state file's `key=value` lines; `None` without a state.
    pub fn parse(text: &str) -> Option<GuestVpnState> {
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        };
        Some(GuestVpnState {
            state: value("state")?.to_owned(),
            local: value("local").and_then(|v| v.parse().ok()),
        })
    }

    pub fn is_connected(&self) -> bool {
        self.state == "connected"
    }
}

/// A wg-quick file without wg-quick's own keys (`Address`, `DNS`, ...):
/// what `wg setconf` takes, as a client that is not wg-quick feeds it.
pub fn setconf_form(wg_quick: &str) -> String {
    const WG_QUICK_ONLY: [&str; 9] = [
        "address",
        "dns",
        "mtu",
        "table",
        "saveconfig",
        "preup",
        "postup",
        "predown",
        "postdown",
    ];
    wg_quick
        .lines()
        .filter(|line| {
            let key = line
                .split('=')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            !(line.contains('=') && WG_QUICK_ONLY.contains(&key.as_str()))
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The Internet's resolver: dnsmasq on [`DNS_ADDR`] answering every name
/// with [`WEB_ADDR`] and logging every query; ready once it says so.
async fn start_resolver(netns: &Path, log: &Path) -> Result<ChildGuard, VpnError> {
    let out = log.with_extension("out");
    let spec = Spec::new("dnsmasq")
        .args([
            "--keep-in-foreground".to_owned(),
            "--conf-file=/dev/null".into(),
            "--no-resolv".into(),
            "--no-hosts".into(),
            "--no-poll".into(),
            format!("--listen-address={DNS_ADDR}"),
            "--bind-interfaces".into(),
            format!("--address=/#/{WEB_ADDR}"),
            "--log-queries".into(),
            format!("--log-facility={}", log.display()),
            // As the lab's dnsmasq: root's ids keep PDEATHSIG.
            "--user=root".into(),
            "--group=root".into(),
            format!("--pid-file={}", log.with_extension("pid").display()),
        ])
        .netns(netns)
        .log(&out);
    let mut guard = process::spawn(spec).map_err(VpnError::ResolverSpawn)?;
    let result = wait::wait_until::<_, std::convert::Infallible, _, _>(
        "the VPN's resolver to start",
        wait::scaled(Duration::from_secs(10)),
        Duration::from_millis(20),
        || {
            let started = std::fs::read_to_string(log)
                .map(|t| t.contains("started, version"))
                .unwrap_or(false);
            let exited = guard.try_wait().is_some();
            async move {
                match (started, exited) {
                    (true, _) => Check::Ready(true),
                    (false, true) => Check::Ready(false),
                    (false, false) => Check::NotYet("no start line in its log yet".into()),
                }
            }
        },
    )
    .await;
    match result {
        Ok(true) => Ok(guard),
        _ => Err(VpnError::ResolverNotReady {
            log: log.to_owned(),
            tail: format!(
                "{}\n{}",
                process::tail_of_file(&out, 10),
                process::tail_of_file(log, 10)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::lab::PREFIX_LEN;

    #[test]
    fn the_guest_config_is_a_wg_quick_file() {
        let text = client_config("cPriv=", "sPub=", "10.203.0.3:51820".parse().unwrap());
        for line in [
            "PrivateKey = cPriv=",
            "Address = 10.204.0.2/32",
            "DNS = 198.51.100.53",
            "PublicKey = sPub=",
            "Endpoint = 10.203.0.3:51820",
            "AllowedIPs = 0.0.0.0/0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing in:\n{text}"
            );
        }
        let interface = text.find("[Interface]").unwrap();
        let peer = text.find("[Peer]").unwrap();
        assert!(interface < peer);
        let plain = setconf_form(&text);
        assert!(
            !plain.contains("Address") && !plain.contains("DNS"),
            "{plain}"
        );
        assert!(plain.contains("Endpoint = 10.203.0.3:51820"), "{plain}");
    }

    #[test]
    fn the_guest_state_file_is_read() {
        let s = GuestVpnState::parse(
            "state=connected\nendpoint=10.203.0.3:51820\nlocal=10.203.0.57:43817\n",
        )
        .unwrap();
        assert!(s.is_connected());
        assert_eq!(s.local, Some("10.203.0.57:43817".parse().unwrap()));
        let s = GuestVpnState::parse("state=reconnecting\n").unwrap();
        assert!(!s.is_connected());
        assert_eq!(s.local, None);
        assert_eq!(GuestVpnState::parse(""), None);
    }

    #[test]
    fn the_server_forwards_only_from_its_tunnel() {
        let rules = server_firewall();
        assert!(rules.contains("policy drop"));
        assert!(rules.contains("iifname \"wg0\" oifname \"wan\" accept"));
        assert!(rules.contains("masquerade"));
        assert_eq!(rules.matches(" accept").count(), 3, "{rules}");
    }

    #[test]
    fn the_internet_is_not_on_the_lab() {
        let lab_net = u32::from(crate::net::lab::BRIDGE_ADDR) >> (32 - PREFIX_LEN);
        for addr in [WEB_ADDR, DNS_ADDR, EXIT_ADDR] {
            assert_ne!(u32::from(addr) >> (32 - PREFIX_LEN), lab_net, "{addr}");
        }
        assert_eq!(u32::from(ENDPOINT_ADDR) >> (32 - PREFIX_LEN), lab_net);
    }
}
