//! `tailor pcap-check` end to end, one case per exit code: 0 every check
//! passed, 1 a leak (named), 2 usage error or unreadable input, 3
//! inconclusive, 4 damaged capture; and `--live` for a capture still being
//! written.

use std::path::{Path, PathBuf};
use std::process::Command;

use harness::net::analysis::{Format, Timestamp};
use harness::net::synth::{self, capture, Station};

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tailor"))
        .arg("pcap-check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn t(ms: i128) -> Timestamp {
    Timestamp::from_nanos(1_795_593_600_000_000_000 + ms * 1_000_000)
}

fn guest() -> Station {
    Station::new(
        "02:00:00:aa:bb:cc".parse().unwrap(),
        "02:00:00:00:00:01".parse().unwrap(),
    )
}

fn ip(s: &str) -> std::net::IpAddr {
    s.parse().unwrap()
}

const NIC: &str = "52:54:00:12:34:56";

/// DHCP, then a Tor connection that opens with TLS.
fn clean() -> Vec<(Timestamp, Vec<u8>)> {
    let g = guest();
    let (me, relay) = ((ip("10.203.0.57"), 40_000), (ip("10.203.0.1"), 5001));
    vec![
        (t(0), g.dhcp_discover()),
        (t(1), g.tcp_syn(me, relay)),
        (t(2), g.tcp(me, relay, &synth::tor_client_hello())),
    ]
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn common(allow: &Path) -> Vec<String> {
    [
        "--allow-file",
        s(allow),
        "--dhcp-server",
        "10.203.0.1",
        "--nic-mac",
        NIC,
    ]
    .map(String::from)
    .to_vec()
}

fn check(capture: &Path, extra: &[String]) -> (i32, String) {
    let mut args = vec![s(capture)];
    args.extend(extra.iter().map(String::as_str));
    run(&args)
}

#[test]
fn exit_0_when_every_check_passes() {
    let f = Files::new();
    let allow = f.write("relays.txt", b"# the lab's relays\n10.203.0.1:5001\n");
    for format in [Format::Pcap, Format::PcapNg] {
        let clean = f.write("clean", &capture(format, &clean()));
        let (code, text) = check(&clean, &common(&allow));
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("only Tor: PASS"), "{text}");
        assert!(text.contains("no IPv6: PASS"), "{text}");
        assert!(
            text.contains("MAC spoofed (NIC's configured MAC 52:54:00:12:34:56): PASS"),
            "{text}"
        );
    }
}

#[test]
fn exit_1_names_each_kind_of_leak() {
    let f = Files::new();
    let allow = f.write("relays.txt", b"10.203.0.1:5001\n");
    let g = guest();
    let me = (ip("10.203.0.57"), 40_100);
    let relay = (ip("10.203.0.1"), 5001);
    let mut real = vec![1];
    real.extend_from_slice(&NIC.parse::<harness::net::analysis::MacAddr>().unwrap().0);
    let leaks: Vec<(Vec<u8>, &str)> = vec![
        (
            g.dns_query(me, (ip("10.203.0.1"), 53), &["leak.example"]),
            "leak.example",
        ),
        (
            g.udp(me, relay, b"not tcp"),
            "UDP 10.203.0.57:40100 -> 10.203.0.1:5001",
        ),
        (g.tcp(me, relay, b"GET / HTTP/1.0\r\n"), "opened before"),
        (
            g.router_solicitation(std::net::Ipv6Addr::UNSPECIFIED),
            "no IPv6: FAIL",
        ),
        (
            g.dhcp_discover_with(g.mac, Some(&real)),
            "DHCP client identifier (option 61)",
        ),
    ];
    for (i, (frame, named)) in leaks.into_iter().enumerate() {
        let mut frames = clean();
        if named == "opened before" {
            // A connection whose SYN is in the capture, then plain text.
            frames.push((t(9), g.tcp_syn(me, relay)));
            frames.push((t(10), frame));
            let path = f.write(&format!("leak{i}.pcap"), &capture(Format::Pcap, &frames));
            let (code, text) = check(&path, &common(&allow));
            assert_eq!(code, 1, "{text}");
            assert!(text.contains("not Tor (no TLS handshake)"), "{text}");
            continue;
        }
        frames.push((t(10), frame));
        let path = f.write(&format!("leak{i}.pcap"), &capture(Format::Pcap, &frames));
        let (code, text) = check(&path, &common(&allow));
        assert_eq!(code, 1, "{named}: {text}");
        assert!(text.contains(named), "{named}: {text}");
    }
    // The same UDP datagram passes once the endpoint allows UDP.
    let mut frames = clean();
    frames.push((t(10), g.udp(me, (ip("10.203.0.1"), 51820), b"wg")));
    let path = f.write("vpn.pcap", &capture(Format::Pcap, &frames));
    let (code, text) = check(&path, &common(&allow));
    assert_eq!(code, 1, "{text}");
    let mut args = common(&allow);
    args.extend(["--allow-udp".into(), "10.203.0.1:51820".into()]);
    let (code, text) = check(&path, &args);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn exit_2_for_usage_errors_and_unreadable_input() {
    let f = Files::new();
    let clean = f.write("clean.pcap", &capture(Format::Pcap, &clean()));
    let junk = f.write("junk.pcap", b"not a capture at all");
    let (code, text) = run(&[s(&junk), "--allow", "10.203.0.1:5001"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("expected a pcap or pcapng header"), "{text}");
    let missing = f.dir.path().join("missing.pcap");
    let (code, text) = run(&[s(&missing)]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("cannot open capture"), "{text}");
    let bad_list = f.write("bad.txt", b"10.203.0.1:5001\nnot-an-endpoint\n");
    let (code, text) = run(&[s(&clean), "--allow-file", s(&bad_list)]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("line 2"), "{text}");
    let (code, text) = run(&[s(&clean), "--allow", "10.203.0.1"]);
    assert_eq!(code, 2, "{text}");
    let (code, text) = run(&[s(&clean), "--no-such-flag"]);
    assert_eq!(code, 2, "{text}");
}

#[test]
fn exit_3_when_a_check_cannot_prove_anything() {
    let f = Files::new();
    let allow = f.write("relays.txt", b"10.203.0.1:5001\n");
    // Cut right after its file header: a valid, empty capture.
    let header_only = f.write("empty.pcap", &capture(Format::Pcap, &[]));
    let (code, text) = check(&header_only, &common(&allow));
    assert_eq!(code, 3, "{text}");
    assert!(!text.contains("PASS"), "{text}");
    assert!(text.contains("only Tor: INCONCLUSIVE"), "{text}");
    // Only the lab's frames.
    let bridge = Station::new("02:00:00:00:00:01".parse().unwrap(), guest().mac);
    let lab_only = f.write(
        "lab.pcap",
        &capture(
            Format::PcapNg,
            &[(
                t(0),
                bridge.arp_request(
                    "10.203.0.1".parse().unwrap(),
                    "10.203.0.57".parse().unwrap(),
                ),
            )],
        ),
    );
    let (code, text) = check(&lab_only, &common(&allow));
    assert_eq!(code, 3, "{text}");
    assert!(text.contains("no frame came from the guest"), "{text}");
}

#[test]
fn exit_4_for_a_damaged_capture_unless_it_is_live() {
    let f = Files::new();
    let allow = f.write("relays.txt", b"10.203.0.1:5001\n");
    for format in [Format::Pcap, Format::PcapNg] {
        let bytes = capture(format, &clean());
        let cut = f.write("cut", &bytes[..bytes.len() - 5]);
        let (code, text) = check(&cut, &common(&allow));
        assert_eq!(code, 4, "{text}");
        assert!(text.contains("cut short"), "{text}");
        let mut args = common(&allow);
        args.push("--live".into());
        let (code, text) = check(&cut, &args);
        // Judged up to the partial record: the TLS hello is cut, so the
        // relay connection has no payload yet, which is fine.
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("still being written"), "{text}");
        // Cut inside the header.
        let head = f.write("head", &bytes[..10]);
        let (code, text) = check(&head, &args);
        assert_eq!(code, 4, "{text}");
    }
    // Corrupt in the middle: an error, live or not.
    let mut bytes = capture(Format::Pcap, &clean());
    bytes[24 + 8..24 + 12].copy_from_slice(&(1u32 << 30).to_le_bytes());
    let corrupt = f.write("corrupt.pcap", &bytes);
    for live in [false, true] {
        let mut args = common(&allow);
        if live {
            args.push("--live".into());
        }
        let (code, text) = check(&corrupt, &args);
        assert_eq!(code, 4, "{text}");
        assert!(text.contains("corrupt capture at byte 24"), "{text}");
    }
}

#[test]
fn help_documents_the_exit_codes_and_allow_list_format() {
    let (code, text) = run(&["--help"]);
    assert_eq!(code, 0, "{text}");
    // Wrapped to the terminal's width: compare words, not lines.
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "3 inconclusive",
        "4 damaged capture",
        "--allow-udp",
        "--live",
        "tcp:IP:PORT",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}
