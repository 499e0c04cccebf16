//! What a network observer on the LAN can see of the guest: a fingerprint
//! of a capture, and the comparison of two fingerprints.
//!
//! A derivative whose machines can be told apart on the LAN from other
//! users of the base system shrinks everyone's anonymity set. A
//! [`Fingerprint`] keeps what tells one system from another and drops what
//! changes from boot to boot of the same system: ports, times, counts,
//! random bytes, addresses (and the random part of a spoofed MAC), which
//! relays Tor chose, and the values of names (a DHCP hostname is recorded
//! as "sent", never as what it says).
//!
//! What it records, from the frames the guest sent (every source MAC that
//! is not one of the lab's):
//! - `protocols`: every protocol the guest speaks at all (ARP, IPv4, IPv6,
//!   TCP, UDP, ICMP, and by port or payload DHCP, DNS, mDNS, LLMNR, SSDP,
//!   NetBIOS, NTP, TLS, ...; see [`kind_of_udp`] and [`compare::describe`]);
//! - `first_flows`: those kinds in the order they first appear;
//! - `[mac]`: the MAC policy: one address or several, vendor part (OUI)
//!   kept or replaced relative to the NIC's configured address, the
//!   locally-administered bit;
//! - `[[dhcp]]`: each distinct DHCP message: its type (and for a REQUEST,
//!   the client's state), option codes in order, parameter request list,
//!   client identifier kind, whether a hostname, vendor class or FQDN is
//!   sent, the broadcast flag, the maximum message size;
//! - `arp`: what ARP the guest does (requests, probes, announcements,
//!   replies);
//! - `[[ip]]`: per kind of traffic, the TTL (hop limit), DF bit, TOS
//!   (traffic class) and IP ID behaviour (zero, incrementing per flow, one
//!   shared counter, random);
//! - `[[tcp_syn]]`: each distinct SYN, p0f-style: window, MSS, window
//!   scale, SACK permitted, timestamps, ECN, the option order;
//! - `[[tls]]`: each distinct TLS ClientHello (Tor's link handshake and any
//!   other): a JA4 digest and its parts in order (versions, ciphers,
//!   extensions, groups, point formats, signature algorithms, ALPN), GREASE
//!   values left out.
//!
//! Parsing: frames with `etherparse`'s lax slicer, TLS with `tls-parser`.
//! DHCP options and TCP options are walked by hand: the order of options is
//! the fingerprint, and `dhcproto` keeps DHCP options in a map (order
//! lost) while `etherparse`'s TCP option iterator stops at the first kind
//! it does not know. Both walks check every length against the slice.
//!
//! [`compare`] says how a capture differs from a baseline; its doc lists
//! which fields are compared and with what tolerance.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use etherparse::{LaxNetSlice, LaxSlicedPacket, LinkSlice, TransportSlice};
use pcap_parser::pcapng::Block;
use pcap_parser::traits::{PcapNGPacketBlock, PcapReaderIterator};
use pcap_parser::{Linktype, PcapBlockOwned, PcapError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::analysis::MacAddr;

pub mod compare;
pub use compare::{compare, Comparison, Finding, Outcome};

/// The version of the TOML layout; a baseline of another version is
/// refused rather than misread.
pub const FORMAT: u32 = 1;

/// Read buffer of the capture reader; also the largest record read without
/// growing it.
const BUFFER: usize = 1 << 20;
/// A record larger than this is corruption, not a frame.
const MAX_RECORD: usize = 64 << 20;
/// Bytes of a TCP stream kept to find its first message (a ClientHello
/// with a post-quantum key share is about 1.8 KB; TLS records are at most
/// 16 KiB plus a header).
const MAX_STREAM_PREFIX: usize = 16 * 1024 + 5;
/// TCP streams whose first message is still awaited; more at once is a
/// flood, and later ones go unclassified rather than exhaust memory.
const MAX_PENDING_STREAMS: usize = 4096;
/// Flows remembered for their kind; beyond this new flows still count for
/// protocols and IP behaviour, but not for stream classification.
const MAX_FLOWS: usize = 1 << 18;
/// IP IDs kept per flow and flows kept per kind for the IP ID behaviour.
const MAX_IDS_PER_FLOW: usize = 32;
const MAX_ID_FLOWS: usize = 256;
/// Distinct DHCP messages, SYN signatures and ClientHellos kept: a flood
/// of variants is already a difference; more would only repeat it.
const MAX_VARIANTS: usize = 64;
/// How many kinds at the head of `first_flows` are compared (see
/// [`compare`]).
pub const FLOW_ORDER_COMPARED: usize = 4;

// ---------------------------------------------------------------------------
// The fingerprint

/// What an observer on the LAN sees of the guest in one capture. Serialized
/// as TOML with [`Fingerprint::to_toml`]; every list is in a stable order
/// (sorted, or in order of appearance where the order is the point).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fingerprint {
    /// [`FORMAT`].
    pub format: u32,
    /// Every protocol and kind of traffic the guest sent, sorted.
    pub protocols: Vec<String>,
    /// Kinds of traffic (no layers such as "IPv4") in the order they first
    /// appear, from the guest's first frame on (a TCP kind at its SYN).
    pub first_flows: Vec<String>,
    /// What ARP the guest does, sorted: `request`, `probe` (sender
    /// 0.0.0.0), `announcement` (a request for its own address), `reply`,
    /// `gratuitous reply`.
    pub arp: Vec<String>,
    pub mac: MacPolicy,
    /// Distinct DHCP messages, by kind then content.
    pub dhcp: Vec<DhcpMessage>,
    /// IP header behaviour per IP version and kind of traffic.
    pub ip: Vec<IpBehaviour>,
    /// Distinct TCP SYN signatures.
    pub tcp_syn: Vec<SynSignature>,
    /// Distinct TLS ClientHellos, by JA4 digest.
    pub tls: Vec<ClientHello>,
}

/// How the guest's source MAC relates to its NIC's configured one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacPolicy {
    /// Distinct source MACs the guest sent from (1 for a system that
    /// picks one address and keeps it; 0 when the capture has no frame
    /// from the guest).
    pub addresses: usize,
    /// The policy of each address, distinct and sorted (one entry for a
    /// system that keeps one policy).
    pub vendor: Vec<VendorPart>,
    pub locally_administered: Tristate,
}

/// The first three bytes (the OUI, which names the vendor) of the guest's
/// MAC against the NIC's configured MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VendorPart {
    /// Same vendor part, another device part (Tails' `macchanger -e`).
    Kept,
    /// Another vendor part.
    Replaced,
    /// The NIC's own address: not spoofed.
    Unchanged,
    /// No NIC MAC given.
    Unknown,
}

/// Yes, no, both (several addresses disagree), or not known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tristate {
    Yes,
    No,
    Mixed,
    Unknown,
}

/// One distinct DHCP message the guest sent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpMessage {
    /// `DISCOVER`, `REQUEST (selecting)`, `REQUEST (init-reboot)`,
    /// `REQUEST (renewing)`, `REQUEST (rebinding)`, `DECLINE`, `RELEASE`,
    /// `INFORM`, or `type N`.
    pub kind: String,
    /// Option codes in the order sent (pad and end left out).
    pub options: Vec<u8>,
    /// Option 55, in order.
    pub parameter_request_list: Vec<u8>,
    /// Option 61: `none`, `hardware address` (the frame's source MAC),
    /// `another hardware address`, `DUID` (RFC 4361), `string` (type 0)
    /// or `type N`.
    pub client_identifier: String,
    /// Option 12 sent (its value is never recorded).
    pub hostname: bool,
    /// Option 60 sent.
    pub vendor_class: bool,
    /// Option 81 sent.
    pub fqdn: bool,
    /// The BOOTP broadcast flag.
    pub broadcast_flag: bool,
    /// The client hardware address field is the frame's source MAC.
    pub chaddr_is_source_mac: bool,
    /// Option 57, 0 when not sent.
    pub max_message_size: u16,
}

/// IP header behaviour of one kind of traffic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpBehaviour {
    /// 4 or 6.
    pub version: u8,
    /// The kind of traffic (all TCP together as `TCP`).
    pub kind: String,
    /// TTL (IPv4) or hop limit (IPv6) values seen, sorted.
    pub ttl: Vec<u8>,
    /// TOS (IPv4) or traffic class (IPv6) values seen, sorted.
    pub tos: Vec<u8>,
    /// IPv4 only: `set` and/or `clear`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub df: Vec<String>,
    /// IPv4 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_id: Option<IpId>,
}

/// How the IPv4 identification field is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IpId {
    /// Always 0.
    Zero,
    /// One non-zero value throughout.
    Constant,
    /// Counts up within each flow, from an unrelated start per flow.
    PerFlow,
    /// One counter shared by every flow of the kind.
    Shared,
    Random,
    /// Too few packets to tell.
    Unknown,
}

/// A TCP SYN as p0f sees it (its TTL and DF are under `[[ip]]`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SynSignature {
    /// 4 or 6.
    pub version: u8,
    pub window: u16,
    /// 0 when absent.
    pub mss: u16,
    /// -1 when absent.
    pub window_scale: i16,
    pub sack_permitted: bool,
    pub timestamps: bool,
    /// ECE and CWR set (asks for ECN).
    pub ecn: bool,
    /// Options in order, p0f's names: `mss`, `nop`, `ws`, `sok`, `sack`,
    /// `ts`, `eol`, `?N` for another kind.
    pub options: String,
}

/// A TLS ClientHello, GREASE values left out.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientHello {
    /// The JA4 fingerprint (FoxIO's specification): sorted ciphers and
    /// extensions, so it survives extension shuffling.
    pub ja4: String,
    /// The hello's legacy version, e.g. 771 (0x0303, TLS 1.2).
    pub version: u16,
    /// The supported_versions extension's list, in order.
    pub supported_versions: Vec<u16>,
    /// Cipher suite ids in order.
    pub ciphers: Vec<u16>,
    /// Extension types in order.
    pub extensions: Vec<u16>,
    /// supported_groups, in order.
    pub groups: Vec<u16>,
    pub ec_point_formats: Vec<u8>,
    pub signature_algorithms: Vec<u16>,
    /// ALPN protocol names (public identifiers such as `h2`).
    pub alpn: Vec<String>,
    /// A server name is sent (its value, random for Tor, is not kept).
    pub sni: bool,
}

// ---------------------------------------------------------------------------
// Errors

/// Errors reading a capture or a baseline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name}: expected a pcap or pcapng capture, found an empty file")]
    Empty { source_name: String },
    #[error("{source_name}: expected a pcap or pcapng header, found neither (not a capture?)")]
    NotACapture { source_name: String },
    #[error("{source_name}: corrupt capture at byte {offset}: {detail}")]
    Corrupt {
        source_name: String,
        offset: u64,
        detail: String,
    },
    #[error("{source_name}: read error at byte {offset}")]
    Read { source_name: String, offset: u64 },
    #[error("{source_name}: link type {linktype} carries no Ethernet header; a fingerprint needs the guest's MAC (capture on the guest's link, e.g. QEMU's filter-dump)")]
    NotEthernet { source_name: String, linktype: i32 },
    #[error("{source_name}: expected a fingerprint in TOML")]
    Toml {
        source_name: String,
        #[source]
        source: toml::de::Error,
    },
    #[error("{source_name}: fingerprint format {found}, expected {FORMAT} (record the baseline again with this tailor)")]
    Format { source_name: String, found: u32 },
}

// ---------------------------------------------------------------------------
// Taking a fingerprint

/// Who is who on the link.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observer {
    /// The guest NIC's configured MAC, to judge the MAC policy.
    pub nic_mac: Option<MacAddr>,
    /// MACs of the lab's side of the link; every other source MAC is the
    /// guest's.
    pub lab_macs: BTreeSet<MacAddr>,
}

impl Observer {
    /// An observer of the Tailor lab: its bridge is the lab's side.
    pub fn lab(nic_mac: Option<MacAddr>) -> Self {
        Observer {
            nic_mac,
            lab_macs: [super::lab::BRIDGE_MAC].into(),
        }
    }
}

/// The fingerprint of a capture file.
pub fn fingerprint_path(path: &Path, observer: &Observer) -> Result<Fingerprint, Error> {
    fingerprint_story(&[path], observer)
}

/// The fingerprint of several captures read as one story, in order: e.g.
/// the captures of a scenario's checkpoints (power-on to the greeter, the
/// greeter to Tor ready) and then the scenario's own, so that a scenario
/// that starts from a saved state is still held to everything from
/// power-on.
pub fn fingerprint_story<P: AsRef<Path>>(
    paths: &[P],
    observer: &Observer,
) -> Result<Fingerprint, Error> {
    let mut pass = Pass::new(observer);
    for path in paths {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        pass.read(file, &path.display().to_string())?;
    }
    Ok(pass.finish())
}

/// The fingerprint of a capture held in memory (tests, the fuzzer).
pub fn fingerprint_bytes(data: &[u8], observer: &Observer) -> Result<Fingerprint, Error> {
    fingerprint_reader(data, "<memory>", observer)
}

/// The fingerprint of a capture from any reader; `source_name` is used in
/// errors. A capture cut inside a record is read up to the cut.
pub fn fingerprint_reader<R: Read + Send>(
    reader: R,
    source_name: &str,
    observer: &Observer,
) -> Result<Fingerprint, Error> {
    let mut pass = Pass::new(observer);
    pass.read(reader, source_name)?;
    Ok(pass.finish())
}

/// Stream every frame of a pcap or pcapng capture to `each` with its link
/// type, in file order. Constant memory; a record cut by the end of the
/// file ends the stream quietly (what came before is evidence).
fn for_each_frame<R: Read + Send>(
    reader: R,
    source_name: &str,
    mut each: impl FnMut(Linktype, &[u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut reader = match pcap_parser::create_reader(BUFFER, reader) {
        Ok(r) => r,
        Err(PcapError::Eof) => {
            return Err(Error::Empty {
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
    let mut legacy: Option<Linktype> = None;
    let mut interfaces: Vec<Linktype> = Vec::new();
    let mut capacity = BUFFER;
    loop {
        let offset = reader.consumed();
        let corrupt = |detail: String| Error::Corrupt {
            source_name: source_name.into(),
            offset: offset as u64,
            detail,
        };
        let read_error = || Error::Read {
            source_name: source_name.into(),
            offset: offset as u64,
        };
        match reader.next() {
            Ok((len, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => legacy = Some(h.network),
                    PcapBlockOwned::Legacy(b) => {
                        let linktype =
                            legacy.ok_or_else(|| corrupt("a record before the header".into()))?;
                        each(linktype, b.data)?;
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => interfaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push(idb.linktype)
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let linktype = *interfaces.get(epb.if_id as usize).ok_or_else(|| {
                            corrupt(format!(
                                "packet on interface {} but only {} described",
                                epb.if_id,
                                interfaces.len()
                            ))
                        })?;
                        each(linktype, epb.packet_data())?;
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let linktype = *interfaces
                            .first()
                            .ok_or_else(|| corrupt("packet before any interface".into()))?;
                        each(linktype, spb.packet_data())?;
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(len);
            }
            Err(PcapError::Eof | PcapError::UnexpectedEof) => return Ok(()),
            Err(PcapError::Incomplete(_)) => {
                let before = reader.data().len();
                reader.refill().map_err(|_| read_error())?;
                // A full buffer that still holds an incomplete record can
                // only be fixed by growing; otherwise this would spin.
                if reader.data().len() == before && !reader.reader_exhausted() {
                    capacity = grow(&mut *reader, capacity).ok_or_else(|| corrupt(too_large()))?;
                }
            }
            Err(PcapError::BufferTooSmall) => {
                capacity = grow(&mut *reader, capacity).ok_or_else(|| corrupt(too_large()))?;
                reader.refill().map_err(|_| read_error())?;
            }
            Err(PcapError::ReadError) => return Err(read_error()),
            Err(PcapError::HeaderNotRecognized) => {
                return Err(corrupt("a block that is not pcap or pcapng".into()))
            }
            Err(_) => return Err(corrupt("malformed block".into())),
        }
    }
}

fn too_large() -> String {
    format!("a record larger than {} MiB", MAX_RECORD >> 20)
}

fn grow(reader: &mut dyn PcapReaderIterator, capacity: usize) -> Option<usize> {
    let new = capacity * 2;
    (new <= MAX_RECORD && reader.grow(new)).then_some(new)
}

/// A guest flow: direction-sensitive addresses, protocol and ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowId {
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ports: (u16, u16),
}

/// A TCP stream whose first message is awaited.
struct Stream {
    /// Sequence number of the stream's first byte.
    base: u32,
    /// The stream from its first byte up to the first gap.
    bytes: Vec<u8>,
    /// Pieces beyond a gap, by offset from `base`, until it fills.
    ahead: BTreeMap<usize, Vec<u8>>,
}

/// Pieces held beyond a gap per stream; a stream that needs more is
/// reordered beyond what a LAN does, and later pieces are dropped.
const MAX_AHEAD: usize = 64;

impl Stream {
    fn new(base: u32) -> Self {
        Stream {
            base,
            bytes: Vec::new(),
            ahead: BTreeMap::new(),
        }
    }

    /// Add the piece at `offset`; whether the contiguous part grew. Each
    /// byte is copied once, whatever the order the pieces come in.
    fn add(&mut self, offset: usize, piece: &[u8]) -> bool {
        let before = self.bytes.len();
        if offset > before {
            if self.ahead.len() < MAX_AHEAD {
                let held = self.ahead.entry(offset).or_default();
                if held.len() < piece.len() {
                    *held = piece.to_vec();
                }
            }
            return false;
        }
        self.extend(offset, piece);
        while let Some(entry) = self.ahead.first_entry() {
            if *entry.key() > self.bytes.len() {
                break;
            }
            let (offset, piece) = entry.remove_entry();
            self.extend(offset, &piece);
        }
        self.bytes.len() > before
    }

    fn extend(&mut self, offset: usize, piece: &[u8]) {
        let overlap = self.bytes.len() - offset;
        if let Some(new) = piece.get(overlap..) {
            let room = MAX_STREAM_PREFIX - self.bytes.len();
            self.bytes.extend_from_slice(&new[..new.len().min(room)]);
        }
    }
}

/// IP header observations of one kind of traffic.
#[derive(Default)]
struct IpObserved {
    ttl: BTreeSet<u8>,
    tos: BTreeSet<u8>,
    df: BTreeSet<bool>,
    v4: bool,
    /// IDs per flow, in capture order.
    ids: HashMap<FlowId, Vec<u16>>,
    /// The previous packet of the kind: its flow and ID.
    last: Option<(FlowId, u16)>,
    /// Steps between consecutive packets of different flows: small ones
    /// and all.
    cross_small: u64,
    cross_total: u64,
    zero: u64,
    count: u64,
    first_id: Option<u16>,
    all_same: bool,
}

/// The state of one pass over a capture.
struct Pass<'o> {
    observer: &'o Observer,
    /// Index of the current frame in the capture.
    index: u64,
    /// Layers and kinds seen.
    protocols: BTreeSet<String>,
    /// Kind -> index of the frame that began its first flow.
    kind_first: HashMap<String, u64>,
    guest_macs: Vec<MacAddr>,
    /// Source MAC of the frame being read.
    frame_mac: MacAddr,
    arp: BTreeSet<String>,
    dhcp: BTreeSet<DhcpMessage>,
    ip: BTreeMap<(u8, String), IpObserved>,
    syns: BTreeSet<SynSignature>,
    hellos: BTreeSet<ClientHello>,
    /// Guest TCP flows: the index of their first frame and, once known,
    /// their kind ("" for a flow that sent no payload yet).
    tcp_flows: HashMap<FlowId, (u64, Option<String>)>,
    streams: HashMap<FlowId, Stream>,
}

impl<'o> Pass<'o> {
    fn new(observer: &'o Observer) -> Self {
        Pass {
            observer,
            index: 0,
            protocols: BTreeSet::new(),
            kind_first: HashMap::new(),
            guest_macs: Vec::new(),
            frame_mac: MacAddr([0; 6]),
            arp: BTreeSet::new(),
            dhcp: BTreeSet::new(),
            ip: BTreeMap::new(),
            syns: BTreeSet::new(),
            hellos: BTreeSet::new(),
            tcp_flows: HashMap::new(),
            streams: HashMap::new(),
        }
    }

    /// Every frame of one capture.
    fn read<R: Read + Send>(&mut self, reader: R, source_name: &str) -> Result<(), Error> {
        for_each_frame(reader, source_name, |linktype, data| {
            if linktype != Linktype::ETHERNET {
                return Err(Error::NotEthernet {
                    source_name: source_name.into(),
                    linktype: linktype.0,
                });
            }
            self.frame(data);
            Ok(())
        })
    }

    fn kind(&mut self, kind: &str, index: u64) {
        self.protocols.insert(kind.to_owned());
        let first = self.kind_first.entry(kind.to_owned()).or_insert(index);
        *first = (*first).min(index);
    }

    fn layer(&mut self, layer: &str) {
        if !self.protocols.contains(layer) {
            self.protocols.insert(layer.to_owned());
        }
    }

    fn frame(&mut self, data: &[u8]) {
        let index = self.index;
        self.index += 1;
        let Ok(sliced) = LaxSlicedPacket::from_ethernet(data) else {
            return;
        };
        let Some(LinkSlice::Ethernet2(eth)) = &sliced.link else {
            return;
        };
        let src_mac = MacAddr(eth.source());
        if self.observer.lab_macs.contains(&src_mac) {
            return;
        }
        self.frame_mac = src_mac;
        if !self.guest_macs.contains(&src_mac) && self.guest_macs.len() < MAX_VARIANTS {
            self.guest_macs.push(src_mac);
        }
        match &sliced.net {
            Some(LaxNetSlice::Arp(arp)) => {
                self.kind("ARP", index);
                let sender = arp.sender_protocol_addr();
                let target = arp.target_protocol_addr();
                let what = match arp.operation().0 {
                    1 if sender.iter().all(|b| *b == 0) => "probe",
                    1 if sender == target => "announcement",
                    1 => "request",
                    2 if sender == target => "gratuitous reply",
                    2 => "reply",
                    _ => "other operation",
                };
                self.arp.insert(what.into());
            }
            Some(LaxNetSlice::Ipv4(ip)) => {
                self.layer("IPv4");
                let h = ip.header();
                let payload = ip.payload();
                let fragment = h.more_fragments() || h.fragments_offset().value() != 0;
                let src = IpAddr::V4(h.source_addr());
                let dst = IpAddr::V4(h.destination_addr());
                let proto = payload.ip_number.0;
                let (kind, ports) = self.transport(
                    index,
                    src,
                    dst,
                    proto,
                    &sliced.transport,
                    payload.payload,
                    fragment,
                    false,
                );
                let flow = FlowId {
                    src,
                    dst,
                    proto,
                    ports,
                };
                let obs = self.ip.entry((4, kind)).or_default();
                obs.v4 = true;
                obs.ttl.insert(h.ttl());
                obs.tos.insert(h.dcp().value() << 2 | h.ecn().value());
                obs.df.insert(h.dont_fragment());
                obs.id(flow, h.identification());
            }
            Some(LaxNetSlice::Ipv6(ip)) => {
                self.layer("IPv6");
                let h = ip.header();
                let payload = ip.payload();
                let (kind, _) = self.transport(
                    index,
                    IpAddr::V6(h.source_addr()),
                    IpAddr::V6(h.destination_addr()),
                    payload.ip_number.0,
                    &sliced.transport,
                    payload.payload,
                    payload.fragmented,
                    true,
                );
                let obs = self.ip.entry((6, kind)).or_default();
                obs.ttl.insert(h.hop_limit());
                obs.tos.insert(h.traffic_class());
            }
            None => {
                let ether_type = sliced
                    .link_exts
                    .last()
                    .map(|ext| match ext.to_header() {
                        etherparse::LinkExtHeader::Vlan(v) => v.ether_type.0,
                        etherparse::LinkExtHeader::Macsec(_) => eth.ether_type().0,
                    })
                    .unwrap_or(eth.ether_type().0);
                let kind = match ether_type {
                    0x0800 => "IPv4 (undecodable)".to_owned(),
                    0x86dd => "IPv6 (undecodable)".to_owned(),
                    0x88cc => "LLDP".to_owned(),
                    0x888e => "EAPOL".to_owned(),
                    t if t < 0x0600 => "802.3 (LLC)".to_owned(),
                    t => format!("ethertype {t:#06x}"),
                };
                self.kind(&kind, index);
            }
        }
    }

    /// The kind of an IP packet's payload, recording what it shows; and
    /// its ports (0, 0 without). Later fragments carry no header of their
    /// own: they count as `IPv4 fragment`/`IPv6 fragment`.
    #[allow(clippy::too_many_arguments)]
    fn transport(
        &mut self,
        index: u64,
        src: IpAddr,
        dst: IpAddr,
        proto: u8,
        transport: &Option<TransportSlice<'_>>,
        payload: &[u8],
        fragment: bool,
        v6: bool,
    ) -> (String, (u16, u16)) {
        let v = if v6 { "IPv6" } else { "IPv4" };
        match (proto, transport) {
            (6, Some(TransportSlice::Tcp(tcp))) => {
                self.layer("TCP");
                let ports = (tcp.source_port(), tcp.destination_port());
                let flow = FlowId {
                    src,
                    dst,
                    proto,
                    ports,
                };
                self.tcp(index, flow, tcp, v6);
                ("TCP".into(), ports)
            }
            (17, Some(TransportSlice::Udp(udp))) => {
                self.layer("UDP");
                let ports = (udp.source_port(), udp.destination_port());
                let kind = kind_of_udp(ports, udp.payload());
                if kind == "DHCP" && !v6 {
                    if let Some(msg) = dhcp_message(udp.payload(), dst, self.frame_mac) {
                        if self.dhcp.len() < MAX_VARIANTS {
                            self.dhcp.insert(msg);
                        }
                    }
                }
                self.kind(kind, index);
                (kind.into(), ports)
            }
            (1, _) if !v6 && !fragment => {
                self.layer("ICMP");
                let kind = icmpv4_kind(payload.first().copied());
                self.kind(&kind, index);
                (kind, (0, 0))
            }
            (58, _) if v6 && !fragment => {
                self.layer("ICMPv6");
                let kind = icmpv6_kind(payload.first().copied());
                self.kind(&kind, index);
                (kind, (0, 0))
            }
            (2, _) if !v6 => {
                self.kind("IGMP", index);
                ("IGMP".into(), (0, 0))
            }
            _ if fragment => {
                let kind = format!("{v} fragment");
                self.kind(&kind, index);
                (kind, (0, 0))
            }
            (6 | 17, _) => {
                // A TCP or UDP header too short or damaged to read.
                let kind = format!("{v} damaged {}", if proto == 6 { "TCP" } else { "UDP" });
                self.kind(&kind, index);
                (kind, (0, 0))
            }
            (n, _) => {
                let kind = format!("IP protocol {n}");
                self.kind(&kind, index);
                (kind, (0, 0))
            }
        }
    }

    fn tcp(&mut self, index: u64, flow: FlowId, tcp: &etherparse::TcpSlice<'_>, v6: bool) {
        let known = self.tcp_flows.contains_key(&flow);
        if !known && self.tcp_flows.len() >= MAX_FLOWS {
            return;
        }
        if !known {
            self.tcp_flows.insert(flow, (index, None));
        }
        if tcp.syn() && !tcp.ack() {
            if self.syns.len() < MAX_VARIANTS {
                self.syns.insert(syn_signature(tcp, v6));
            }
            if !self.streams.contains_key(&flow) && self.streams.len() < MAX_PENDING_STREAMS {
                let undecided = self.tcp_flows.get(&flow).is_some_and(|f| f.1.is_none());
                if undecided {
                    self.streams
                        .insert(flow, Stream::new(tcp.sequence_number().wrapping_add(1)));
                }
            }
            return;
        }
        let payload = tcp.payload();
        if payload.is_empty() {
            return;
        }
        let Some(stream) = self.streams.get_mut(&flow) else {
            // No SYN in the capture (the flow began before it) or already
            // classified: nothing to learn from its bytes.
            return;
        };
        let offset = tcp.sequence_number().wrapping_sub(stream.base) as usize;
        if offset >= MAX_STREAM_PREFIX {
            return;
        }
        let end = payload.len().min(MAX_STREAM_PREFIX - offset);
        if !stream.add(offset, &payload[..end]) {
            return;
        }
        if let Some((kind, hello)) = classify_stream(flow.ports, &stream.bytes) {
            self.streams.remove(&flow);
            let start = self.tcp_flows.get(&flow).map_or(index, |f| f.0);
            if let Some(f) = self.tcp_flows.get_mut(&flow) {
                f.1 = Some(kind.to_owned());
            }
            if let Some(hello) = hello {
                if self.hellos.len() < MAX_VARIANTS {
                    self.hellos.insert(hello);
                }
            }
            self.kind(kind, start);
        }
    }

    fn finish(mut self) -> Fingerprint {
        // Streams that ended before their first message was complete.
        for (flow, stream) in std::mem::take(&mut self.streams) {
            let prefix = stream.bytes;
            if !prefix.is_empty() {
                let kind = if prefix.first() == Some(&0x16) {
                    "TLS (incomplete hello)"
                } else {
                    stream_kind_by_port(flow.ports).unwrap_or("TCP (other)")
                };
                let start = self.tcp_flows.get(&flow).map_or(0, |f| f.0);
                self.kind(kind, start);
            }
        }
        let mut order: Vec<(&String, &u64)> = self.kind_first.iter().collect();
        order.sort_by_key(|(k, i)| (**i, (*k).clone()));
        let first_flows = order.into_iter().map(|(k, _)| k.clone()).collect();
        Fingerprint {
            format: FORMAT,
            protocols: self.protocols.into_iter().collect(),
            first_flows,
            arp: self.arp.into_iter().collect(),
            mac: mac_policy(&self.guest_macs, self.observer.nic_mac),
            dhcp: self.dhcp.into_iter().collect(),
            ip: self
                .ip
                .into_iter()
                .map(|((version, kind), obs)| obs.behaviour(version, kind))
                .collect(),
            tcp_syn: self.syns.into_iter().collect(),
            tls: self.hellos.into_iter().collect(),
        }
    }
}

impl IpObserved {
    fn id(&mut self, flow: FlowId, id: u16) {
        self.count += 1;
        self.zero += u64::from(id == 0);
        match self.first_id {
            None => {
                self.first_id = Some(id);
                self.all_same = true;
            }
            Some(first) => self.all_same &= first == id,
        }
        if let Some((prev_flow, prev)) = self.last {
            if prev_flow != flow {
                self.cross_total += 1;
                self.cross_small += u64::from(small_step(prev, id));
            }
        }
        self.last = Some((flow, id));
        if self.ids.len() < MAX_ID_FLOWS || self.ids.contains_key(&flow) {
            let ids = self.ids.entry(flow).or_default();
            if ids.len() < MAX_IDS_PER_FLOW {
                ids.push(id);
            }
        }
    }

    /// Classify the IP ID. Steps within a flow tell a counter from random
    /// values; steps between packets of different flows tell one shared
    /// counter from a counter per flow. Each needs at least 3 steps, and
    /// 90 % of them small increments to count as a counter, so a reordered
    /// packet or a counter shared with an unseen flow does not flip it.
    fn ip_id(&self) -> IpId {
        if self.count == 0 {
            return IpId::Unknown;
        }
        if self.zero == self.count {
            return IpId::Zero;
        }
        if self.all_same && self.count >= 3 {
            return IpId::Constant;
        }
        let (mut small, mut total) = (0u64, 0u64);
        for ids in self.ids.values() {
            for w in ids.windows(2) {
                total += 1;
                small += u64::from(small_step(w[0], w[1]));
            }
        }
        let mostly = |small: u64, total: u64| small * 10 >= total * 9;
        if total >= 3 && !mostly(small, total) {
            return IpId::Random;
        }
        if self.cross_total < 3 {
            // Too few changes of flow to tell shared from per flow.
            return IpId::Unknown;
        }
        if mostly(self.cross_small, self.cross_total) {
            IpId::Shared
        } else if total >= 3 {
            IpId::PerFlow
        } else {
            IpId::Random
        }
    }

    fn behaviour(&self, version: u8, kind: String) -> IpBehaviour {
        IpBehaviour {
            version,
            kind,
            ttl: self.ttl.iter().copied().collect(),
            tos: self.tos.iter().copied().collect(),
            df: if self.v4 {
                self.df
                    .iter()
                    .map(|set| if *set { "set" } else { "clear" }.to_owned())
                    .collect()
            } else {
                Vec::new()
            },
            ip_id: self.v4.then(|| self.ip_id()),
        }
    }
}

/// A step of a counter: 1 to 64 up (a few packets of the same counter may
/// go to flows not in view).
fn small_step(prev: u16, next: u16) -> bool {
    (1..=64).contains(&next.wrapping_sub(prev))
}

/// What a TCP stream carries, from its first bytes: `None` until enough
/// has arrived to tell. A TLS stream is decided once its first handshake
/// message is complete (or proves not to be a ClientHello).
fn classify_stream(
    ports: (u16, u16),
    prefix: &[u8],
) -> Option<(&'static str, Option<ClientHello>)> {
    let first = *prefix.first()?;
    if first == 0x16 {
        if prefix.len() >= 2 && prefix[1] != 0x03 {
            return Some((stream_kind_by_port(ports).unwrap_or("TCP (other)"), None));
        }
        return match client_hello(prefix) {
            HelloParse::Hello(h) => Some(("TLS", Some(*h))),
            HelloParse::NeedMore if prefix.len() < MAX_STREAM_PREFIX => None,
            HelloParse::NeedMore | HelloParse::NotAHello => Some(("TLS", None)),
        };
    }
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"HEAD ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"CONNECT ",
        b"PATCH ",
        b"TRACE ",
    ];
    if METHODS.iter().any(|m| prefix.starts_with(m)) {
        return Some(("HTTP", None));
    }
    if METHODS.iter().any(|m| m.starts_with(prefix)) {
        return None;
    }
    if prefix.starts_with(b"SSH-") {
        return Some(("SSH", None));
    }
    Some((stream_kind_by_port(ports).unwrap_or("TCP (other)"), None))
}

/// Well-known TCP services by port (either end: the guest may answer).
fn stream_kind_by_port(ports: (u16, u16)) -> Option<&'static str> {
    let by = |p: u16| match p {
        53 => Some("DNS"),
        139 => Some("NetBIOS session"),
        445 => Some("SMB"),
        5355 => Some("LLMNR"),
        _ => None,
    };
    by(ports.1).or_else(|| by(ports.0))
}

/// The kind of a UDP datagram, by port (destination first, then source:
/// the guest may be answering), then by shape.
pub fn kind_of_udp(ports: (u16, u16), payload: &[u8]) -> &'static str {
    let by = |p: u16| match p {
        67 | 68 => Some("DHCP"),
        546 | 547 => Some("DHCPv6"),
        53 => Some("DNS"),
        5353 => Some("mDNS"),
        5355 => Some("LLMNR"),
        137 => Some("NetBIOS name service"),
        138 => Some("NetBIOS datagrams"),
        1900 => Some("SSDP"),
        123 => Some("NTP"),
        3702 => Some("WS-Discovery"),
        161 | 162 => Some("SNMP"),
        500 | 4500 => Some("IKE"),
        _ => None,
    };
    if let Some(kind) = by(ports.1).or_else(|| by(ports.0)) {
        return kind;
    }
    // WireGuard: a message type 1-4 followed by three zero bytes, and the
    // fixed size of the handshake messages.
    if payload.len() >= 4 && (1..=4).contains(&payload[0]) && payload[1..4] == [0, 0, 0] {
        let fixed = match payload[0] {
            1 => payload.len() == 148,
            2 => payload.len() == 92,
            3 => payload.len() == 64,
            _ => payload.len() >= 32 && payload.len().is_multiple_of(16),
        };
        if fixed {
            return "WireGuard";
        }
    }
    "UDP (other)"
}

fn icmpv4_kind(kind: Option<u8>) -> String {
    match kind {
        Some(0) => "ICMP echo reply".into(),
        Some(3) => "ICMP destination unreachable".into(),
        Some(5) => "ICMP redirect".into(),
        Some(8) => "ICMP echo request".into(),
        Some(11) => "ICMP time exceeded".into(),
        Some(13) => "ICMP timestamp request".into(),
        Some(14) => "ICMP timestamp reply".into(),
        Some(k) => format!("ICMP type {k}"),
        None => "ICMP (empty)".into(),
    }
}

fn icmpv6_kind(kind: Option<u8>) -> String {
    match kind {
        Some(1) => "ICMPv6 destination unreachable".into(),
        Some(128) => "ICMPv6 echo request".into(),
        Some(129) => "ICMPv6 echo reply".into(),
        Some(130) => "ICMPv6 MLD query".into(),
        Some(131) => "ICMPv6 MLD report".into(),
        Some(132) => "ICMPv6 MLD done".into(),
        Some(133) => "ICMPv6 router solicitation".into(),
        Some(134) => "ICMPv6 router advertisement".into(),
        Some(135) => "ICMPv6 neighbour solicitation".into(),
        Some(136) => "ICMPv6 neighbour advertisement".into(),
        Some(143) => "ICMPv6 MLDv2 report".into(),
        Some(k) => format!("ICMPv6 type {k}"),
        None => "ICMPv6 (empty)".into(),
    }
}

/// The MAC policy of the guest's source addresses.
fn mac_policy(macs: &[MacAddr], nic: Option<MacAddr>) -> MacPolicy {
    let vendor: BTreeSet<VendorPart> = macs
        .iter()
        .map(|m| match nic {
            None => VendorPart::Unknown,
            Some(nic) if *m == nic => VendorPart::Unchanged,
            Some(nic) if m.0[..3] == nic.0[..3] => VendorPart::Kept,
            Some(_) => VendorPart::Replaced,
        })
        .collect();
    let local: BTreeSet<bool> = macs.iter().map(|m| m.0[0] & 0x02 != 0).collect();
    let locally_administered = match (local.contains(&true), local.contains(&false)) {
        (true, true) => Tristate::Mixed,
        (true, false) => Tristate::Yes,
        (false, true) => Tristate::No,
        (false, false) => Tristate::Unknown,
    };
    MacPolicy {
        addresses: macs.len(),
        vendor: vendor.into_iter().collect(),
        locally_administered,
    }
}

// ---------------------------------------------------------------------------
// DHCP

/// Length of the fixed BOOTP part before the magic cookie.
const BOOTP_FIXED: usize = 236;
const DHCP_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// A DHCP message from a client, or `None` for anything else (a reply,
/// plain BOOTP, a damaged datagram).
fn dhcp_message(p: &[u8], dst: IpAddr, source_mac: MacAddr) -> Option<DhcpMessage> {
    if p.len() < BOOTP_FIXED + 4 || p[0] != 1 || p[BOOTP_FIXED..BOOTP_FIXED + 4] != DHCP_COOKIE {
        return None;
    }
    let flags = u16::from_be_bytes([p[10], p[11]]);
    let ciaddr = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let hlen = usize::from(p[2]).min(16);
    let chaddr = &p[28..28 + hlen];
    let mut options = Vec::new();
    let mut values: HashMap<u8, &[u8]> = HashMap::new();
    let mut rest = &p[BOOTP_FIXED + 4..];
    while let Some((&code, tail)) = rest.split_first() {
        match code {
            0 => rest = tail,
            255 => break,
            _ => {
                let Some((&len, tail)) = tail.split_first() else {
                    break;
                };
                let Some(value) = tail.get(..usize::from(len)) else {
                    // An option running past the datagram: keep its code,
                    // the order up to here is still what was sent.
                    options.push(code);
                    break;
                };
                options.push(code);
                values.entry(code).or_insert(value);
                rest = &tail[usize::from(len)..];
            }
        }
    }
    let msg_type = values.get(&53).and_then(|v| v.first().copied())?;
    let kind = match msg_type {
        1 => "DISCOVER".to_owned(),
        3 if !ciaddr.is_unspecified() => {
            if dst == IpAddr::V4(Ipv4Addr::BROADCAST) {
                "REQUEST (rebinding)".to_owned()
            } else {
                "REQUEST (renewing)".to_owned()
            }
        }
        3 if values.contains_key(&54) => "REQUEST (selecting)".to_owned(),
        3 if values.contains_key(&50) => "REQUEST (init-reboot)".to_owned(),
        3 => "REQUEST".to_owned(),
        4 => "DECLINE".to_owned(),
        7 => "RELEASE".to_owned(),
        8 => "INFORM".to_owned(),
        t => format!("type {t}"),
    };
    let client_identifier = match values.get(&61).map(|v| v.first()) {
        None => "none".to_owned(),
        Some(None) => "empty".to_owned(),
        Some(Some(1)) if values[&61][1..] == source_mac.0 => "hardware address".to_owned(),
        // Another MAC than the frame's: e.g. a client started before the
        // MAC was changed, which carries the real one.
        Some(Some(1)) => "another hardware address".to_owned(),
        Some(Some(255)) => "DUID".to_owned(),
        Some(Some(0)) => "string".to_owned(),
        Some(Some(t)) => format!("type {t}"),
    };
    let max_message_size = values
        .get(&57)
        .and_then(|v| v.get(..2))
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    Some(DhcpMessage {
        kind,
        options,
        parameter_request_list: values.get(&55).map_or_else(Vec::new, |v| v.to_vec()),
        client_identifier,
        hostname: values.contains_key(&12),
        vendor_class: values.contains_key(&60),
        fqdn: values.contains_key(&81),
        broadcast_flag: flags & 0x8000 != 0,
        chaddr_is_source_mac: chaddr == source_mac.0,
        max_message_size,
    })
}

// ---------------------------------------------------------------------------
// TCP SYN

fn syn_signature(tcp: &etherparse::TcpSlice<'_>, v6: bool) -> SynSignature {
    let mut names = Vec::new();
    let (mut mss, mut ws, mut sok, mut ts) = (0u16, -1i16, false, false);
    let mut rest = tcp.options();
    while let Some((&kind, tail)) = rest.split_first() {
        match kind {
            0 => {
                names.push("eol".to_owned());
                break;
            }
            1 => {
                names.push("nop".to_owned());
                rest = tail;
            }
            _ => {
                let Some(&len) = tail.first() else {
                    names.push(format!("?{kind}"));
                    break;
                };
                let len = usize::from(len);
                let Some(value) = rest.get(2..len.max(2)) else {
                    names.push(format!("?{kind}"));
                    break;
                };
                match (kind, value.len()) {
                    (2, 2) => {
                        mss = u16::from_be_bytes([value[0], value[1]]);
                        names.push("mss".into());
                    }
                    (3, 1) => {
                        ws = i16::from(value[0]);
                        names.push("ws".into());
                    }
                    (4, 0) => {
                        sok = true;
                        names.push("sok".into());
                    }
                    (5, _) => names.push("sack".into()),
                    (8, 8) => {
                        ts = true;
                        names.push("ts".into());
                    }
                    (k, _) => names.push(format!("?{k}")),
                }
                rest = &rest[len.max(2)..];
            }
        }
    }
    SynSignature {
        version: if v6 { 6 } else { 4 },
        window: tcp.window_size(),
        mss,
        window_scale: ws,
        sack_permitted: sok,
        timestamps: ts,
        ecn: tcp.ece() && tcp.cwr(),
        options: names.join(","),
    }
}

// ---------------------------------------------------------------------------
// TLS ClientHello

enum HelloParse {
    Hello(Box<ClientHello>),
    NeedMore,
    NotAHello,
}

fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// The first handshake message of a TLS stream, gathered from as many
/// handshake records as it spans.
fn client_hello(stream: &[u8]) -> HelloParse {
    let mut message = Vec::new();
    let mut rest = stream;
    loop {
        if rest.len() < 5 {
            return HelloParse::NeedMore;
        }
        if rest[0] != 0x16 {
            return HelloParse::NotAHello;
        }
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        let Some(body) = rest.get(5..5 + len) else {
            return HelloParse::NeedMore;
        };
        message.extend_from_slice(body);
        rest = &rest[5 + len..];
        if message.len() >= 4 {
            if message[0] != 1 {
                return HelloParse::NotAHello;
            }
            let want = 4
                + (usize::from(message[1]) << 16
                    | usize::from(message[2]) << 8
                    | usize::from(message[3]));
            if message.len() >= want {
                message.truncate(want);
                break;
            }
            if want > MAX_STREAM_PREFIX {
                return HelloParse::NotAHello;
            }
        }
    }
    use tls_parser::{TlsMessage, TlsMessageHandshake};
    let Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)))) =
        tls_parser::parse_tls_message_handshake(&message)
    else {
        return HelloParse::NotAHello;
    };
    let mut hello = ClientHello {
        ja4: String::new(),
        version: ch.version.0,
        supported_versions: Vec::new(),
        ciphers: ch
            .ciphers
            .iter()
            .map(|c| c.0)
            .filter(|c| !is_grease(*c))
            .collect(),
        extensions: Vec::new(),
        groups: Vec::new(),
        ec_point_formats: Vec::new(),
        signature_algorithms: Vec::new(),
        alpn: Vec::new(),
        sni: false,
    };
    // Walk the extension headers ourselves so that one whose content
    // tls-parser rejects still counts in the order; parse each content
    // with tls-parser.
    let mut exts = ch.ext.unwrap_or(&[]);
    while exts.len() >= 4 {
        let kind = u16::from_be_bytes([exts[0], exts[1]]);
        let len = usize::from(u16::from_be_bytes([exts[2], exts[3]]));
        let Some(whole) = exts.get(..4 + len) else {
            break;
        };
        exts = &exts[4 + len..];
        if is_grease(kind) {
            continue;
        }
        hello.extensions.push(kind);
        use tls_parser::TlsExtension as E;
        match tls_parser::parse_tls_client_hello_extension(whole) {
            Ok((_, E::SNI(_))) => hello.sni = true,
            Ok((_, E::EllipticCurves(groups))) => {
                hello.groups = groups
                    .iter()
                    .map(|g| g.0)
                    .filter(|g| !is_grease(*g))
                    .collect()
            }
            Ok((_, E::EcPointFormats(f))) => hello.ec_point_formats = f.to_vec(),
            Ok((_, E::SignatureAlgorithms(s))) => hello.signature_algorithms = s,
            Ok((_, E::SupportedVersions(v))) => {
                hello.supported_versions =
                    v.iter().map(|v| v.0).filter(|v| !is_grease(*v)).collect()
            }
            Ok((_, E::ALPN(names))) => {
                hello.alpn = names
                    .iter()
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect()
            }
            _ if kind == 0 => hello.sni = true,
            _ => {}
        }
    }
    hello.ja4 = ja4(&hello);
    HelloParse::Hello(Box::new(hello))
}

/// FoxIO's JA4 for a TLS-over-TCP ClientHello (GREASE already left out).
fn ja4(h: &ClientHello) -> String {
    let top = h
        .supported_versions
        .iter()
        .copied()
        .max()
        .unwrap_or(h.version);
    let version = match top {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        _ => "00",
    };
    let alpn = match h.alpn.first().map(|a| a.as_bytes()) {
        Some(a) if !a.is_empty() => {
            let (f, l) = (a[0], a[a.len() - 1]);
            if f.is_ascii_alphanumeric() && l.is_ascii_alphanumeric() {
                format!("{}{}", f as char, l as char)
            } else {
                let hex: String = a.iter().map(|b| format!("{b:02x}")).collect();
                format!("{}{}", &hex[..1], &hex[hex.len() - 1..])
            }
        }
        _ => "00".into(),
    };
    let a = format!(
        "t{version}{}{:02}{:02}{alpn}",
        if h.sni { 'd' } else { 'i' },
        h.ciphers.len().min(99),
        h.extensions.len().min(99)
    );
    let hex = |v: &[u16]| {
        v.iter()
            .map(|x| format!("{x:04x}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let truncated_sha = |s: &str| {
        if s.is_empty() {
            return "000000000000".to_owned();
        }
        let d = Sha256::digest(s.as_bytes());
        d.iter().take(6).map(|b| format!("{b:02x}")).collect()
    };
    let mut ciphers = h.ciphers.clone();
    ciphers.sort_unstable();
    let mut exts: Vec<u16> = h
        .extensions
        .iter()
        .copied()
        .filter(|e| *e != 0 && *e != 16)
        .collect();
    exts.sort_unstable();
    let mut c = hex(&exts);
    if !h.signature_algorithms.is_empty() {
        c.push('_');
        c.push_str(&hex(&h.signature_algorithms));
    }
    format!(
        "{a}_{}_{}",
        truncated_sha(&hex(&ciphers)),
        truncated_sha(&c)
    )
}

// ---------------------------------------------------------------------------
// TOML

impl Fingerprint {
    /// The fingerprint as TOML, fields in a fixed order.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a fingerprint has only TOML-representable fields")
    }

    /// Parse a fingerprint written by [`Fingerprint::to_toml`];
    /// `source_name` names it in errors.
    pub fn from_toml(text: &str, source_name: &str) -> Result<Self, Error> {
        #[derive(Deserialize)]
        struct Version {
            format: u32,
        }
        if let Ok(v) = toml::from_str::<Version>(text) {
            if v.format != FORMAT {
                return Err(Error::Format {
                    source_name: source_name.into(),
                    found: v.format,
                });
            }
        }
        toml::from_str(text).map_err(|source| Error::Toml {
            source_name: source_name.into(),
            source,
        })
    }

    /// Read a fingerprint from a TOML file.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Open {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }
}

#[cfg(test)]
mod tests;
