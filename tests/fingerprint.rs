//! `tailor fingerprint` end to end: the TOML it prints is a baseline that
//! another boot of the same system matches (exit 0); a boot that sends a
//! DHCP hostname differs (exit 1, named); a capture without the guest's
//! DHCP is inconclusive (exit 3); unreadable input exits 2.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use harness::net::analysis::{Format, MacAddr, Timestamp};
use harness::net::lab::BRIDGE_MAC;
use harness::net::synth::{
    capture, linux_syn_options, tls_client_hello, tls_ext, Ipv4Fields, Station, TcpFields,
};

const NIC_MAC: &str = "52:54:00:12:34:56";

fn tailor(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tailor"))
        .arg("fingerprint")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// One boot of a udhcpc + Tor system: `seed` changes what changes from
/// boot to boot (MAC tail, address, ports, IP IDs, Tor's random SNI).
fn boot(seed: u8, hostname: bool) -> Vec<Vec<u8>> {
    let mac = MacAddr([0x52, 0x54, 0, 0x10, 0x20, seed]);
    let g = Station::new(mac, BRIDGE_MAC);
    let me = Ipv4Addr::new(10, 203, 0, 40 + seed);
    let lab = Ipv4Addr::new(10, 203, 0, 1);
    let mut client_id = vec![1];
    client_id.extend_from_slice(&mac.0);
    let mut options: Vec<(u8, &[u8])> = vec![(53, &[1]), (61, &client_id)];
    if hostname {
        options.push((12, b"my-laptop"));
    }
    options.push((55, &[1, 3, 6, 12, 15, 28, 42]));
    let mut frames = vec![g.dhcp_client(Ipv4Addr::UNSPECIFIED, None, &options)];
    frames.push(g.arp(1, me, lab));
    let src = (me, 40_000 + u16::from(seed));
    let dst = (lab, 5000 + u16::from(seed % 2));
    let id = 1000 * u16::from(seed);
    let ip = |k: u16| Ipv4Fields {
        identification: id + k,
        ..Ipv4Fields::default()
    };
    let syn = TcpFields {
        seq: 7,
        syn: true,
        ack: false,
        window: 64_240,
        options: linux_syn_options(),
    };
    frames.push(g.ipv4_tcp(ip(0), src, dst, &syn, &[]));
    let hello = tls_client_hello(
        &[0x1302, 0x1303, 0x1301, 0xc02c],
        &[
            tls_ext::server_name(&format!("www.{}.com", "q".repeat(usize::from(seed) + 3))),
            tls_ext::u16_list(10, &[0x001d, 0x0017]),
            tls_ext::supported_versions(&[0x0304, 0x0303]),
        ],
    );
    let data = TcpFields {
        seq: 8,
        syn: false,
        ack: true,
        window: 502,
        options: Vec::new(),
    };
    frames.push(g.ipv4_tcp(ip(1), src, dst, &data, &hello));
    frames.push(g.ipv4_tcp(ip(2), src, dst, &data, &[]));
    frames
}

fn write(dir: &Path, name: &str, frames: &[Vec<u8>]) -> PathBuf {
    let timed: Vec<(Timestamp, Vec<u8>)> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| (Timestamp::from_nanos(i as i128 * 1_000_000), f.clone()))
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, capture(Format::PcapNg, &timed)).unwrap();
    path
}

#[test]
fn a_baseline_from_one_boot_holds_for_another_and_catches_a_hostname() {
    let dir = tempfile::tempdir().unwrap();
    let first = write(dir.path(), "boot1.pcapng", &boot(1, false));
    let (code, toml, err) = tailor(&[first.to_str().unwrap(), "--nic-mac", NIC_MAC]);
    assert_eq!(code, 0, "{err}");
    assert!(toml.contains("vendor = [\"kept\"]"), "{toml}");
    assert!(
        toml.contains("parameter_request_list = [1, 3, 6, 12, 15, 28, 42]"),
        "{toml}"
    );
    assert!(
        !toml.contains("10.203.0") && !toml.contains("qqqq"),
        "{toml}"
    );
    let baseline = dir.path().join("baseline.toml");
    std::fs::write(&baseline, &toml).unwrap();
    let b = baseline.to_str().unwrap();

    let second = write(dir.path(), "boot2.pcapng", &boot(2, false));
    let (code, out, err) = tailor(&[
        "--compare",
        b,
        second.to_str().unwrap(),
        "--nic-mac",
        NIC_MAC,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("SAME"), "{out}");

    let leaky = write(dir.path(), "hostname.pcapng", &boot(3, true));
    let (code, out, _) = tailor(&[
        "--compare",
        b,
        leaky.to_str().unwrap(),
        "--nic-mac",
        NIC_MAC,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("DHCP DISCOVER sends a hostname (option 12); the baseline does not"),
        "{out}"
    );

    // No DHCP and no ARP in this capture: nothing to compare them with.
    let late = write(dir.path(), "late.pcapng", &boot(4, false)[2..]);
    let (code, out, _) = tailor(&["--compare", b, late.to_str().unwrap(), "--nic-mac", NIC_MAC]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("the capture has no DHCP from the guest"),
        "{out}"
    );

    // Without --nic-mac the MAC policy cannot be judged: inconclusive.
    let (code, out, _) = tailor(&["--compare", b, second.to_str().unwrap()]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("--nic-mac"), "{out}");
}

#[test]
fn unreadable_input_exits_2_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"not a capture").unwrap();
    let (code, _, err) = tailor(&[junk.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("expected a pcap or pcapng header"), "{err}");

    let good = write(dir.path(), "boot.pcapng", &boot(1, false));
    let bad_baseline = dir.path().join("baseline.toml");
    std::fs::write(&bad_baseline, "format = 1\nprotocols = 7\n").unwrap();
    let (code, _, err) = tailor(&[
        "--compare",
        bad_baseline.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("expected a fingerprint in TOML"), "{err}");

    let missing = dir.path().join("missing.pcap");
    let (code, _, err) = tailor(&[missing.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot open"), "{err}");
}

/// The recorded baseline holds for a real capture of the reference
/// derivative (its first 60 frames: Start's DHCP and ARP, Tor's first
/// connections and ClientHellos), so the baseline file and the parser
/// agree on real bytes, not only on synthetic ones.
#[test]
fn the_reference_baseline_holds_for_a_real_capture_of_the_reference() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let baseline = root.join("fingerprints/tor.toml");
    let capture = root.join("tests/data/reference-tor-60-frames.pcap");
    let (code, out, err) = tailor(&[
        "--compare",
        baseline.to_str().unwrap(),
        capture.to_str().unwrap(),
        "--nic-mac",
        NIC_MAC,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    // The same capture without the NIC's MAC cannot prove the MAC policy.
    let (code, out, _) = tailor(&[
        "--compare",
        baseline.to_str().unwrap(),
        capture.to_str().unwrap(),
    ]);
    assert_eq!(code, 3, "{out}");
}

/// A scenario restored from a checkpoint has its story in several
/// captures: read in order, they are one fingerprint.
#[test]
fn several_captures_are_read_as_one_story() {
    let dir = tempfile::tempdir().unwrap();
    let whole = write(dir.path(), "whole.pcapng", &boot(1, false));
    let (_, toml, _) = tailor(&[whole.to_str().unwrap(), "--nic-mac", NIC_MAC]);
    let baseline = dir.path().join("baseline.toml");
    std::fs::write(&baseline, toml).unwrap();
    let frames = boot(2, false);
    let checkpoint = write(dir.path(), "checkpoint.pcapng", &frames[..2]);
    let scenario = write(dir.path(), "scenario.pcapng", &frames[2..]);
    let b = baseline.to_str().unwrap();
    let (code, out, _) = tailor(&[
        "--compare",
        b,
        checkpoint.to_str().unwrap(),
        scenario.to_str().unwrap(),
        "--nic-mac",
        NIC_MAC,
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = tailor(&[
        "--compare",
        b,
        scenario.to_str().unwrap(),
        "--nic-mac",
        NIC_MAC,
    ]);
    assert_eq!(code, 3, "{out}");
}
