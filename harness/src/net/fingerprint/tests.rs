//! Each fingerprint field on synthetic frames, and the comparison rules.

use std::net::Ipv4Addr;

use super::*;
use crate::net::analysis::{Format, Timestamp};
use crate::net::lab::BRIDGE_MAC;
use crate::net::synth::{
    capture, linux_syn_options, tls_client_hello, tls_ext, Ipv4Fields, Station, TcpFields,
};

const NIC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

fn guest_mac(tail: u8) -> MacAddr {
    MacAddr([0x52, 0x54, 0, 0x61, 0x64, tail])
}

fn station(mac: MacAddr) -> Station {
    Station::new(mac, BRIDGE_MAC)
}

fn fingerprint(frames: &[Vec<u8>]) -> Fingerprint {
    let timed: Vec<(Timestamp, Vec<u8>)> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (
                Timestamp::from_nanos(1_795_593_600_000_000_000 + i as i128 * 1_000_000),
                f.clone(),
            )
        })
        .collect();
    fingerprint_bytes(&capture(Format::Pcap, &timed), &Observer::lab(Some(NIC))).unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// busybox udhcpc's DISCOVER: message type, client id, max size, vendor
/// class, parameter request list.
fn udhcpc_options(msg_type: u8, mac: MacAddr, extra: &[(u8, &'static [u8])]) -> Vec<(u8, Vec<u8>)> {
    let mut client_id = vec![1];
    client_id.extend_from_slice(&mac.0);
    let mut o: Vec<(u8, Vec<u8>)> = vec![
        (53, vec![msg_type]),
        (61, client_id),
        (57, vec![0x02, 0x40]),
    ];
    o.extend(extra.iter().map(|(c, v)| (*c, v.to_vec())));
    o.push((60, b"udhcp 1.35.0".to_vec()));
    o.push((55, vec![1, 3, 6, 12, 15, 28, 42]));
    o
}

fn dhcp(s: &Station, ciaddr: Ipv4Addr, options: &[(u8, Vec<u8>)]) -> Vec<u8> {
    dhcp_to(s, ciaddr, None, options)
}

fn dhcp_to(
    s: &Station,
    ciaddr: Ipv4Addr,
    server: Option<Ipv4Addr>,
    options: &[(u8, Vec<u8>)],
) -> Vec<u8> {
    let refs: Vec<(u8, &[u8])> = options.iter().map(|(c, v)| (*c, v.as_slice())).collect();
    s.dhcp_client(ciaddr, server, &refs)
}

/// A Tor-like ClientHello (OpenSSL 3, TLS 1.3) naming `host`.
fn tor_hello(host: &str) -> Vec<u8> {
    tls_client_hello(
        &[
            0x1302, 0x1303, 0x1301, 0xc02c, 0xc030, 0x009f, 0xcca9, 0xcca8, 0x00ff,
        ],
        &[
            tls_ext::server_name(host),
            tls_ext::ec_point_formats(&[0, 1, 2]),
            tls_ext::u16_list(10, &[0x001d, 0x0017, 0x001e, 0x0019, 0x0018]),
            tls_ext::empty(35),
            tls_ext::empty(22),
            tls_ext::empty(23),
            tls_ext::u16_list(13, &[0x0403, 0x0503, 0x0603, 0x0807, 0x0808]),
            tls_ext::supported_versions(&[0x0304, 0x0303]),
            (45, vec![1, 1]),
            (51, {
                let mut ks = vec![0, 36, 0, 0x1d, 0, 32];
                ks.extend_from_slice(&[9; 32]);
                ks
            }),
        ],
    )
}

/// How one boot of a system behaves; `seed` stands for what changes from
/// boot to boot (MAC tail, ports, IP ID starts, relays, Tor's random SNI).
#[derive(Clone)]
struct Boot {
    seed: u8,
    hostname: bool,
    ttl: u8,
    timestamps: bool,
    mdns: bool,
    mac: Option<MacAddr>,
}

impl Boot {
    fn reference(seed: u8) -> Self {
        Boot {
            seed,
            hostname: false,
            ttl: 64,
            timestamps: true,
            mdns: false,
            mac: None,
        }
    }

    fn frames(&self) -> Vec<Vec<u8>> {
        let seed = self.seed;
        let mac = self.mac.unwrap_or(guest_mac(seed));
        let g = station(mac);
        let addr = ip(&format!("10.203.0.{}", 50 + seed));
        let extra: &[(u8, &'static [u8])] = if self.hostname {
            &[(12, b"amnesia")]
        } else {
            &[]
        };
        let mut f = vec![dhcp(
            &g,
            Ipv4Addr::UNSPECIFIED,
            &udhcpc_options(1, mac, extra),
        )];
        let mut request = udhcpc_options(3, mac, extra);
        request.insert(2, (50, addr.octets().to_vec()));
        request.insert(3, (54, ip("10.203.0.1").octets().to_vec()));
        f.push(dhcp(&g, Ipv4Addr::UNSPECIFIED, &request));
        f.push(g.arp(1, addr, ip("10.203.0.1")));
        if self.mdns {
            let ipf = Ipv4Fields {
                ttl: 255,
                ..Ipv4Fields::default()
            };
            f.push(g.ipv4_udp(
                MacAddr([1, 0, 0x5e, 0, 0, 0xfb]),
                ipf,
                (addr, 5353),
                (ip("224.0.0.251"), 5353),
                &crate::net::synth::dns_query(&["amnesia.local"]),
            ));
        }
        let mut options = linux_syn_options();
        if !self.timestamps {
            options = vec![2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7];
        }
        // Two relays, chosen by the seed, their packets interleaved; each
        // flow's IP ID counts up from a start of its own.
        let mut flows: Vec<Vec<Vec<u8>>> = Vec::new();
        for (n, relay_port) in [(0u16, 5000 + u16::from(seed % 3)), (1, 5007)] {
            let mut f = Vec::new();
            let sport = 40_000 + u16::from(seed) * 7 + n;
            let id0 = u16::from(seed).wrapping_mul(9973).wrapping_add(n * 31_337);
            let ipf = |k: u16| Ipv4Fields {
                ttl: self.ttl,
                identification: id0.wrapping_add(k),
                ..Ipv4Fields::default()
            };
            let src = (addr, sport);
            let dst = (ip("10.203.0.1"), relay_port);
            let isn = 1000 * u32::from(seed) + 17;
            let syn = TcpFields {
                seq: isn,
                syn: true,
                ack: false,
                window: 64_240,
                options: options.clone(),
            };
            f.push(g.ipv4_tcp(ipf(0), src, dst, &syn, &[]));
            let data = TcpFields {
                seq: isn + 1,
                syn: false,
                ack: true,
                window: 502,
                options: Vec::new(),
            };
            f.push(g.ipv4_tcp(ipf(1), src, dst, &data, &[]));
            let host = format!("www.{}{}.com", "x".repeat(usize::from(seed % 7) + 4), n);
            f.push(g.ipv4_tcp(ipf(2), src, dst, &data, &tor_hello(&host)));
            f.push(g.ipv4_tcp(ipf(3), src, dst, &data, &[]));
            flows.push(f);
        }
        for (a, b) in flows[0].iter().zip(&flows[1]) {
            f.push(a.clone());
            f.push(b.clone());
        }
        f
    }

    fn fingerprint(&self) -> Fingerprint {
        fingerprint(&self.frames())
    }
}

// --- fields -----------------------------------------------------------------

#[test]
fn dhcp_messages_keep_option_order_and_presence_not_values() {
    let fp = Boot::reference(1).fingerprint();
    assert_eq!(fp.dhcp.len(), 2, "{fp:#?}");
    let discover = &fp.dhcp[0];
    assert_eq!(discover.kind, "DISCOVER");
    assert_eq!(discover.options, vec![53, 61, 57, 60, 55]);
    assert_eq!(
        discover.parameter_request_list,
        vec![1, 3, 6, 12, 15, 28, 42]
    );
    assert_eq!(discover.client_identifier, "hardware address");
    assert!(discover.vendor_class && !discover.hostname && !discover.fqdn);
    assert_eq!(discover.max_message_size, 576);
    assert!(discover.chaddr_is_source_mac);
    assert!(!discover.broadcast_flag);
    let request = &fp.dhcp[1];
    assert_eq!(request.kind, "REQUEST (selecting)");
    assert_eq!(request.options, vec![53, 61, 50, 54, 57, 60, 55]);
    let toml = Boot {
        hostname: true,
        ..Boot::reference(1)
    }
    .fingerprint()
    .to_toml();
    assert!(toml.contains("hostname = true"), "{toml}");
    assert!(
        !toml.contains("amnesia") && !toml.contains("udhcp"),
        "{toml}"
    );
}

#[test]
fn dhcp_request_states_and_identifiers() {
    let mac = guest_mac(9);
    let g = station(mac);
    let lease = ip("10.203.0.9");
    let frames = vec![
        dhcp(
            &g,
            Ipv4Addr::UNSPECIFIED,
            &[(53, vec![3]), (50, lease.octets().to_vec())],
        ),
        dhcp_to(
            &g,
            lease,
            Some(ip("10.203.0.1")),
            &[(53, vec![3]), (61, vec![255, 1, 2, 3, 4])],
        ),
        dhcp(&g, lease, &[(53, vec![3]), (61, vec![255, 1, 2, 3, 4])]),
        dhcp(
            &g,
            Ipv4Addr::UNSPECIFIED,
            &[(53, vec![7]), (61, vec![0, b'x']), (81, vec![0, 0, 0])],
        ),
    ];
    let fp = fingerprint(&frames);
    let kinds: Vec<&str> = fp.dhcp.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "RELEASE",
            "REQUEST (init-reboot)",
            "REQUEST (rebinding)",
            "REQUEST (renewing)"
        ]
    );
    assert_eq!(fp.dhcp[1].client_identifier, "none");
    assert_eq!(fp.dhcp[2].client_identifier, "DUID");
    assert_eq!(fp.dhcp[3].client_identifier, "DUID");
    assert_eq!(fp.dhcp[0].client_identifier, "string");
    assert!(fp.dhcp[0].fqdn);
    assert_eq!(fp.dhcp[0].max_message_size, 0);
    // A client started before the MAC changed still names the old one.
    let mut real = vec![1];
    real.extend_from_slice(&NIC.0);
    let fp = fingerprint(&[dhcp(
        &g,
        Ipv4Addr::UNSPECIFIED,
        &[(53, vec![1]), (61, real)],
    )]);
    assert_eq!(fp.dhcp[0].client_identifier, "another hardware address");
}

#[test]
fn damaged_dhcp_options_keep_the_order_read_so_far() {
    let g = station(guest_mac(2));
    let mut frame = dhcp(
        &g,
        Ipv4Addr::UNSPECIFIED,
        &[(53, vec![1]), (12, b"h".to_vec())],
    );
    // Option 12's length now runs far past the datagram.
    let at = 14 + 20 + 8 + 240 + 3;
    frame[at] = 12;
    frame[at + 1] = 250;
    frame.truncate(at + 4);
    let fp = fingerprint(&[frame]);
    assert_eq!(fp.dhcp.len(), 1, "{fp:#?}");
    assert_eq!(fp.dhcp[0].options, vec![53, 12]);
    // Not DHCP at all (no magic cookie): no message, still the protocol.
    let mut bootp = dhcp(&g, Ipv4Addr::UNSPECIFIED, &[(53, vec![1])]);
    bootp[14 + 20 + 8 + 236] = 0;
    let fp = fingerprint(&[bootp]);
    assert!(fp.dhcp.is_empty());
    assert!(fp.protocols.contains(&"DHCP".to_owned()));
}

#[test]
fn ipv4_ttl_df_tos_and_ip_id_per_kind() {
    let fp = Boot::reference(3).fingerprint();
    let tcp = fp.ip.iter().find(|i| i.kind == "TCP").unwrap();
    assert_eq!(
        (tcp.version, tcp.ttl.as_slice(), tcp.tos.as_slice()),
        (4, &[64][..], &[0][..])
    );
    assert_eq!(tcp.df, vec!["set"]);
    assert_eq!(tcp.ip_id, Some(IpId::PerFlow));
    let dhcp = fp.ip.iter().find(|i| i.kind == "DHCP").unwrap();
    assert_eq!(dhcp.df, vec!["clear"]);
    assert_eq!(dhcp.ip_id, Some(IpId::Zero));
}

fn ip_id_of(ids: &[(u16, u16)]) -> IpId {
    // (flow, id): each flow a port of its own.
    let g = station(guest_mac(4));
    let frames: Vec<Vec<u8>> = ids
        .iter()
        .map(|&(flow, id)| {
            g.ipv4_udp(
                BRIDGE_MAC,
                Ipv4Fields {
                    identification: id,
                    ..Ipv4Fields::default()
                },
                (ip("10.203.0.4"), 30_000 + flow),
                (ip("10.203.0.1"), 9999),
                b"x",
            )
        })
        .collect();
    fingerprint(&frames).ip[0].ip_id.unwrap()
}

#[test]
fn ip_id_behaviours_are_told_apart() {
    assert_eq!(ip_id_of(&[(0, 0), (0, 0), (1, 0), (1, 0)]), IpId::Zero);
    assert_eq!(ip_id_of(&[(0, 7), (0, 7), (1, 7), (1, 7)]), IpId::Constant);
    assert_eq!(
        ip_id_of(&[
            (0, 100),
            (1, 9000),
            (0, 101),
            (1, 9001),
            (0, 102),
            (1, 9002),
            (0, 103)
        ]),
        IpId::PerFlow
    );
    // One busy flow and a short one: not enough changes of flow to tell
    // a shared counter from one per flow (a real capture cut short was
    // called "shared" before).
    assert_eq!(
        ip_id_of(&[(0, 100), (0, 101), (0, 102), (0, 103), (1, 104), (0, 105)]),
        IpId::Unknown
    );
    assert_eq!(
        ip_id_of(&[(0, 100), (1, 101), (0, 102), (1, 103), (2, 104), (0, 105)]),
        IpId::Shared
    );
    assert_eq!(
        ip_id_of(&[(0, 100), (0, 40_000), (0, 7), (0, 25_000), (1, 3)]),
        IpId::Random
    );
    assert_eq!(ip_id_of(&[(0, 5), (1, 9)]), IpId::Unknown);
}

#[test]
fn arp_behaviours() {
    let g = station(guest_mac(5));
    let me = ip("10.203.0.5");
    let frames = vec![
        g.arp(1, Ipv4Addr::UNSPECIFIED, me),
        g.arp(1, me, me),
        g.arp(1, me, ip("10.203.0.1")),
        g.arp(2, me, ip("10.203.0.1")),
        g.arp(2, me, me),
    ];
    let fp = fingerprint(&frames);
    assert_eq!(
        fp.arp,
        [
            "announcement",
            "gratuitous reply",
            "probe",
            "reply",
            "request"
        ]
    );
    assert_eq!(fp.first_flows, ["ARP"]);
}

#[test]
fn syn_signature_is_p0f_like() {
    let fp = Boot::reference(6).fingerprint();
    assert_eq!(
        fp.tcp_syn,
        vec![SynSignature {
            version: 4,
            window: 64_240,
            mss: 1460,
            window_scale: 7,
            sack_permitted: true,
            timestamps: true,
            ecn: false,
            options: "mss,sok,ts,nop,ws".into(),
        }]
    );
    let no_ts = Boot {
        timestamps: false,
        ..Boot::reference(6)
    }
    .fingerprint();
    assert_eq!(no_ts.tcp_syn[0].options, "mss,nop,nop,sok,nop,ws");
    assert!(!no_ts.tcp_syn[0].timestamps);
}

#[test]
fn odd_tcp_options_are_named_not_trusted() {
    let g = station(guest_mac(7));
    let syn = |options: Vec<u8>| {
        g.ipv4_tcp(
            Ipv4Fields::default(),
            (ip("10.203.0.7"), 1234),
            (ip("10.203.0.1"), 5000),
            &TcpFields {
                seq: 1,
                syn: true,
                ack: false,
                window: 1024,
                options,
            },
            &[],
        )
    };
    // TCP Fast Open cookie request (34), then a length past the header.
    let fp = fingerprint(&[syn(vec![34, 2, 1, 1]), syn(vec![2, 40, 0, 0])]);
    let names: Vec<&str> = fp.tcp_syn.iter().map(|s| s.options.as_str()).collect();
    assert_eq!(names, ["?2", "?34,nop,nop"]);
}

#[test]
fn tls_client_hello_is_reassembled_and_grease_free() {
    let g = station(guest_mac(8));
    let src = (ip("10.203.0.8"), 41_000);
    let dst = (ip("10.203.0.1"), 5001);
    let mut hello = tor_hello("www.example.com");
    // A GREASE cipher and extension, as Chrome sends them.
    let grease = tls_client_hello(
        &[0x1a1a, 0x1302],
        &[(0x2a2a, vec![]), tls_ext::u16_list(10, &[0x3a3a, 0x001d])],
    );
    let seg = |seq: u32, syn: bool, payload: &[u8]| {
        g.ipv4_tcp(
            Ipv4Fields::default(),
            src,
            dst,
            &TcpFields {
                seq,
                syn,
                ack: !syn,
                window: 502,
                options: Vec::new(),
            },
            payload,
        )
    };
    // The hello in three segments, the last two swapped.
    let tail = hello.split_off(100);
    let (mid, end) = tail.split_at(50);
    let frames = vec![
        seg(99, true, &[]),
        seg(100, false, &hello),
        seg(250, false, end),
        seg(200, false, mid),
    ];
    let fp = fingerprint(&frames);
    assert_eq!(fp.tls.len(), 1, "{fp:#?}");
    let h = &fp.tls[0];
    assert_eq!(h.version, 0x0303);
    assert_eq!(h.supported_versions, vec![0x0304, 0x0303]);
    assert_eq!(h.ciphers.len(), 9);
    assert_eq!(h.extensions, vec![0, 11, 10, 35, 22, 23, 13, 43, 45, 51]);
    assert_eq!(h.groups, vec![0x1d, 0x17, 0x1e, 0x19, 0x18]);
    assert_eq!(h.ec_point_formats, vec![0, 1, 2]);
    assert!(h.sni);
    assert!(h.ja4.starts_with("t13d0910"), "{}", h.ja4);
    assert_eq!(fp.first_flows, ["TLS"]);

    let frames = vec![seg(99, true, &[]), seg(100, false, &grease)];
    let h = &fingerprint(&frames).tls[0];
    assert_eq!(h.ciphers, vec![0x1302]);
    assert_eq!(h.extensions, vec![10]);
    assert_eq!(h.groups, vec![0x1d]);
}

#[test]
fn ja4_matches_foxio_s_published_example() {
    // The Chrome hello of the JA4 specification's example,
    // t13d1516h2_8daaf6152771_e5627efa2ab1, with GREASE added.
    let ciphers = [
        0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013,
        0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
    ];
    let sigs = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ];
    let alpn = {
        let mut l = vec![2, b'h', b'2', 8];
        l.extend_from_slice(b"http/1.1");
        let mut b = (l.len() as u16).to_be_bytes().to_vec();
        b.extend_from_slice(&l);
        (16, b)
    };
    let exts = vec![
        tls_ext::empty(0x1a1a),
        tls_ext::server_name("example.com"),
        tls_ext::empty(0x0017),
        (0xff01, vec![0]),
        tls_ext::u16_list(10, &[0x2a2a, 0x001d, 0x0017]),
        tls_ext::ec_point_formats(&[0]),
        tls_ext::empty(0x0023),
        alpn,
        (0x0005, vec![1, 0, 0, 0, 0]),
        tls_ext::u16_list(13, &sigs),
        tls_ext::empty(0x0012),
        (0x0033, vec![0, 0]),
        (0x002d, vec![1, 1]),
        tls_ext::supported_versions(&[0x3a3a, 0x0304, 0x0303]),
        (0x001b, vec![2, 0, 2]),
        (0x4469, vec![0, 3, 2, b'h', b'2']),
        (0x0015, vec![0; 8]),
    ];
    let record = tls_client_hello(&ciphers, &exts);
    let HelloParse::Hello(h) = client_hello(&record) else {
        panic!("not parsed as a ClientHello");
    };
    assert_eq!(h.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    assert_eq!(h.alpn, ["h2", "http/1.1"]);
    // The same hello cut short is not a hello yet.
    assert!(matches!(
        client_hello(&record[..record.len() - 1]),
        HelloParse::NeedMore
    ));
}

#[test]
fn mac_policy_relative_to_the_nic() {
    let fp = Boot::reference(1).fingerprint();
    assert_eq!(
        fp.mac,
        MacPolicy {
            addresses: 1,
            vendor: vec![VendorPart::Kept],
            // QEMU's 52:54:00 has the bit set.
            locally_administered: Tristate::Yes,
        }
    );
    let random = Boot {
        mac: Some(MacAddr([0x00, 0x11, 0x22, 0x33, 0x44, 0x55])),
        ..Boot::reference(1)
    }
    .fingerprint();
    assert_eq!(random.mac.vendor, [VendorPart::Replaced]);
    assert_eq!(random.mac.locally_administered, Tristate::No);
    let unspoofed = Boot {
        mac: Some(NIC),
        ..Boot::reference(1)
    }
    .fingerprint();
    assert_eq!(unspoofed.mac.vendor, [VendorPart::Unchanged]);
    // Without the NIC's MAC the vendor part cannot be judged.
    let frames = Boot::reference(1).frames();
    let timed: Vec<_> = frames
        .into_iter()
        .map(|f| (Timestamp::default(), f))
        .collect();
    let blind = fingerprint_bytes(&capture(Format::PcapNg, &timed), &Observer::lab(None)).unwrap();
    assert_eq!(blind.mac.vendor, [VendorPart::Unknown]);
}

#[test]
fn protocols_and_first_flows_name_kinds_not_addresses() {
    let fp = Boot {
        mdns: true,
        ..Boot::reference(2)
    }
    .fingerprint();
    assert_eq!(
        fp.protocols,
        ["ARP", "DHCP", "IPv4", "TCP", "TLS", "UDP", "mDNS"]
    );
    assert_eq!(fp.first_flows, ["DHCP", "ARP", "mDNS", "TLS"]);
    let mdns = fp.ip.iter().find(|i| i.kind == "mDNS").unwrap();
    assert_eq!(mdns.ttl, vec![255]);
}

#[test]
fn the_lab_s_frames_are_not_the_guest_s() {
    let lab = Station::new(BRIDGE_MAC, guest_mac(1));
    let fp = fingerprint(&[
        lab.arp(1, ip("10.203.0.1"), ip("10.203.0.50")),
        lab.ping(ip("10.203.0.1"), ip("10.203.0.50")),
    ]);
    assert_eq!(fp.mac.addresses, 0);
    assert!(fp.protocols.is_empty());
    assert!(fp.mac.vendor.is_empty());
}

#[test]
fn toml_round_trips_and_refuses_other_formats() {
    let fp = Boot {
        mdns: true,
        ..Boot::reference(4)
    }
    .fingerprint();
    let text = fp.to_toml();
    assert_eq!(Fingerprint::from_toml(&text, "t").unwrap(), fp);
    let old = text.replacen("format = 1", "format = 0", 1);
    assert!(matches!(
        Fingerprint::from_toml(&old, "t"),
        Err(Error::Format { found: 0, .. })
    ));
    let typo = text.replacen("first_flows", "first_flow", 1);
    let e = Fingerprint::from_toml(&typo, "t").unwrap_err().to_string();
    assert!(e.contains("expected a fingerprint in TOML"), "{e}");
}

#[test]
fn not_ethernet_or_not_a_capture_is_a_clear_error() {
    assert!(matches!(
        fingerprint_bytes(b"hello", &Observer::default()),
        Err(Error::NotACapture { .. })
    ));
    assert!(matches!(
        fingerprint_bytes(&[], &Observer::default()),
        Err(Error::Empty { .. })
    ));
    let mut raw = capture(Format::Pcap, &[]);
    raw[20..24].copy_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
    raw.extend_from_slice(&[0; 16]);
    raw[24 + 8..24 + 12].copy_from_slice(&0u32.to_le_bytes());
    assert!(matches!(
        fingerprint_bytes(&raw, &Observer::default()),
        Err(Error::NotEthernet { linktype: 101, .. })
    ));
}

// --- comparison ---------------------------------------------------------------

#[test]
fn boots_of_one_system_compare_the_same() {
    let baseline = Boot::reference(1).fingerprint();
    for seed in 2..8 {
        let c = compare(&baseline, &Boot::reference(seed).fingerprint());
        assert_eq!(c.outcome(), Outcome::Same, "seed {seed}: {c}");
    }
}

fn differences(boot: Boot) -> Comparison {
    compare(&Boot::reference(1).fingerprint(), &boot.fingerprint())
}

#[test]
fn a_dhcp_hostname_is_named() {
    let c = differences(Boot {
        hostname: true,
        ..Boot::reference(2)
    });
    assert_eq!(c.outcome(), Outcome::Differs);
    let text = c.to_string();
    assert!(
        text.contains("DHCP DISCOVER sends a hostname (option 12); the baseline does not"),
        "{text}"
    );
    assert!(!text.contains("sends options"), "said twice: {text}");
}

#[test]
fn a_changed_default_ttl_is_named() {
    let c = differences(Boot {
        ttl: 128,
        ..Boot::reference(2)
    });
    assert_eq!(c.outcome(), Outcome::Differs);
    assert!(
        c.to_string()
            .contains("IPv4 TCP packets have TTL 128; the baseline's have 64"),
        "{c}"
    );
}

#[test]
fn tcp_timestamps_turned_off_are_named() {
    let c = differences(Boot {
        timestamps: false,
        ..Boot::reference(2)
    });
    assert_eq!(c.outcome(), Outcome::Differs);
    assert!(
        c.to_string()
            .contains("TCP SYNs carry no timestamps option; the baseline's do"),
        "{c}"
    );
}

#[test]
fn a_mac_without_the_vendor_part_is_named() {
    let c = differences(Boot {
        mac: Some(MacAddr([0x02, 0x11, 0x22, 0x33, 0x44, 0x55])),
        ..Boot::reference(2)
    });
    let text = c.to_string();
    assert!(text.contains("replaces the NIC's vendor part"), "{text}");
    let global = differences(Boot {
        mac: Some(MacAddr([0x00, 0x11, 0x22, 0x33, 0x44, 0x55])),
        ..Boot::reference(2)
    });
    assert!(
        global
            .to_string()
            .contains("the guest's MAC has the locally-administered bit clear; the baseline's set"),
        "{global}"
    );
}

#[test]
fn an_announcing_protocol_is_named_with_what_it_tells() {
    let c = differences(Boot {
        mdns: true,
        ..Boot::reference(2)
    });
    assert_eq!(c.outcome(), Outcome::Differs);
    let text = c.to_string();
    assert!(
        text.contains(
            "the guest sends mDNS; the baseline does not: multicast DNS (UDP 5353) announces the machine's name"
        ),
        "{text}"
    );
}

#[test]
fn missing_kinds_are_inconclusive_not_a_pass() {
    let baseline = Boot::reference(1).fingerprint();
    // Only the TCP part of a boot: no DHCP, no ARP.
    let frames: Vec<Vec<u8>> = Boot::reference(2).frames().split_off(3);
    let c = compare(&baseline, &fingerprint(&frames));
    assert_eq!(c.outcome(), Outcome::Inconclusive, "{c}");
    assert!(
        c.to_string()
            .contains("the capture has no DHCP from the guest"),
        "{c}"
    );
    let nothing = fingerprint(&[]);
    let c = compare(&baseline, &nothing);
    assert_eq!(c.outcome(), Outcome::Inconclusive);
    assert!(c.to_string().contains("no frame from the guest"), "{c}");
}

#[test]
fn a_difference_outweighs_an_inconclusive_part() {
    let baseline = Boot::reference(1).fingerprint();
    let mut frames = Boot {
        ttl: 100,
        ..Boot::reference(2)
    }
    .frames();
    let frames = frames.split_off(3);
    let c = compare(&baseline, &fingerprint(&frames));
    assert!(!c.inconclusive.is_empty());
    assert_eq!(c.outcome(), Outcome::Differs);
}

#[test]
fn first_flows_order_is_compared_on_shared_kinds() {
    let mut b = Boot::reference(1).fingerprint();
    let mut x = b.clone();
    x.first_flows = vec!["ARP".into(), "DHCP".into(), "TLS".into()];
    let c = compare(&b, &x);
    assert!(
        c.to_string()
            .contains("begins with ARP, DHCP, TLS; the baseline's with DHCP, ARP, TLS"),
        "{c}"
    );
    // Kinds on one side only do not shift the order of the others.
    b.first_flows.insert(1, "NTP".into());
    b.protocols.push("NTP".into());
    x.first_flows = vec!["DHCP".into(), "ARP".into(), "TLS".into()];
    let c = compare(&b, &x);
    assert!(c.differences.is_empty(), "{c}");
}

#[test]
fn dhcp_renewal_on_one_side_is_only_a_note() {
    let mut b = Boot::reference(1).fingerprint();
    let mut x = Boot::reference(2).fingerprint();
    let mut renew = x.dhcp[1].clone();
    renew.kind = "REQUEST (renewing)".into();
    x.dhcp.push(renew);
    let c = compare(&b, &x);
    assert_eq!(c.outcome(), Outcome::Same, "{c}");
    assert_eq!(c.notes.len(), 1, "{c}");
    b.dhcp.push(x.dhcp[2].clone());
    b.dhcp[2].parameter_request_list.push(121);
    let c = compare(&b, &x);
    assert!(c.to_string().contains("asks for parameters [1, 3, 6, 12, 15, 28, 42] (option 55); the baseline asks for [1, 3, 6, 12, 15, 28, 42, 121]"), "{c}");
}

#[test]
fn a_changed_tls_hello_is_named_part_by_part() {
    let b = Boot::reference(1).fingerprint();
    let mut x = Boot::reference(2).fingerprint();
    x.tls[0].ciphers.retain(|c| *c != 0x009f);
    x.tls[0].ja4 = ja4(&x.tls[0]);
    let c = compare(&b, &x);
    let text = c.to_string();
    assert!(text.contains("offers ciphers ["), "{text}");
    assert!(
        text.contains("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384"),
        "{text}"
    );
    // The baseline's hello no longer appears: inconclusive too, but the
    // difference decides.
    assert!(!c.inconclusive.is_empty());
    assert_eq!(c.outcome(), Outcome::Differs);
}

#[test]
fn frames_from_the_nic_s_own_mac_beside_the_spoofed_one_are_named() {
    // A boot-time leak: DHCP from the NIC's MAC before the spoofed one.
    let mut frames = vec![station(NIC).dhcp_client(
        Ipv4Addr::UNSPECIFIED,
        None,
        &[
            (53, &[1]),
            (57, &[2, 64]),
            (55, &[1, 3, 6, 12, 15, 28, 42]),
            (60, b"x"),
            (61, &[1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        ],
    )];
    frames.extend(Boot::reference(2).frames());
    let fp = fingerprint(&frames);
    assert_eq!(fp.mac.addresses, 2);
    assert_eq!(fp.mac.vendor, [VendorPart::Kept, VendorPart::Unchanged]);
    let c = compare(&Boot::reference(1).fingerprint(), &fp);
    let text = c.to_string();
    assert!(
        text.contains("the guest sent from 2 MAC address(es); the baseline from 1"),
        "{text}"
    );
    assert!(
        text.contains("(one address) is the NIC's own address (not spoofed)"),
        "{text}"
    );
}

/// A small deterministic fuzzer for the fast tests (the libFuzzer target
/// `fuzz/fuzz_targets/fingerprint.rs` goes further): bytes flipped and
/// frames cut anywhere in a realistic boot, including inside the DHCP
/// options, the TCP options and the ClientHello's length fields.
#[test]
fn mutated_frames_give_a_fingerprint_never_a_panic() {
    let seed_frames = Boot {
        mdns: true,
        ..Boot::reference(3)
    }
    .frames();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |bound: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % bound as u64) as usize
    };
    for _ in 0..300 {
        let mut frames = seed_frames.clone();
        let which = next(frames.len());
        let frame = &mut frames[which];
        for _ in 0..1 + next(8) {
            let at = next(frame.len());
            frame[at] ^= 1 << next(8);
        }
        if next(4) == 0 {
            let cut = next(frame.len());
            frame.truncate(cut);
        }
        let fp = fingerprint(&frames);
        let back = Fingerprint::from_toml(&fp.to_toml(), "mutated").unwrap();
        assert_eq!(back, fp);
        assert_ne!(compare(&fp, &fp).outcome(), Outcome::Differs);
    }
}

#[test]
fn arp_by_timing_is_a_note_arp_probes_a_difference() {
    let b = Boot::reference(1).fingerprint();
    let mut x = Boot::reference(2).fingerprint();
    x.arp = vec!["announcement".into(), "reply".into(), "request".into()];
    let c = compare(&b, &x);
    assert_eq!(c.outcome(), Outcome::Same, "{c}");
    assert_eq!(c.notes.len(), 2, "{c}");
    x.arp.push("probe".into());
    let c = compare(&b, &x);
    assert!(
        c.to_string().contains("the guest sends ARP probes (requests from 0.0.0.0 that check an address is free); the baseline does not"),
        "{c}"
    );
}

#[test]
fn streams_take_overlaps_duplicates_and_gaps() {
    let data: Vec<u8> = (0..=255).collect();
    let mut s = Stream::new(1000);
    assert!(!s.add(100, &data[100..150]), "beyond a gap: held");
    assert!(s.add(0, &data[..60]));
    assert!(!s.add(0, &data[..60]), "a duplicate adds nothing");
    // Overlaps both the end of what is there and the held piece.
    assert!(s.add(40, &data[40..120]));
    assert_eq!(s.bytes, &data[..150]);
    assert!(s.add(150, &data[150..]));
    assert_eq!(s.bytes, data);
}
