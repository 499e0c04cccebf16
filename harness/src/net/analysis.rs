//! What a capture contains: flows, protocols, source MACs, DNS names, how
//! TCP connections began, and where watched MAC addresses appear.
//!
//! This module only describes; deciding what is a leak is [`super::policy`]'s
//! job, so one pass over a capture serves every check.
//!
//! The file is read in large chunks (4 MiB) and its records are walked in
//! place by [`records`] (pcap in micro- or nanoseconds, either byte order;
//! pcapng with several sections and interfaces): frames are borrowed
//! slices of the chunk, never copied one by one, so memory stays flat
//! whatever the capture's size. Frames are sliced with `etherparse`'s lax
//! slicer, which keeps what it could decode of a damaged or cut frame
//! instead of rejecting it: a capture is evidence, and a frame we cannot
//! fully decode must still show up (as its own "undecodable" flow) rather
//! than vanish. VLAN tags are looked through. IP fragments after the first
//! carry no ports; they are attributed to the ports of their first fragment
//! when it was seen, else counted with no ports (which no allowed endpoint
//! matches, so they err on the side of a leak).
//!
//! Watched MACs ([`Options::watch_macs`]) are searched for as raw bytes in
//! each whole chunk with `memchr::memmem` (SIMD; far cheaper than a search
//! per frame), together with their EUI-64 interface identifier; each hit
//! inside a frame is then named by where it fell (Ethernet source, ARP
//! sender, DHCP `chaddr`, ...), see [`Place`].
//!
//! A damaged file is an error ([`Error::Truncated`], [`Error::Corrupt`])
//! unless [`Options::live`] says the capture is still being written: then a
//! record cut short at the very end is the writer's next record, and the
//! capture is judged up to it ([`Analysis::truncated_at`]).

pub mod records;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use etherparse::{LaxNetSlice, LaxSlicedPacket, LinkSlice};
use memchr::memmem;

pub use records::Format;
use records::{Header, Packet, Stop, Walker};

/// Bytes read from a reader at once.
const CHUNK: usize = 4 << 20;
/// Bytes of a memory-mapped file walked between populating and dropping.
const WINDOW: usize = 8 << 20;
/// Mapping granularity (pages are 4 KiB on the platforms we run on; a
/// larger real page only makes the drop behind the walk partial).
const PAGE: usize = 4096;
/// Bytes of memory scanned for watched MACs at once.
const SCAN: usize = 1 << 20;
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

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Errors reading a capture.
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
    #[error(
        "{source_name}: the capture is cut short: the record at byte {offset} needs {need} bytes, \
         the file has {have} (a capture still being written? then say it is live)"
    )]
    Truncated {
        source_name: String,
        offset: u64,
        need: usize,
        have: usize,
    },
    #[error("{source_name}: corrupt capture at byte {offset}: {detail}")]
    Corrupt {
        source_name: String,
        offset: u64,
        detail: String,
    },
    #[error("{source_name}: read error at byte {offset}")]
    Read {
        source_name: String,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name}: link type {linktype} is not supported (expected Ethernet, raw IP or Linux cooked capture)")]
    UnsupportedLinktype { source_name: String, linktype: u16 },
}

impl Error {
    /// Whether the file is a damaged capture (cut short, or corrupt), as
    /// opposed to one that could not be read or is not a capture at all.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            Error::Empty { .. }
                | Error::TruncatedHeader { .. }
                | Error::Truncated { .. }
                | Error::Corrupt { .. }
        )
    }
}

/// How to read a capture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// The capture is still being written: a record cut short at the very
    /// end of the file is tolerated (the capture is judged up to it, and
    /// [`Analysis::truncated_at`] says so). Damage anywhere else is still
    /// an error.
    pub live: bool,
    /// MACs to look for in every frame (e.g. the NIC's real one); see
    /// [`Analysis::sightings`].
    pub watch_macs: Vec<MacAddr>,
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

impl MacAddr {
    /// The modified EUI-64 interface identifier an IPv6 stack derives from
    /// this MAC (RFC 4291 appendix A): `ff:fe` in the middle, the
    /// universal/local bit flipped.
    pub fn eui64(&self) -> [u8; 8] {
        let m = self.0;
        [m[0] ^ 0x02, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]
    }
}

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
    /// A frame whose link layer says IPv4 (`v6: false`) or IPv6 but whose
    /// IP header is too damaged to read.
    DamagedIp {
        v6: bool,
    },
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
            Protocol::DamagedIp { v6: false } => f.write_str("damaged IPv4 packet"),
            Protocol::DamagedIp { v6: true } => f.write_str("damaged IPv6 packet"),
            Protocol::Undecodable => f.write_str("undecodable frame"),
        }
    }
}

/// Direction-sensitive 5-tuple: a request and its reply are two flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    pub protocol: Protocol,
    pub src: Host,
    pub src_port: Option<u16>,
    pub dst: Host,
    pub dst_port: Option<u16>,
}

/// Hashed as four words rather than field by field: the flow table looks
/// a key up for every frame, and the derived hash made a dozen small
/// writes. Equal keys give equal words, so this agrees with `Eq`.
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        fn host(h: &Host) -> u128 {
            match h {
                Host::Ip(IpAddr::V4(a)) => u128::from(a.to_bits()) | 1 << 120,
                Host::Ip(IpAddr::V6(a)) => a.to_bits(),
                Host::Mac(m) => {
                    let mut b = [0u8; 16];
                    b[..6].copy_from_slice(&m.0);
                    b[15] = 2;
                    u128::from_le_bytes(b)
                }
                Host::Unknown => 3 << 120,
            }
        }
        let protocol: u32 = match self.protocol {
            Protocol::Tcp => 1,
            Protocol::Udp => 2,
            Protocol::Icmpv4 { kind } => 3 | kind.map_or(0, |k| 0x100 | u32::from(k) << 16),
            Protocol::Icmpv6 { kind } => 4 | kind.map_or(0, |k| 0x100 | u32::from(k) << 16),
            Protocol::Ip(n) => 5 | u32::from(n) << 16,
            Protocol::Arp => 6,
            Protocol::Ether(t) => 7 | u32::from(t) << 16,
            Protocol::DamagedIp { v6 } => 8 | u32::from(v6) << 16,
            Protocol::Undecodable => 9,
        };
        let port = |p: Option<u16>| p.map_or(0, |p| 0x1_0000 | u64::from(p));
        state.write_u64(u64::from(protocol) | port(self.src_port) << 32);
        state.write_u64(port(self.dst_port));
        state.write_u128(host(&self.src));
        state.write_u128(host(&self.dst));
    }
}

impl FlowKey {
    /// IPv6, including a frame that says IPv6 but is too damaged to read.
    pub fn is_ipv6(&self) -> bool {
        matches!(self.src, Host::Ip(IpAddr::V6(_)))
            || matches!(self.dst, Host::Ip(IpAddr::V6(_)))
            || self.protocol == Protocol::DamagedIp { v6: true }
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

/// The first payload bytes of a TCP connection, as the capture saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstPayload {
    pub ts: Timestamp,
    /// Frame number in the capture (1-based, as Wireshark counts).
    pub frame: u64,
    /// Up to 8 first bytes; `len` of them are valid.
    pub head: [u8; 8],
    pub len: u8,
}

impl fmt::Display for FirstPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "frame {} at {}: first bytes", self.frame, self.ts)?;
        for b in &self.head[..usize::from(self.len)] {
            write!(f, " {b:02x}")?;
        }
        Ok(())
    }
}

/// How the TCP connections of one flow began: the first payload a sender
/// puts on a connection tells what protocol it speaks (Tor's link protocol
/// opens with a TLS handshake record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpStarts {
    /// Connections whose SYN was captured and whose first payload was a
    /// TLS handshake record.
    pub tls: u64,
    /// Connections whose SYN was captured and whose first payload was
    /// something else.
    pub not_tls: u64,
    /// The first of those.
    pub first_not_tls: Option<FirstPayload>,
    /// Payload on a connection whose SYN was not captured: it was opened
    /// before the capture began, so how it began is unknown.
    pub opened_before_capture: bool,
}

/// Everything seen on one [`FlowKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub key: FlowKey,
    pub first: Timestamp,
    pub last: Timestamp,
    /// Frame number of the flow's first packet (1-based).
    pub first_frame: u64,
    pub packets: u64,
    /// Bytes on the wire (original frame lengths).
    pub bytes: u64,
    /// TCP or UDP payload bytes captured.
    pub payload: u64,
    /// IP fragments among the packets.
    pub fragments: u64,
    /// DNS question names seen in this flow, sorted, at most 64.
    pub dns_names: Vec<String>,
    /// Source MAC of the flow's first frame (None without Ethernet).
    pub src_mac: Option<MacAddr>,
    /// TCP only: how its connections began.
    pub tcp: TcpStarts,
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

/// Where in a frame a watched MAC was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Place {
    /// The frame's link-layer source (Ethernet, or Linux cooked capture).
    EthernetSource,
    EthernetDestination,
    ArpSender,
    ArpTarget,
    /// The client hardware address of a DHCP (BOOTP) message.
    DhcpChaddr,
    /// Inside DHCP option 61 (client identifier), e.g. type 1 + the MAC.
    DhcpClientId,
    /// An IPv6 neighbour discovery source/target link-layer address option.
    NdpLinkLayerOption,
    /// The interface identifier (EUI-64 of the MAC) of the IPv6 source.
    Ipv6Source,
    Ipv6Destination,
    /// The EUI-64 interface identifier elsewhere: an ND target, an MLD or
    /// quoted address, any payload.
    Eui64Elsewhere,
    /// The MAC's six bytes anywhere else in the frame.
    RawBytes,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Place::EthernetSource => "Ethernet source address",
            Place::EthernetDestination => "Ethernet destination address",
            Place::ArpSender => "ARP sender hardware address",
            Place::ArpTarget => "ARP target hardware address",
            Place::DhcpChaddr => "DHCP client hardware address (chaddr)",
            Place::DhcpClientId => "DHCP client identifier (option 61)",
            Place::NdpLinkLayerOption => "IPv6 neighbour discovery link-layer address option",
            Place::Ipv6Source => "IPv6 source address (EUI-64 interface identifier)",
            Place::Ipv6Destination => "IPv6 destination address (EUI-64 interface identifier)",
            Place::Eui64Elsewhere => "an EUI-64 interface identifier inside the packet",
            Place::RawBytes => "raw bytes of the frame",
        })
    }
}

/// Where one watched MAC appeared in frames from one sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacSighting {
    /// The watched MAC.
    pub mac: MacAddr,
    pub place: Place,
    /// Source MAC of the frames it appeared in (None without Ethernet).
    pub sender: Option<MacAddr>,
    pub first: Timestamp,
    pub last: Timestamp,
    /// Frames it appeared in, at this place.
    pub frames: u64,
    /// Number of the first such frame (1-based).
    pub first_frame: u64,
    /// Byte offset in that frame.
    pub first_offset: usize,
    /// The flow of that frame.
    pub flow: FlowKey,
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
    /// Frames without a link-layer source address (raw IP captures, or too
    /// damaged to have one): nobody can tell who sent them.
    pub frames_without_mac: u64,
    /// The MACs that were looked for ([`Options::watch_macs`]).
    pub watched: Vec<MacAddr>,
    /// Every place a watched MAC appeared, by time of first sighting.
    pub sightings: Vec<MacSighting>,
    /// Frames that carried at least one VLAN tag.
    pub vlan_tagged: u64,
    /// Frames cut by the capture's snap length.
    pub snapped: u64,
    /// A live capture ([`Options::live`]) whose last record was still being
    /// written at this byte offset: everything before it was read.
    pub truncated_at: Option<u64>,
}

/// Analyse a capture file (not live, no watched MACs).
pub fn analyse_path(path: &Path) -> Result<Analysis, Error> {
    analyse_path_with(path, &Options::default())
}

/// Analyse a capture file. A regular file is memory-mapped and walked in
/// windows (each populated before and dropped from the mapping after it is
/// walked, so memory stays flat); anything else (a pipe) is read in chunks.
///
/// The file must not shrink while it is read (a capture being written only
/// grows; what is appended after the start is not read).
pub fn analyse_path_with(path: &Path, options: &Options) -> Result<Analysis, Error> {
    let open_err = |source| Error::Open {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(open_err)?;
    let name = path.display().to_string();
    let meta = file.metadata().map_err(open_err)?;
    if !meta.is_file() || meta.len() == 0 {
        return analyse_reader_with(file, &name, options);
    }
    // SAFETY: the mapping is read-only and private; the only hazard is a
    // file truncated while mapped (SIGBUS), which the doc rules out.
    let map = match unsafe { memmap2::Mmap::map(&file) } {
        Ok(map) => map,
        Err(_) => return analyse_reader_with(file, &name, options),
    };
    let _ = map.advise(memmap2::Advice::Sequential);
    let data: &[u8] = &map;
    let (mut walker, header) = start(data, true, &name)?;
    let mut state = State::new(&name, walker.format(), options);
    let mut search = Search::new(&options.watch_macs);
    let mut at = header;
    let mut dropped = 0;
    while at < data.len() {
        let mut end = (at + WINDOW).min(data.len());
        loop {
            // Failing to populate only costs page faults later.
            let _ = map.advise_range(memmap2::Advice::PopulateRead, at, end - at);
            let (used, need) = state.walk(&mut walker, &mut search, &data[at..end], at as u64)?;
            at += used;
            let Some(need) = need else { break };
            if at + need > data.len() {
                // The file ends inside this record.
                state.cut_short(at as u64, need, data.len() - at)?;
                return Ok(state.finish());
            }
            if used > 0 {
                break;
            }
            // A record larger than a window: walk it on its own.
            end = at + need;
        }
        // Drop walked pages from the mapping (not from the page cache).
        let behind = at / PAGE * PAGE;
        if behind > dropped {
            // SAFETY: nothing borrows the dropped range any more, and a
            // private read-only mapping refaults it from the file if read.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    dropped,
                    behind - dropped,
                )
            };
            dropped = behind;
        }
    }
    Ok(state.finish())
}

/// Analyse a capture held in memory (tests, the fuzzer).
pub fn analyse_bytes(data: &[u8]) -> Result<Analysis, Error> {
    analyse_bytes_with(data, &Options::default())
}

/// Analyse a capture held in memory, walked in place.
pub fn analyse_bytes_with(data: &[u8], options: &Options) -> Result<Analysis, Error> {
    let name = "<memory>";
    let (mut walker, header) = start(data, true, name)?;
    let mut state = State::new(name, walker.format(), options);
    let mut search = Search::new(&options.watch_macs);
    let (used, need) = state.walk(&mut walker, &mut search, &data[header..], header as u64)?;
    let at = header + used;
    if at < data.len() {
        state.cut_short(at as u64, need.unwrap_or(0), data.len() - at)?;
    }
    Ok(state.finish())
}

/// Analyse a capture from any reader; `source_name` is used in errors.
pub fn analyse_reader<R: Read>(reader: R, source_name: &str) -> Result<Analysis, Error> {
    analyse_reader_with(reader, source_name, &Options::default())
}

/// Analyse a capture from any reader, in chunks of 4 MiB (more if one
/// record needs it).
pub fn analyse_reader_with<R: Read>(
    mut reader: R,
    source_name: &str,
    options: &Options,
) -> Result<Analysis, Error> {
    let mut buf = vec![0u8; CHUNK];
    let mut filled = fill(&mut reader, &mut buf, 0, source_name, 0)?;
    let mut eof = filled < buf.len();
    let (mut walker, header) = start(&buf[..filled], eof, source_name)?;
    let mut state = State::new(source_name, walker.format(), options);
    let mut search = Search::new(&options.watch_macs);
    // File offset of buf[0], and the first byte not yet walked.
    let mut base = 0u64;
    let mut at = header;
    loop {
        let (used, need) =
            state.walk(&mut walker, &mut search, &buf[at..filled], base + at as u64)?;
        at += used;
        if eof {
            if at < filled {
                state.cut_short(base + at as u64, need.unwrap_or(0), filled - at)?;
            }
            break;
        }
        // Keep the partial record, and make room for the whole of it.
        buf.copy_within(at..filled, 0);
        base += at as u64;
        filled -= at;
        at = 0;
        let need = need.unwrap_or(0);
        if need > buf.len() {
            buf.resize(need.next_power_of_two(), 0);
        }
        let got = fill(&mut reader, &mut buf, filled, source_name, base)?;
        eof = filled + got < buf.len();
        filled += got;
    }
    Ok(state.finish())
}

/// Read into `buf[from..]` until it is full or the reader ends; how many
/// bytes came.
fn fill<R: Read>(
    reader: &mut R,
    buf: &mut [u8],
    from: usize,
    source_name: &str,
    base: u64,
) -> Result<usize, Error> {
    let mut at = from;
    while at < buf.len() {
        match reader.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(Error::Read {
                    source_name: source_name.into(),
                    offset: base + at as u64,
                    source,
                })
            }
        }
    }
    Ok(at - from)
}

/// The file header, from the first bytes (all of them when `eof`).
fn start(data: &[u8], eof: bool, source_name: &str) -> Result<(Walker, usize), Error> {
    let name = || source_name.to_string();
    match Walker::start(data) {
        Header::Ok(walker, len) => Ok((walker, len)),
        Header::Empty => Err(Error::Empty {
            source_name: name(),
        }),
        Header::Incomplete if eof => Err(Error::TruncatedHeader {
            source_name: name(),
        }),
        // A 4 MiB chunk always holds a whole pcap header.
        Header::Incomplete => Err(Error::TruncatedHeader {
            source_name: name(),
        }),
        Header::NotACapture => Err(Error::NotACapture {
            source_name: name(),
        }),
    }
}

/// Finds watched MACs (and their EUI-64 identifiers) in walked bytes.
///
/// A MAC and its EUI-64 identifier end with the same three bytes (the
/// NIC-specific half), so one search for those finds both; each find is
/// then checked for either full form. The bytes being walked are scanned
/// ahead of the walk in 1 MiB stretches, so hits never pile up.
struct Search {
    /// Per watched MAC: a finder for its last three bytes, its six bytes,
    /// and its EUI-64.
    needles: Vec<(memmem::Finder<'static>, [u8; 6], [u8; 8])>,
    /// Hits in the scanned part of the bytes being walked, by position.
    hits: Vec<(usize, Needle)>,
    next: usize,
    /// Bytes scanned so far: finds that start before this are in `hits`.
    scanned: usize,
    /// Hits inside the frame being decoded: (offset in frame, needle).
    in_frame: Vec<(usize, Needle)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Needle {
    /// Index in [`Options::watch_macs`].
    mac: usize,
    eui64: bool,
}

impl Needle {
    fn len(&self) -> usize {
        if self.eui64 {
            8
        } else {
            6
        }
    }
}

impl Search {
    fn new(macs: &[MacAddr]) -> Self {
        Search {
            needles: macs
                .iter()
                .map(|m| (memmem::Finder::new(&m.0[3..]).into_owned(), m.0, m.eui64()))
                .collect(),
            hits: Vec::new(),
            next: 0,
            scanned: 0,
            in_frame: Vec::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// Start on new bytes.
    fn reset(&mut self) {
        self.hits.clear();
        self.next = 0;
        self.scanned = 0;
    }

    /// Scan `data` until every find that ends by `upto` is known.
    fn scan_to(&mut self, data: &[u8], upto: usize) {
        if upto <= self.scanned {
            return;
        }
        self.hits.drain(..self.next);
        self.next = 0;
        let end = upto.max(self.scanned + SCAN).min(data.len());
        // Finds that start from `scanned` on, and end by `end`.
        let from = self.scanned;
        let first = self.hits.len();
        for (i, (finder, mac, eui)) in self.needles.iter().enumerate() {
            for at in finder.find_iter(&data[from..end]) {
                let tail = from + at + 3;
                if tail >= 6 && data[tail - 6..tail] == mac[..] {
                    self.hits.push((
                        tail - 6,
                        Needle {
                            mac: i,
                            eui64: false,
                        },
                    ));
                }
                if tail >= 8 && data[tail - 8..tail] == eui[..] {
                    self.hits.push((
                        tail - 8,
                        Needle {
                            mac: i,
                            eui64: true,
                        },
                    ));
                }
            }
        }
        self.hits[first..].sort_unstable_by_key(|h| h.0);
        // The next scan starts where a find could still end past `end`.
        self.scanned = end.saturating_sub(2).max(from);
        if end == data.len() {
            self.scanned = data.len();
        }
    }

    /// Collect the hits that lie wholly inside `start..end` of `data` into
    /// `in_frame`; hits before `start` (in record headers) are dropped.
    fn take_frame(&mut self, data: &[u8], start: usize, end: usize) {
        self.scan_to(data, end);
        self.in_frame.clear();
        while let Some(&(at, needle)) = self.hits.get(self.next) {
            if at >= end {
                break;
            }
            if at >= start && at + needle.len() <= end {
                self.in_frame.push((at - start, needle));
            }
            self.next += 1;
        }
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

/// Per-protocol counter labels; [`Analysis::protocols`] is keyed by them.
const LABELS: [&str; 14] = [
    "ARP",
    "IPv4/TCP",
    "IPv4/UDP",
    "IPv4/ICMP",
    "IPv4/other",
    "IPv4 fragment",
    "IPv6/TCP",
    "IPv6/UDP",
    "IPv6/ICMPv6",
    "IPv6/other",
    "IPv6 fragment",
    "other ethertype",
    "damaged IP",
    "undecodable",
];
const ARP: usize = 0;
const OTHER_ETHERTYPE: usize = 11;
const DAMAGED_IP: usize = 12;
const UNDECODABLE: usize = 13;

/// Where a TCP flow's current connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opening {
    /// No SYN and no payload seen yet.
    Unknown,
    /// A SYN was seen; the next payload is the connection's first.
    Opened,
    /// The first payload was seen (or the opening was missed).
    Judged,
}

struct State {
    source: String,
    format: Format,
    watched: Vec<MacAddr>,
    live: bool,
    packets: u64,
    bytes: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    flows: Vec<Flow>,
    openings: Vec<Opening>,
    flow_index: FastMap<FlowKey, usize>,
    protocols: [Counter; LABELS.len()],
    macs: Vec<MacSeen>,
    mac_index: FastMap<MacAddr, usize>,
    recent_macs: [Option<(MacAddr, usize)>; 2],
    frames_without_mac: u64,
    sightings: Vec<MacSighting>,
    fragment_ports: FastMap<FragmentId, (u16, u16)>,
    vlan_tagged: u64,
    snapped: u64,
    truncated_at: Option<u64>,
    /// Source MAC of the frame being decoded.
    frame_src_mac: Option<MacAddr>,
    /// Flow of the frame being decoded.
    frame_flow: usize,
}

/// What the IP layer of a frame yields for the flow table.
struct Transport<'a> {
    protocol: Protocol,
    ports: Option<(u16, u16)>,
    /// TCP or UDP payload (empty for later fragments).
    app: &'a [u8],
    /// TCP flags, when the TCP header was seen.
    tcp_flags: Option<u8>,
}

const TCP_SYN: u8 = 0x02;
const TCP_ACK: u8 = 0x10;

impl State {
    fn new(source: &str, format: Format, options: &Options) -> Self {
        State {
            source: source.into(),
            format,
            watched: options.watch_macs.clone(),
            live: options.live,
            packets: 0,
            bytes: 0,
            first: None,
            last: None,
            flows: Vec::new(),
            openings: Vec::new(),
            flow_index: FastMap::default(),
            protocols: [Counter::default(); LABELS.len()],
            macs: Vec::new(),
            mac_index: FastMap::default(),
            recent_macs: [None; 2],
            frames_without_mac: 0,
            sightings: Vec::new(),
            fragment_ports: FastMap::default(),
            vlan_tagged: 0,
            snapped: 0,
            truncated_at: None,
            frame_src_mac: None,
            frame_flow: 0,
        }
    }

    /// Walk the records in `data` (which starts at file offset `at`) until
    /// it ends or a record is incomplete: how many bytes were walked, and
    /// how many the incomplete record needs.
    fn walk(
        &mut self,
        walker: &mut Walker,
        search: &mut Search,
        data: &[u8],
        at: u64,
    ) -> Result<(usize, Option<usize>), Error> {
        search.reset();
        let mut pos = 0;
        while pos < data.len() {
            match walker.next(&data[pos..]) {
                Ok((len, packet)) => {
                    if let Some(packet) = packet {
                        if !search.is_empty() {
                            let start = pos + packet.data_at;
                            search.take_frame(data, start, start + packet.data.len());
                        }
                        self.frame(&packet, &search.in_frame)?;
                    }
                    pos += len;
                }
                Err(Stop::Incomplete { need }) => return Ok((pos, Some(need))),
                Err(Stop::Corrupt(detail)) => {
                    return Err(Error::Corrupt {
                        source_name: self.source.clone(),
                        offset: at + pos as u64,
                        detail,
                    })
                }
            }
        }
        Ok((pos, None))
    }

    /// The data ends inside the record at `offset`: the live end of a
    /// capture being written, or a capture cut short.
    fn cut_short(&mut self, offset: u64, need: usize, have: usize) -> Result<(), Error> {
        if self.live {
            self.truncated_at = Some(offset);
            return Ok(());
        }
        Err(Error::Truncated {
            source_name: self.source.clone(),
            offset,
            need,
            have,
        })
    }

    fn frame(&mut self, packet: &Packet<'_>, hits: &[(usize, Needle)]) -> Result<(), Error> {
        let (ts, data) = (packet.ts, packet.data);
        let wire_len = u64::from(packet.orig_len).max(data.len() as u64);
        self.packets += 1;
        self.bytes += wire_len;
        if (packet.orig_len as usize) > data.len() {
            self.snapped += 1;
        }
        self.first = Some(self.first.map_or(ts, |f| f.min(ts)));
        self.last = Some(self.last.map_or(ts, |l| l.max(ts)));
        if packet.linktype == records::LINKTYPE_ETHERNET && self.common_frame(ts, wire_len, data) {
            if !hits.is_empty() {
                self.sightings(ts, data, hits, packet.linktype);
            }
            return Ok(());
        }
        let sliced = match packet.linktype {
            records::LINKTYPE_ETHERNET => LaxSlicedPacket::from_ethernet(data).ok(),
            records::LINKTYPE_RAW | records::LINKTYPE_IPV4 | records::LINKTYPE_IPV6 => {
                LaxSlicedPacket::from_ip(data).ok()
            }
            records::LINKTYPE_LINUX_SLL => (data.len() >= 16).then(|| {
                let proto = u16::from_be_bytes([data[14], data[15]]);
                LaxSlicedPacket::from_ether_type(etherparse::EtherType(proto), &data[16..])
            }),
            other => {
                return Err(Error::UnsupportedLinktype {
                    source_name: self.source.clone(),
                    linktype: other,
                })
            }
        };
        let (src_mac, dst_mac, ether_type) = match sliced.as_ref().map(|s| &s.link) {
            Some(Some(LinkSlice::Ethernet2(e))) => (
                Some(MacAddr(e.source())),
                Some(MacAddr(e.destination())),
                Some(e.ether_type().0),
            ),
            _ if packet.linktype == records::LINKTYPE_LINUX_SLL && data.len() >= 12 => {
                // A cooked capture's sender address, when it is a MAC.
                let len = u16::from_be_bytes([data[4], data[5]]);
                let mac = (len == 6).then(|| {
                    let mut m = [0u8; 6];
                    m.copy_from_slice(&data[6..12]);
                    MacAddr(m)
                });
                (mac, None, None)
            }
            _ => (None, None, None),
        };
        self.frame_src_mac = src_mac;
        let Some(sliced) = sliced else {
            let key = match packet.linktype {
                records::LINKTYPE_ETHERNET => undecodable(),
                _ => damaged_ip_or_undecodable(data),
            };
            self.count(
                if key.protocol == Protocol::Undecodable {
                    UNDECODABLE
                } else {
                    DAMAGED_IP
                },
                wire_len,
            );
            self.flow(ts, wire_len, key, false, &[], None);
            self.sender(ts, None);
            if !hits.is_empty() {
                self.sightings(ts, data, hits, packet.linktype);
            }
            return Ok(());
        };
        if !sliced.link_exts.is_empty() {
            self.vlan_tagged += 1;
        }
        let mut src_ip = None;
        match &sliced.net {
            Some(LaxNetSlice::Arp(arp)) => {
                self.count(ARP, wire_len);
                let spa = arp.sender_protocol_addr();
                let tpa = arp.target_protocol_addr();
                let v4 = |a: &[u8]| <[u8; 4]>::try_from(a).ok().map(Ipv4Addr::from);
                src_ip = v4(spa).map(IpAddr::V4);
                let key = FlowKey {
                    protocol: Protocol::Arp,
                    src: v4(spa)
                        .map(|a| Host::Ip(IpAddr::V4(a)))
                        .or(src_mac.map(Host::Mac))
                        .unwrap_or(Host::Unknown),
                    src_port: None,
                    dst: v4(tpa)
                        .map(|a| Host::Ip(IpAddr::V4(a)))
                        .or(dst_mac.map(Host::Mac))
                        .unwrap_or(Host::Unknown),
                    dst_port: None,
                };
                self.flow(ts, wire_len, key, false, &[], None);
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
                let inner = sliced
                    .link_exts
                    .last()
                    .and_then(|ext| match ext.to_header() {
                        etherparse::LinkExtHeader::Vlan(v) => Some(v.ether_type.0),
                        etherparse::LinkExtHeader::Macsec(_) => None,
                    })
                    .or(ether_type);
                let protocol = match (sliced.stop_err.is_some(), inner) {
                    (_, Some(0x0800)) => Protocol::DamagedIp { v6: false },
                    (_, Some(0x86dd)) => Protocol::DamagedIp { v6: true },
                    (false, Some(t)) => Protocol::Ether(t),
                    _ => Protocol::Undecodable,
                };
                self.count(
                    match protocol {
                        Protocol::Undecodable => UNDECODABLE,
                        Protocol::DamagedIp { .. } => DAMAGED_IP,
                        _ => OTHER_ETHERTYPE,
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
                self.flow(ts, wire_len, key, false, &[], None);
            }
        }
        self.sender(ts, src_ip);
        if !hits.is_empty() {
            self.sightings(ts, data, hits, packet.linktype);
        }
        Ok(())
    }

    /// The common frame, decoded by hand exactly as the lax slicer would
    /// decode it, without building its slices (which cost more than the
    /// rest of the analysis): Ethernet II without a VLAN tag carrying
    /// IPv4 without options and unfragmented, or IPv6 without extension
    /// headers, with TCP, UDP or ICMP, all of it captured. Anything else
    /// returns false and goes through the slicer.
    fn common_frame(&mut self, ts: Timestamp, wire_len: u64, data: &[u8]) -> bool {
        let be16 = |at: usize| u16::from_be_bytes([data[at], data[at + 1]]);
        if data.len() < 14 + 20 {
            return false;
        }
        let (src, dst, proto, payload, v6) = match be16(12) {
            0x0800 => {
                let total = usize::from(be16(16));
                // Version 4, 20-byte header; neither "more fragments" nor
                // an offset.
                if data[14] != 0x45
                    || total < 20
                    || 14 + total > data.len()
                    || be16(20) & 0x3fff != 0
                {
                    return false;
                }
                let addr = |at: usize| {
                    IpAddr::V4(Ipv4Addr::new(
                        data[at],
                        data[at + 1],
                        data[at + 2],
                        data[at + 3],
                    ))
                };
                (addr(26), addr(30), data[23], &data[34..14 + total], false)
            }
            0x86dd => {
                let len = usize::from(be16(18));
                // A zero length may mean a jumbogram or an offloaded
                // segment: the slicer decides.
                if data.len() < 54 || data[14] >> 4 != 6 || len == 0 || 54 + len > data.len() {
                    return false;
                }
                let next = data[20];
                if !matches!(next, 6 | 17 | 58) {
                    return false;
                }
                let addr = |at: usize| {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&data[at..at + 16]);
                    IpAddr::V6(std::net::Ipv6Addr::from(a))
                };
                (addr(22), addr(38), next, &data[54..54 + len], true)
            }
            _ => return false,
        };
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&data[6..12]);
        self.frame_src_mac = Some(MacAddr(mac));
        let t = self.transport(src, dst, proto, payload, None, v6);
        self.count(label(v6, &t.protocol, false), wire_len);
        self.ip_flow(ts, wire_len, src, dst, t, false);
        self.sender(ts, Some(src));
        true
    }

    /// Count the frame for its source MAC.
    fn sender(&mut self, ts: Timestamp, src_ip: Option<IpAddr>) {
        let Some(mac) = self.frame_src_mac else {
            self.frames_without_mac += 1;
            return;
        };
        // Most frames come from one of two MACs (the guest's, the lab's).
        let i = match self.recent_macs {
            [Some((m, i)), _] if m == mac => i,
            [other, Some((m, i))] if m == mac => {
                self.recent_macs = [Some((m, i)), other];
                i
            }
            _ => {
                let i = self.mac_index(mac, ts);
                self.recent_macs = [Some((mac, i)), self.recent_macs[0]];
                i
            }
        };
        let seen = &mut self.macs[i];
        seen.frames += 1;
        seen.first = seen.first.min(ts);
        seen.last = seen.last.max(ts);
        if let Some(ip) = src_ip {
            if seen.ips.len() < MAX_IPS_PER_MAC && !seen.ips.contains(&ip) {
                seen.ips.push(ip);
            }
        }
    }

    fn mac_index(&mut self, mac: MacAddr, ts: Timestamp) -> usize {
        *self.mac_index.entry(mac).or_insert_with(|| {
            self.macs.push(MacSeen {
                mac,
                first: ts,
                last: ts,
                frames: 0,
                ips: Vec::new(),
            });
            self.macs.len() - 1
        })
    }

    /// Name and record every watched-MAC hit in this frame.
    fn sightings(&mut self, ts: Timestamp, data: &[u8], hits: &[(usize, Needle)], linktype: u16) {
        let sliced = match linktype {
            records::LINKTYPE_ETHERNET => LaxSlicedPacket::from_ethernet(data).ok(),
            records::LINKTYPE_LINUX_SLL if data.len() >= 16 => {
                let proto = u16::from_be_bytes([data[14], data[15]]);
                Some(LaxSlicedPacket::from_ether_type(
                    etherparse::EtherType(proto),
                    &data[16..],
                ))
            }
            _ => LaxSlicedPacket::from_ip(data).ok(),
        };
        let layout = sliced.map(|s| Layout::of(data, &s)).unwrap_or_default();
        let layout = Layout {
            link_src: layout.link_src.or(self.frame_src_mac.map(|_| 6)),
            ..layout
        };
        let flow = self.flows[self.frame_flow].key;
        let frame = self.packets;
        let mut seen_here: Vec<(usize, Place)> = Vec::new();
        for &(offset, needle) in hits {
            let place = layout.place(offset, needle.eui64);
            if seen_here.contains(&(needle.mac, place)) {
                continue;
            }
            seen_here.push((needle.mac, place));
            let mac = self.watched[needle.mac];
            let sender = self.frame_src_mac;
            match self
                .sightings
                .iter_mut()
                .find(|s| s.mac == mac && s.place == place && s.sender == sender)
            {
                Some(s) => {
                    s.frames += 1;
                    s.last = s.last.max(ts);
                    if ts < s.first {
                        s.first = ts;
                    }
                }
                None => self.sightings.push(MacSighting {
                    mac,
                    place,
                    sender,
                    first: ts,
                    last: ts,
                    frames: 1,
                    first_frame: frame,
                    first_offset: offset,
                    flow,
                }),
            }
        }
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
        let none = |protocol| Transport {
            protocol,
            ports: None,
            app: &[],
            tcp_flags: None,
        };
        if !matches!(protocol, Protocol::Tcp | Protocol::Udp) {
            return none(protocol);
        }
        let id = |id| FragmentId {
            src,
            dst,
            proto,
            id,
        };
        match fragment {
            Some((frag_id, false)) => Transport {
                ports: self.fragment_ports.get(&id(frag_id)).copied(),
                ..none(protocol)
            },
            _ if p.len() < 4 => none(protocol),
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
                let (app, tcp_flags) = if proto == 17 {
                    (p.get(8..).unwrap_or(&[]), None)
                } else {
                    let offset = p.get(12).map_or(0, |b| usize::from(b >> 4) * 4);
                    let app = if offset >= 20 {
                        p.get(offset..).unwrap_or(&[])
                    } else {
                        &[]
                    };
                    (app, p.get(13).copied())
                };
                Transport {
                    protocol,
                    ports: Some(ports),
                    app,
                    tcp_flags,
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
        let i = self.flow(ts, wire_len, key, fragment, t.app, t.tcp_flags);
        if key.is_dns_port() && !t.app.is_empty() {
            // DNS over TCP: a two-byte length, then the message.
            let message = if key.protocol == Protocol::Tcp {
                t.app.get(2..).unwrap_or(&[])
            } else {
                t.app
            };
            dns_names(&mut self.flows[i], message);
        }
    }

    /// Count a frame in its flow; returns the flow's index.
    fn flow(
        &mut self,
        ts: Timestamp,
        wire_len: u64,
        key: FlowKey,
        fragment: bool,
        app: &[u8],
        tcp_flags: Option<u8>,
    ) -> usize {
        let src_mac = self.frame_src_mac;
        let frame = self.packets;
        let i = *self.flow_index.entry(key).or_insert_with(|| {
            self.flows.push(Flow {
                key,
                first: ts,
                last: ts,
                first_frame: frame,
                packets: 0,
                bytes: 0,
                payload: 0,
                fragments: 0,
                dns_names: Vec::new(),
                src_mac,
                tcp: TcpStarts::default(),
            });
            self.openings.push(Opening::Unknown);
            self.flows.len() - 1
        });
        self.frame_flow = i;
        let flow = &mut self.flows[i];
        flow.packets += 1;
        flow.bytes += wire_len;
        flow.payload += app.len() as u64;
        flow.fragments += u64::from(fragment);
        flow.first = flow.first.min(ts);
        flow.last = flow.last.max(ts);
        if let Some(flags) = tcp_flags {
            let opening = &mut self.openings[i];
            if flags & (TCP_SYN | TCP_ACK) == TCP_SYN {
                *opening = Opening::Opened;
            }
            if !app.is_empty() {
                match *opening {
                    Opening::Opened if is_tls_handshake(app) => flow.tcp.tls += 1,
                    Opening::Opened => {
                        flow.tcp.not_tls += 1;
                        if flow.tcp.first_not_tls.is_none() {
                            let mut head = [0u8; 8];
                            let len = app.len().min(8);
                            head[..len].copy_from_slice(&app[..len]);
                            flow.tcp.first_not_tls = Some(FirstPayload {
                                ts,
                                frame,
                                head,
                                len: len as u8,
                            });
                        }
                    }
                    Opening::Unknown => flow.tcp.opened_before_capture = true,
                    Opening::Judged => {}
                }
                *opening = Opening::Judged;
            }
        }
        i
    }

    fn count(&mut self, label: usize, wire_len: u64) {
        let c = &mut self.protocols[label];
        c.packets += 1;
        c.bytes += wire_len;
    }

    fn finish(self) -> Analysis {
        let mut flows = self.flows;
        flows.sort_by_key(|f| (f.first, f.key));
        let mut macs = self.macs;
        macs.sort_by_key(|m| (m.first, m.mac));
        let mut sightings = self.sightings;
        sightings.sort_by_key(|s| (s.first, s.first_frame, s.place));
        Analysis {
            source: self.source,
            format: self.format,
            packets: self.packets,
            bytes: self.bytes,
            first: self.first,
            last: self.last,
            flows,
            protocols: LABELS
                .iter()
                .zip(self.protocols)
                .filter(|(_, c)| c.packets > 0)
                .map(|(l, c)| (*l, c))
                .collect(),
            macs,
            frames_without_mac: self.frames_without_mac,
            watched: self.watched,
            sightings,
            vlan_tagged: self.vlan_tagged,
            snapped: self.snapped,
            truncated_at: self.truncated_at,
        }
    }
}

/// Add the question names of a DNS message to a flow.
fn dns_names(flow: &mut Flow, message: &[u8]) {
    let Ok(packet) = simple_dns::Packet::parse(message) else {
        return;
    };
    for q in &packet.questions {
        if flow.dns_names.len() >= MAX_NAMES_PER_FLOW {
            return;
        }
        let name = q.qname.to_string();
        if let Err(pos) = flow.dns_names.binary_search(&name) {
            flow.dns_names.insert(pos, name);
        }
    }
}

/// Whether a TCP payload starts with a TLS handshake record, as a TLS
/// client's first flight does: content type 22, version 3.x (SSL 3.0 to
/// TLS 1.3's legacy field), a plausible length, and a ClientHello when the
/// handshake type is there.
pub fn is_tls_handshake(payload: &[u8]) -> bool {
    let [22, 3, minor, hi, lo, rest @ ..] = payload else {
        return false;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    *minor <= 4 && (1..=(1 << 14) + 2048).contains(&len) && rest.first().is_none_or(|t| *t == 1)
}

/// Offsets in a frame of the fields a watched MAC is named by (worked out
/// only for frames where one was found).
#[derive(Debug, Clone, Default)]
struct Layout {
    link_src: Option<usize>,
    link_dst: Option<usize>,
    /// ARP with 6-byte hardware addresses: (sender's, target's).
    arp: Option<(usize, usize)>,
    /// Start of the IPv6 header.
    ipv6: Option<usize>,
    /// Other named fields: (start, end, place).
    ranges: Vec<(usize, usize, Place)>,
}

impl Layout {
    fn of(frame: &[u8], s: &LaxSlicedPacket<'_>) -> Layout {
        let at = |part: &[u8]| (part.as_ptr() as usize).wrapping_sub(frame.as_ptr() as usize);
        let mut l = Layout::default();
        if let Some(LinkSlice::Ethernet2(e)) = &s.link {
            let start = at(e.slice());
            l.link_dst = Some(start);
            l.link_src = Some(start + 6);
        }
        match &s.net {
            Some(LaxNetSlice::Arp(arp)) => {
                let start = at(arp.slice());
                let (hlen, plen) = (
                    usize::from(arp.hw_addr_size()),
                    usize::from(arp.proto_addr_size()),
                );
                if hlen == 6 {
                    l.arp = Some((start + 8, start + 8 + hlen + plen));
                }
            }
            Some(LaxNetSlice::Ipv4(ip)) => {
                let p = ip.payload();
                if p.ip_number.0 == 17 {
                    l.dhcp(at(p.payload), p.payload);
                }
            }
            Some(LaxNetSlice::Ipv6(ip)) => {
                l.ipv6 = Some(at(ip.header().slice()));
                let p = ip.payload();
                if p.ip_number.0 == 58 {
                    l.ndp(at(p.payload), p.payload);
                }
            }
            None => {}
        }
        l
    }

    /// DHCP (BOOTP) in a UDP datagram `udp` at `base`: `chaddr`, and every
    /// client identifier option.
    fn dhcp(&mut self, base: usize, udp: &[u8]) {
        let ports = |i: usize| udp.get(i..i + 2).map(|p| u16::from_be_bytes([p[0], p[1]]));
        let is_bootp = |p: Option<u16>| matches!(p, Some(67 | 68));
        if !(is_bootp(ports(0)) && is_bootp(ports(2))) {
            return;
        }
        let base = base + 8;
        let msg = udp.get(8..).unwrap_or(&[]);
        self.ranges.push((base + 28, base + 44, Place::DhcpChaddr));
        // Options follow the 236-byte fixed part and the magic cookie.
        if msg.get(236..240) != Some(&[99, 130, 83, 99]) {
            return;
        }
        let mut i = 240;
        while let Some(&code) = msg.get(i) {
            match code {
                0 => i += 1,
                255 => break,
                _ => {
                    let Some(&len) = msg.get(i + 1) else { break };
                    let (start, end) = (i + 2, i + 2 + usize::from(len));
                    if code == 61 {
                        self.ranges.push((
                            base + start,
                            base + end.min(msg.len()),
                            Place::DhcpClientId,
                        ));
                    }
                    i = end;
                }
            }
        }
    }

    /// Neighbour discovery (`icmp` at `base`): its link-layer address
    /// options.
    fn ndp(&mut self, base: usize, icmp: &[u8]) {
        // Where options start, per message type (RFC 4861).
        let fixed = match icmp.first() {
            Some(133) => 8,
            Some(134) => 16,
            Some(135 | 136) => 24,
            Some(137) => 40,
            _ => return,
        };
        let mut i = fixed;
        while let (Some(&kind), Some(&len)) = (icmp.get(i), icmp.get(i + 1)) {
            let len = usize::from(len) * 8;
            if len == 0 {
                break;
            }
            if kind == 1 || kind == 2 {
                self.ranges.push((
                    base + i + 2,
                    base + (i + len).min(icmp.len()),
                    Place::NdpLinkLayerOption,
                ));
            }
            i += len;
        }
    }

    fn place(&self, offset: usize, eui64: bool) -> Place {
        if eui64 {
            return match self.ipv6 {
                Some(ip) if offset == ip + 16 => Place::Ipv6Source,
                Some(ip) if offset == ip + 32 => Place::Ipv6Destination,
                _ => Place::Eui64Elsewhere,
            };
        }
        if Some(offset) == self.link_src {
            return Place::EthernetSource;
        }
        if Some(offset) == self.link_dst {
            return Place::EthernetDestination;
        }
        match self.arp {
            Some((sender, _)) if offset == sender => return Place::ArpSender,
            Some((_, target)) if offset == target => return Place::ArpTarget,
            _ => {}
        }
        self.ranges
            .iter()
            .find(|(start, end, _)| (*start..*end).contains(&offset))
            .map_or(Place::RawBytes, |r| r.2)
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

/// A raw-IP frame that did not slice: damaged IP by its version nibble.
fn damaged_ip_or_undecodable(data: &[u8]) -> FlowKey {
    let protocol = match data.first().map(|b| b >> 4) {
        Some(4) => Protocol::DamagedIp { v6: false },
        Some(6) => Protocol::DamagedIp { v6: true },
        _ => Protocol::Undecodable,
    };
    FlowKey {
        protocol,
        ..undecodable()
    }
}

fn label(v6: bool, protocol: &Protocol, fragment: bool) -> usize {
    match (v6, protocol, fragment) {
        (false, _, true) => 5,
        (true, _, true) => 10,
        (false, Protocol::Tcp, _) => 1,
        (false, Protocol::Udp, _) => 2,
        (false, Protocol::Icmpv4 { .. }, _) => 3,
        (false, _, _) => 4,
        (true, Protocol::Tcp, _) => 6,
        (true, Protocol::Udp, _) => 7,
        (true, Protocol::Icmpv6 { .. }, _) => 8,
        (true, _, _) => 9,
    }
}

impl Analysis {
    /// Seconds from the capture's first packet to `ts`.
    pub fn offset(&self, ts: Timestamp) -> f64 {
        self.first.map_or(0.0, |f| ts.since(f))
    }

    /// Whether `mac` was looked for in every frame ([`Options::watch_macs`]).
    pub fn watched(&self, mac: MacAddr) -> bool {
        self.watched.contains(&mac)
    }
}

impl fmt::Display for Analysis {
    /// A summary: totals, per-protocol counts, source MACs, sightings.
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
                "  live capture: its last record, at byte {at}, was still being written; everything before it was read"
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
        if self.frames_without_mac > 0 {
            writeln!(
                f,
                "  {} frames without a link-layer source",
                self.frames_without_mac
            )?;
        }
        for s in &self.sightings {
            writeln!(
                f,
                "  watched MAC {} in the {} of {} frames from {}, first frame {} (+{:.3}s), byte {}",
                s.mac,
                s.place,
                s.frames,
                s.sender.map_or("an unknown sender".into(), |m| m.to_string()),
                s.first_frame,
                self.offset(s.first),
                s.first_offset
            )?;
        }
        Ok(())
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::synth::{self, capture, Station};
    use std::net::Ipv6Addr;

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
    fn watching(macs: &[MacAddr]) -> Options {
        Options {
            live: false,
            watch_macs: macs.to_vec(),
        }
    }
    fn live() -> Options {
        Options {
            live: true,
            watch_macs: Vec::new(),
        }
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
        assert_eq!(tcp.first_frame, 2);
        assert_eq!(tcp.payload, 100);
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
            &synth::dns_query(&["a-rather-long-name.example.org"; 20]),
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

    /// Where each record of a synthetic capture starts.
    fn record_starts(format: Format, f: &[(Timestamp, Vec<u8>)]) -> Vec<usize> {
        let header = capture(format, &[]).len();
        let mut starts = vec![header];
        for i in 1..=f.len() {
            starts.push(capture(format, &f[..i]).len());
        }
        starts
    }

    #[test]
    fn a_capture_cut_inside_a_record_is_an_error_with_its_offset() {
        for format in [Format::Pcap, Format::PcapNg] {
            let f = frames();
            let bytes = capture(format, &f);
            let starts = record_starts(format, &f);
            for cut in [
                bytes.len() - 1,
                bytes.len() - 60,
                starts[0] + 8,
                starts[2] + 3,
            ] {
                let last = *starts.iter().filter(|s| **s <= cut).max().unwrap();
                match analyse_bytes(&bytes[..cut]) {
                    Err(e @ Error::Truncated { offset, .. }) => {
                        assert_eq!(offset, last as u64, "{format:?} cut at {cut}: {e}");
                        assert!(e.is_damage());
                        assert!(e.to_string().contains(&format!("byte {last}")), "{e}");
                    }
                    other => panic!("{format:?} cut at {cut}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_live_capture_is_judged_up_to_its_partial_last_record() {
        for format in [Format::Pcap, Format::PcapNg] {
            let f = frames();
            let bytes = capture(format, &f);
            let starts = record_starts(format, &f);
            for (n, cut) in [(3, bytes.len() - 3), (1, starts[1] + 5), (0, starts[0] + 1)] {
                let a = analyse_bytes_with(&bytes[..cut], &live()).unwrap();
                assert_eq!(a.packets, n, "{format:?} cut at {cut}");
                assert_eq!(a.truncated_at, Some(starts[n as usize] as u64));
                assert!(a.to_string().contains("still being written"), "{a}");
            }
            // A capture that ends between records is whole, live or not.
            let a = analyse_bytes_with(&bytes[..starts[2]], &live()).unwrap();
            assert_eq!((a.packets, a.truncated_at), (2, None));
        }
    }

    #[test]
    fn corruption_is_an_error_even_when_live() {
        let f = frames();
        let bytes = capture(Format::Pcap, &f);
        let starts = record_starts(Format::Pcap, &f);
        // caplen of the second record: 1 GiB.
        let mut huge = bytes.clone();
        huge[starts[1] + 8..starts[1] + 12].copy_from_slice(&(1u32 << 30).to_le_bytes());
        for options in [Options::default(), live()] {
            match analyse_bytes_with(&huge, &options) {
                Err(e @ Error::Corrupt { offset, .. }) => {
                    assert_eq!(offset, starts[1] as u64, "{e}");
                    assert!(e.is_damage());
                }
                other => panic!("{other:?}"),
            }
        }
        // pcapng: a block whose trailing length disagrees.
        let ng = capture(Format::PcapNg, &f);
        let ng_starts = record_starts(Format::PcapNg, &f);
        let mut bad = ng.clone();
        let end = ng_starts[2];
        bad[end - 4..end].copy_from_slice(&12u32.to_le_bytes());
        for options in [Options::default(), live()] {
            match analyse_bytes_with(&bad, &options) {
                Err(Error::Corrupt { offset, detail, .. }) => {
                    assert_eq!(offset, ng_starts[1] as u64, "{detail}");
                }
                other => panic!("{other:?}"),
            }
        }
        // A packet on an interface that was never described.
        let mut orphan = ng.clone();
        orphan[ng_starts[0] + 8..ng_starts[0] + 12].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(analyse_bytes(&orphan), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn not_a_capture_is_a_clear_error() {
        let empty = analyse_bytes(&[]).unwrap_err();
        assert!(matches!(empty, Error::Empty { .. }), "{empty}");
        let text = analyse_bytes(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n").unwrap_err();
        assert!(matches!(text, Error::NotACapture { .. }), "{text}");
        assert!(!text.is_damage());
        assert!(text
            .to_string()
            .contains("expected a pcap or pcapng header"));
        let header = capture(Format::Pcap, &[]);
        let cut = analyse_bytes(&header[..10]).unwrap_err();
        assert!(matches!(cut, Error::TruncatedHeader { .. }), "{cut}");
        // A header and nothing else is a valid, empty capture.
        let a = analyse_bytes(&header).unwrap();
        assert_eq!((a.packets, a.flows.len()), (0, 0));
    }

    #[test]
    fn damaged_frames_are_counted_not_dropped() {
        let mut f = frames();
        f.push((at(40), vec![0xde, 0xad]));
        let mut bad_ip = guest().tcp_syn((ip("10.203.0.57"), 1), (ip("10.203.0.9"), 2));
        bad_ip[14] = 0x4f; // IHL says 60 bytes of header, far beyond the frame
        bad_ip.truncate(30);
        f.push((at(50), bad_ip));
        let mut bad_v6 = guest().udp((ip("fd00::57"), 1), (ip("fd00::1"), 2), b"x");
        bad_v6.truncate(30);
        f.push((at(60), bad_v6));
        let a = analyse_bytes(&capture(Format::Pcap, &f)).unwrap();
        assert_eq!(a.packets, 7);
        assert!(a.protocols["undecodable"].packets >= 1, "{a}");
        assert_eq!(a.protocols["damaged IP"].packets, 2, "{a}");
        let v6 = a
            .flows
            .iter()
            .find(|fl| fl.key.protocol == Protocol::DamagedIp { v6: true })
            .unwrap();
        assert!(v6.key.is_ipv6());
    }

    #[test]
    fn fuzzer_findings_give_a_verdict_not_a_panic() {
        // A damaged IPv6 extension chain: etherparse's iterator panicked.
        let crash = include_bytes!("../../testdata/fuzz-ipv6-ext-chain.pcap");
        // Its damaged frame comes first; a garbage record follows.
        let a = analyse_bytes_with(&crash[..102], &watching(&[nic()])).unwrap();
        assert!(a.packets >= 1);
        assert!(matches!(
            analyse_bytes_with(crash, &live()),
            Err(Error::Corrupt { offset: 102, .. })
        ));
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
        assert_eq!(
            synth::eui64_link_local(nic()),
            "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }

    // ---- how TCP connections begin ----

    #[test]
    fn tcp_openings_tell_tls_from_anything_else() {
        let g = guest();
        let (me, relay) = ((ip("10.203.0.57"), 40_000), (ip("10.203.0.1"), 5001));
        let hello = synth::tor_client_hello();
        assert!(is_tls_handshake(&hello));
        assert!(!is_tls_handshake(b"GET / HTTP/1.1\r\n"));
        assert!(!is_tls_handshake(&[23, 3, 3, 0, 10])); // application data
        let flow = |frames: Vec<Vec<u8>>| {
            let f: Vec<_> = frames
                .into_iter()
                .enumerate()
                .map(|(i, fr)| (at(i as i128), fr))
                .collect();
            analyse_bytes(&capture(Format::Pcap, &f)).unwrap().flows[0].clone()
        };
        let tls = flow(vec![
            g.tcp_syn(me, relay),
            g.tcp(me, relay, &hello),
            g.tcp(me, relay, b"x"),
        ]);
        assert_eq!((tls.tcp.tls, tls.tcp.not_tls), (1, 0));
        let http = flow(vec![
            g.tcp_syn(me, relay),
            g.tcp(me, relay, b"GET / HTTP/1.1\r\n"),
        ]);
        assert_eq!((http.tcp.tls, http.tcp.not_tls), (0, 1));
        let first = http.tcp.first_not_tls.unwrap();
        assert_eq!((first.frame, &first.head[..]), (2, &b"GET / HT"[..]));
        assert!(first.to_string().contains("47 45 54 20"), "{first}");
        // Port reuse: a second connection on the same flow is judged too.
        let reuse = flow(vec![
            g.tcp_syn(me, relay),
            g.tcp(me, relay, &hello),
            g.tcp_syn(me, relay),
            g.tcp(me, relay, b"plain"),
        ]);
        assert_eq!((reuse.tcp.tls, reuse.tcp.not_tls), (1, 1));
        let syn_only = flow(vec![g.tcp_syn(me, relay)]);
        assert_eq!(syn_only.tcp, TcpStarts::default());
        let before = flow(vec![g.tcp(me, relay, b"mid-stream")]);
        assert!(before.tcp.opened_before_capture);
        assert_eq!((before.tcp.tls, before.tcp.not_tls), (0, 0));
    }

    // ---- watched MACs ----

    fn sightings(f: &[(Timestamp, Vec<u8>)], format: Format) -> Vec<MacSighting> {
        analyse_bytes_with(&capture(format, f), &watching(&[nic()]))
            .unwrap()
            .sightings
    }

    fn places(s: &[MacSighting]) -> Vec<(Place, u64, usize)> {
        s.iter()
            .map(|s| (s.place, s.frames, s.first_offset))
            .collect()
    }

    #[test]
    fn the_mac_is_found_in_every_field_that_carries_it() {
        let g = guest();
        let spoofed = g.mac;
        let mut client_id = vec![1];
        client_id.extend_from_slice(&nic().0);
        let mut odd_id = vec![0xff, 0, 0, 0, 7];
        odd_id.extend_from_slice(&nic().0);
        let eui_ll = synth::eui64_link_local(nic());
        let eui_global: Ipv6Addr = {
            let mut a = eui_ll.octets();
            a[..8].copy_from_slice(&[0xfd, 0, 2, 3, 0, 0, 0, 0]);
            a.into()
        };
        let mut payload = vec![0x17u8; 40];
        payload[13..19].copy_from_slice(&nic().0);
        // A frame, and every (place, offset) the MAC must be found at.
        type Case = (Vec<u8>, Vec<(Place, usize)>);
        let cases: Vec<Case> = vec![
            (
                Station::new(nic(), bridge().mac).dhcp_discover(),
                vec![
                    (Place::EthernetSource, 6),
                    (Place::DhcpChaddr, 14 + 20 + 8 + 28),
                ],
            ),
            (
                g.arp_request_as(
                    nic(),
                    Ipv4Addr::new(10, 203, 0, 57),
                    Ipv4Addr::new(10, 203, 0, 1),
                ),
                vec![(Place::ArpSender, 22)],
            ),
            (
                g.dhcp_discover_with(nic(), None),
                vec![(Place::DhcpChaddr, 70)],
            ),
            (
                g.dhcp_discover_with(spoofed, Some(&client_id)),
                vec![(Place::DhcpClientId, 14 + 20 + 8 + 240 + 3 + 3)],
            ),
            (
                g.dhcp_discover_with(spoofed, Some(&odd_id)),
                vec![(Place::DhcpClientId, 14 + 20 + 8 + 240 + 3 + 2 + 5)],
            ),
            (
                g.router_solicitation(eui_ll),
                vec![(Place::Ipv6Source, 14 + 16)],
            ),
            (
                g.udp((ip("fd00::57"), 1), (IpAddr::V6(eui_global), 2), b"x"),
                vec![(Place::Ipv6Destination, 14 + 32)],
            ),
            (
                g.neighbour_solicitation(Ipv6Addr::UNSPECIFIED, eui_global, None),
                vec![(Place::Eui64Elsewhere, 14 + 40 + 8 + 8)],
            ),
            (
                g.mld_report("fe80::1".parse().unwrap(), eui_global),
                vec![(Place::Eui64Elsewhere, 14 + 40 + 8 + 4 + 8)],
            ),
            (
                g.neighbour_solicitation(
                    "fe80::1".parse().unwrap(),
                    "fe80::2".parse().unwrap(),
                    Some(nic()),
                ),
                vec![(Place::NdpLinkLayerOption, 14 + 40 + 24 + 2)],
            ),
            (
                g.tcp((ip("10.203.0.57"), 1), (ip("10.203.0.1"), 5001), &payload),
                vec![(Place::RawBytes, 14 + 20 + 20 + 13)],
            ),
            (
                g.tcp_vlan(
                    3,
                    (ip("10.203.0.57"), 1),
                    (ip("10.203.0.1"), 5001),
                    &payload,
                ),
                vec![(Place::RawBytes, 18 + 20 + 20 + 13)],
            ),
            (
                g.tcp(
                    (ip("10.203.0.57"), 1),
                    (ip("10.203.0.1"), 5001),
                    b"nothing here",
                ),
                vec![],
            ),
        ];
        for (i, (frame, want)) in cases.into_iter().enumerate() {
            for format in [Format::Pcap, Format::PcapNg] {
                let s = sightings(&[(at(i as i128), frame.clone())], format);
                let got: Vec<(Place, usize)> =
                    s.iter().map(|s| (s.place, s.first_offset)).collect();
                let mut want = want.clone();
                want.sort();
                let mut got_sorted = got.clone();
                got_sorted.sort();
                assert_eq!(got_sorted, want, "case {i} ({format:?}): {s:#?}");
                assert!(s.iter().all(|s| s.first_frame == 1 && s.mac == nic()));
            }
        }
    }

    #[test]
    fn sightings_are_counted_per_place_and_sender() {
        let unspoofed = Station::new(nic(), bridge().mac);
        let to_guest = Station::new(bridge().mac, nic());
        let f = vec![
            (at(0), unspoofed.dhcp_discover()),
            (
                at(1),
                to_guest.tcp((ip("10.203.0.1"), 5001), (ip("10.203.0.57"), 1), b"x"),
            ),
            (
                at(2),
                unspoofed.tcp((ip("10.203.0.57"), 1), (ip("10.203.0.1"), 5001), b"y"),
            ),
        ];
        let s = sightings(&f, Format::Pcap);
        assert_eq!(
            places(&s),
            [
                (Place::EthernetSource, 2, 6),
                (Place::DhcpChaddr, 1, 70),
                (Place::EthernetDestination, 1, 0)
            ]
        );
        assert_eq!(s[0].sender, Some(nic()));
        assert_eq!(s[2].sender, Some(bridge().mac));
        assert_eq!((s[0].first, s[0].last), (at(0), at(2)));
    }

    #[test]
    fn the_chunked_search_finds_what_a_per_frame_search_finds() {
        // Enough frames to cross several 1 MiB scan stretches and 8 MiB
        // windows, with the MAC at every offset a frame can hold it,
        // including across stretch boundaries.
        let g = guest();
        let mut f = Vec::new();
        let mut expected = 0u64;
        for i in 0..12_000usize {
            let mut payload = vec![(i % 251) as u8; 700 + i % 37];
            let k = (i * 7) % (payload.len() - 6);
            if i % 3 != 0 {
                payload[k..k + 6].copy_from_slice(&nic().0);
                expected += 1;
            }
            f.push((
                at(i as i128),
                g.udp((ip("10.203.0.57"), 1), (ip("10.203.0.1"), 2), &payload),
            ));
        }
        let naive = f
            .iter()
            .filter(|(_, fr)| memmem::find(fr, &nic().0).is_some())
            .count() as u64;
        assert_eq!(naive, expected);
        for format in [Format::Pcap, Format::PcapNg] {
            let bytes = capture(format, &f);
            assert!(bytes.len() > 2 * WINDOW / 2);
            let from_bytes = analyse_bytes_with(&bytes, &watching(&[nic()])).unwrap();
            assert_eq!(
                places(&from_bytes.sightings)
                    .iter()
                    .map(|p| p.1)
                    .sum::<u64>(),
                expected
            );
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("big.pcap");
            std::fs::write(&path, &bytes).unwrap();
            let from_file = analyse_path_with(&path, &watching(&[nic()])).unwrap();
            assert_eq!(from_file.sightings, from_bytes.sightings);
            assert_eq!(from_file.flows, from_bytes.flows);
            let from_reader =
                analyse_reader_with(&bytes[..], "<memory>", &watching(&[nic()])).unwrap();
            assert_eq!(from_reader.sightings, from_bytes.sightings);
        }
    }

    // ---- the record walk against the previous reader (pcap-parser) ----

    /// Nanoseconds, link type, frame, original length.
    type Record = (i128, u16, Vec<u8>, u32);

    /// (nanoseconds, link type, frame, original length) of every packet,
    /// as pcap-parser's streaming reader (the analysis's reader before the
    /// in-place walk) sees them; stops at the first incomplete record.
    fn reference_records(data: &[u8]) -> Vec<Record> {
        use pcap_parser::pcapng::Block;
        use pcap_parser::traits::PcapNGPacketBlock;
        use pcap_parser::{PcapBlockOwned, PcapError};
        // A capture cut inside its first block has no records.
        let Ok(mut reader) = pcap_parser::create_reader(1 << 16, data) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut legacy = None;
        let mut ifaces: Vec<(u16, u64, i64)> = Vec::new();
        loop {
            let incomplete = match reader.next() {
                Ok((len, block)) => {
                    match block {
                        PcapBlockOwned::LegacyHeader(h) => {
                            legacy = Some((h.network.0 as u16, h.is_nanosecond_precision()))
                        }
                        PcapBlockOwned::Legacy(b) => {
                            let (lt, ns) = legacy.unwrap();
                            let frac = if ns {
                                b.ts_usec as i128
                            } else {
                                b.ts_usec as i128 * 1000
                            };
                            out.push((
                                b.ts_sec as i128 * 1_000_000_000 + frac,
                                lt,
                                b.data.to_vec(),
                                b.origlen,
                            ));
                        }
                        PcapBlockOwned::NG(Block::SectionHeader(_)) => ifaces.clear(),
                        PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => ifaces.push((
                            idb.linktype.0 as u16,
                            idb.ts_resolution().unwrap_or(1_000_000),
                            idb.ts_offset(),
                        )),
                        PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                            let (lt, units, offset) = ifaces[epb.if_id as usize];
                            let raw = ((epb.ts_high as u64) << 32 | epb.ts_low as u64) as i128;
                            let units = units as i128;
                            let ns = raw / units * 1_000_000_000
                                + raw % units * 1_000_000_000 / units
                                + offset as i128 * 1_000_000_000;
                            out.push((ns, lt, epb.packet_data().to_vec(), epb.origlen));
                        }
                        _ => {}
                    }
                    reader.consume(len);
                    false
                }
                Err(PcapError::Incomplete(_)) => true,
                Err(_) => break,
            };
            if incomplete {
                if reader.reader_exhausted() {
                    break;
                }
                reader.refill().unwrap();
            }
        }
        out
    }

    fn walked_records(data: &[u8]) -> Vec<Record> {
        let Header::Ok(mut walker, mut at) = Walker::start(data) else {
            panic!("not a capture")
        };
        let mut out = Vec::new();
        while at < data.len() {
            match walker.next(&data[at..]) {
                Ok((len, packet)) => {
                    if let Some(p) = packet {
                        assert_eq!(&data[at + p.data_at..][..p.data.len()], p.data);
                        out.push((p.ts.as_nanos(), p.linktype, p.data.to_vec(), p.orig_len));
                    }
                    at += len;
                }
                Err(Stop::Incomplete { .. }) => break,
                Err(Stop::Corrupt(e)) => panic!("{e}"),
            }
        }
        out
    }

    /// The same pcap with nanosecond timestamps.
    fn pcap_nanos(le: &[u8]) -> Vec<u8> {
        let mut out = le.to_vec();
        out[..4].copy_from_slice(&0xa1b2_3c4du32.to_le_bytes());
        let mut at = 24;
        while at + 16 <= out.len() {
            let usec = u32::from_le_bytes(out[at + 4..at + 8].try_into().unwrap());
            // Add nanoseconds so the two resolutions can be told apart.
            out[at + 4..at + 8].copy_from_slice(&(usec * 1000 + 123).to_le_bytes());
            let caplen = u32::from_le_bytes(out[at + 8..at + 12].try_into().unwrap()) as usize;
            at += 16 + caplen;
        }
        out
    }

    /// The same pcap written big-endian.
    fn pcap_big_endian(le: &[u8]) -> Vec<u8> {
        let mut out = le.to_vec();
        let swap = |b: &mut [u8]| b.reverse();
        swap(&mut out[0..4]);
        swap(&mut out[4..6]);
        swap(&mut out[6..8]);
        for f in [8, 12, 16, 20] {
            swap(&mut out[f..f + 4]);
        }
        let mut at = 24;
        while at + 16 <= out.len() {
            let caplen = u32::from_le_bytes(out[at + 8..at + 12].try_into().unwrap()) as usize;
            for f in 0..4 {
                swap(&mut out[at + 4 * f..at + 4 * f + 4]);
            }
            at += 16 + caplen;
        }
        out
    }

    /// The same pcapng (as [`synth::capture`] writes it) big-endian.
    fn pcapng_big_endian(le: &[u8]) -> Vec<u8> {
        let mut out = le.to_vec();
        let mut at = 0;
        while at + 12 <= out.len() {
            let kind = u32::from_le_bytes(out[at..at + 4].try_into().unwrap());
            let len = u32::from_le_bytes(out[at + 4..at + 8].try_into().unwrap()) as usize;
            let b = &mut out[at..at + len];
            let words: &[usize] = match kind {
                0x0A0D_0D0A => &[0, 4, 8, len - 4],
                1 => &[0, 4, len - 4],
                6 => &[0, 4, 8, 12, 16, 20, 24, len - 4],
                _ => panic!("block {kind:#x}"),
            };
            for w in words {
                b[*w..*w + 4].reverse();
            }
            match kind {
                0x0A0D_0D0A => {
                    b[12..14].reverse();
                    b[14..16].reverse();
                    b[16..24].reverse();
                }
                1 => {
                    b[8..10].reverse();
                    b[10..12].reverse();
                    b[12..16].reverse();
                    // Options: code and length are 16-bit; if_tsresol's
                    // value is one byte.
                    let mut o = 16;
                    while o + 4 <= len - 4 {
                        let vlen = u16::from_le_bytes([b[o + 2], b[o + 3]]) as usize;
                        b[o..o + 2].reverse();
                        b[o + 2..o + 4].reverse();
                        o += 4 + vlen.div_ceil(4) * 4;
                        if vlen == 0 {
                            break;
                        }
                    }
                }
                _ => {}
            }
            at += len;
        }
        out
    }

    #[test]
    fn the_walk_reads_what_pcap_parser_reads_in_every_format() {
        let mut f = frames();
        f.push((
            at(1),
            guest().tcp_vlan(5, (ip("10.203.0.57"), 1), (ip("10.203.0.9"), 443), b"v"),
        ));
        f.push((at(2), guest().router_solicitation(Ipv6Addr::UNSPECIFIED)));
        let pcap = capture(Format::Pcap, &f);
        let ng = capture(Format::PcapNg, &f);
        let variants = [
            ("pcap us LE", pcap.clone()),
            ("pcap ns LE", pcap_nanos(&pcap)),
            ("pcap us BE", pcap_big_endian(&pcap)),
            ("pcap ns BE", pcap_big_endian(&pcap_nanos(&pcap))),
            ("pcapng LE", ng.clone()),
            ("pcapng BE", pcapng_big_endian(&ng)),
        ];
        let whole = analyse_bytes(&pcap).unwrap();
        for (name, bytes) in &variants {
            let reference = reference_records(bytes);
            assert_eq!(reference.len(), f.len(), "{name}");
            assert_eq!(walked_records(bytes), reference, "{name}");
            // And every prefix: the same records before the cut.
            for cut in 1..bytes.len() {
                if Walker::start(&bytes[..cut]) == Header::Incomplete {
                    continue;
                }
                assert_eq!(
                    walked_records(&bytes[..cut]),
                    reference_records(&bytes[..cut]),
                    "{name} cut at {cut}"
                );
            }
            let a = analyse_bytes(bytes).unwrap();
            assert_eq!(a.packets, whole.packets, "{name}");
            assert_eq!(a.protocols, whole.protocols, "{name}");
            let keys = |a: &Analysis| {
                a.flows
                    .iter()
                    .map(|f| (f.key, f.packets, f.bytes))
                    .collect::<Vec<_>>()
            };
            assert_eq!(keys(&a), keys(&whole), "{name}");
        }
        // Nanoseconds are kept, not rounded.
        let ns = analyse_bytes(&variants[1].1).unwrap();
        assert_eq!(ns.first.unwrap().nanos % 1000, 123);
    }

    #[test]
    fn pcapng_timestamp_resolutions_and_offsets_are_applied() {
        // An interface with if_tsresol 2^-10 and if_tsoffset 100 s: a case
        // pcap-parser gets wrong (it ignores power-of-two resolutions).
        let mut ng = capture(Format::PcapNg, &frames()[..1]);
        let shb = u32::from_le_bytes(ng[4..8].try_into().unwrap()) as usize;
        let idb_len = u32::from_le_bytes(ng[shb + 4..shb + 8].try_into().unwrap()) as usize;
        let mut idb = ng[shb..shb + idb_len].to_vec();
        // Replace the options: if_tsresol = 0x8a, if_tsoffset = 100.
        idb.truncate(16);
        idb.extend_from_slice(&[9, 0, 1, 0, 0x8a, 0, 0, 0]);
        idb.extend_from_slice(&[14, 0, 8, 0]);
        idb.extend_from_slice(&100i64.to_le_bytes());
        idb.extend_from_slice(&[0, 0, 0, 0]);
        let len = (idb.len() + 4) as u32;
        idb[4..8].copy_from_slice(&len.to_le_bytes());
        idb.extend_from_slice(&len.to_le_bytes());
        let mut epb = ng.split_off(shb + idb_len);
        // Timestamp 3 * 1024 + 512 units: 3.5 s.
        epb[12..16].copy_from_slice(&0u32.to_le_bytes());
        epb[16..20].copy_from_slice(&(3 * 1024 + 512u32).to_le_bytes());
        ng.truncate(shb);
        ng.extend_from_slice(&idb);
        ng.extend_from_slice(&epb);
        let a = analyse_bytes(&ng).unwrap();
        assert_eq!(
            a.first,
            Some(Timestamp {
                secs: 103,
                nanos: 500_000_000
            })
        );
    }

    #[test]
    fn files_larger_than_a_window_and_huge_blocks_read_as_in_memory() {
        // A 9 MiB custom block (skipped) in the middle of a pcapng capture,
        // larger than the mapped window.
        let f = frames();
        let mut ng = capture(Format::PcapNg, &f[..2]);
        let body = 9 << 20;
        let len = (12 + body) as u32;
        ng.extend_from_slice(&0x0000_0BADu32.to_le_bytes());
        ng.extend_from_slice(&len.to_le_bytes());
        ng.extend(std::iter::repeat_n(0u8, body));
        ng.extend_from_slice(&len.to_le_bytes());
        let tail = capture(Format::PcapNg, &f[2..]);
        let header = capture(Format::PcapNg, &[]).len();
        ng.extend_from_slice(&tail[header..]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.pcapng");
        std::fs::write(&path, &ng).unwrap();
        let a = analyse_path(&path).unwrap();
        let b = analyse_bytes(&ng).unwrap();
        assert_eq!(a.packets, 4);
        assert_eq!(a.flows, b.flows);
        // Cut inside the huge block: an error from the file as from memory.
        std::fs::write(&path, &ng[..ng.len() / 2]).unwrap();
        let e = analyse_path(&path).unwrap_err();
        assert!(matches!(e, Error::Truncated { .. }), "{e}");
        let a = analyse_path_with(&path, &live()).unwrap();
        assert_eq!(a.packets, 2);
    }
}
