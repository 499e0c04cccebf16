//! Any byte string is either a capture with a verdict or a clear error;
//! never a panic, a hang or an out-of-memory. The first byte picks the
//! options (live or not, which MAC to watch) and the allow-list's
//! transports, so the record walk, the live-tail rule, the MAC search and
//! every check are all fuzzed; an allow-list line is parsed from the tail.
//! Seeds: `cargo run -p harness --example synth_capture -- seeds
//! fuzz/corpus/analyse`.
#![no_main]

use harness::net::analysis::{analyse_bytes_with, MacAddr, Options};
use harness::net::policy::{Endpoint, Policy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    let nic = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    // The guest's (spoofed) MAC: a watched MAC that is everywhere.
    let guest = MacAddr([0x02, 0, 0, 0xaa, 0xbb, 0xcc]);
    let options = Options {
        live: mode & 1 == 1,
        watch_macs: match mode >> 1 & 3 {
            0 => vec![],
            1 => vec![nic],
            _ => vec![nic, guest],
        },
    };
    // Allow-list parsing must not panic on any text either.
    if let Ok(text) = std::str::from_utf8(&data[data.len().saturating_sub(64)..]) {
        let _ = Policy::parse_allow_list(text, "fuzz");
    }
    let Ok(analysis) = analyse_bytes_with(data, &options) else {
        return;
    };
    let relay = "10.203.0.1:5001".parse().expect("literal");
    let endpoints = match mode >> 3 & 3 {
        0 => vec![Endpoint::tor(relay)],
        1 => vec![Endpoint::tcp(relay)],
        2 => vec![Endpoint::udp(relay)],
        _ => vec![Endpoint::tor(relay), Endpoint::udp(relay)],
    };
    let policy = Policy::with_endpoints(endpoints, Some("10.203.0.1".parse().expect("literal")));
    for verdict in policy.all(&analysis, Some(nic)) {
        // Rendering must not panic either (timestamps, odd addresses).
        let _ = verdict.to_string();
        let _ = verdict.outcome();
    }
    let _ = policy.allowed_guest_flows(&analysis);
    let _ = analysis.to_string();
});
