//! Any byte string gives a fingerprint or a clear error, never a panic, a
//! hang or an out-of-memory; a fingerprint survives its own TOML and
//! compares the same with itself. Half the inputs are taken as one
//! Ethernet frame (wrapped into a capture) so the DHCP, TCP option and TLS
//! parsers see mutated frames rather than mostly broken capture headers.
//! Run: `cargo +nightly fuzz run fingerprint` (seeds: the `analyse`
//! corpus, `fuzz/corpus/analyse`).
#![no_main]

use harness::net::analysis::{Format, Timestamp};
use harness::net::fingerprint::{self, Fingerprint, Observer, Outcome};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let observer = Observer::lab(Some("52:54:00:12:34:56".parse().expect("literal")));
    let result = if mode & 1 == 0 {
        fingerprint::fingerprint_bytes(rest, &observer)
    } else {
        // One frame, twice: the second copy exercises the "already seen"
        // paths (streams, variants).
        let frame = (Timestamp::default(), rest.to_vec());
        let capture = harness::net::synth::capture(Format::Pcap, &[frame.clone(), frame]);
        fingerprint::fingerprint_bytes(&capture, &observer)
    };
    let Ok(fp) = result else {
        return;
    };
    let text = fp.to_toml();
    let back = Fingerprint::from_toml(&text, "fuzz").expect("a fingerprint reads its own TOML");
    assert_eq!(back, fp);
    let c = fingerprint::compare(&fp, &back);
    let _ = c.to_string();
    assert!(
        c.outcome() != Outcome::Differs,
        "a fingerprint differs from itself: {c}"
    );
});
