//! The lab features as a normal user. CI runs as root, so this runs
//! `tailor run --tags @lab` as nobody (uid 65534, no other group) with a
//! home of its own: the lab is a user+network namespace, the Tor network,
//! the web server and the route check enter it through `nsenter`, QEMU
//! attaches to its tap, and the caches (`~/.cache/tailor/tor-keys`) and
//! temporary files land in that home. /dev/net/tun is 0600 on this
//! machine (most distributions ship it 0666), so the test lends it to
//! nobody's group for its duration and gives it back after.
//!
//! Cost: CI runs the Tor feature only (`--tags @tor`: the lab, the Tor
//! network, the web server, the route check and QEMU's tap all as nobody,
//! one boot); `TAILOR_FULL_MATRIX=1` (the nightly run) runs every lab
//! scenario. The other lab features differ from it only in what the guest
//! does, which `tests/features.rs` proves as root.
//!
//! Needs root and QEMU: `cargo test --features vm --test rootless_suite`.
#![cfg(feature = "vm")]

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

mod common;

#[test]
fn lab_features_pass_as_an_unprivileged_user() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "lab_features_pass_as_an_unprivileged_user: skipped: run as root, it runs the suite as nobody"
        );
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The derivative the lab features boot, built (cached) as root.
    let build =
        harness::derivative::BuildOptions::new(root, root.join(".cache/derivative/derivative.iso"));
    harness::derivative::build(&build).expect("building the reference derivative");

    let (tags, at_least) = if std::env::var("TAILOR_FULL_MATRIX").is_ok_and(|v| v == "1") {
        ("@lab", 7)
    } else {
        ("@tor", 1)
    };
    let home = common::Home::new();
    let _tun = common::TunGrant::to_group(common::NOBODY);
    let artifacts = home.path().join("artifacts");
    let junit = home.path().join("junit.xml");
    let start = Instant::now();
    let out = home
        .command(Path::new(env!("CARGO_BIN_EXE_tailor")))
        .args(["run", "--tags", tags, "--artifacts"])
        .arg(&artifacts)
        .arg("--junit")
        .arg(&junit)
        .current_dir(root)
        .env("TAILOR_LOG", "info")
        .output()
        .unwrap();
    let wall = start.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the lab features failed as nobody ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // What the tags select, listed without booting.
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_tailor"))
        .args(["run", "--list", "--tags", tags])
        .current_dir(root)
        .output()
        .unwrap();
    let lab_scenarios = String::from_utf8_lossy(&listed.stdout).lines().count();
    assert!(
        lab_scenarios >= at_least,
        "only {lab_scenarios} scenarios found for {tags}"
    );
    assert!(
        stdout.contains(&format!("features: {lab_scenarios} passed, 0 failed")),
        "expected all {lab_scenarios} scenarios of {tags} to pass:\n{stdout}"
    );
    // The tor keys were cached in nobody's own home, as nobody's.
    let keys = home.path().join(".cache/tailor/tor-keys");
    let meta = std::fs::metadata(&keys)
        .unwrap_or_else(|e| panic!("no key cache at {}: {e}", keys.display()));
    assert_eq!(
        meta.uid(),
        common::NOBODY,
        "{} is not nobody's",
        keys.display()
    );
    let report = std::fs::read_dir(&artifacts)
        .unwrap()
        .flatten()
        .any(|e| e.path().join("index.html").is_file());
    assert!(report, "no report under {}", artifacts.display());
    println!(
        "ROOTLESS SUITE: {lab_scenarios} scenarios of {tags} passed as nobody in {:.1} s",
        wall.as_secs_f64()
    );
}
