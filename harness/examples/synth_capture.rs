//! Write synthetic captures: a large one for the packet-analysis benchmark
//! (`scripts/bench-pcap.sh`), or small seeds for the fuzzer.
//!
//! ```text
//! cargo run --release -p harness --example synth_capture -- big FILE MEGABYTES
//! cargo run --release -p harness --example synth_capture -- seeds DIR
//! ```
//!
//! Seeds are fuzz inputs: a mode byte, then a capture.
//!
//! The big capture looks like a guest using Tor on the lab: TCP to three
//! relays (each connection opening with a SYN and a TLS ClientHello) with
//! full-size segments, 514-byte cells and bare ACKs both ways, with a DHCP
//! exchange, ARP, IPv6 autoconfiguration and a few leaks (DNS, a direct TCP
//! connection, IPv6, the NIC's real MAC 52:54:00:12:34:56 in a DHCP
//! `chaddr`) sprinkled in so every code path is timed.

use std::io::BufWriter;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use harness::net::analysis::{Format, MacAddr, Timestamp};
use harness::net::synth::{self, CaptureWriter, Station};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["big", file, mb] => big(Path::new(file), mb.parse()?),
        ["seeds", dir] => seeds(Path::new(dir)),
        _ => Err("usage: synth_capture big FILE MEGABYTES | seeds DIR".into()),
    }
}

fn stations() -> (Station, Station) {
    let guest: MacAddr = "02:00:00:aa:bb:cc".parse().expect("literal");
    let bridge: MacAddr = "02:00:00:00:00:01".parse().expect("literal");
    (Station::new(guest, bridge), Station::new(bridge, guest))
}

fn big(path: &Path, megabytes: u64) -> Result<(), Box<dyn std::error::Error>> {
    let (g, b) = stations();
    let guest: IpAddr = "10.203.0.57".parse()?;
    let relay: IpAddr = "10.203.0.1".parse()?;
    let full = vec![0x17u8; 1448];
    let cell = vec![0x17u8; 514];
    let mut out = Out {
        w: CaptureWriter::new(BufWriter::new(std::fs::File::create(path)?), Format::Pcap)?,
        n: 0,
        written: 24,
    };
    let target = megabytes << 20;
    out.put(g.router_solicitation(Ipv6Addr::UNSPECIFIED))?;
    out.put(g.dhcp_discover())?;
    out.put(g.arp_request(Ipv4Addr::new(10, 203, 0, 57), Ipv4Addr::new(10, 203, 0, 1)))?;
    for k in 0..3 {
        let (port, local) = (5001 + k, 40_000 + k);
        out.put(g.tcp_syn((guest, local), (relay, port)))?;
        out.put(g.tcp((guest, local), (relay, port), &synth::tor_client_hello()))?;
    }
    let nic: MacAddr = "52:54:00:12:34:56".parse().expect("literal");
    let mut i: u64 = 0;
    while out.written < target {
        let port = 5001 + (i % 3) as u16;
        let local = 40_000 + (i % 3) as u16;
        out.put(b.tcp((relay, port), (guest, local), &full))?;
        out.put(b.tcp((relay, port), (guest, local), &full))?;
        out.put(g.tcp((guest, local), (relay, port), &[]))?;
        out.put(g.tcp((guest, local), (relay, port), &cell))?;
        out.put(b.tcp((relay, port), (guest, local), &[]))?;
        if i.is_multiple_of(10_000) {
            out.put(g.dns_query((guest, 33_000), (relay, 53), &["example.com"]))?;
            out.put(g.tcp_syn((guest, 41_000), ("10.203.0.2".parse()?, 80)))?;
            out.put(g.udp(("fd00::57".parse()?, 5000), ("fd00::1".parse()?, 443), b"x"))?;
            out.put(g.dhcp_discover_with(nic, None))?;
        }
        i += 1;
    }
    let (n, written) = (out.n, out.written);
    out.w
        .into_inner()
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    eprintln!("wrote {n} packets, {written} bytes to {}", path.display());
    Ok(())
}

/// The big capture being written: one frame every 50 µs.
struct Out {
    w: CaptureWriter<BufWriter<std::fs::File>>,
    n: i128,
    written: u64,
}

impl Out {
    fn put(&mut self, frame: Vec<u8>) -> std::io::Result<()> {
        self.n += 1;
        self.written += 16 + frame.len() as u64;
        let ts = Timestamp::from_nanos(1_795_593_600_000_000_000 + self.n * 50_000);
        self.w.write(ts, &frame)
    }
}

fn seeds(dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let nic: MacAddr = "52:54:00:12:34:56".parse()?;
    let (g, b) = stations();
    let guest: IpAddr = "10.203.0.57".parse()?;
    let relay: IpAddr = "10.203.0.1".parse()?;
    let t = |ms: i128| Timestamp::from_nanos(1_795_593_600_000_000_000 + ms * 1_000_000);
    let mut frames = vec![
        (t(0), g.router_solicitation("fe80::1".parse()?)),
        (t(1), g.dhcp_discover()),
        (
            t(2),
            g.arp_request(Ipv4Addr::new(10, 203, 0, 57), Ipv4Addr::new(10, 203, 0, 1)),
        ),
        (t(3), g.tcp_syn((guest, 40_000), (relay, 5001))),
        (t(4), b.tcp((relay, 5001), (guest, 40_000), b"cell")),
        (
            t(5),
            g.dns_query(
                (guest, 33_000),
                (relay, 53),
                &["example.com", "tor.example"],
            ),
        ),
        (t(6), g.tcp_vlan(7, (guest, 1), (relay, 443), b"v")),
        (
            t(7),
            g.ping(Ipv4Addr::new(10, 203, 0, 57), Ipv4Addr::new(10, 203, 0, 2)),
        ),
        (
            t(8),
            g.tcp((guest, 40_000), (relay, 5001), &synth::tor_client_hello()),
        ),
        (
            t(9),
            g.dhcp_discover_with(nic, Some(&[1, 0x52, 0x54, 0, 0x12, 0x34, 0x56])),
        ),
        (
            t(9),
            g.arp_request_as(
                nic,
                Ipv4Addr::new(10, 203, 0, 57),
                Ipv4Addr::new(10, 203, 0, 1),
            ),
        ),
        (t(9), g.router_solicitation(synth::eui64_link_local(nic))),
        (
            t(9),
            g.neighbour_solicitation(
                Ipv6Addr::UNSPECIFIED,
                synth::eui64_link_local(nic),
                Some(nic),
            ),
        ),
        (
            t(9),
            g.mld_report("fe80::1".parse()?, "ff02::1:ff12:3456".parse()?),
        ),
        (
            t(9),
            g.udp((guest, 40_001), (relay, 5001), b"udp to an ORPort"),
        ),
    ];
    for (i, f) in g
        .udp_fragments(
            (Ipv4Addr::new(10, 203, 0, 57), 40_000),
            (Ipv4Addr::new(10, 203, 0, 9), 53),
            &synth::dns_query(&["fragmented.example"; 8]),
            64,
            9,
        )
        .into_iter()
        .enumerate()
    {
        frames.push((t(10 + i as i128), f));
    }
    // Fuzz inputs are a mode byte (live or not, watched MACs, endpoint
    // transports: see fuzz/fuzz_targets/analyse.rs) and then a capture.
    for (name, format) in [("pcap", Format::Pcap), ("pcapng", Format::PcapNg)] {
        let capture = synth::capture(format, &frames);
        for mode in [0u8, 3, 5, 9, 27] {
            let mut input = vec![mode];
            input.extend_from_slice(&capture);
            std::fs::write(dir.join(format!("lab-{mode}.{name}")), input)?;
        }
    }
    Ok(())
}
