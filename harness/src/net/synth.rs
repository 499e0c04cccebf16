//! Synthetic captures: a pcap/pcapng writer and builders for the frames a
//! guest sends. Used by the unit tests (captures written by the tests, not
//! hand-typed bytes), the fuzzer's seed corpus and the benchmark's
//! generator. Frames are built with `etherparse`'s `PacketBuilder` and
//! written with `pcap-parser`'s serializer, so each side of the analyser is
//! exercised by code it does not share.

use std::borrow::Cow;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{Icmpv6Type, PacketBuilder};
use pcap_parser::pcapng::{
    EnhancedPacketBlock, InterfaceDescriptionBlock, OptionCode, PcapNGOption, SectionHeaderBlock,
};
use pcap_parser::{LegacyPcapBlock, Linktype, PcapHeader, ToVec};

use super::analysis::{Format, MacAddr, Timestamp};

/// Writes frames (Ethernet link type) as pcap with microsecond timestamps
/// or as pcapng with nanosecond timestamps.
pub struct CaptureWriter<W: Write> {
    out: W,
    format: Format,
}

fn gen_err<E: std::fmt::Debug>(e: E) -> io::Error {
    io::Error::other(format!("serializing a capture block: {e:?}"))
}

impl<W: Write> CaptureWriter<W> {
    /// Start a capture of `format`, writing its header(s) at once.
    pub fn new(mut out: W, format: Format) -> io::Result<Self> {
        match format {
            Format::Pcap => {
                let mut header = PcapHeader::new();
                header.snaplen = 65_535;
                out.write_all(&header.to_vec_raw().map_err(gen_err)?)?;
            }
            Format::PcapNg => {
                let mut shb = SectionHeaderBlock {
                    block_type: 0,
                    block_len1: 0,
                    bom: 0,
                    major_version: 1,
                    minor_version: 0,
                    section_len: -1,
                    options: Vec::new(),
                    block_len2: 0,
                };
                out.write_all(&shb.to_vec().map_err(gen_err)?)?;
                let mut idb = InterfaceDescriptionBlock {
                    block_type: 0,
                    block_len1: 0,
                    linktype: Linktype::ETHERNET,
                    reserved: 0,
                    snaplen: 65_535,
                    options: vec![PcapNGOption {
                        code: OptionCode::IfTsresol,
                        len: 1,
                        value: Cow::Owned(vec![9, 0, 0, 0]),
                    }],
                    block_len2: 0,
                    if_tsresol: 9,
                    if_tsoffset: 0,
                };
                out.write_all(&idb.to_vec().map_err(gen_err)?)?;
            }
        }
        Ok(CaptureWriter { out, format })
    }

    /// Append one frame captured at `ts`.
    pub fn write(&mut self, ts: Timestamp, frame: &[u8]) -> io::Result<()> {
        let bytes = match self.format {
            Format::Pcap => LegacyPcapBlock {
                ts_sec: ts.secs as u32,
                ts_usec: ts.nanos / 1000,
                caplen: frame.len() as u32,
                origlen: frame.len() as u32,
                data: frame,
            }
            .to_vec_raw(),
            Format::PcapNg => {
                let nanos = ts.as_nanos() as u64;
                EnhancedPacketBlock {
                    block_type: 0,
                    block_len1: 0,
                    if_id: 0,
                    ts_high: (nanos >> 32) as u32,
                    ts_low: nanos as u32,
                    caplen: frame.len() as u32,
                    origlen: frame.len() as u32,
                    data: frame,
                    options: Vec::new(),
                    block_len2: 0,
                }
                .to_vec()
            }
        };
        self.out.write_all(&bytes.map_err(gen_err)?)
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Builds frames from one station (MAC), as a guest would send them.
#[derive(Debug, Clone, Copy)]
pub struct Station {
    pub mac: MacAddr,
    /// Destination MAC for unicast frames (the lab's bridge).
    pub gateway_mac: MacAddr,
}

fn ip_builder(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: IpAddr,
    dst: IpAddr,
) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    let eth = PacketBuilder::ethernet2(src_mac.0, dst_mac.0);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (s, d) => eth.ipv6(v6(s).octets(), v6(d).octets(), 64),
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V6(a) => a,
        IpAddr::V4(a) => a.to_ipv6_mapped(),
    }
}

fn build(
    step: impl FnOnce(&mut Vec<u8>) -> Result<(), etherparse::err::packet::BuildWriteError>,
) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail for I/O reasons; a value error (e.g. a
    // payload too large for IPv4) would be a bug in the caller's test data.
    step(&mut out).expect("frame within IP limits");
    out
}

impl Station {
    pub fn new(mac: MacAddr, gateway_mac: MacAddr) -> Self {
        Station { mac, gateway_mac }
    }

    /// A TCP segment (PSH/ACK) carrying `payload`.
    pub fn tcp(&self, src: (IpAddr, u16), dst: (IpAddr, u16), payload: &[u8]) -> Vec<u8> {
        let b = ip_builder(self.mac, self.gateway_mac, src.0, dst.0)
            .tcp(src.1, dst.1, 1, 64_240)
            .psh()
            .ack(1);
        build(|out| b.write(out, payload))
    }

    /// A TCP SYN.
    pub fn tcp_syn(&self, src: (IpAddr, u16), dst: (IpAddr, u16)) -> Vec<u8> {
        let b = ip_builder(self.mac, self.gateway_mac, src.0, dst.0)
            .tcp(src.1, dst.1, 1, 64_240)
            .syn();
        build(|out| b.write(out, &[]))
    }

    pub fn udp(&self, src: (IpAddr, u16), dst: (IpAddr, u16), payload: &[u8]) -> Vec<u8> {
        let b = ip_builder(self.mac, self.gateway_mac, src.0, dst.0).udp(src.1, dst.1);
        build(|out| b.write(out, payload))
    }

    /// A DNS query for `names` (type A) over UDP.
    pub fn dns_query(&self, src: (IpAddr, u16), server: (IpAddr, u16), names: &[&str]) -> Vec<u8> {
        self.udp(src, server, &dns_query(names))
    }

    /// A DHCP DISCOVER from 0.0.0.0:68 to 255.255.255.255:67 with this
    /// station's MAC as `chaddr` and no client identifier.
    pub fn dhcp_discover(&self) -> Vec<u8> {
        self.dhcp_discover_with(self.mac, None)
    }

    /// A DHCP DISCOVER carrying `chaddr`, and option 61 (client
    /// identifier) with `client_id` as its value when given (a client that
    /// identifies by MAC sends type 1 and the six bytes).
    pub fn dhcp_discover_with(&self, chaddr: MacAddr, client_id: Option<&[u8]>) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(self.mac.0, [0xff; 6]);
        let b = eth.ipv4([0, 0, 0, 0], [255, 255, 255, 255], 64).udp(68, 67);
        build(|out| b.write(out, &dhcp_message(chaddr, client_id)))
    }

    /// An ARP request for `target` whose sender hardware address is
    /// `sender_mac` (which may differ from the frame's Ethernet source).
    pub fn arp_request_as(
        &self,
        sender_mac: MacAddr,
        sender: Ipv4Addr,
        target: Ipv4Addr,
    ) -> Vec<u8> {
        self.arp_frame(
            etherparse::ArpOperation::REQUEST,
            sender_mac,
            sender,
            target,
        )
    }

    /// A neighbour solicitation for `target` from `src` (`::` for duplicate
    /// address detection) to its solicited-node group, with a source
    /// link-layer address option when `ll_option` is given.
    pub fn neighbour_solicitation(
        &self,
        src: Ipv6Addr,
        target: Ipv6Addr,
        ll_option: Option<MacAddr>,
    ) -> Vec<u8> {
        let t = target.octets();
        let dst = Ipv6Addr::new(
            0xff02,
            0,
            0,
            0,
            0,
            1,
            0xff00 | u16::from(t[13]),
            u16::from_be_bytes([t[14], t[15]]),
        );
        let mut body = t.to_vec();
        if let Some(mac) = ll_option {
            body.extend_from_slice(&[1, 1]);
            body.extend_from_slice(&mac.0);
        }
        let d = dst.octets();
        let b = PacketBuilder::ethernet2(self.mac.0, [0x33, 0x33, 0xff, d[13], d[14], d[15]])
            .ipv6(src.octets(), d, 255)
            .icmpv6(Icmpv6Type::Unknown {
                type_u8: 135,
                code_u8: 0,
                bytes5to8: [0; 4],
            });
        build(|out| b.write(out, &body))
    }

    /// An MLDv2 report from `src` joining `group`.
    pub fn mld_report(&self, src: Ipv6Addr, group: Ipv6Addr) -> Vec<u8> {
        let dst: Ipv6Addr = "ff02::16".parse().expect("literal");
        // One record: type 4 (change to exclude), no aux data, no sources.
        let mut body = vec![4, 0, 0, 0];
        body.extend_from_slice(&group.octets());
        let b = PacketBuilder::ethernet2(self.mac.0, [0x33, 0x33, 0, 0, 0, 0x16])
            .ipv6(src.octets(), dst.octets(), 1)
            .icmpv6(Icmpv6Type::Unknown {
                type_u8: 143,
                code_u8: 0,
                bytes5to8: [0, 0, 0, 1],
            });
        build(|out| b.write(out, &body))
    }

    /// An ARP request for `target` from `sender`.
    pub fn arp_request(&self, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
        self.arp_request_as(self.mac, sender, target)
    }

    /// An ICMPv6 router solicitation from `src` to ff02::2.
    pub fn router_solicitation(&self, src: Ipv6Addr) -> Vec<u8> {
        let dst: Ipv6Addr = "ff02::2".parse().expect("literal");
        let b = PacketBuilder::ethernet2(self.mac.0, [0x33, 0x33, 0, 0, 0, 2])
            .ipv6(src.octets(), dst.octets(), 255)
            .icmpv6(Icmpv6Type::Unknown {
                type_u8: 133,
                code_u8: 0,
                bytes5to8: [0; 4],
            });
        build(|out| b.write(out, &[]))
    }

    /// An ICMPv4 echo request.
    pub fn ping(&self, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(self.mac.0, self.gateway_mac.0)
            .ipv4(src.octets(), dst.octets(), 64)
            .icmpv4_echo_request(1, 1);
        build(|out| b.write(out, &[0u8; 56]))
    }

    /// The same TCP segment behind an 802.1Q tag.
    pub fn tcp_vlan(
        &self,
        vlan: u16,
        src: (IpAddr, u16),
        dst: (IpAddr, u16),
        payload: &[u8],
    ) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(self.mac.0, self.gateway_mac.0)
            .single_vlan(etherparse::VlanId::try_new(vlan).expect("VLAN id below 4095"));
        let b = match (src.0, dst.0) {
            (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
            (s, d) => eth.ipv6(v6(s).octets(), v6(d).octets(), 64),
        }
        .tcp(src.1, dst.1, 1, 64_240)
        .ack(1);
        build(|out| b.write(out, payload))
    }

    /// A UDP datagram split into IPv4 fragments of at most `mtu_payload`
    /// bytes of IP payload each (a multiple of 8), in order.
    pub fn udp_fragments(
        &self,
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        payload: &[u8],
        mtu_payload: usize,
        id: u16,
    ) -> Vec<Vec<u8>> {
        let whole = {
            let b = PacketBuilder::ipv4(src.0.octets(), dst.0.octets(), 64).udp(src.1, dst.1);
            build(|out| b.write(out, payload))
        };
        // `whole` is an IPv4 packet; fragment its payload by hand (etherparse
        // builds unfragmented packets only).
        let ihl = usize::from(whole[0] & 0x0f) * 4;
        let body = &whole[ihl..];
        let step = mtu_payload / 8 * 8;
        body.chunks(step.max(8))
            .enumerate()
            .map(|(i, chunk)| {
                let offset = i * step.max(8);
                let more = offset + chunk.len() < body.len();
                let mut header = etherparse::Ipv4Header::new(
                    chunk.len() as u16,
                    64,
                    etherparse::IpNumber::UDP,
                    src.0.octets(),
                    dst.0.octets(),
                )
                .expect("fragment below 64 KiB");
                header.identification = id;
                header.more_fragments = more;
                header.fragment_offset = etherparse::IpFragOffset::try_new((offset / 8) as u16)
                    .expect("offset in range");
                header.header_checksum = header.calc_header_checksum();
                let mut frame = Vec::new();
                etherparse::Ethernet2Header {
                    source: self.mac.0,
                    destination: self.gateway_mac.0,
                    ether_type: etherparse::EtherType::IPV4,
                }
                .write(&mut frame)
                .expect("write to Vec");
                header.write(&mut frame).expect("write to Vec");
                frame.extend_from_slice(chunk);
                frame
            })
            .collect()
    }
}

/// A BOOTP/DHCP DISCOVER message (RFC 2131): fixed part with `chaddr`,
/// magic cookie, message type, optional client identifier (option 61).
pub fn dhcp_message(chaddr: MacAddr, client_id: Option<&[u8]>) -> Vec<u8> {
    let mut m = vec![0u8; 236];
    m[0] = 1; // BOOTREQUEST
    m[1] = 1; // Ethernet
    m[2] = 6;
    m[4..8].copy_from_slice(&0x3903_f326u32.to_be_bytes());
    m[10] = 0x80; // broadcast flag
    m[28..34].copy_from_slice(&chaddr.0);
    m.extend_from_slice(&[99, 130, 83, 99, 53, 1, 1]);
    if let Some(id) = client_id {
        m.push(61);
        m.push(id.len() as u8);
        m.extend_from_slice(id);
    }
    m.extend_from_slice(&[55, 3, 1, 3, 6, 255]);
    m
}

/// The IPv6 link-local address a stack derives from `mac` (EUI-64).
pub fn eui64_link_local(mac: MacAddr) -> Ipv6Addr {
    let mut a = [0u8; 16];
    a[0] = 0xfe;
    a[1] = 0x80;
    a[8..].copy_from_slice(&mac.eui64());
    Ipv6Addr::from(a)
}

/// The first record a TLS client sends: a handshake record holding a
/// ClientHello (TLS 1.2 legacy version, one cipher suite, SNI-less, as
/// Tor's link handshake does). See [`tls_client_hello`] for one with given
/// ciphers and extensions.
pub fn tor_client_hello() -> Vec<u8> {
    let mut hello = vec![3, 3];
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(0); // session id
    hello.extend_from_slice(&[0, 2, 0x13, 0x01]); // cipher suites
    hello.extend_from_slice(&[1, 0]); // compression: null
    hello.extend_from_slice(&[0, 0]); // no extensions
    let mut handshake = vec![1, 0, (hello.len() >> 8) as u8, hello.len() as u8];
    handshake.extend_from_slice(&hello);
    let mut record = vec![
        22,
        3,
        1,
        (handshake.len() >> 8) as u8,
        handshake.len() as u8,
    ];
    record.extend_from_slice(&handshake);
    record
}

/// A DNS query message asking for the A records of `names`.
pub fn dns_query(names: &[&str]) -> Vec<u8> {
    let mut packet = simple_dns::Packet::new_query(0x1234);
    for name in names {
        let Ok(qname) = simple_dns::Name::new(name) else {
            continue;
        };
        packet.questions.push(simple_dns::Question::new(
            qname,
            simple_dns::TYPE::A.into(),
            simple_dns::CLASS::IN.into(),
            false,
        ));
    }
    packet.build_bytes_vec().unwrap_or_default()
}

/// Write `frames` (with their times) into an in-memory capture.
pub fn capture(format: Format, frames: &[(Timestamp, Vec<u8>)]) -> Vec<u8> {
    let mut w = CaptureWriter::new(Vec::new(), format).expect("writing to a Vec");
    for (ts, f) in frames {
        w.write(*ts, f).expect("writing to a Vec");
    }
    w.into_inner()
}

/// IPv4 header fields a fingerprint looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Fields {
    pub ttl: u8,
    pub identification: u16,
    pub dont_fragment: bool,
    /// DSCP and ECN as one byte.
    pub tos: u8,
}

impl Default for Ipv4Fields {
    /// Linux's defaults for a TCP packet: TTL 64, DF set.
    fn default() -> Self {
        Ipv4Fields {
            ttl: 64,
            identification: 0,
            dont_fragment: true,
            tos: 0,
        }
    }
}

/// TCP header fields a fingerprint looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpFields {
    pub seq: u32,
    pub syn: bool,
    pub ack: bool,
    pub window: u16,
    /// Raw options, padded by the builder to a multiple of 4 with EOL.
    pub options: Vec<u8>,
}

/// The options of a Linux SYN: MSS 1460, SACK permitted, timestamps, NOP,
/// window scale 7 (`mss,sok,ts,nop,ws`).
pub fn linux_syn_options() -> Vec<u8> {
    let mut o = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
    o.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    o.extend_from_slice(&[0, 0, 0, 0, 1, 3, 3, 7]);
    o
}

impl Station {
    /// An IPv4 packet carrying `payload` of IP protocol `protocol`, with
    /// the given header fields, to `dst_mac`.
    pub fn ipv4_raw(
        &self,
        dst_mac: MacAddr,
        ip: Ipv4Fields,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut header = etherparse::Ipv4Header::new(
            payload.len() as u16,
            ip.ttl,
            etherparse::IpNumber(protocol),
            src.octets(),
            dst.octets(),
        )
        .expect("payload below 64 KiB");
        header.identification = ip.identification;
        header.dont_fragment = ip.dont_fragment;
        header.dscp = etherparse::IpDscp::try_new(ip.tos >> 2).expect("6 bits");
        header.ecn = etherparse::IpEcn::try_new(ip.tos & 3).expect("2 bits");
        header.header_checksum = header.calc_header_checksum();
        let mut frame = Vec::new();
        etherparse::Ethernet2Header {
            source: self.mac.0,
            destination: dst_mac.0,
            ether_type: etherparse::EtherType::IPV4,
        }
        .write(&mut frame)
        .expect("write to Vec");
        header.write(&mut frame).expect("write to Vec");
        frame.extend_from_slice(payload);
        frame
    }

    /// A TCP segment over IPv4 with the given IP and TCP fields.
    pub fn ipv4_tcp(
        &self,
        ip: Ipv4Fields,
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        tcp: &TcpFields,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut header = etherparse::TcpHeader::new(src.1, dst.1, tcp.seq, tcp.window);
        header.syn = tcp.syn;
        header.ack = tcp.ack;
        header
            .set_options_raw(&tcp.options)
            .expect("TCP options up to 40 bytes");
        header.checksum = header
            .calc_checksum_ipv4_raw(src.0.octets(), dst.0.octets(), payload)
            .expect("segment below 64 KiB");
        let mut segment = header.to_bytes().to_vec();
        segment.extend_from_slice(payload);
        self.ipv4_raw(self.gateway_mac, ip, src.0, dst.0, 6, &segment)
    }

    /// A UDP datagram over IPv4 with the given IP fields, to `dst_mac`.
    pub fn ipv4_udp(
        &self,
        dst_mac: MacAddr,
        ip: Ipv4Fields,
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        payload: &[u8],
    ) -> Vec<u8> {
        let header = etherparse::UdpHeader::with_ipv4_checksum(
            src.1,
            dst.1,
            &etherparse::Ipv4Header::new(
                (8 + payload.len()) as u16,
                ip.ttl,
                etherparse::IpNumber::UDP,
                src.0.octets(),
                dst.0.octets(),
            )
            .expect("payload below 64 KiB"),
            payload,
        )
        .expect("payload below 64 KiB");
        let mut datagram = header.to_bytes().to_vec();
        datagram.extend_from_slice(payload);
        self.ipv4_raw(dst_mac, ip, src.0, dst.0, 17, &datagram)
    }

    /// A DHCP client message from `ciaddr`:68 (0.0.0.0 before a lease) to
    /// `server`:67 (broadcast when `None`) with `options` in this order;
    /// option 53 (message type) is not added for you. TTL 64, IP ID 0, no
    /// DF, as busybox's udhcpc sends them.
    pub fn dhcp_client(
        &self,
        ciaddr: Ipv4Addr,
        server: Option<Ipv4Addr>,
        options: &[(u8, &[u8])],
    ) -> Vec<u8> {
        let mut bootp = vec![0u8; 236];
        bootp[0] = 1; // BOOTREQUEST
        bootp[1] = 1; // Ethernet
        bootp[2] = 6;
        bootp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        bootp[12..16].copy_from_slice(&ciaddr.octets());
        bootp[28..34].copy_from_slice(&self.mac.0);
        bootp.extend_from_slice(&[99, 130, 83, 99]);
        for (code, value) in options {
            bootp.push(*code);
            bootp.push(value.len() as u8);
            bootp.extend_from_slice(value);
        }
        bootp.push(255);
        bootp.resize(bootp.len().max(300), 0);
        let ip = Ipv4Fields {
            dont_fragment: false,
            ..Ipv4Fields::default()
        };
        let (dst, dst_mac) = match server {
            Some(server) => (server, self.gateway_mac),
            None => (Ipv4Addr::BROADCAST, MacAddr([0xff; 6])),
        };
        self.ipv4_udp(dst_mac, ip, (ciaddr, 68), (dst, 67), &bootp)
    }

    /// An ARP packet: `operation` 1 (request) or 2 (reply).
    pub fn arp(&self, operation: u16, sender: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
        self.arp_frame(
            etherparse::ArpOperation(operation),
            self.mac,
            sender,
            target,
        )
    }

    /// A broadcast ARP frame from this host's MAC, its sender hardware
    /// address `sender_mac`.
    fn arp_frame(
        &self,
        operation: etherparse::ArpOperation,
        sender_mac: MacAddr,
        sender: Ipv4Addr,
        target: Ipv4Addr,
    ) -> Vec<u8> {
        let arp = etherparse::ArpPacket::new(
            etherparse::ArpHardwareId::ETHERNET,
            etherparse::EtherType::IPV4,
            operation,
            &sender_mac.0,
            &sender.octets(),
            &[0; 6],
            &target.octets(),
        )
        .expect("ethernet/IPv4 ARP sizes");
        let b = PacketBuilder::ethernet2(self.mac.0, [0xff; 6]).arp(arp);
        build(|out| b.write(out))
    }
}

/// A TLS record holding a ClientHello with these cipher suites and
/// extensions (type, body), in order. Random and session id are fixed.
pub fn tls_client_hello(ciphers: &[u16], extensions: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x42; 32]);
    body.push(32);
    body.extend_from_slice(&[0x17; 32]);
    body.extend_from_slice(&((ciphers.len() * 2) as u16).to_be_bytes());
    for c in ciphers {
        body.extend_from_slice(&c.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]);
    let mut exts = Vec::new();
    for (kind, data) in extensions {
        exts.extend_from_slice(&kind.to_be_bytes());
        exts.extend_from_slice(&(data.len() as u16).to_be_bytes());
        exts.extend_from_slice(data);
    }
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut handshake = vec![1];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// Extension bodies for [`tls_client_hello`].
pub mod tls_ext {
    /// server_name (type 0) for `host`.
    pub fn server_name(host: &str) -> (u16, Vec<u8>) {
        let mut entry = vec![0];
        entry.extend_from_slice(&(host.len() as u16).to_be_bytes());
        entry.extend_from_slice(host.as_bytes());
        let mut body = (entry.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(&entry);
        (0, body)
    }

    /// A list of 16-bit values with a 16-bit length: supported_groups
    /// (10), signature_algorithms (13).
    pub fn u16_list(kind: u16, values: &[u16]) -> (u16, Vec<u8>) {
        let mut body = ((values.len() * 2) as u16).to_be_bytes().to_vec();
        for v in values {
            body.extend_from_slice(&v.to_be_bytes());
        }
        (kind, body)
    }

    /// supported_versions (43) as a client sends it (8-bit length).
    pub fn supported_versions(versions: &[u16]) -> (u16, Vec<u8>) {
        let mut body = vec![(versions.len() * 2) as u8];
        for v in versions {
            body.extend_from_slice(&v.to_be_bytes());
        }
        (43, body)
    }

    /// ec_point_formats (11).
    pub fn ec_point_formats(formats: &[u8]) -> (u16, Vec<u8>) {
        let mut body = vec![formats.len() as u8];
        body.extend_from_slice(formats);
        (11, body)
    }

    /// An extension with an empty body (e.g. 23 extended master secret).
    pub fn empty(kind: u16) -> (u16, Vec<u8>) {
        (kind, Vec::new())
    }
}
