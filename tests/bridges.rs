//! The reference derivative built with default bridges (customization
//! `default-bridges`, kind `bridges`) through the bridge features and the
//! kind-neutral security features of the lab (boot, DNS, IPv6, MAC,
//! firewall), each judged against the bridges its guest was given. The run
//! finds the kind in the ISO itself (`/tailor/derivative.toml`), as
//! `tailor run --iso` does.
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
    let args = RunArgs {
        iso: Some(iso),
        artifacts: root().join("artifacts/bridges"),
        tags: Some("@lab".into()),
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
    for feature in [
        "Tor through bridges",
        "Nothing leaves before Start, and the guest looks like its base",
        "DNS goes only through Tor",
        "No IPv6 leaves the guest",
        "MAC address spoofing",
        "The Tor-only firewall",
    ] {
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
