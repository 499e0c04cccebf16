//! What the guest may send, and verdicts on a capture against it.
//!
//! A [`Policy`] lists the endpoints the guest may talk to, each with its
//! transport ([`Endpoint`]: a Tor relay's ORPort is TCP that opens with a
//! TLS handshake; an obfs4 bridge is any TCP; a VPN endpoint is UDP), the
//! lab's DHCP server and the lab's own MAC addresses. Every flow of an
//! [`Analysis`] falls in one [`Class`]: allowed, one of the tolerated kinds
//! (ARP, DHCP with the lab's server, IPv6 link-local autoconfiguration: as
//! in the Tails suite these are not leaks by themselves for the only-Tor
//! check and are reported separately), sent by the lab rather than the
//! guest (a lab MAC as source), "not Tor" (a TCP connection to a Tor
//! relay that did not open with TLS), or a leak. The guest's own frames
//! are what is judged: a lab that talks to the guest unasked is the lab's
//! doing, and a reply to a leaking query is reported through the query.
//!
//! Each check ([`Policy::only_tor`], [`Policy::no_dns`], [`Policy::no_ipv6`],
//! [`Policy::mac_spoofed`]) returns a [`Verdict`] whose [`Outcome`] is a
//! pass, a fail that lists every offence with what it takes to find it in
//! Wireshark, or inconclusive: a capture with no frame from the guest
//! proves nothing, and never passes. [`Verdict::into_result`] turns
//! anything but a pass into an error so a step cannot report a leak, or
//! an empty capture, as a pass.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::str::FromStr;

use super::analysis::{
    Analysis, Flow, FlowKey, Host, MacAddr, MacSeen, MacSighting, Protocol, Timestamp,
};

/// Errors reading an allow-list.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "{origin}: expected [tor:|tcp:|udp:]IP:PORT (e.g. 10.203.0.1:5001, udp:[fd00::1]:51820), got {value:?}"
    )]
    Endpoint { origin: String, value: String },
    #[error("cannot read allow-list {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// How the guest may talk to an allowed endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// A Tor relay's ORPort: TCP only, and the first payload the guest
    /// sends on each connection must be a TLS handshake record.
    TorTls,
    /// Any TCP (e.g. an obfs4 bridge, whose bytes look random).
    Tcp,
    /// Any UDP (e.g. a WireGuard endpoint).
    Udp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::TorTls => "Tor (TCP with TLS)",
            Transport::Tcp => "TCP",
            Transport::Udp => "UDP",
        })
    }
}

/// An endpoint the guest may talk to, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub transport: Transport,
}

impl Endpoint {
    pub fn tor(addr: SocketAddr) -> Self {
        Endpoint {
            addr,
            transport: Transport::TorTls,
        }
    }
    pub fn tcp(addr: SocketAddr) -> Self {
        Endpoint {
            addr,
            transport: Transport::Tcp,
        }
    }
    pub fn udp(addr: SocketAddr) -> Self {
        Endpoint {
            addr,
            transport: Transport::Udp,
        }
    }
}

/// Whether `transport` carries packets of `protocol`.
fn carries(transport: Transport, protocol: Protocol) -> bool {
    match protocol {
        Protocol::Tcp => matches!(transport, Transport::TorTls | Transport::Tcp),
        Protocol::Udp => transport == Transport::Udp,
        _ => false,
    }
}

/// A bare address is a Tor relay's ORPort.
impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Endpoint::tor(addr)
    }
}

impl FromStr for Endpoint {
    type Err = PolicyError;

    /// `IP:PORT` or `tor:IP:PORT` (a Tor ORPort), `tcp:IP:PORT`,
    /// `udp:IP:PORT`; IPv6 in brackets.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (transport, addr) = match s.split_once(':') {
            Some((p, rest)) if p.eq_ignore_ascii_case("tor") => (Transport::TorTls, rest),
            Some((p, rest)) if p.eq_ignore_ascii_case("tcp") => (Transport::Tcp, rest),
            Some((p, rest)) if p.eq_ignore_ascii_case("udp") => (Transport::Udp, rest),
            _ => (Transport::TorTls, s),
        };
        let addr = addr.parse().map_err(|_| PolicyError::Endpoint {
            origin: "endpoint".into(),
            value: s.into(),
        })?;
        Ok(Endpoint { addr, transport })
    }
}

impl fmt::Display for Endpoint {
    /// The allow-list form: `10.203.0.1:5001`, `tcp:...`, `udp:...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transport {
            Transport::TorTls => write!(f, "{}", self.addr),
            Transport::Tcp => write!(f, "tcp:{}", self.addr),
            Transport::Udp => write!(f, "udp:{}", self.addr),
        }
    }
}

/// What the guest may send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Endpoints the guest may exchange packets with, each with its
    /// transport (one address may be listed with several).
    pub allowed: BTreeSet<Endpoint>,
    /// The lab's DHCP server. `None` tolerates DHCP with any server.
    pub dhcp_server: Option<IpAddr>,
    /// MACs of the lab's side of the link (the bridge, lab hosts). Others
    /// are taken as the guest's. MACs that send from the DHCP server's or an
    /// allowed endpoint's address are counted as the lab's without listing.
    pub lab_macs: BTreeSet<MacAddr>,
    /// Endpoints allowed only during a [`Window`]: a flow to one is allowed
    /// when all its packets fall inside it. A person who tried to connect
    /// to Tor directly and then chose bridges: the relays from their
    /// choice until the switch, never before nor after. Each over its
    /// transport, like [`Policy::allowed`].
    pub allowed_during: BTreeMap<Endpoint, Window>,
}

/// A stretch of a capture's own clock (its frames' timestamps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    /// Only frames later than this (`None`: from the capture's start).
    pub after: Option<Timestamp>,
    /// Only frames no later than this (`None`: to its end).
    pub until: Option<Timestamp>,
}

impl Window {
    /// Whether every packet of `flow` falls inside.
    pub fn holds(&self, flow: &Flow) -> bool {
        self.after.is_none_or(|a| flow.first > a) && self.until.is_none_or(|u| flow.last <= u)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.after {
            Some(a) => write!(f, "after {a}")?,
            None => f.write_str("from the capture's start")?,
        }
        match self.until {
            Some(u) => write!(f, " until {u}"),
            None => f.write_str(" on"),
        }
    }
}

/// How a policy sees one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// To or from an allowed endpoint, over its transport.
    Allowed,
    Arp,
    /// DHCP between the guest and the lab's server.
    Dhcp,
    /// Router/neighbour solicitation, neighbour advertisement or MLD from
    /// `::` or a link-local address to a link-local or link-scope multicast
    /// address: what an IPv6 stack does by itself when a link comes up.
    /// Tolerated by the only-Tor check; the no-IPv6 check is stricter.
    Ipv6Autoconf,
    /// TCP to a Tor relay on connections opened before the capture began:
    /// how they opened was not seen.
    OpenedBeforeCapture,
    /// Sent by the lab's side of the link (a lab MAC), not by the guest:
    /// e.g. the bridge's router advertisements, or a server's answer to a
    /// query that is itself reported.
    FromLab,
    /// TCP to a Tor relay's ORPort whose first payload from the guest was
    /// not a TLS handshake: whatever it is, it is not Tor.
    NotTor,
    Leak,
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Allowed => "allowed",
            Class::Arp => "ARP",
            Class::Dhcp => "DHCP with the lab",
            Class::Ipv6Autoconf => "IPv6 link-local autoconfiguration",
            Class::OpenedBeforeCapture => {
                "to a Tor relay on connections opened before the capture (TLS handshake not seen)"
            }
            Class::FromLab => "sent by the lab",
            Class::NotTor => "not Tor (no TLS handshake)",
            Class::Leak => "leak",
        })
    }
}

/// Which check a verdict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Everything not tolerated goes to an allowed endpoint, over its
    /// transport.
    OnlyTor,
    /// No DNS (or mDNS, LLMNR) except to an allowed endpoint.
    NoDns,
    /// No IPv6 frame at all from the guest.
    NoIpv6,
    /// The NIC's configured MAC appears nowhere in what the guest sent,
    /// and the guest sent from exactly one MAC.
    MacSpoofed { nic_mac: MacAddr },
}

impl Check {
    /// A short name for file names: `only-tor`, `no-dns`, ...
    pub fn slug(&self) -> &'static str {
        match self {
            Check::OnlyTor => "only-tor",
            Check::NoDns => "no-dns",
            Check::NoIpv6 => "no-ipv6",
            Check::MacSpoofed { .. } => "mac-spoofed",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Check::OnlyTor => f.write_str("only Tor"),
            Check::NoDns => f.write_str("no DNS outside Tor"),
            Check::NoIpv6 => f.write_str("no IPv6"),
            Check::MacSpoofed { nic_mac } => {
                write!(f, "MAC spoofed (NIC's configured MAC {nic_mac})")
            }
        }
    }
}

/// One thing a check objects to.
#[derive(Debug, Clone, PartialEq)]
pub enum Offence {
    /// A flow the check does not allow. `offset` is seconds since the
    /// capture's first packet; `class` how the policy sees it; `why` adds
    /// what makes it an offence when the flow alone does not say.
    Flow {
        flow: Flow,
        offset: f64,
        class: Class,
        why: Option<String>,
    },
    /// The NIC's configured MAC in something the guest sent.
    RealMac { sighting: MacSighting, offset: f64 },
    /// The guest sent from the NIC's configured MAC (found from source
    /// addresses alone, when the frames' contents were not searched).
    UnspoofedMac { seen: MacSeen, offset: f64 },
    /// The guest sent from more than one MAC; this is one of them.
    MacChanged { seen: MacSeen, offset: f64 },
}

impl fmt::Display for Offence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Offence::Flow {
                flow,
                offset,
                class,
                why,
            } => {
                write!(
                    f,
                    "{}  first {} (+{offset:.3}s, frame {}), {} packets, {} bytes",
                    flow.key, flow.first, flow.first_frame, flow.packets, flow.bytes
                )?;
                if flow.fragments > 0 {
                    write!(f, " ({} IP fragments)", flow.fragments)?;
                }
                if !flow.dns_names.is_empty() {
                    write!(f, ", DNS names: {}", flow.dns_names.join(", "))?;
                }
                if *class == Class::NotTor {
                    write!(f, ", {class}")?;
                    if let Some(first) = &flow.tcp.first_not_tls {
                        write!(
                            f,
                            ": {} of {} connection(s) opened with something else, the first in {first}",
                            flow.tcp.not_tls,
                            flow.tcp.not_tls + flow.tcp.tls
                        )?;
                    }
                }
                if let Some(why) = why {
                    write!(f, " ({why})")?;
                }
                Ok(())
            }
            Offence::RealMac { sighting: s, offset } => {
                write!(
                    f,
                    "the NIC's configured MAC {} in the {} of {} frame(s) from {}, first frame {} at {} (+{offset:.3}s), byte {} of the frame, in {}",
                    s.mac,
                    s.place,
                    s.frames,
                    s.sender.map_or("an unknown sender".into(), |m| m.to_string()),
                    s.first_frame,
                    s.first,
                    s.first_offset,
                    s.flow
                )
            }
            Offence::UnspoofedMac { seen, offset } => write!(
                f,
                "the guest sent {} frames from the NIC's configured MAC {}, first {} (+{offset:.3}s)",
                seen.frames, seen.mac, seen.first
            ),
            Offence::MacChanged { seen, offset } => write!(
                f,
                "source MAC {} sent {} frames, first {} (+{offset:.3}s), last {}",
                seen.mac, seen.frames, seen.first, seen.last
            ),
        }
    }
}

/// Flows and packets of one tolerated class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerated {
    pub class: Class,
    pub flows: usize,
    pub packets: u64,
}

/// What a check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// At least one offence.
    Fail,
    /// No offence, but the capture could not prove anything; the reason.
    /// Not a pass.
    Inconclusive(String),
}

/// The outcome of one check on one capture.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub check: Check,
    /// The capture's path (or "<memory>").
    pub capture: String,
    pub packets: u64,
    pub flows: usize,
    pub offences: Vec<Offence>,
    /// Why the capture cannot prove this check, if it cannot.
    pub inconclusive: Option<String>,
    /// What was seen and is not a leak by itself, reported apart.
    pub tolerated: Vec<Tolerated>,
    /// Other things worth knowing that change nothing.
    pub notes: Vec<String>,
    /// A live capture's last record was still being written at this byte;
    /// the capture was judged up to there.
    pub truncated_at: Option<u64>,
}

impl Verdict {
    /// Fail when there is an offence, else inconclusive when the capture
    /// proves nothing, else pass.
    pub fn outcome(&self) -> Outcome {
        match (&self.offences[..], &self.inconclusive) {
            ([_, ..], _) => Outcome::Fail,
            ([], Some(why)) => Outcome::Inconclusive(why.clone()),
            ([], None) => Outcome::Pass,
        }
    }

    /// True only for [`Outcome::Pass`].
    pub fn passed(&self) -> bool {
        self.outcome() == Outcome::Pass
    }

    /// `Ok(self)` when the check passed, else the verdict as an error
    /// (a fail or an inconclusive verdict).
    pub fn into_result(self) -> Result<Verdict, LeakError> {
        if self.passed() {
            Ok(self)
        } else {
            Err(LeakError(Box::new(self)))
        }
    }

    fn new(check: Check, analysis: &Analysis) -> Self {
        Verdict {
            check,
            capture: analysis.source.clone(),
            packets: analysis.packets,
            flows: analysis.flows.len(),
            offences: Vec::new(),
            inconclusive: None,
            tolerated: Vec::new(),
            notes: Vec::new(),
            truncated_at: analysis.truncated_at,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let totals = format!(
            "{} packets in {} flows; capture {}",
            self.packets, self.flows, self.capture
        );
        match self.outcome() {
            Outcome::Pass => writeln!(f, "{}: PASS ({totals})", self.check)?,
            Outcome::Inconclusive(why) => {
                writeln!(f, "{}: INCONCLUSIVE, {why} ({totals})", self.check)?
            }
            Outcome::Fail => {
                writeln!(
                    f,
                    "{}: FAIL, {} offence(s) ({totals})",
                    self.check,
                    self.offences.len(),
                )?;
                for o in &self.offences {
                    writeln!(f, "  {o}")?;
                }
                if let Some(why) = &self.inconclusive {
                    writeln!(f, "  and: {why}")?;
                }
            }
        }
        if !self.tolerated.is_empty() {
            let parts: Vec<String> = self
                .tolerated
                .iter()
                .map(|t| format!("{}: {} packets in {} flows", t.class, t.packets, t.flows))
                .collect();
            writeln!(f, "  not leaks by themselves: {}", parts.join("; "))?;
        }
        for note in &self.notes {
            writeln!(f, "  note: {note}")?;
        }
        if let Some(at) = self.truncated_at {
            writeln!(
                f,
                "  note: live capture: its last record, at byte {at}, was still being written; it was judged up to there"
            )?;
        }
        Ok(())
    }
}

/// A check that did not pass (a leak, or nothing to judge by); displays
/// the whole verdict.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct LeakError(pub Box<Verdict>);

impl Policy {
    /// A policy allowing the Tor relays' ORPorts `relays` (TCP that opens
    /// with TLS), with the lab's DHCP server.
    pub fn new(relays: impl IntoIterator<Item = SocketAddr>, dhcp_server: Option<IpAddr>) -> Self {
        Self::with_endpoints(relays.into_iter().map(Endpoint::tor), dhcp_server)
    }

    /// A policy allowing `allowed`, each over its own transport, with the
    /// lab's DHCP server.
    pub fn with_endpoints(
        allowed: impl IntoIterator<Item = Endpoint>,
        dhcp_server: Option<IpAddr>,
    ) -> Self {
        Policy {
            allowed: allowed.into_iter().collect(),
            dhcp_server,
            lab_macs: BTreeSet::new(),
            allowed_during: BTreeMap::new(),
        }
    }

    /// Parse an allow-list: one endpoint per line, `IP:PORT` (a Tor relay's
    /// ORPort: TCP that opens with TLS), `tcp:IP:PORT` (any TCP),
    /// `udp:IP:PORT` (any UDP), `tor:IP:PORT` (same as bare); IPv6 in
    /// brackets. Blank lines and `#` comments are skipped. `origin` names
    /// the source in errors.
    pub fn parse_allow_list(text: &str, origin: &str) -> Result<Vec<Endpoint>, PolicyError> {
        text.lines()
            .enumerate()
            .map(|(n, line)| (n, line.split('#').next().unwrap_or("").trim()))
            .filter(|(_, line)| !line.is_empty())
            .map(|(n, line)| {
                line.parse().map_err(|_| PolicyError::Endpoint {
                    origin: format!("{origin} line {}", n + 1),
                    value: line.into(),
                })
            })
            .collect()
    }

    /// Read an allow-list file (see [`Policy::parse_allow_list`]).
    pub fn read_allow_file(path: &Path) -> Result<Vec<Endpoint>, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_allow_list(&text, &path.display().to_string())
    }

    /// The transports `host:port` is allowed with.
    fn transports(&self, host: &Host, port: Option<u16>) -> impl Iterator<Item = Transport> + '_ {
        let addr = match (host, port) {
            (Host::Ip(ip), Some(port)) => Some(SocketAddr::new(*ip, port)),
            _ => None,
        };
        self.allowed
            .iter()
            .filter(move |e| Some(e.addr) == addr)
            .map(|e| e.transport)
    }

    /// The transports `host:port` is allowed with during a window that
    /// holds `flow` ([`Policy::allowed_during`]).
    fn transports_during<'a>(
        &'a self,
        host: &Host,
        port: Option<u16>,
        flow: &'a Flow,
    ) -> impl Iterator<Item = Transport> + 'a {
        let addr = match (host, port) {
            (Host::Ip(ip), Some(port)) => Some(SocketAddr::new(*ip, port)),
            _ => None,
        };
        self.allowed_during
            .iter()
            .filter(move |(e, window)| Some(e.addr) == addr && window.holds(flow))
            .map(|(e, _)| e.transport)
    }

    fn allows(&self, host: &Host, port: Option<u16>, protocol: Protocol) -> bool {
        self.transports(host, port).any(|t| carries(t, protocol))
    }

    /// The class of a flow from its key alone: transports are checked,
    /// how TCP connections began is not (see [`Policy::flow_class`]).
    pub fn classify(&self, key: &FlowKey) -> Class {
        if key.protocol == Protocol::Arp {
            return Class::Arp;
        }
        if self.allows(&key.dst, key.dst_port, key.protocol)
            || self.allows(&key.src, key.src_port, key.protocol)
        {
            return Class::Allowed;
        }
        if self.is_dhcp(key) {
            return Class::Dhcp;
        }
        if is_ipv6_autoconf(key) {
            return Class::Ipv6Autoconf;
        }
        Class::Leak
    }

    /// The class of a flow: [`Policy::classify`], then TCP to a Tor relay
    /// must have opened with TLS, and what a lab MAC (in `lab`, see
    /// [`Policy::lab_mac_set`]) sent is the lab's.
    /// An endpoint allowed during a window ([`Policy::allowed_during`])
    /// counts as allowed for a flow that falls inside it.
    pub fn flow_class(&self, flow: &Flow, lab: &BTreeSet<MacAddr>) -> Class {
        let key = &flow.key;
        let mut class = self.classify(key);
        let then: Vec<Transport> = self
            .transports_during(&key.dst, key.dst_port, flow)
            .chain(self.transports_during(&key.src, key.src_port, flow))
            .collect();
        if class == Class::Leak && then.iter().any(|t| carries(*t, key.protocol)) {
            class = Class::Allowed;
        }
        if class == Class::Allowed && key.protocol == Protocol::Tcp {
            let to: Vec<Transport> = self
                .transports(&key.dst, key.dst_port)
                .chain(self.transports_during(&key.dst, key.dst_port, flow))
                .collect();
            if to.contains(&Transport::TorTls) && !to.contains(&Transport::Tcp) {
                if flow.tcp.not_tls > 0 {
                    class = Class::NotTor;
                } else if flow.tcp.tls == 0 && flow.tcp.opened_before_capture {
                    class = Class::OpenedBeforeCapture;
                }
            }
        }
        if matches!(class, Class::Leak | Class::Ipv6Autoconf | Class::NotTor)
            && flow.src_mac.is_some_and(|m| lab.contains(&m))
        {
            class = Class::FromLab;
        }
        class
    }

    /// Why a leak to an allowed address is one: the transport.
    fn why(&self, flow: &Flow, class: Class) -> Option<String> {
        if class != Class::Leak {
            return None;
        }
        let key = &flow.key;
        let dst = match (&key.dst, key.dst_port) {
            (Host::Ip(ip), Some(port)) => Some(SocketAddr::new(*ip, port)),
            _ => None,
        };
        if let Some((_, window)) = self
            .allowed_during
            .iter()
            .find(|(e, _)| Some(e.addr) == dst)
        {
            return Some(format!(
                "{}:{} was allowed only {window}; this flow ran from {} to {}",
                key.dst,
                key.dst_port.unwrap_or(0),
                flow.first,
                flow.last
            ));
        }
        let to: Vec<String> = self
            .transports(&key.dst, key.dst_port)
            .map(|t| t.to_string())
            .collect();
        (!to.is_empty()).then(|| {
            format!(
                "{}:{} is allowed for {} only",
                key.dst,
                key.dst_port.unwrap_or(0),
                to.join(", ")
            )
        })
    }

    fn is_dhcp(&self, key: &FlowKey) -> bool {
        if key.protocol != Protocol::Udp {
            return false;
        }
        let broadcast = Host::Ip(IpAddr::V4(Ipv4Addr::BROADCAST));
        let server_side = match (key.src_port, key.dst_port) {
            (Some(68), Some(67)) => key.dst,
            (Some(67), Some(68)) => key.src,
            _ => return false,
        };
        if !matches!(server_side, Host::Ip(IpAddr::V4(_))) {
            return false;
        }
        match self.dhcp_server {
            None => true,
            Some(server) => server_side == Host::Ip(server) || server_side == broadcast,
        }
    }

    /// Frames the guest sent: those from a MAC that is not the lab's, and
    /// those without a link-layer source (nobody can say they are the
    /// lab's).
    pub fn guest_frames(&self, analysis: &Analysis) -> u64 {
        let lab = self.lab_mac_set(analysis);
        analysis
            .macs
            .iter()
            .filter(|m| !lab.contains(&m.mac))
            .map(|m| m.frames)
            .sum::<u64>()
            + analysis.frames_without_mac
    }

    /// Why nothing can be judged, when the guest sent nothing.
    fn nothing_from_guest(&self, analysis: &Analysis) -> Option<String> {
        if analysis.packets == 0 {
            return Some("the capture holds no frame at all: nothing to judge".into());
        }
        (self.guest_frames(analysis) == 0).then(|| {
            let lab: Vec<String> = analysis.macs.iter().map(|m| m.mac.to_string()).collect();
            format!(
                "no frame came from the guest (every source MAC is the lab's: {}): nothing to judge",
                lab.join(", ")
            )
        })
    }

    /// How many of the guest's flows went to an allowed endpoint (over its
    /// transport, opened with TLS for a Tor relay, or opened before the
    /// capture) and carried payload: whether the guest used Tor (or its
    /// bridge, or VPN) at all while the capture ran.
    pub fn allowed_guest_flows(&self, analysis: &Analysis) -> usize {
        let lab = self.lab_mac_set(analysis);
        analysis
            .flows
            .iter()
            .filter(|f| {
                f.payload > 0
                    && !f.src_mac.is_some_and(|m| lab.contains(&m))
                    && self.allows(&f.key.dst, f.key.dst_port, f.key.protocol)
                    && matches!(
                        self.flow_class(f, &lab),
                        Class::Allowed | Class::OpenedBeforeCapture
                    )
            })
            .count()
    }

    fn verdict(
        &self,
        check: Check,
        analysis: &Analysis,
        offends: impl Fn(&Flow, Class, bool) -> bool,
    ) -> Verdict {
        let mut v = Verdict::new(check, analysis);
        v.inconclusive = self.nothing_from_guest(analysis);
        let lab = self.lab_mac_set(analysis);
        for flow in &analysis.flows {
            let from_lab = flow.src_mac.is_some_and(|m| lab.contains(&m));
            let class = self.flow_class(flow, &lab);
            if offends(flow, class, from_lab) {
                v.offences.push(Offence::Flow {
                    flow: flow.clone(),
                    offset: analysis.offset(flow.first),
                    class,
                    why: self.why(flow, class),
                });
            } else if matches!(
                class,
                Class::Arp
                    | Class::Dhcp
                    | Class::Ipv6Autoconf
                    | Class::OpenedBeforeCapture
                    | Class::FromLab
            ) {
                match v.tolerated.iter_mut().find(|t| t.class == class) {
                    Some(t) => {
                        t.flows += 1;
                        t.packets += flow.packets;
                    }
                    None => v.tolerated.push(Tolerated {
                        class,
                        flows: 1,
                        packets: flow.packets,
                    }),
                }
            }
        }
        v.tolerated.sort_by_key(|t| t.class);
        v
    }

    /// Every flow that is neither allowed nor tolerated is a leak; so is
    /// TCP to a Tor relay that did not open with TLS.
    pub fn only_tor(&self, analysis: &Analysis) -> Verdict {
        self.verdict(Check::OnlyTor, analysis, |_, class, _| {
            matches!(class, Class::Leak | Class::NotTor)
        })
    }

    /// DNS, mDNS or LLMNR (by port, or by a parsed DNS question) anywhere but
    /// to an allowed endpoint; the offences carry the query names.
    pub fn no_dns(&self, analysis: &Analysis) -> Verdict {
        self.verdict(Check::NoDns, analysis, |flow, class, _| {
            !matches!(
                class,
                Class::Allowed | Class::OpenedBeforeCapture | Class::FromLab
            ) && (flow.key.is_dns_port() || !flow.dns_names.is_empty())
        })
    }

    /// Any IPv6 frame the guest sent: autoconfiguration (router and
    /// neighbour solicitations, MLD, duplicate address detection) and
    /// allowed endpoints included. What the lab sent is not the guest's.
    pub fn no_ipv6(&self, analysis: &Analysis) -> Verdict {
        self.verdict(Check::NoIpv6, analysis, |flow, _, from_lab| {
            flow.key.is_ipv6() && !from_lab
        })
    }

    /// The lab's MACs in this capture: listed ones, and those that sent
    /// from the DHCP server's or an allowed endpoint's address.
    pub fn lab_mac_set(&self, analysis: &Analysis) -> BTreeSet<MacAddr> {
        let mut set = self.lab_macs.clone();
        set.extend(
            analysis
                .macs
                .iter()
                .filter(|m| self.is_lab_mac(m))
                .map(|m| m.mac),
        );
        set
    }

    /// Whether a source MAC belongs to the lab's side of the link.
    pub fn is_lab_mac(&self, seen: &MacSeen) -> bool {
        self.lab_macs.contains(&seen.mac)
            || seen.ips.iter().any(|ip| {
                Some(*ip) == self.dhcp_server || self.allowed.iter().any(|a| a.addr.ip() == *ip)
            })
    }

    /// The NIC's configured MAC appears nowhere in what the guest sent
    /// (Ethernet source, ARP, DHCP `chaddr` and client identifier, EUI-64
    /// IPv6 addresses, raw bytes: see [`super::analysis::Place`]), and the
    /// guest sent from exactly one MAC. Finding the MAC inside frames needs
    /// an analysis that watched it ([`super::analysis::Options::watch_macs`]);
    /// without that the check can only fail on source addresses, never pass.
    pub fn mac_spoofed(&self, analysis: &Analysis, nic_mac: MacAddr) -> Verdict {
        let mut v = Verdict::new(Check::MacSpoofed { nic_mac }, analysis);
        let lab = self.lab_mac_set(analysis);
        let guest: Vec<&MacSeen> = analysis
            .macs
            .iter()
            .filter(|m| !lab.contains(&m.mac))
            .collect();
        v.inconclusive = self.nothing_from_guest(analysis);
        if v.inconclusive.is_none() && guest.is_empty() {
            v.inconclusive = Some(
                "no frame from the guest has a link-layer source address (a raw IP capture?): its MAC cannot be judged"
                    .into(),
            );
        }
        if analysis.watched(nic_mac) {
            for s in analysis.sightings.iter().filter(|s| s.mac == nic_mac) {
                if s.sender.is_some_and(|m| lab.contains(&m)) {
                    v.notes.push(format!(
                        "the lab sent {nic_mac} in the {} of {} frame(s) (e.g. to the guest): not the guest's doing",
                        s.place, s.frames
                    ));
                } else {
                    v.offences.push(Offence::RealMac {
                        sighting: s.clone(),
                        offset: analysis.offset(s.first),
                    });
                }
            }
        } else {
            for seen in guest.iter().filter(|m| m.mac == nic_mac) {
                v.offences.push(Offence::UnspoofedMac {
                    seen: (*seen).clone(),
                    offset: analysis.offset(seen.first),
                });
            }
            v.inconclusive.get_or_insert_with(|| {
                format!(
                    "the frames' contents were not searched for {nic_mac} (analyse with Options::watch_macs): only source addresses were checked"
                )
            });
        }
        if guest.len() > 1 {
            for seen in &guest {
                v.offences.push(Offence::MacChanged {
                    seen: (*seen).clone(),
                    offset: analysis.offset(seen.first),
                });
            }
        }
        v
    }

    /// Every check: only-Tor, no DNS, no IPv6, and the MAC check when the
    /// NIC's configured MAC is known.
    pub fn all(&self, analysis: &Analysis, nic_mac: Option<MacAddr>) -> Vec<Verdict> {
        let mut v = vec![
            self.only_tor(analysis),
            self.no_dns(analysis),
            self.no_ipv6(analysis),
        ];
        if let Some(mac) = nic_mac {
            v.push(self.mac_spoofed(analysis, mac));
        }
        v
    }
}

/// `[tor:|tcp:|udp:]IP:PORT`, with IPv6 in brackets (see [`Endpoint`]).
pub fn parse_endpoint(s: &str) -> Result<Endpoint, PolicyError> {
    s.parse()
}

fn is_ipv6_autoconf(key: &FlowKey) -> bool {
    // 130-132, 143: MLD query/report/done, MLDv2 report; 133: router
    // solicitation; 135/136: neighbour solicitation/advertisement (DAD).
    let Protocol::Icmpv6 {
        kind: Some(130..=133 | 135 | 136 | 143),
    } = key.protocol
    else {
        return false;
    };
    let (Host::Ip(IpAddr::V6(src)), Host::Ip(IpAddr::V6(dst))) = (key.src, key.dst) else {
        return false;
    };
    let link_local = |a: &std::net::Ipv6Addr| a.segments()[0] & 0xffc0 == 0xfe80;
    let link_scope_multicast = |a: &std::net::Ipv6Addr| a.segments()[0] == 0xff02;
    (src.is_unspecified() || link_local(&src)) && (link_local(&dst) || link_scope_multicast(&dst))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::analysis::{
        analyse_bytes, analyse_bytes_with, Format, Options, Place, Timestamp,
    };
    use crate::net::synth::{self, capture, Station};
    use std::net::Ipv6Addr;

    const GUEST: &str = "10.203.0.57";
    const LAB: &str = "10.203.0.1";

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn nic() -> MacAddr {
        mac("52:54:00:12:34:56")
    }
    fn guest() -> Station {
        Station::new(mac("02:00:00:aa:bb:cc"), mac("02:00:00:00:00:01"))
    }
    fn bridge() -> Station {
        Station::new(mac("02:00:00:00:00:01"), mac("02:00:00:aa:bb:cc"))
    }
    fn policy() -> Policy {
        Policy::new(
            [
                "10.203.0.1:5001".parse().unwrap(),
                "10.203.0.1:5002".parse().unwrap(),
            ],
            Some(ip(LAB)),
        )
    }
    fn at(ms: i128) -> Timestamp {
        // 2026-11-25 08:00:00 UTC plus `ms`.
        Timestamp::from_nanos(1_795_593_600_000_000_000 + ms * 1_000_000)
    }

    /// What a well-behaved guest without IPv6 sends in its first seconds
    /// on the lab.
    fn clean() -> Vec<(Timestamp, Vec<u8>)> {
        let g = guest();
        vec![
            (at(2), g.dhcp_discover()),
            (
                at(3),
                g.arp_request(GUEST.parse().unwrap(), LAB.parse().unwrap()),
            ),
            (
                at(4),
                bridge().arp_request(LAB.parse().unwrap(), GUEST.parse().unwrap()),
            ),
            (at(5), g.tcp_syn((ip(GUEST), 40_000), (ip(LAB), 5001))),
            (
                at(6),
                g.tcp(
                    (ip(GUEST), 40_000),
                    (ip(LAB), 5001),
                    &synth::tor_client_hello(),
                ),
            ),
            (
                at(7),
                bridge().tcp((ip(LAB), 5001), (ip(GUEST), 40_000), &[22, 3, 3, 0, 1, 2]),
            ),
            (
                at(8),
                g.tcp((ip(GUEST), 40_000), (ip(LAB), 5001), &[0u8; 514]),
            ),
        ]
    }

    /// A guest whose IPv6 stack configured itself (the Tails way: only-Tor
    /// tolerates it, no-IPv6 does not).
    fn autoconf() -> Vec<(Timestamp, Vec<u8>)> {
        let g = guest();
        let ll = synth::eui64_link_local(g.mac);
        vec![
            (at(0), g.router_solicitation(Ipv6Addr::UNSPECIFIED)),
            (at(1), g.router_solicitation(ll)),
            (
                at(1),
                g.neighbour_solicitation(Ipv6Addr::UNSPECIFIED, ll, None),
            ),
            (at(1), g.mld_report(ll, "ff02::1:ff00:1".parse().unwrap())),
        ]
    }

    fn analyse(frames: &[(Timestamp, Vec<u8>)]) -> Analysis {
        analyse_bytes_with(
            &capture(Format::Pcap, frames),
            &Options {
                live: false,
                watch_macs: vec![nic()],
            },
        )
        .unwrap()
    }

    #[test]
    fn clean_capture_passes_every_check_and_reports_tolerated_kinds() {
        let a = analyse(&clean());
        for v in policy().all(&a, Some(nic())) {
            assert!(v.passed(), "{v}");
            assert_eq!(v.outcome(), Outcome::Pass);
        }
        let v = policy().only_tor(&a);
        let classes: Vec<Class> = v.tolerated.iter().map(|t| t.class).collect();
        assert_eq!(classes, [Class::Arp, Class::Dhcp], "{v}");
        assert_eq!(policy().allowed_guest_flows(&a), 1);
    }

    #[test]
    fn only_tor_tolerates_autoconfiguration_but_no_ipv6_names_every_frame() {
        let mut frames = clean();
        frames.extend(autoconf());
        let a = analyse(&frames);
        let v = policy().only_tor(&a);
        assert!(v.passed(), "{v}");
        assert!(
            v.to_string()
                .contains("IPv6 link-local autoconfiguration: 4 packets in 4 flows"),
            "{v}"
        );
        let v = policy().no_ipv6(&a);
        assert_eq!(v.outcome(), Outcome::Fail);
        assert_eq!(v.offences.len(), 4, "{v}");
        let text = v.to_string();
        for flow in [
            "ICMPv6 type 133 :: -> ff02::2",
            "ICMPv6 type 133 fe80::ff:feaa:bbcc -> ff02::2",
            "ICMPv6 type 135 :: -> ff02::1:ffaa:bbcc",
            "ICMPv6 type 143 fe80::ff:feaa:bbcc -> ff02::16",
        ] {
            assert!(text.contains(flow), "{flow} missing from {text}");
        }
        // IPv6 to an allowed endpoint is IPv6 all the same.
        let relay_v6: SocketAddr = "[fd00::1]:5001".parse().unwrap();
        let frames = [
            clean(),
            vec![(
                at(9),
                guest().tcp_syn((ip("fd00::57"), 40_000), (relay_v6.ip(), 5001)),
            )],
        ]
        .concat();
        let mut p = policy();
        p.allowed.insert(Endpoint::tor(relay_v6));
        let a = analyse(&frames);
        assert!(p.only_tor(&a).passed());
        assert_eq!(p.no_ipv6(&a).offences.len(), 1);
    }

    #[test]
    fn the_labs_ipv6_is_not_the_guests() {
        let mut frames = clean();
        // The bridge's router advertisement to all nodes.
        let ra = {
            let b = etherparse::PacketBuilder::ethernet2(bridge().mac.0, [0x33, 0x33, 0, 0, 0, 1])
                .ipv6(
                    "fe80::1".parse::<Ipv6Addr>().unwrap().octets(),
                    "ff02::1".parse::<Ipv6Addr>().unwrap().octets(),
                    255,
                )
                .icmpv6(etherparse::Icmpv6Type::Unknown {
                    type_u8: 134,
                    code_u8: 0,
                    bytes5to8: [64, 0, 0, 0],
                });
            let mut out = Vec::new();
            b.write(&mut out, &[0; 8]).unwrap();
            out
        };
        frames.push((at(10), ra));
        let mut p = policy();
        p.lab_macs.insert(bridge().mac);
        let v = p.no_ipv6(&analyse(&frames));
        assert!(v.passed(), "{v}");
        assert!(v.tolerated.iter().any(|t| t.class == Class::FromLab), "{v}");
    }

    #[test]
    fn only_tor_lists_a_direct_connection_with_its_details() {
        let mut frames = clean();
        frames.push((
            at(1500),
            guest().tcp_syn((ip(GUEST), 41_000), (ip("10.203.0.2"), 80)),
        ));
        frames.push((
            at(1600),
            guest().tcp_syn((ip(GUEST), 41_000), (ip("10.203.0.2"), 80)),
        ));
        let a = analyse(&frames);
        let v = policy().only_tor(&a);
        assert_eq!(v.outcome(), Outcome::Fail);
        assert_eq!(v.offences.len(), 1, "{v}");
        let Offence::Flow {
            flow,
            offset,
            class,
            ..
        } = &v.offences[0]
        else {
            panic!("not a flow: {v}")
        };
        assert_eq!(*class, Class::Leak);
        assert_eq!(flow.key.dst, Host::Ip(ip("10.203.0.2")));
        assert_eq!(flow.key.dst_port, Some(80));
        assert_eq!(flow.packets, 2);
        assert!((offset - 1.498).abs() < 1e-9, "{offset}");
        let text = v.to_string();
        assert!(
            text.contains("TCP 10.203.0.57:41000 -> 10.203.0.2:80"),
            "{text}"
        );
        assert!(
            text.contains("2026-11-25 08:00:01.500000 UTC (+1.498s, frame 8), 2 packets"),
            "{text}"
        );
        assert!(v.clone().into_result().is_err());
    }

    #[test]
    fn tor_relays_are_tcp_that_opens_with_tls() {
        let g = guest();
        let (me, relay) = ((ip(GUEST), 40_100), (ip(LAB), 5001));
        // UDP to a relay's ORPort is a leak, and says why.
        let udp = [
            clean(),
            vec![(at(20), g.udp((ip(GUEST), 40_000), relay, b"wg"))],
        ]
        .concat();
        let v = policy().only_tor(&analyse(&udp));
        assert_eq!(v.offences.len(), 1, "{v}");
        assert!(
            v.to_string()
                .contains("10.203.0.1:5001 is allowed for Tor (TCP with TLS) only"),
            "{v}"
        );
        // A TCP connection that opens with anything but TLS is not Tor.
        let http = [
            clean(),
            vec![
                (at(20), g.tcp_syn(me, relay)),
                (at(21), g.tcp(me, relay, b"GET / HTTP/1.1\r\n\r\n")),
            ],
        ]
        .concat();
        let v = policy().only_tor(&analyse(&http));
        assert_eq!(v.offences.len(), 1, "{v}");
        let text = v.to_string();
        assert!(text.contains("not Tor (no TLS handshake)"), "{text}");
        assert!(text.contains("47 45 54 20"), "{text}");
        assert!(matches!(
            &v.offences[0],
            Offence::Flow {
                class: Class::NotTor,
                ..
            }
        ));
        // A lone SYN is fine; so is TLS.
        let syn = [clean(), vec![(at(20), g.tcp_syn(me, relay))]].concat();
        assert!(policy().only_tor(&analyse(&syn)).passed());
        // The same bytes to an obfs4-like bridge (any TCP) pass.
        let mut bridge_policy = policy();
        bridge_policy.allowed = [Endpoint::tcp("10.203.0.1:5001".parse().unwrap())].into();
        assert!(bridge_policy.only_tor(&analyse(&http)).passed());
        // A UDP endpoint allows UDP, not TCP.
        let mut vpn = Policy::with_endpoints(
            [Endpoint::udp("10.203.0.1:51820".parse().unwrap())],
            Some(ip(LAB)),
        );
        let wg = vec![(
            at(0),
            g.udp((ip(GUEST), 40_000), (ip(LAB), 51820), &[1; 148]),
        )];
        assert!(vpn.only_tor(&analyse(&wg)).passed());
        assert_eq!(vpn.allowed_guest_flows(&analyse(&wg)), 1);
        let tcp_to_vpn = vec![(at(0), g.tcp_syn((ip(GUEST), 40_000), (ip(LAB), 51820)))];
        assert!(!vpn.only_tor(&analyse(&tcp_to_vpn)).passed());
        vpn.allowed
            .insert(Endpoint::tcp("10.203.0.1:51820".parse().unwrap()));
        assert!(vpn.only_tor(&analyse(&tcp_to_vpn)).passed());
    }

    #[test]
    fn connections_opened_before_the_capture_are_reported_apart() {
        let g = guest();
        let frames = vec![
            (
                at(0),
                g.tcp((ip(GUEST), 40_000), (ip(LAB), 5001), &[23, 3, 3, 2, 0]),
            ),
            (
                at(1),
                g.tcp((ip(GUEST), 40_000), (ip(LAB), 5001), &[9; 514]),
            ),
        ];
        let a = analyse(&frames);
        let v = policy().only_tor(&a);
        assert!(v.passed(), "{v}");
        assert_eq!(v.tolerated[0].class, Class::OpenedBeforeCapture, "{v}");
        assert_eq!(policy().allowed_guest_flows(&a), 1);
    }

    #[test]
    fn no_dns_names_the_queries() {
        let a = analyse(&clean());
        assert!(policy().no_dns(&a).passed());
        let mut frames = clean();
        frames.push((
            at(2000),
            guest().dns_query(
                (ip(GUEST), 33_333),
                (ip(LAB), 53),
                &["check.torproject.org"],
            ),
        ));
        frames.push((
            at(2100),
            guest().dns_query((ip(GUEST), 33_333), (ip(LAB), 53), &["example.com"]),
        ));
        let v = policy().no_dns(&analyse(&frames));
        assert_eq!(v.offences.len(), 1, "{v}");
        let Offence::Flow { flow, .. } = &v.offences[0] else {
            panic!("{v}")
        };
        assert_eq!(flow.dns_names, ["check.torproject.org", "example.com"]);
        assert!(
            v.to_string()
                .contains("DNS names: check.torproject.org, example.com"),
            "{v}"
        );
        // mDNS counts as DNS: the guest announcing names on the LAN.
        let mut frames = clean();
        frames.push((
            at(3000),
            guest().dns_query(
                (ip(GUEST), 5353),
                (ip("224.0.0.251"), 5353),
                &["tails.local"],
            ),
        ));
        let v = policy().no_dns(&analyse(&frames));
        assert!(v.to_string().contains("tails.local"), "{v}");
    }

    #[test]
    fn a_capture_without_guest_frames_is_inconclusive_for_every_check() {
        let empty = analyse_bytes(&capture(Format::Pcap, &[])).unwrap();
        let lab_only = analyse(&[(
            at(0),
            bridge().arp_request(LAB.parse().unwrap(), GUEST.parse().unwrap()),
        )]);
        for (a, why) in [
            (&empty, "no frame at all"),
            (&lab_only, "no frame came from the guest"),
        ] {
            for v in policy().all(a, Some(nic())) {
                let Outcome::Inconclusive(reason) = v.outcome() else {
                    panic!("{v}")
                };
                assert!(reason.contains(why), "{reason}");
                assert!(!v.passed());
                assert!(v.to_string().contains("INCONCLUSIVE"), "{v}");
                assert!(v.clone().into_result().is_err());
            }
        }
        // A leak still fails when something else is inconclusive.
        let leak = analyse_bytes(&capture(
            Format::Pcap,
            &[(at(0), Station::new(nic(), bridge().mac).dhcp_discover())],
        ))
        .unwrap();
        let v = policy().mac_spoofed(&leak, nic());
        assert_eq!(v.outcome(), Outcome::Fail, "{v}");
        assert!(
            v.to_string()
                .contains("and: the frames' contents were not searched"),
            "{v}"
        );
    }

    #[test]
    fn the_real_mac_is_named_wherever_the_guest_sent_it() {
        let g = guest();
        let mut id = vec![1];
        id.extend_from_slice(&nic().0);
        let cases = [
            (
                g.dhcp_discover_with(nic(), None),
                "DHCP client hardware address (chaddr)",
            ),
            (
                g.dhcp_discover_with(g.mac, Some(&id)),
                "DHCP client identifier (option 61)",
            ),
            (
                g.arp_request_as(nic(), GUEST.parse().unwrap(), LAB.parse().unwrap()),
                "ARP sender hardware address",
            ),
            (
                g.router_solicitation(synth::eui64_link_local(nic())),
                "IPv6 source address (EUI-64 interface identifier)",
            ),
            (
                Station::new(nic(), bridge().mac).tcp((ip(GUEST), 1), (ip(LAB), 5001), b"x"),
                "Ethernet source address",
            ),
        ];
        for (frame, place) in cases {
            let frames = [clean(), vec![(at(50), frame)]].concat();
            let v = policy().mac_spoofed(&analyse(&frames), nic());
            assert_eq!(v.outcome(), Outcome::Fail, "{place}: {v}");
            let text = v.to_string();
            assert!(text.contains(place), "{place}: {text}");
            assert!(text.contains("first frame 8"), "{place}: {text}");
        }
    }

    #[test]
    fn what_the_lab_sends_to_the_real_mac_is_not_the_guests() {
        // The lab answering a guest that never spoofed would be caught by
        // the guest's own frames; here the guest spoofed and the lab (say,
        // from an old lease) still writes to the real MAC.
        let to_real = Station::new(bridge().mac, nic());
        let frames = [
            clean(),
            vec![(
                at(60),
                to_real.tcp((ip(LAB), 5001), (ip(GUEST), 40_000), b"x"),
            )],
        ]
        .concat();
        let v = policy().mac_spoofed(&analyse(&frames), nic());
        assert!(v.passed(), "{v}");
        assert!(
            v.to_string()
                .contains("the lab sent 52:54:00:12:34:56 in the Ethernet destination address"),
            "{v}"
        );
        let sighting = &analyse(&frames).sightings[0];
        assert_eq!(sighting.place, Place::EthernetDestination);
    }

    #[test]
    fn mac_check_fails_when_the_mac_changes() {
        let mut frames = clean();
        let other = Station::new(mac("02:00:00:dd:ee:ff"), mac("02:00:00:00:00:01"));
        frames.push((at(9000), other.dhcp_discover()));
        let v = policy().mac_spoofed(&analyse(&frames), nic());
        assert_eq!(v.offences.len(), 2, "{v}");
        assert!(v
            .offences
            .iter()
            .all(|o| matches!(o, Offence::MacChanged { .. })));
    }

    #[test]
    fn an_unwatched_mac_check_cannot_pass() {
        let a = analyse_bytes(&capture(Format::Pcap, &clean())).unwrap();
        let v = policy().mac_spoofed(&a, nic());
        let Outcome::Inconclusive(why) = v.outcome() else {
            panic!("{v}")
        };
        assert!(why.contains("Options::watch_macs"), "{why}");
    }

    #[test]
    fn what_the_lab_sends_is_reported_apart_not_as_a_leak() {
        let mut frames = clean();
        frames.push((
            at(100),
            bridge().ping(LAB.parse().unwrap(), GUEST.parse().unwrap()),
        ));
        let v = policy().only_tor(&analyse(&frames));
        assert!(v.passed(), "{v}");
        assert!(v.tolerated.iter().any(|t| t.class == Class::FromLab), "{v}");
        frames.push((
            at(200),
            guest().ping(GUEST.parse().unwrap(), LAB.parse().unwrap()),
        ));
        assert!(!policy().only_tor(&analyse(&frames)).passed());
    }

    #[test]
    fn an_endpoint_allowed_during_a_window_is_a_leak_outside_it() {
        let relay = (ip(LAB), 5003);
        let mut frames = clean();
        frames.push((at(100), guest().tcp_syn((ip(GUEST), 42_000), relay)));
        frames.push((at(200), guest().tcp_syn((ip(GUEST), 42_000), relay)));
        let a = analyse(&frames);
        let endpoint = Endpoint::tor(SocketAddr::new(relay.0, relay.1));
        let mut p = policy();
        assert!(!p.only_tor(&a).passed(), "not allowed at all");
        let mut allow = |after: Option<i128>, until: Option<i128>| {
            let window = Window {
                after: after.map(at),
                until: until.map(at),
            };
            p.allowed_during.insert(endpoint, window);
            p.only_tor(&a)
        };
        assert!(
            allow(None, Some(200)).passed(),
            "allowed until its last packet"
        );
        assert!(
            allow(Some(50), None).passed(),
            "allowed from before its first"
        );
        assert!(allow(Some(50), Some(200)).passed(), "inside the window");
        let v = allow(None, Some(150));
        assert_eq!(v.offences.len(), 1, "a packet after the window: {v}");
        assert!(v.to_string().contains("allowed only"), "{v}");
        let v = allow(Some(100), Some(300));
        assert_eq!(v.offences.len(), 1, "a packet at the window's start: {v}");
        let mut udp_only = policy();
        udp_only.allowed_during.insert(
            Endpoint::udp(SocketAddr::new(relay.0, relay.1)),
            Window::default(),
        );
        assert!(
            !udp_only.only_tor(&a).passed(),
            "TCP to a UDP-only endpoint"
        );
    }

    #[test]
    fn dhcp_with_another_server_is_a_leak() {
        let g = guest();
        let frames = vec![(
            at(0),
            g.udp((ip(GUEST), 68), (ip("10.203.0.99"), 67), &[0; 300]),
        )];
        let a = analyse(&frames);
        assert!(!policy().only_tor(&a).passed());
        assert!(Policy::new([], None).only_tor(&a).passed());
    }

    #[test]
    fn allow_list_parses_transports_comments_and_names_a_bad_line() {
        let list = Policy::parse_allow_list(
            "# relays\n10.203.0.1:5001\n\n[fd00::1]:5002  # v6 relay\ntcp:10.203.0.5:443\nUDP:[fd00::9]:51820\ntor:10.203.0.1:5003\n",
            "test",
        )
        .unwrap();
        assert_eq!(
            list,
            [
                Endpoint::tor("10.203.0.1:5001".parse().unwrap()),
                Endpoint::tor("[fd00::1]:5002".parse().unwrap()),
                Endpoint::tcp("10.203.0.5:443".parse().unwrap()),
                Endpoint::udp("[fd00::9]:51820".parse().unwrap()),
                Endpoint::tor("10.203.0.1:5003".parse().unwrap()),
            ]
        );
        assert_eq!(list[3].to_string(), "udp:[fd00::9]:51820");
        for bad in ["10.203.0.1", "sctp:10.203.0.1:5", "udp:fd00::1:5"] {
            let err = Policy::parse_allow_list(&format!("10.203.0.1:5001\n{bad}\n"), "relays.txt")
                .unwrap_err();
            assert!(err.to_string().contains("relays.txt line 2"), "{err}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
