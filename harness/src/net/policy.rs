//! What the guest may send, and verdicts on a capture against it.
//!
//! A [`Policy`] lists the endpoints the guest may talk to (the Tor relays
//! and bridges of the lab's consensus as IP:port), the lab's DHCP server and
//! the lab's own MAC addresses. Every flow of an [`Analysis`] falls in one
//! [`Class`]: allowed, one of the tolerated kinds (ARP, DHCP with the lab's
//! server, IPv6 link-local autoconfiguration: as in the Tails suite these
//! are not leaks by themselves and are reported separately), sent by the
//! lab rather than the guest (a lab MAC as source), or a leak. The guest's
//! own frames are what is judged: a lab that talks to the guest unasked is
//! the lab's doing, and a reply to a leaking query is reported through the
//! query.
//!
//! Each check ([`Policy::only_tor`], [`Policy::no_dns`], [`Policy::no_ipv6`],
//! [`Policy::mac_spoofed`]) returns a [`Verdict`] that lists every offence
//! with what it takes to find it in Wireshark; [`Verdict::into_result`]
//! turns a failed verdict into an error so a step cannot report a leak as a
//! pass.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use super::analysis::{Analysis, Flow, FlowKey, Host, MacAddr, MacSeen, Protocol, Timestamp};

/// Errors reading an allow-list.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{origin}: expected IP:PORT (e.g. 10.203.0.1:5001 or [fd00::1]:5001), got {value:?}")]
    Endpoint { origin: String, value: String },
    #[error("cannot read allow-list {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the guest may send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Endpoints (any transport) the guest may exchange packets with.
    pub allowed: BTreeSet<SocketAddr>,
    /// The lab's DHCP server. `None` tolerates DHCP with any server.
    pub dhcp_server: Option<IpAddr>,
    /// MACs of the lab's side of the link (the bridge, lab hosts). Others
    /// are taken as the guest's. MACs that send from the DHCP server's or an
    /// allowed endpoint's address are counted as the lab's without listing.
    pub lab_macs: BTreeSet<MacAddr>,
    /// Endpoints allowed only until a moment: a flow to one is allowed when
    /// its last packet came no later. A person who tried to connect to Tor
    /// directly and then chose bridges: the relays until the switch, never
    /// after it.
    pub allowed_until: BTreeMap<SocketAddr, Timestamp>,
}

/// How a policy sees one flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// To or from an allowed endpoint.
    Allowed,
    Arp,
    /// DHCP between the guest and the lab's server.
    Dhcp,
    /// Router/neighbour solicitation, neighbour advertisement or MLD from
    /// `::` or a link-local address to a link-local or link-scope multicast
    /// address: what an IPv6 stack does by itself when a link comes up.
    Ipv6Autoconf,
    /// Sent by the lab's side of the link (a lab MAC), not by the guest:
    /// e.g. the bridge's IGMP reports, or a server's answer to a query
    /// that is itself reported.
    FromLab,
    Leak,
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Allowed => "allowed",
            Class::Arp => "ARP",
            Class::Dhcp => "DHCP with the lab",
            Class::Ipv6Autoconf => "IPv6 link-local autoconfiguration",
            Class::FromLab => "sent by the lab",
            Class::Leak => "leak",
        })
    }
}

/// Which check a verdict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Everything not tolerated goes to an allowed endpoint.
    OnlyTor,
    /// No DNS (or mDNS, LLMNR) except to an allowed endpoint.
    NoDns,
    /// No IPv6 except autoconfiguration and allowed endpoints.
    NoIpv6,
    /// The guest's source MAC is not the NIC's configured one, and there
    /// is exactly one.
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
    /// capture's first packet.
    Flow { flow: Flow, offset: f64 },
    /// The guest sent from the NIC's configured MAC.
    UnspoofedMac { seen: MacSeen, offset: f64 },
    /// The guest sent from more than one MAC; this is one of them.
    MacChanged { seen: MacSeen, offset: f64 },
    /// No frame in the capture came from the guest: nothing to judge by.
    NoGuestFrames,
}

impl fmt::Display for Offence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Offence::Flow { flow, offset } => {
                write!(
                    f,
                    "{}  first {} (+{offset:.3}s), {} packets, {} bytes",
                    flow.key, flow.first, flow.packets, flow.bytes
                )?;
                if flow.fragments > 0 {
                    write!(f, " ({} IP fragments)", flow.fragments)?;
                }
                if !flow.dns_names.is_empty() {
                    write!(f, ", DNS names: {}", flow.dns_names.join(", "))?;
                }
                Ok(())
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
            Offence::NoGuestFrames => f.write_str(
                "no frame came from the guest (every source MAC is the lab's): nothing to judge",
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

/// The outcome of one check on one capture.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub check: Check,
    /// The capture's path (or "<memory>").
    pub capture: String,
    pub packets: u64,
    pub flows: usize,
    pub offences: Vec<Offence>,
    /// What was seen and is not a leak by itself, reported apart.
    pub tolerated: Vec<Tolerated>,
    /// The capture ended inside a record at this byte.
    pub truncated_at: Option<u64>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.offences.is_empty()
    }

    /// `Ok(self)` when the check passed, else the verdict as an error.
    pub fn into_result(self) -> Result<Verdict, LeakError> {
        if self.passed() {
            Ok(self)
        } else {
            Err(LeakError(Box::new(self)))
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed() {
            writeln!(
                f,
                "{}: PASS ({} packets in {} flows; capture {})",
                self.check, self.packets, self.flows, self.capture
            )?;
        } else {
            writeln!(
                f,
                "{}: FAIL, {} offence(s) ({} packets in {} flows; capture {})",
                self.check,
                self.offences.len(),
                self.packets,
                self.flows,
                self.capture
            )?;
            for o in &self.offences {
                writeln!(f, "  {o}")?;
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
        if let Some(at) = self.truncated_at {
            writeln!(
                f,
                "  note: the capture ends inside a record at byte {at}; it was judged up to there"
            )?;
        }
        Ok(())
    }
}

/// A check that failed; displays the whole verdict.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct LeakError(pub Box<Verdict>);

impl Policy {
    /// A policy allowing `allowed`, with the lab's DHCP server.
    pub fn new(allowed: impl IntoIterator<Item = SocketAddr>, dhcp_server: Option<IpAddr>) -> Self {
        Policy {
            allowed: allowed.into_iter().collect(),
            dhcp_server,
            lab_macs: BTreeSet::new(),
            allowed_until: BTreeMap::new(),
        }
    }

    /// Parse an allow-list: one IP:PORT per line; blank lines and `#`
    /// comments are skipped. `origin` names the source in errors.
    pub fn parse_allow_list(text: &str, origin: &str) -> Result<Vec<SocketAddr>, PolicyError> {
        text.lines()
            .enumerate()
            .map(|(n, line)| (n, line.split('#').next().unwrap_or("").trim()))
            .filter(|(_, line)| !line.is_empty())
            .map(|(n, line)| {
                parse_endpoint(line).map_err(|_| PolicyError::Endpoint {
                    origin: format!("{origin} line {}", n + 1),
                    value: line.into(),
                })
            })
            .collect()
    }

    /// Read an allow-list file (see [`Policy::parse_allow_list`]).
    pub fn read_allow_file(path: &Path) -> Result<Vec<SocketAddr>, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_allow_list(&text, &path.display().to_string())
    }

    fn allows(&self, host: &Host, port: Option<u16>) -> bool {
        match (host, port) {
            (Host::Ip(ip), Some(port)) => self.allowed.contains(&SocketAddr::new(*ip, port)),
            _ => false,
        }
    }

    /// The class of one flow under this policy.
    pub fn classify(&self, key: &FlowKey) -> Class {
        if key.protocol == Protocol::Arp {
            return Class::Arp;
        }
        if matches!(key.protocol, Protocol::Tcp | Protocol::Udp)
            && (self.allows(&key.dst, key.dst_port) || self.allows(&key.src, key.src_port))
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

    /// [`Policy::classify`], and a flow to an endpoint allowed until a
    /// moment ([`Policy::allowed_until`]) that ended by then is allowed.
    pub fn classify_flow(&self, flow: &Flow) -> Class {
        let class = self.classify(&flow.key);
        if class != Class::Leak || !matches!(flow.key.protocol, Protocol::Tcp | Protocol::Udp) {
            return class;
        }
        let until = |host: &Host, port: Option<u16>| match (host, port) {
            (Host::Ip(ip), Some(port)) => self.allowed_until.get(&SocketAddr::new(*ip, port)),
            _ => None,
        };
        match until(&flow.key.dst, flow.key.dst_port).or(until(&flow.key.src, flow.key.src_port)) {
            Some(deadline) if flow.last <= *deadline => Class::Allowed,
            _ => class,
        }
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

    fn verdict(
        &self,
        check: Check,
        analysis: &Analysis,
        offends: impl Fn(&Flow, Class) -> bool,
    ) -> Verdict {
        let mut offences = Vec::new();
        let mut tolerated: Vec<Tolerated> = Vec::new();
        let lab = self.lab_mac_set(analysis);
        for flow in &analysis.flows {
            // The lab's own frames (its bridge's IPv6 housekeeping, its
            // advertisements) are reported as the lab's, not the guest's.
            let class = match self.classify_flow(flow) {
                Class::Leak | Class::Ipv6Autoconf
                    if flow.src_mac.is_some_and(|m| lab.contains(&m)) =>
                {
                    Class::FromLab
                }
                c => c,
            };
            if offends(flow, class) {
                offences.push(Offence::Flow {
                    flow: flow.clone(),
                    offset: analysis.offset(flow.first),
                });
            } else if matches!(
                class,
                Class::Arp | Class::Dhcp | Class::Ipv6Autoconf | Class::FromLab
            ) {
                match tolerated.iter_mut().find(|t| t.class == class) {
                    Some(t) => {
                        t.flows += 1;
                        t.packets += flow.packets;
                    }
                    None => tolerated.push(Tolerated {
                        class,
                        flows: 1,
                        packets: flow.packets,
                    }),
                }
            }
        }
        tolerated.sort_by_key(|t| t.class);
        Verdict {
            check,
            capture: analysis.source.clone(),
            packets: analysis.packets,
            flows: analysis.flows.len(),
            offences,
            tolerated,
            truncated_at: analysis.truncated_at,
        }
    }

    /// Every flow that is neither allowed nor tolerated is a leak.
    pub fn only_tor(&self, analysis: &Analysis) -> Verdict {
        self.verdict(Check::OnlyTor, analysis, |_, class| class == Class::Leak)
    }

    /// DNS, mDNS or LLMNR (by port, or by a parsed DNS question) anywhere but
    /// to an allowed endpoint; the offences carry the query names.
    pub fn no_dns(&self, analysis: &Analysis) -> Verdict {
        self.verdict(Check::NoDns, analysis, |flow, class| {
            !matches!(class, Class::Allowed | Class::FromLab)
                && (flow.key.is_dns_port() || !flow.dns_names.is_empty())
        })
    }

    /// IPv6 other than link-local autoconfiguration and allowed endpoints.
    pub fn no_ipv6(&self, analysis: &Analysis) -> Verdict {
        self.verdict(Check::NoIpv6, analysis, |flow, class| {
            flow.key.is_ipv6()
                && !matches!(class, Class::Allowed | Class::Ipv6Autoconf | Class::FromLab)
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
                Some(*ip) == self.dhcp_server || self.allowed.iter().any(|a| a.ip() == *ip)
            })
    }

    /// The guest's frames (every source MAC that is not the lab's) come
    /// from one MAC, and it is not `nic_mac`.
    pub fn mac_spoofed(&self, analysis: &Analysis, nic_mac: MacAddr) -> Verdict {
        let guest: Vec<&MacSeen> = analysis
            .macs
            .iter()
            .filter(|m| !self.is_lab_mac(m))
            .collect();
        let mut offences = Vec::new();
        if guest.is_empty() {
            offences.push(Offence::NoGuestFrames);
        }
        for seen in &guest {
            let offset = analysis.offset(seen.first);
            if seen.mac == nic_mac {
                offences.push(Offence::UnspoofedMac {
                    seen: (*seen).clone(),
                    offset,
                });
            } else if guest.len() > 1 {
                offences.push(Offence::MacChanged {
                    seen: (*seen).clone(),
                    offset,
                });
            }
        }
        Verdict {
            check: Check::MacSpoofed { nic_mac },
            capture: analysis.source.clone(),
            packets: analysis.packets,
            flows: analysis.flows.len(),
            offences,
            tolerated: Vec::new(),
            truncated_at: analysis.truncated_at,
        }
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

/// `IP:PORT`, with IPv6 in brackets.
pub fn parse_endpoint(s: &str) -> Result<SocketAddr, PolicyError> {
    s.trim().parse().map_err(|_| PolicyError::Endpoint {
        origin: "endpoint".into(),
        value: s.into(),
    })
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
    use crate::net::analysis::{analyse_bytes, Format, Timestamp};
    use crate::net::synth::{capture, Station};
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

    /// What a well-behaved guest sends in its first seconds on the lab.
    fn clean() -> Vec<(Timestamp, Vec<u8>)> {
        let g = guest();
        let link_local: Ipv6Addr = "fe80::ff:feaa:bbcc".parse().unwrap();
        vec![
            (at(0), g.router_solicitation(Ipv6Addr::UNSPECIFIED)),
            (at(1), g.router_solicitation(link_local)),
            (at(2), g.dhcp_discover()),
            (
                at(3),
                g.arp_request(ip(GUEST).to_string().parse().unwrap(), LAB.parse().unwrap()),
            ),
            (
                at(4),
                bridge().arp_request(LAB.parse().unwrap(), GUEST.parse().unwrap()),
            ),
            (at(5), g.tcp_syn((ip(GUEST), 40_000), (ip(LAB), 5001))),
            (
                at(6),
                bridge().tcp((ip(LAB), 5001), (ip(GUEST), 40_000), b"cell"),
            ),
            (
                at(7),
                g.tcp((ip(GUEST), 40_000), (ip(LAB), 5001), &[0u8; 514]),
            ),
        ]
    }

    fn analyse(frames: &[(Timestamp, Vec<u8>)]) -> Analysis {
        analyse_bytes(&capture(Format::Pcap, frames)).unwrap()
    }

    #[test]
    fn clean_capture_passes_every_check_and_reports_tolerated_kinds() {
        let a = analyse(&clean());
        for v in policy().all(&a, Some(nic())) {
            assert!(v.passed(), "{v}");
        }
        let v = policy().only_tor(&a);
        let classes: Vec<Class> = v.tolerated.iter().map(|t| t.class).collect();
        assert_eq!(
            classes,
            [Class::Arp, Class::Dhcp, Class::Ipv6Autoconf],
            "{v}"
        );
        assert!(
            v.to_string()
                .contains("IPv6 link-local autoconfiguration: 2 packets in 2 flows"),
            "{v}"
        );
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
        assert!(!v.passed());
        assert_eq!(v.offences.len(), 1, "{v}");
        let Offence::Flow { flow, offset } = &v.offences[0] else {
            panic!("not a flow: {v}")
        };
        assert_eq!(flow.key.protocol, Protocol::Tcp);
        assert_eq!(flow.key.src, Host::Ip(ip(GUEST)));
        assert_eq!(flow.key.dst, Host::Ip(ip("10.203.0.2")));
        assert_eq!(flow.key.dst_port, Some(80));
        assert_eq!(flow.packets, 2);
        assert_eq!(flow.first, at(1500));
        assert!((offset - 1.5).abs() < 1e-9, "{offset}");
        let text = v.to_string();
        assert!(
            text.contains("TCP 10.203.0.57:41000 -> 10.203.0.2:80"),
            "{text}"
        );
        assert!(
            text.contains("2026-11-25 08:00:01.500000 UTC (+1.500s), 2 packets"),
            "{text}"
        );
        assert!(v.clone().into_result().is_err());
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
    }

    #[test]
    fn dns_to_an_unusual_port_is_found_by_its_names_only_if_on_a_dns_port() {
        // mDNS counts as DNS: the guest announcing names on the LAN is a leak.
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
    fn no_ipv6_tolerates_autoconfiguration_but_not_a_global_destination() {
        let a = analyse(&clean());
        assert!(policy().no_ipv6(&a).passed());
        let mut frames = clean();
        frames.push((
            at(4000),
            guest().udp((ip("fd00::57"), 50_000), (ip("fd00::1"), 443), b"quic"),
        ));
        // A neighbour solicitation from a global address is not link-local
        // autoconfiguration either.
        let v = policy().no_ipv6(&analyse(&frames));
        assert_eq!(v.offences.len(), 1, "{v}");
        assert!(
            v.to_string()
                .contains("UDP [fd00::57]:50000 -> [fd00::1]:443"),
            "{v}"
        );
    }

    #[test]
    fn mac_check_passes_for_one_spoofed_mac() {
        let v = policy().mac_spoofed(&analyse(&clean()), nic());
        assert!(v.passed(), "{v}");
    }

    #[test]
    fn mac_check_fails_when_the_configured_mac_is_used() {
        let unspoofed = Station::new(nic(), mac("02:00:00:00:00:01"));
        let frames = vec![(at(0), unspoofed.dhcp_discover())];
        let v = policy().mac_spoofed(&analyse(&frames), nic());
        assert!(
            matches!(v.offences[..], [Offence::UnspoofedMac { .. }]),
            "{v}"
        );
        assert!(v.to_string().contains("52:54:00:12:34:56"), "{v}");
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
    fn mac_check_fails_without_guest_frames() {
        let frames = vec![(
            at(0),
            bridge().arp_request(LAB.parse().unwrap(), GUEST.parse().unwrap()),
        )];
        let v = policy().mac_spoofed(&analyse(&frames), nic());
        assert_eq!(v.offences, [Offence::NoGuestFrames]);
    }

    #[test]
    fn what_the_lab_sends_is_reported_apart_not_as_a_leak() {
        let mut frames = clean();
        // The bridge's IGMP-like chatter and a ping to the guest.
        frames.push((
            at(100),
            bridge().ping(LAB.parse().unwrap(), GUEST.parse().unwrap()),
        ));
        let v = policy().only_tor(&analyse(&frames));
        assert!(v.passed(), "{v}");
        assert!(v.tolerated.iter().any(|t| t.class == Class::FromLab), "{v}");
        // The same ping from the guest is a leak.
        frames.push((
            at(200),
            guest().ping(GUEST.parse().unwrap(), LAB.parse().unwrap()),
        ));
        assert!(!policy().only_tor(&analyse(&frames)).passed());
    }

    #[test]
    fn an_endpoint_allowed_until_a_moment_is_a_leak_after_it() {
        let relay = (ip(LAB), 5003);
        let mut frames = clean();
        frames.push((at(100), guest().tcp_syn((ip(GUEST), 42_000), relay)));
        frames.push((at(200), guest().tcp_syn((ip(GUEST), 42_000), relay)));
        let a = analyse(&frames);
        let mut p = policy();
        assert!(!p.only_tor(&a).passed(), "not allowed at all");
        p.allowed_until
            .insert(SocketAddr::new(relay.0, relay.1), at(200));
        assert!(p.only_tor(&a).passed(), "allowed until its last packet");
        p.allowed_until
            .insert(SocketAddr::new(relay.0, relay.1), at(150));
        let v = p.only_tor(&a);
        assert_eq!(v.offences.len(), 1, "a packet after the moment: {v}");
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
    fn allow_list_parses_comments_and_names_a_bad_line() {
        let list = Policy::parse_allow_list(
            "# relays\n10.203.0.1:5001\n\n[fd00::1]:5002  # v6 relay\n",
            "test",
        )
        .unwrap();
        assert_eq!(list.len(), 2);
        let err =
            Policy::parse_allow_list("10.203.0.1:5001\n10.203.0.1\n", "relays.txt").unwrap_err();
        assert!(err.to_string().contains("relays.txt line 2"), "{err}");
        assert!(err.to_string().contains("\"10.203.0.1\""), "{err}");
    }
}
