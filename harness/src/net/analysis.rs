//! What a capture contains: flows, protocols, source MACs and DNS names.
//!
//! This module only describes; deciding what is a leak is [`super::policy`]'s
//! job, so one pass over a capture serves every check.
//!
//! The reader streams (constant memory, a 1 MiB buffer) through
//! `pcap-parser`, which takes pcap (micro- and nanosecond, either byte order)
//! and pcapng (several sections and interfaces). Frames are sliced with
//! `etherparse`'s lax slicer, which keeps what it could decode of a damaged
//! or cut frame instead of rejecting it: a capture is evidence, and a frame
//! we cannot fully decode must still show up (as its own "undecodable" flow)
//! rather than vanish. VLAN tags are looked through. IP fragments after the
//! first carry no ports; they are attributed to the ports of their first
//! fragment when it was seen, else counted with no ports (which no allowed
//! endpoint matches, so they err on the side of a leak).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use etherparse::{LaxNetSlice, LaxSlicedPacket, LinkSlice};
use pcap_parser::pcapng::Block;
use pcap_parser::traits::{PcapNGPacketBlock, PcapReaderIterator};
use pcap_parser::{Linktype, PcapBlockOwned, PcapError};

/// Read buffer; also the largest record accepted without growing.
const BUFFER: usize = 1 << 20;
/// A record larger than this is corruption, not a frame (QEMU's filter-dump
/// cuts frames at 64000 bytes; pcapng blocks with options stay far below).
const MAX_RECORD: usize = 64 << 20;
/// DNS names kept per flow: enough to show what leaked, bounded so a flood
/// of random names cannot exhaust memory.
const MAX_NAMES_PER_FLOW: usize = 64;
/// Source addresses remembered per MAC (to tell the lab's side from the
/// guest's); more would only repeat the point.
const MAX_IPS_PER_MAC: usize = 16;
/// First fragments remembered to give later fragments their ports.
const MAX_FRAGMENT_IDS: usize = 1 << 16;

/// Ports whose payload is parsed as DNS: DNS, multicast DNS, LLMNR.
pub const DNS_PORTS: [u16; 3] = [53, 5353, 5355];

/// Errors reading a capture. A capture that merely ends in the middle of a
/// record is not an error: [`Analysis::truncated_at`] says so.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open capture {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name}: expected a pcap or pcapng capture, found an empty file")]
    Empty { source_name: String },
    #[error("{source_name}: expected a pcap or pcapng header, found neither (not a capture?)")]
    NotACapture { source_name: String },
    #[error("{source_name}: the file ends inside its pcap/pcapng header")]
    TruncatedHeader { source_name: String },
    #[error("{source_name}: corrupt capture at byte {offset}: {detail}")]
    Corrupt {
        source_name: String,
        offset: u64,
        detail: String,
    },
    #[error("{source_name}: read error at byte {offset}")]
    Read { source_name: String, offset: u64 },
    #[error("{source_name}: link type {linktype} is not supported (expected Ethernet, raw IP or Linux cooked capture)")]
    UnsupportedLinktype { source_name: String, linktype: i32 },
}

/// A capture timestamp (UTC, since the Unix epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    pub fn from_nanos(total: i128) -> Self {
        Timestamp {
            secs: total.div_euclid(1_000_000_000) as i64,
            nanos: total.rem_euclid(1_000_000_000) as u32,
        }
    }

    pub fn as_nanos(&self) -> i128 {
        self.secs as i128 * 1_000_000_000 + self.nanos as i128
    }

    /// Seconds from `origin` to `self` (negative when earlier).
    pub fn since(&self, origin: Timestamp) -> f64 {
        (self.as_nanos() - origin.as_nanos()) as f64 / 1e9
    }
}

impl fmt::Display for Timestamp {
    /// `2026-11-25 08:31:22.123456 UTC`: what Wireshark shows as absolute
    /// time, so a line of the verdict can be found in the capture.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match time::OffsetDateTime::from_unix_timestamp(self.secs) {
            Ok(t) => write!(
                f,
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06} UTC",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                self.nanos / 1000
            ),
            // Beyond year 9999: no calendar date, the raw count.
            Err(_) => write!(f, "{}.{:06} s after 1970 UTC", self.secs, self.nanos / 1000),
        }
    }
}

/// An Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// A MAC address that did not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("expected a MAC address like 52:54:00:12:34:56, got {0:?}")]
pub struct MacParseError(pub String);

impl FromStr for MacAddr {
    type Err = MacParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or_else(|| MacParseError(s.into()))?;
            if part.len() != 2 {
                return Err(MacParseError(s.into()));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| MacParseError(s.into()))?;
        }
        if parts.next().is_some() {
            return Err(MacParseError(s.into()));
        }
        Ok(MacAddr(out))
    }
}

/// One end of a flow: an IP address, or a MAC for frames without IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    Ip(IpAddr),
    Mac(MacAddr),
    /// The frame was too damaged to say.
    Unknown,
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Mac(mac) => write!(f, "{mac}"),
            Host::Unknown => f.write_str("?"),
        }
    }
}

/// What a flow carries. ICMP types are part of the key: an MLD report and
/// an echo request are different stories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmpv4 {
        kind: Option<u8>,
    },
    Icmpv6 {
        kind: Option<u8>,
    },
    /// Another IP protocol number.
    Ip(u8),
    Arp,
    /// A non-IP, non-ARP ethertype.
    Ether(u16),
    /// A frame too short or damaged to decode.
    Undecodable,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("TCP"),
            Protocol::Udp => f.write_str("UDP"),
            Protocol::Icmpv4 { kind: Some(k) } => write!(f, "ICMP type {k}"),
            Protocol::Icmpv4 { kind: None } => f.write_str("ICMP"),
            Protocol::Icmpv6 { kind: Some(k) } => write!(f, "ICMPv6 type {k}"),
            Protocol::Icmpv6 { kind: None } => f.write_str("ICMPv6"),
            Protocol::Ip(n) => write!(f, "IP protocol {n}"),
            Protocol::Arp => f.write_str("ARP"),
            Protocol::Ether(t) => write!(f, "ethertype {t:#06x}"),
            Protocol::Undecodable => f.write_str("undecodable frame"),
        }
    }
}

/// Direction-sensitive 5-tuple: a request and its reply are two flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowKey {
    pub protocol: Protocol,
    pub src: Host,
    pub src_port: Option<u16>,
    pub dst: Host,
    pub dst_port: Option<u16>,
}

impl FlowKey {
    pub fn is_ipv6(&self) -> bool {
        matches!(self.src, Host::Ip(IpAddr::V6(_))) || matches!(self.dst, Host::Ip(IpAddr::V6(_)))
    }

    /// Whether either end uses a DNS, mDNS or LLMNR port.
    pub fn is_dns_port(&self) -> bool {
        matches!(self.protocol, Protocol::Tcp | Protocol::Udp)
            && [self.src_port, self.dst_port]
                .iter()
                .flatten()
                .any(|p| DNS_PORTS.contains(p))
    }
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = |host: &Host, port: Option<u16>| match (host, port) {
            (Host::Ip(IpAddr::V6(ip)), Some(p)) => format!("[{ip}]:{p}"),
            (h, Some(p)) => format!("{h}:{p}"),
            (h, None) => h.to_string(),
        };
        write!(
            f,
            "{} {} -> {}",
            self.protocol,
            end(&self.src, self.src_port),
            end(&self.dst, self.dst_port)
        )
    }
}

/// Everything seen on one [`FlowKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub key: FlowKey,
    pub first: Timestamp,
    pub last: Timestamp,
    pub packets: u64,
    /// Bytes on the wire (original frame lengths).
    pub bytes: u64,
    /// IP fragments among the packets.
    pub fragments: u64,
    /// DNS question names seen in this flow, sorted, at most 64.
    pub dns_names: Vec<String>,
    /// Source MAC of the flow's first frame (None without Ethernet).
    pub src_mac: Option<MacAddr>,
}

/// A packet and byte count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// One source MAC address and what it sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacSeen {
    pub mac: MacAddr,
    pub first: Timestamp,
    pub last: Timestamp,
    pub frames: u64,
    /// Source IP addresses (and ARP sender addresses) of its frames.
    pub ips: Vec<IpAddr>,
}

/// Which capture format the file was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
}

/// The description of a whole capture.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Where the capture came from (a path or "<memory>").
    pub source: String,
    pub format: Format,
    pub packets: u64,
    pub bytes: u64,
    pub first: Option<Timestamp>,
    pub last: Option<Timestamp>,
    /// All flows, by time of first packet.
    pub flows: Vec<Flow>,
    /// Per-protocol totals, keyed like "IPv4/TCP".
    pub protocols: BTreeMap<&'static str, Counter>,
    /// Source MACs by time of first frame.
    pub macs: Vec<MacSeen>,
    /// Frames that carried at least one VLAN tag.
    pub vlan_tagged: u64,
    /// Frames cut by the capture's snap length.
    pub snapped: u64,
    /// Byte offset where the file ended inside a record (a capture cut
    /// short, e.g. QEMU killed while writing). Everything before was read.
    pub truncated_at: Option<u64>,
}

/// Analyse a capture file.
pub fn analyse_path(path: &Path) -> Result<Analysis, Error> {
    let file = std::fs::File::open(path).map_err(|source| Error::Open {
        path: path.to_owned(),
        source,
    })?;
    analyse_reader(file, &path.display().to_string())
}

/// Analyse a capture held in memory (tests, the fuzzer).
pub fn analyse_bytes(data: &[u8]) -> Result<Analysis, Error> {
    analyse_reader(data, "<memory>")
}

/// Analyse a capture from any reader; `source_name` is used in errors.
pub fn analyse_reader<R: Read + Send>(reader: R, source_name: &str) -> Result<Analysis, Error> {
    let mut reader = match pcap_parser::create_reader(BUFFER, reader) {
        Ok(r) => r,
        Err(PcapError::Eof) => {
            return Err(Error::Empty {
                source_name: source_name.into(),
            })
        }
        Err(PcapError::Incomplete(_)) => {
            return Err(Error::TruncatedHeader {
                source_name: source_name.into(),
            })
        }
        Err(PcapError::ReadError) => {
            return Err(Error::Read {
                source_name: source_name.into(),
                offset: 0,
            })
        }
        Err(_) => {
            return Err(Error::NotACapture {
                source_name: source_name.into(),
            })
        }
    };
    let mut state = State::new(source_name);
    // pcapng interfaces of the current section: (linktype, units per second,
    // offset in seconds).
    let mut interfaces: Vec<(Linktype, u64, i64)> = Vec::new();
    let mut legacy: Option<(Linktype, bool)> = None;
    let mut capacity = BUFFER;
    loop {
        let corrupt = |offset: usize, detail: String| Error::Corrupt {
            source_name: source_name.into(),
            offset: offset as u64,
            detail,
        };
        let consumed = reader.consumed();
        match reader.next() {
            Ok((len, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        state.format = Format::Pcap;
                        legacy = Some((h.network, h.is_nanosecond_precision()));
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let Some((linktype, nanos)) = legacy else {
                            return Err(corrupt(consumed, "a record before the header".into()));
                        };
                        let frac = if nanos {
                            b.ts_usec as i128
                        } else {
                            b.ts_usec as i128 * 1000
                        };
                        let ts = Timestamp::from_nanos(b.ts_sec as i128 * 1_000_000_000 + frac);
                        state.frame(ts, linktype, b.data, b.origlen)?;
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => {
                        state.format = Format::PcapNg;
                        interfaces.clear();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        // An if_tsresol that makes no sense falls back to the
                        // default microseconds rather than failing the file.
                        let units = idb.ts_resolution().filter(|u| *u > 0).unwrap_or(1_000_000);
                        interfaces.push((idb.linktype, units, idb.ts_offset()));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let Some(&(linktype, units, offset)) = interfaces.get(epb.if_id as usize)
                        else {
                            return Err(corrupt(
                                consumed,
                                format!(
                                    "packet on interface {} but only {} described",
                                    epb.if_id,
                                    interfaces.len()
                                ),
                            ));
                        };
                        let raw = ((epb.ts_high as u64) << 32) | epb.ts_low as u64;
                        let units = units as i128;
                        let nanos = (raw as i128 / units) * 1_000_000_000
                            + (raw as i128 % units) * 1_000_000_000 / units
                            + offset as i128 * 1_000_000_000;
                        let data = epb.packet_data();
                        state.frame(Timestamp::from_nanos(nanos), linktype, data, epb.origlen)?;
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let Some(&(linktype, _, _)) = interfaces.first() else {
                            return Err(corrupt(consumed, "packet before any interface".into()));
                        };
                        // Simple packets have no timestamp.
                        let data = spb.packet_data();
                        state.frame(Timestamp::default(), linktype, data, spb.origlen)?;
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(len);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::UnexpectedEof) => {
                state.truncated_at = Some(consumed as u64);
                break;
            }
            Err(PcapError::Incomplete(_)) => {
                let before = reader.data().len();
                if reader.refill().is_err() {
                    return Err(Error::Read {
                        source_name: source_name.into(),
                        offset: consumed as u64,
                    });
                }
                // A full buffer that still holds an incomplete record can
                // only be fixed by growing; otherwise this would spin.
                if reader.data().len() == before && !reader.reader_exhausted() {
                    capacity = grow(&mut *reader, capacity)
                        .ok_or_else(|| corrupt(consumed, record_too_large()))?;
                }
            }
            Err(PcapError::BufferTooSmall) => {
                capacity = grow(&mut *reader, capacity)
                    .ok_or_else(|| corrupt(consumed, record_too_large()))?;
                if reader.refill().is_err() {
                    return Err(Error::Read {
                        source_name: source_name.into(),
                        offset: consumed as u64,
                    });
                }
            }
            Err(PcapError::ReadError) => {
                return Err(Error::Read {
                    source_name: source_name.into(),
                    offset: consumed as u64,
                })
            }
            Err(e) => return Err(corrupt(consumed, describe_pcap_error(&e))),
        }
    }
    Ok(state.finish())
}

fn record_too_large() -> String {
    format!("a record larger than {} MiB", MAX_RECORD >> 20)
}

fn grow(reader: &mut dyn PcapReaderIterator, capacity: usize) -> Option<usize> {
    let new = capacity * 2;
    (new <= MAX_RECORD && reader.grow(new)).then_some(new)
}

fn describe_pcap_error<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::HeaderNotRecognized => "a block that is not pcap or pcapng".into(),
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => {
            format!("malformed block ({kind:?})")
        }
        _ => "unreadable block".into(),
    }
}

/// Where a frame's transport ports come from when it is a later fragment.
#[derive(Hash, PartialEq, Eq)]
struct FragmentId {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    id: u32,
}

struct State {
    source: String,
    format: Format,
    packets: u64,
    bytes: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    flows: HashMap<FlowKey, Flow>,
    protocols: BTreeMap<&'static str, Counter>,
    macs: HashMap<MacAddr, MacSeen>,
    fragment_ports: HashMap<FragmentId, (u16, u16)>,
    vlan_tagged: u64,
    snapped: u64,
    truncated_at: Option<u64>,
    /// Source MAC of the frame being decoded.
    frame_src_mac: Option<MacAddr>,
}

/// What the IP layer of a frame yields for the flow table.
struct Transport<'a> {
    protocol: Protocol,
    ports: Option<(u16, u16)>,
    /// The application payload, for DNS.
    app: &'a [u8],
}

impl State {
    fn new(source: &str) -> Self {
        State {
            source: source.into(),
            format: Format::Pcap,
            packets: 0,
            bytes: 0,
            first: None,
            last: None,
            flows: HashMap::new(),
            protocols: BTreeMap::new(),
            macs: HashMap::new(),
            fragment_ports: HashMap::new(),
            vlan_tagged: 0,
            snapped: 0,
            truncated_at: None,
            frame_src_mac: None,
        }
    }

    fn frame(
        &mut self,
        ts: Timestamp,
        linktype: Linktype,
        data: &[u8],
        orig_len: u32,
    ) -> Result<(), Error> {
        let wire_len = u64::from(orig_len).max(data.len() as u64);
        self.packets += 1;
        self.bytes += wire_len;
        if (orig_len as usize) > data.len() {
            self.snapped += 1;
        }
        self.first = Some(self.first.map_or(ts, |f| f.min(ts)));
        self.last = Some(self.last.map_or(ts, |l| l.max(ts)));
        let sliced = match linktype {
            Linktype::ETHERNET => LaxSlicedPacket::from_ethernet(data).ok(),
            Linktype::RAW | Linktype::IPV4 | Linktype::IPV6 => LaxSlicedPacket::from_ip(data).ok(),
            Linktype::LINUX_SLL => (data.len() >= 16).then(|| {
                let proto = u16::from_be_bytes([data[14], data[15]]);
                LaxSlicedPacket::from_ether_type(etherparse::EtherType(proto), &data[16..])
            }),
            other => {
                return Err(Error::UnsupportedLinktype {
                    source_name: self.source.clone(),
                    linktype: other.0,
                })
            }
        };
        self.frame_src_mac = None;
        let Some(sliced) = sliced else {
            self.count("undecodable", wire_len);
            self.flow(ts, wire_len, undecodable(), false, &[]);
            return Ok(());
        };
        let (src_mac, dst_mac, ether_type) = match &sliced.link {
            Some(LinkSlice::Ethernet2(e)) => (
                Some(MacAddr(e.source())),
                Some(MacAddr(e.destination())),
                Some(e.ether_type().0),
            ),
            _ => (None, None, None),
        };
        self.frame_src_mac = src_mac;
        if !sliced.link_exts.is_empty() {
            self.vlan_tagged += 1;
        }
        let mut src_ip = None;
        match &sliced.net {
            Some(LaxNetSlice::Arp(arp)) => {
                self.count("ARP", wire_len);
                let spa = arp.sender_protocol_addr();
                let tpa = arp.target_protocol_addr();
                let v4 = |a: &[u8]| {
                    <[u8; 4]>::try_from(a)
                        .ok()
                        .map(|b| Host::Ip(IpAddr::V4(Ipv4Addr::from(b))))
                };
                src_ip = v4(spa).and_then(|h| match h {
                    Host::Ip(ip) => Some(ip),
                    _ => None,
                });
                let key = FlowKey {
                    protocol: Protocol::Arp,
                    src: v4(spa).or(src_mac.map(Host::Mac)).unwrap_or(Host::Unknown),
                    src_port: None,
                    dst: v4(tpa).or(dst_mac.map(Host::Mac)).unwrap_or(Host::Unknown),
                    dst_port: None,
                };
                self.flow(ts, wire_len, key, false, &[]);
            }
            Some(LaxNetSlice::Ipv4(ip)) => {
                let h = ip.header();
                let (src, dst) = (
                    IpAddr::V4(h.source_addr()),
                    IpAddr::V4(h.destination_addr()),
                );
                src_ip = Some(src);
                let payload = ip.payload();
                let offset = h.fragments_offset().value();
                let fragmented = h.more_fragments() || offset != 0;
                let frag = fragmented.then_some((u32::from(h.identification()), offset == 0));
                let t = self.transport(src, dst, payload.ip_number.0, payload.payload, frag, false);
                self.count(label(false, &t.protocol, fragmented), wire_len);
                self.ip_flow(ts, wire_len, src, dst, t, fragmented);
            }
            Some(LaxNetSlice::Ipv6(ip)) => {
                let h = ip.header();
                let (src, dst) = (
                    IpAddr::V6(h.source_addr()),
                    IpAddr::V6(h.destination_addr()),
                );
                src_ip = Some(src);
                let payload = ip.payload();
                // Walked by hand: etherparse's extension iterator trusts
                // lengths that its lax slicer did not check, and panics on
                // a damaged chain (found by the fuzzer).
                let frag = ipv6_fragment(h.next_header().0, ip.extensions().slice());
                let fragmented = frag.is_some();
                let t = self.transport(src, dst, payload.ip_number.0, payload.payload, frag, true);
                self.count(label(true, &t.protocol, fragmented), wire_len);
                self.ip_flow(ts, wire_len, src, dst, t, fragmented);
            }
            None => {
                // Ethernet without a decodable network layer: a non-IP
                // ethertype, or an IP header too damaged to slice.
                let protocol = match (sliced.stop_err.is_some(), ether_type) {
                    (false, Some(t)) => Protocol::Ether(
                        sliced
                            .link_exts
                            .last()
                            .map(|ext| match ext.to_header() {
                                etherparse::LinkExtHeader::Vlan(v) => v.ether_type.0,
                                etherparse::LinkExtHeader::Macsec(_) => t,
                            })
                            .unwrap_or(t),
                    ),
                    _ => Protocol::Undecodable,
                };
                self.count(
                    if protocol == Protocol::Undecodable {
                        "undecodable"
                    } else {
                        "other ethertype"
                    },
                    wire_len,
                );
                let key = FlowKey {
                    protocol,
                    src: src_mac.map(Host::Mac).unwrap_or(Host::Unknown),
                    src_port: None,
                    dst: dst_mac.map(Host::Mac).unwrap_or(Host::Unknown),
                    dst_port: None,
                };
                self.flow(ts, wire_len, key, false, &[]);
            }
        }
        if let Some(mac) = src_mac {
            let seen = self.macs.entry(mac).or_insert_with(|| MacSeen {
                mac,
                first: ts,
                last: ts,
                frames: 0,
                ips: Vec::new(),
            });
            seen.frames += 1;
            seen.first = seen.first.min(ts);
            seen.last = seen.last.max(ts);
            if let Some(ip) = src_ip {
                if seen.ips.len() < MAX_IPS_PER_MAC && !seen.ips.contains(&ip) {
                    seen.ips.push(ip);
                }
            }
        }
        Ok(())
    }

    fn transport<'a>(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        p: &'a [u8],
        fragment: Option<(u32, bool)>,
        v6: bool,
    ) -> Transport<'a> {
        let icmp_kind = p.first().copied();
        let later_fragment = matches!(fragment, Some((_, false)));
        let protocol = match proto {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            1 if !v6 => Protocol::Icmpv4 {
                kind: icmp_kind.filter(|_| !later_fragment),
            },
            58 if v6 => Protocol::Icmpv6 {
                kind: icmp_kind.filter(|_| !later_fragment),
            },
            n => Protocol::Ip(n),
        };
        if !matches!(protocol, Protocol::Tcp | Protocol::Udp) {
            return Transport {
                protocol,
                ports: None,
                app: &[],
            };
        }
        let id = |id| FragmentId {
            src,
            dst,
            proto,
            id,
        };
        match fragment {
            Some((frag_id, false)) => Transport {
                protocol,
                ports: self.fragment_ports.get(&id(frag_id)).copied(),
                app: &[],
            },
            _ if p.len() < 4 => Transport {
                protocol,
                ports: None,
                app: &[],
            },
            _ => {
                let ports = (
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]]),
                );
                if let Some((frag_id, true)) = fragment {
                    if self.fragment_ports.len() >= MAX_FRAGMENT_IDS {
                        self.fragment_ports.clear();
                    }
                    self.fragment_ports.insert(id(frag_id), ports);
                }
                let app = if proto == 17 {
                    p.get(8..).unwrap_or(&[])
                } else {
                    let offset = p.get(12).map_or(0, |b| usize::from(b >> 4) * 4);
                    if offset >= 20 {
                        // DNS over TCP: a two-byte length, then the message.
                        p.get(offset + 2..).unwrap_or(&[])
                    } else {
                        &[]
                    }
                };
                Transport {
                    protocol,
                    ports: Some(ports),
                    app,
                }
            }
        }
    }

    fn ip_flow(
        &mut self,
        ts: Timestamp,
        wire_len: u64,
        src: IpAddr,
        dst: IpAddr,
        t: Transport<'_>,
        fragment: bool,
    ) {
        let key = FlowKey {
            protocol: t.protocol,
            src: Host::Ip(src),
            src_port: t.ports.map(|p| p.0),
            dst: Host::Ip(dst),
            dst_port: t.ports.map(|p| p.1),
        };
        let app = if key.is_dns_port() { t.app } else { &[] };
        self.flow(ts, wire_len, key, fragment, app);
    }

    fn flow(&mut self, ts: Timestamp, wire_len: u64, key: FlowKey, fragment: bool, dns: &[u8]) {
        let src_mac = self.frame_src_mac;
        let flow = self.flows.entry(key).or_insert_with(|| Flow {
            key,
            first: ts,
            last: ts,
            packets: 0,
            bytes: 0,
            fragments: 0,
            dns_names: Vec::new(),
            src_mac,
        });
        flow.packets += 1;
        flow.bytes += wire_len;
        flow.fragments += u64::from(fragment);
        flow.first = flow.first.min(ts);
        flow.last = flow.last.max(ts);
        if !dns.is_empty() {
            if let Ok(packet) = simple_dns::Packet::parse(dns) {
                for q in &packet.questions {
                    let name = q.qname.to_string();
                    if flow.dns_names.len() < MAX_NAMES_PER_FLOW {
                        if let Err(pos) = flow.dns_names.binary_search(&name) {
                            flow.dns_names.insert(pos, name);
                        }
                    }
                }
            }
        }
    }

    fn count(&mut self, label: &'static str, wire_len: u64) {
        let c = self.protocols.entry(label).or_default();
        c.packets += 1;
        c.bytes += wire_len;
    }

    fn finish(self) -> Analysis {
        let mut flows: Vec<Flow> = self.flows.into_values().collect();
        flows.sort_by_key(|f| (f.first, f.key));
        let mut macs: Vec<MacSeen> = self.macs.into_values().collect();
        macs.sort_by_key(|m| (m.first, m.mac));
        Analysis {
            source: self.source,
            format: self.format,
            packets: self.packets,
            bytes: self.bytes,
            first: self.first,
            last: self.last,
            flows,
            protocols: self.protocols,
            macs,
            vlan_tagged: self.vlan_tagged,
            snapped: self.snapped,
            truncated_at: self.truncated_at,
        }
    }
}

/// The fragment id and whether this is the first fragment, if an IPv6
/// extension chain (starting with header type `next`) fragments its
/// payload. Every length is checked against `exts`.
fn ipv6_fragment(mut next: u8, exts: &[u8]) -> Option<(u32, bool)> {
    let mut rest = exts;
    loop {
        match next {
            44 => {
                let h = rest.get(..8)?;
                let offset = u16::from_be_bytes([h[2], h[3]]) >> 3;
                let more = h[3] & 1 == 1;
                // An "atomic" fragment (offset 0, no more) fragments nothing.
                return (offset != 0 || more)
                    .then(|| (u32::from_be_bytes([h[4], h[5], h[6], h[7]]), offset == 0));
            }
            // Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
            0 | 43 | 60 => {
                let len = (usize::from(*rest.get(1)?) + 1) * 8;
                next = *rest.first()?;
                rest = rest.get(len..)?;
            }
            // Authentication header: (len + 2) * 4 bytes.
            51 => {
                let len = (usize::from(*rest.get(1)?) + 2) * 4;
                next = *rest.first()?;
                rest = rest.get(len..)?;
            }
            _ => return None,
        }
    }
}

fn undecodable() -> FlowKey {
    FlowKey {
        protocol: Protocol::Undecodable,
        src: Host::Unknown,
        src_port: None,
        dst: Host::Unknown,
        dst_port: None,
    }
}

fn label(v6: bool, protocol: &Protocol, fragment: bool) -> &'static str {
    match (v6, protocol, fragment) {
        (false, _, true) => "IPv4 fragment",
        (true, _, true) => "IPv6 fragment",
        (false, Protocol::Tcp, _) => "IPv4/TCP",
        (false, Protocol::Udp, _) => "IPv4/UDP",
        (false, Protocol::Icmpv4 { .. }, _) => "IPv4/ICMP",
        (false, _, _) => "IPv4/other",
        (true, Protocol::Tcp, _) => "IPv6/TCP",
        (true, Protocol::Udp, _) => "IPv6/UDP",
        (true, Protocol::Icmpv6 { .. }, _) => "IPv6/ICMPv6",
        (true, _, _) => "IPv6/other",
    }
}

impl Analysis {
    /// Seconds from the capture's first packet to `ts`.
    pub fn offset(&self, ts: Timestamp) -> f64 {
        self.first.map_or(0.0, |f| ts.since(f))
    }
}

impl fmt::Display for Analysis {
    /// A summary: totals, per-protocol counts, source MACs, flows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} packets, {} bytes, {} flows ({})",
            self.source,
            self.packets,
            self.bytes,
            self.flows.len(),
            match self.format {
                Format::Pcap => "pcap",
                Format::PcapNg => "pcapng",
            }
        )?;
        if let Some(at) = self.truncated_at {
            writeln!(
                f,
                "  the file ends inside a record at byte {at}; everything before it was read"
            )?;
        }
        for (label, c) in &self.protocols {
            writeln!(
                f,
                "  {label:<16} {:>10} packets {:>12} bytes",
                c.packets, c.bytes
            )?;
        }
        for m in &self.macs {
            writeln!(
                f,
                "  source MAC {} {} frames from +{:.3}s to +{:.3}s",
                m.mac,
                m.frames,
                self.offset(m.first),
                self.offset(m.last)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::synth::{capture, Station};

    fn mac(s: &str) -> MacAddr {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn guest() -> Station {
        Station::new(mac("02:00:00:aa:bb:cc"), mac("02:00:00:00:00:01"))
    }
    fn at(ms: i128) -> Timestamp {
        Timestamp::from_nanos(1_795_593_600_000_000_000 + ms * 1_000_000)
    }
    fn frames() -> Vec<(Timestamp, Vec<u8>)> {
        let g = guest();
        vec![
            (at(0), g.dhcp_discover()),
            (
                at(10),
                g.tcp_syn((ip("10.203.0.57"), 40_000), (ip("10.203.0.1"), 5001)),
            ),
            (
                at(20),
                g.tcp(
                    (ip("10.203.0.57"), 40_000),
                    (ip("10.203.0.1"), 5001),
                    &[7; 100],
                ),
            ),
            (
                at(30),
                g.ping(
                    "10.203.0.57".parse().unwrap(),
                    "10.203.0.2".parse().unwrap(),
                ),
            ),
        ]
    }

    #[test]
    fn flows_have_times_packets_and_bytes() {
        let f = frames();
        let a = analyse_bytes(&capture(Format::Pcap, &f)).unwrap();
        assert_eq!(a.packets, 4);
        assert_eq!(a.format, Format::Pcap);
        let tcp = a
            .flows
            .iter()
            .find(|fl| fl.key.protocol == Protocol::Tcp)
            .unwrap();
        assert_eq!(tcp.packets, 2);
        assert_eq!(tcp.bytes, (f[1].1.len() + f[2].1.len()) as u64);
        assert_eq!((tcp.first, tcp.last), (at(10), at(20)));
        assert_eq!(
            tcp.key.to_string(),
            "TCP 10.203.0.57:40000 -> 10.203.0.1:5001"
        );
        assert_eq!(a.protocols["IPv4/TCP"].packets, 2);
        assert_eq!(a.protocols["IPv4/UDP"].packets, 1);
        assert_eq!(a.protocols["IPv4/ICMP"].packets, 1);
        assert_eq!(a.macs.len(), 1);
        assert_eq!(a.first, Some(at(0)));
        assert!(a.truncated_at.is_none());
    }

    #[test]
    fn pcapng_gives_the_same_flows_as_pcap() {
        let f = frames();
        let a = analyse_bytes(&capture(Format::Pcap, &f)).unwrap();
        let b = analyse_bytes(&capture(Format::PcapNg, &f)).unwrap();
        assert_eq!(b.format, Format::PcapNg);
        assert_eq!(a.flows, b.flows);
        assert_eq!(a.protocols, b.protocols);
    }

    #[test]
    fn vlan_tags_are_looked_through() {
        let g = guest();
        let f = vec![(
            at(0),
            g.tcp_vlan(42, (ip("10.203.0.57"), 1), (ip("10.203.0.9"), 443), b"x"),
        )];
        let a = analyse_bytes(&capture(Format::Pcap, &f)).unwrap();
        assert_eq!(a.vlan_tagged, 1);
        assert_eq!(
            a.flows[0].key.to_string(),
            "TCP 10.203.0.57:1 -> 10.203.0.9:443"
        );
    }

    #[test]
    fn later_fragments_take_the_ports_of_the_first() {
        let g = guest();
        let frags = g.udp_fragments(
            ("10.203.0.57".parse().unwrap(), 40_000),
            ("10.203.0.9".parse().unwrap(), 53),
            &crate::net::synth::dns_query(&["a-rather-long-name.example.org"; 20]),
            96,
            77,
        );
        assert!(frags.len() > 3);
        let f: Vec<_> = frags
            .into_iter()
            .enumerate()
            .map(|(i, fr)| (at(i as i128), fr))
            .collect();
        let a = analyse_bytes(&capture(Format::Pcap, &f)).unwrap();
        assert_eq!(a.flows.len(), 1, "{:#?}", a.flows);
        assert_eq!(a.flows[0].key.dst_port, Some(53));
        assert_eq!(a.flows[0].fragments, f.len() as u64);
        assert_eq!(a.protocols["IPv4 fragment"].packets, f.len() as u64);
    }

    #[test]
    fn fragments_without_their_first_have_no_ports() {
        let g = guest();
        let mut frags = g.udp_fragments(
            ("10.203.0.57".parse().unwrap(), 40_000),
            ("10.203.0.9".parse().unwrap(), 9),
            &[1; 400],
            96,
            78,
        );
        frags.remove(0);
        let f: Vec<_> = frags.into_iter().map(|fr| (at(0), fr)).collect();
        let a = analyse_bytes(&capture(Format::Pcap, &f)).unwrap();
        assert_eq!(a.flows.len(), 1);
        assert_eq!(a.flows[0].key.dst_port, None);
    }

    #[test]
    fn a_capture_cut_inside_a_record_is_read_up_to_the_cut() {
        let bytes = capture(Format::Pcap, &frames());
        for cut in [bytes.len() - 1, bytes.len() - 60, 24 + 8] {
            let a = analyse_bytes(&bytes[..cut]).unwrap();
            assert!(a.truncated_at.is_some(), "cut at {cut}");
            assert!(a.packets < 4);
        }
        let ng = capture(Format::PcapNg, &frames());
        let a = analyse_bytes(&ng[..ng.len() - 3]).unwrap();
        assert_eq!(a.packets, 3);
        assert!(a.truncated_at.is_some());
    }

    #[test]
    fn not_a_capture_is_a_clear_error() {
        let empty = analyse_bytes(&[]).unwrap_err();
        assert!(matches!(empty, Error::Empty { .. }), "{empty}");
        let text = analyse_bytes(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n").unwrap_err();
        assert!(matches!(text, Error::NotACapture { .. }), "{text}");
        assert!(text
            .to_string()
            .contains("expected a pcap or pcapng header"));
        let header = capture(Format::Pcap, &[]);
        let cut = analyse_bytes(&header[..10]).unwrap_err();
        assert!(matches!(cut, Error::TruncatedHeader { .. }), "{cut}");
    }

    #[test]
    fn damaged_frames_are_counted_not_dropped() {
        let mut f = frames();
        f.push((at(40), vec![0xde, 0xad]));
        let mut bad_ip = guest().tcp_syn((ip("10.203.0.57"), 1), (ip("10.203.0.9"), 2));
        bad_ip[14] = 0x4f; // IHL says 60 bytes of header, far beyond the frame
        bad_ip.truncate(30);
        f.push((at(50), bad_ip));
        let a = analyse_bytes(&capture(Format::Pcap, &f)).unwrap();
        assert_eq!(a.packets, 6);
        assert!(a.protocols["undecodable"].packets >= 1, "{a}");
    }

    #[test]
    fn a_huge_record_length_is_truncation_or_corruption_not_a_panic() {
        let mut bytes = capture(Format::Pcap, &frames());
        // caplen of the first record: 1 GiB.
        bytes[24 + 8..24 + 12].copy_from_slice(&(1u32 << 30).to_le_bytes());
        match analyse_bytes(&bytes) {
            Ok(a) => assert!(a.truncated_at.is_some()),
            Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e}"),
        }
    }

    #[test]
    fn fuzzer_findings_give_a_verdict_not_a_panic() {
        // A damaged IPv6 extension chain: etherparse's iterator panicked.
        let crash = include_bytes!("../../testdata/fuzz-ipv6-ext-chain.pcap");
        assert!(analyse_bytes(crash).is_ok());
    }

    #[test]
    fn ipv6_fragment_headers_are_found_behind_other_extensions() {
        // Hop-by-hop (8 bytes) then a fragment header: offset 1, more set.
        let chain = [44, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 9, 0, 0, 0, 42];
        assert_eq!(ipv6_fragment(0, &chain), Some((42, false)));
        assert_eq!(ipv6_fragment(0, &chain[..12]), None);
        assert_eq!(ipv6_fragment(0, &[44, 255]), None);
        // Atomic fragment: not fragmented.
        assert_eq!(ipv6_fragment(44, &[17, 0, 0, 0, 0, 0, 0, 1]), None);
    }

    #[test]
    fn timestamps_print_as_utc() {
        assert_eq!(at(1500).to_string(), "2026-11-25 08:00:01.500000 UTC");
        assert_eq!(
            Timestamp::default().to_string(),
            "1970-01-01 00:00:00.000000 UTC"
        );
    }

    #[test]
    fn mac_addresses_parse_and_print() {
        assert_eq!(mac("52:54:00:AB:cd:0f").to_string(), "52:54:00:ab:cd:0f");
        assert!("52:54:00:ab:cd".parse::<MacAddr>().is_err());
        assert!("52:54:00:ab:cd:0f:00".parse::<MacAddr>().is_err());
        assert!("zz:54:00:ab:cd:0f".parse::<MacAddr>().is_err());
    }
}
