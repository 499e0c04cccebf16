//! The reference derivative built with default bridges (customization
//! `default-bridges`, kind `bridges`) through the bridge features and the
//! boot scenario (nothing before Start, and on the network it looks like
//! the bridges baseline), each judged against the bridges its guest was
//! given. The run finds the kind in the ISO itself
//! (`/tailor/derivative.toml`), as `tailor run --iso` does.
//!
//! Cost: CI runs those two features; `TAILOR_FULL_MATRIX=1` (nightly) runs
//! every lab feature on it, the kind-neutral security features (DNS, IPv6,
//! MAC, firewall) included.
#![cfg(feature = "vm")]

use std::path::PathBuf;

use harness::derivative::{build, BuildOptions};
use steps::runner::{run_recorded, RunArgs};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_derivative_with_default_bridges_passes_the_bridge_and_security_features() {
    let out = root().join(".cache/derivative/test-isos/default-bridges.iso");
    let opts = BuildOptions::new(root(), &out)
        .customization(root().join("derivative/customizations/default-bridges.toml"));
    let iso = build(&opts)
        .unwrap_or_else(|e| panic!("building the default-bridges ISO: {e}"))
        .iso;
    let full = std::env::var("TAILOR_FULL_MATRIX").is_ok_and(|v| v == "1");
    let args = RunArgs {
        iso: Some(iso),
        artifacts: root().join("artifacts/bridges"),
        tags: Some(if full { "@lab" } else { "@bridges or @boot" }.into()),
        ..RunArgs::in_project(&root())
    };
    let (summary, records) = run_recorded(args).await.expect("the run itself works");
    let failed: Vec<String> = records
        .final_outcomes()
        .filter(|sc| sc.failed())
        .map(|sc| format!("{}: {} ({}:{})", sc.feature, sc.name, sc.file, sc.line))
        .collect();
    assert!(
        summary.success() && failed.is_empty(),
        "the default-bridges derivative failed: {failed:#?}\n{summary:?}"
    );
    let ran: Vec<&str> = records
        .final_outcomes()
        .map(|sc| sc.feature.as_str())
        .collect();
    let mut expected = vec![
        "Tor through bridges",
        "Nothing leaves before Start, and the guest looks like its base",
    ];
    if full {
        expected.extend([
            "DNS goes only through Tor",
            "No IPv6 leaves the guest",
            "MAC address spoofing",
            "The Tor-only firewall",
        ]);
    }
    for feature in expected {
        assert!(
            ran.contains(&feature),
            "feature `{feature}` did not run for the bridges kind; ran {ran:?}"
        );
    }
    assert!(
        !ran.contains(&"Tor-only traffic"),
        "the direct-Tor feature (@kind-tor) ran against a bridges derivative"
    );
}
