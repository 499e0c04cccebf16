//! The reference derivative's fingerprint is stable: every boot of it
//! looks the same to an observer on the LAN, and so does a guest restored
//! from a checkpoint, whose story is read from the captures kept as its
//! checkpoints were saved.
//!
//! Each boot runs the real boot scenario (`features/boot.feature`: power-on,
//! greeter, Start, DHCP, Tor bootstrap, a fetch through Tor, and the
//! fingerprint step against `fingerprints/tor.toml`); one more boot reaches
//! the online checkpoint and a second scenario restores it
//! (`tests/data/features/fingerprint-chain.feature`). Every boot's
//! `fingerprint.toml` must be the same byte for byte, and the restored
//! guest's must compare the same (what depends on timing, such as an ARP
//! announcement, is only a note there).
//!
//! Cost: CI boots the reference once (the checkpoint) and restores it
//! once, comparing the two stories; every boot of `tests/features.rs` is
//! held to the baseline by the step itself. `TAILOR_FULL_MATRIX=1` (the
//! nightly run) boots it five times (the boot scenario four times) and
//! compares them byte for byte; `TAILOR_FINGERPRINT_BOOTS=N` runs the boot
//! scenario N times.
#![cfg(feature = "vm")]

use std::path::{Path, PathBuf};

use harness::net::fingerprint::{self, Fingerprint, Outcome};
use steps::report::Records;
use steps::runner::{run_recorded, RunArgs};

mod common;
use common::TeardownAtEnd;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// How many times the boot scenario runs.
fn boot_runs() -> usize {
    if let Some(n) = std::env::var("TAILOR_FINGERPRINT_BOOTS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return n;
    }
    if std::env::var("TAILOR_FULL_MATRIX").is_ok_and(|v| v == "1") {
        4
    } else {
        0
    }
}

fn args(iso: &Path) -> RunArgs {
    RunArgs {
        iso: Some(iso.to_owned()),
        artifacts: root().join("artifacts/fingerprint-stability"),
        keep_lab: true,
        ..RunArgs::in_project(&root())
    }
}

/// Run, expect every scenario to pass, and return each scenario's
/// fingerprint file, in the order they ran.
async fn run(args: RunArgs, what: &str) -> Vec<(String, PathBuf)> {
    let (summary, records): (_, Records) = run_recorded(args).await.expect("the run itself works");
    let failed: Vec<String> = records
        .final_outcomes()
        .filter(|sc| sc.failed())
        .flat_map(|sc| sc.steps.iter().filter_map(|st| st.error.clone()))
        .collect();
    assert!(
        summary.success() && failed.is_empty(),
        "{what}: {summary:?}\n{}",
        failed.join("\n")
    );
    records
        .final_outcomes()
        .map(|sc| {
            let dir = sc.dir.clone().expect("the scenario's folder");
            (format!("{what}: {}", sc.name), dir.join("fingerprint.toml"))
        })
        .collect()
}

/// A fingerprint file without its header (which names the captures).
fn body(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reference_looks_the_same_at_every_boot() {
    let _lab = TeardownAtEnd;
    let iso = root().join(".cache/derivative/derivative.iso");
    harness::derivative::build(&harness::derivative::BuildOptions::new(root(), &iso))
        .expect("building the reference derivative");

    let mut boots = Vec::new();
    for n in 1..=boot_runs() {
        let mut a = args(&iso);
        a.targets = vec![root().join("features/boot.feature").display().to_string()];
        boots.extend(run(a, &format!("boot {n}")).await);
    }
    let mut chain = args(&iso);
    chain.targets = vec![root()
        .join("tests/data/features/fingerprint-chain.feature")
        .display()
        .to_string()];
    let chained = run(chain, "checkpoint").await;
    let [from_power_on, restored] = &chained[..] else {
        panic!("expected the two scenarios of the chain feature, got {chained:?}");
    };
    boots.push(from_power_on.clone());

    // Every boot: the same fingerprint, byte for byte.
    let first = body(&boots[0].1);
    for (what, path) in &boots[1..] {
        assert_eq!(
            body(path),
            first,
            "{what} ({}) differs from {} ({})",
            path.display(),
            boots[0].0,
            boots[0].1.display()
        );
    }
    // The restored guest's story went through the kept capture.
    let comparison =
        std::fs::read_to_string(restored.1.with_file_name("fingerprint-comparison.txt"))
            .expect("the restored scenario's comparison");
    assert!(
        comparison.contains("/checkpoints/tor-ready/capture.pcap + "),
        "the restored guest's story does not start with the checkpoint's kept capture:\n{comparison}"
    );
    let read = |p: &Path| Fingerprint::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let c = fingerprint::compare(&read(&from_power_on.1), &read(&restored.1));
    assert_eq!(c.outcome(), Outcome::Same, "{c}");
    eprintln!(
        "{} boots of the reference gave the same fingerprint byte for byte; the restored guest compares the same ({} notes)",
        boots.len(),
        c.notes.len()
    );
}
