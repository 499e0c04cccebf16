//! Any byte string is either a capture with a verdict or a clear error;
//! never a panic, a hang or an out-of-memory. Seeds: `cargo run -p harness
//! --example synth_capture -- seeds fuzz/corpus/analyse`.
#![no_main]

use harness::net::analysis::{analyse_bytes, MacAddr};
use harness::net::policy::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(analysis) = analyse_bytes(data) else {
        return;
    };
    let policy = Policy::new(
        ["10.203.0.1:5001".parse().expect("literal")],
        Some("10.203.0.1".parse().expect("literal")),
    );
    let nic = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    for verdict in policy.all(&analysis, Some(nic)) {
        // Rendering must not panic either (timestamps, odd addresses).
        let _ = verdict.to_string();
    }
    let _ = analysis.to_string();
});
