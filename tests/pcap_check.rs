//! `tailor pcap-check` end to end: exit 0 on a clean capture, 1 on a leak
//! (with the offending flow printed), 2 when the file is not a capture.

use std::process::Command;

use harness::net::analysis::{Format, Timestamp};
use harness::net::synth::{capture, Station};

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

#[test]
fn exit_status_tells_clean_from_leak_from_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let guest = Station::new(
        "02:00:00:aa:bb:cc".parse().unwrap(),
        "02:00:00:00:00:01".parse().unwrap(),
    );
    let ip = |s: &str| s.parse().unwrap();
    let t = |ms: i128| Timestamp::from_nanos(1_795_593_600_000_000_000 + ms * 1_000_000);
    let mut frames = vec![
        (t(0), guest.dhcp_discover()),
        (
            t(1),
            guest.tcp_syn((ip("10.203.0.57"), 40_000), (ip("10.203.0.1"), 5001)),
        ),
    ];
    let clean = dir.path().join("clean.pcapng");
    std::fs::write(&clean, capture(Format::PcapNg, &frames)).unwrap();
    frames.push((
        t(2),
        guest.dns_query(
            (ip("10.203.0.57"), 33_000),
            (ip("10.203.0.1"), 53),
            &["leak.example"],
        ),
    ));
    let leak = dir.path().join("leak.pcap");
    std::fs::write(&leak, capture(Format::Pcap, &frames)).unwrap();
    let allow = dir.path().join("relays.txt");
    std::fs::write(&allow, "# the lab's relays\n10.203.0.1:5001\n").unwrap();

    let common = [
        "--allow-file",
        allow.to_str().unwrap(),
        "--dhcp-server",
        "10.203.0.1",
        "--nic-mac",
        "52:54:00:12:34:56",
    ];
    let (code, text) = run(&[&[clean.to_str().unwrap()][..], &common].concat());
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("only Tor: PASS"), "{text}");

    let (code, text) = run(&[&[leak.to_str().unwrap()][..], &common].concat());
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("UDP 10.203.0.57:33000 -> 10.203.0.1:53") && text.contains("leak.example"),
        "{text}"
    );

    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"not a capture at all").unwrap();
    let (code, text) = run(&[junk.to_str().unwrap(), "--allow", "10.203.0.1:5001"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("expected a pcap or pcapng header"), "{text}");
}
