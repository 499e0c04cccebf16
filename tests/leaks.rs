//! The expected-failure suite: each leaky customization of the reference
//! derivative must be caught by the feature it breaks, with a verdict that
//! names the leak, while the other lab features still pass; and the
//! harmless `branding` customization passes everything. Runs the real
//! features against each customized ISO in the lab, with the lab's real
//! Tor network.
#![cfg(feature = "vm")]

use std::path::{Path, PathBuf};

use harness::derivative::{build, BuildOptions};
use steps::runner::{run_recorded, RunArgs};

/// A run owns the process-wide settings, lab and checkpoints: one at a time.
static ONE_RUN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Stops the runs' shared lab when a test ends, passed or not (the next
/// test starts a fresh one).
struct TeardownAtEnd;

impl Drop for TeardownAtEnd {
    fn drop(&mut self) {
        // The test's (multi-thread) runtime is still there while its
        // locals drop.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(steps::lab_steps::teardown())
        });
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn customized_iso(name: &str) -> PathBuf {
    let out = root().join(format!(".cache/derivative/test-isos/{name}.iso"));
    let opts = BuildOptions::new(root(), &out)
        .customization(root().join(format!("derivative/customizations/{name}.toml")));
    build(&opts)
        .unwrap_or_else(|e| panic!("building the {name} ISO: {e}"))
        .iso
}

fn args(iso: &Path, tags: &str) -> RunArgs {
    RunArgs {
        iso: Some(iso.to_owned()),
        artifacts: root().join("artifacts/leaks"),
        tags: Some(tags.into()),
        // One lab and Tor network for every run of this test binary.
        keep_lab: true,
        ..RunArgs::in_project(&root())
    }
}

/// A failed step a customization must cause: in the feature named
/// `feature`, the step containing `step`, its error naming `detail`.
struct MustFail {
    feature: &'static str,
    step: &'static str,
    detail: &'static str,
}

/// The catch-all check: every leak is also traffic outside Tor, so the
/// only-Tor step of any scenario may fail too, naming the same leak.
const ONLY_TOR_STEP: &str = "only flowed through Tor";

/// Run the lab features against `customization` and check that it fails
/// exactly where it should: each `must_fail` step failed with its detail,
/// and every other failure is the catch-all only-Tor step naming `detail`
/// of one of them. Every other scenario passed.
async fn caught(customization: &str, must_fail: &[MustFail]) {
    let iso = customized_iso(customization);
    let (summary, records) = run_recorded(args(&iso, "@lab"))
        .await
        .expect("the run itself works");
    let failures: Vec<(String, String, String)> = records
        .scenarios
        .iter()
        .flat_map(|sc| {
            sc.steps
                .iter()
                .filter(|st| st.status == steps::report::Status::Failed)
                .map(|st| {
                    (
                        sc.feature.clone(),
                        st.text.clone(),
                        st.error.clone().unwrap_or_default(),
                    )
                })
        })
        .collect();
    for expected in must_fail {
        let hit = failures.iter().find(|(feature, step, _)| {
            feature.contains(expected.feature) && step.contains(expected.step)
        });
        let Some((_, _, error)) = hit else {
            panic!(
                "{customization}: expected `{}` in feature `{}` to fail; failures were {failures:#?}\nsummary: {summary:?}",
                expected.step, expected.feature
            );
        };
        assert!(
            error.contains(expected.detail),
            "{customization}: the failure of `{}` should name `{}`:\n{error}",
            expected.step,
            expected.detail
        );
    }
    for (feature, step, error) in &failures {
        let expected = must_fail
            .iter()
            .any(|m| feature.contains(m.feature) && step.contains(m.step));
        let catch_all =
            step.contains(ONLY_TOR_STEP) && must_fail.iter().any(|m| error.contains(m.detail));
        assert!(
            expected || catch_all,
            "{customization}: `{step}` in `{feature}` failed, which this customization should not break:\n{error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn leaky_customizations_are_caught_by_the_feature_they_break() {
    let _one = ONE_RUN.lock().await;
    let _lab = TeardownAtEnd;
    caught(
        "no-mac-spoof",
        &[MustFail {
            feature: "MAC address spoofing",
            step: "MAC address was spoofed",
            detail: "52:54:00:12:34:56",
        }],
    )
    .await;
    caught(
        "clear-dns",
        &[MustFail {
            feature: "DNS goes only through Tor",
            step: "no DNS left the guest",
            detail: ":53",
        }],
    )
    .await;
    caught(
        "ipv6-leak",
        &[MustFail {
            feature: "No IPv6 leaves the guest",
            step: "no IPv6 left the guest",
            detail: "ff02::1",
        }],
    )
    .await;
    caught(
        "direct-tcp",
        &[
            MustFail {
                feature: "Tor-only traffic",
                step: ONLY_TOR_STEP,
                detail: ":80",
            },
            // amnesia's direct connection succeeds where it must fail.
            MustFail {
                feature: "The Tor-only firewall",
                step: "the command fails",
                detail: "as amnesia",
            },
        ],
    )
    .await;
}

/// The harmless customization passes every feature of the derivative, with
/// its own look layered over the reference images.
#[tokio::test(flavor = "multi_thread")]
async fn branding_passes_every_feature() {
    let _one = ONE_RUN.lock().await;
    let _lab = TeardownAtEnd;
    let iso = customized_iso("branding");
    let mut args = args(&iso, "not @smoke");
    args.screenshots = vec![
        root().join("screenshots/branding"),
        root().join("screenshots"),
    ];
    let (summary, records) = run_recorded(args).await.expect("the run itself works");
    let failed: Vec<String> = records
        .scenarios
        .iter()
        .filter(|sc| sc.failed())
        .map(|sc| format!("{}: {} ({}:{})", sc.feature, sc.name, sc.file, sc.line))
        .collect();
    assert!(
        summary.success() && failed.is_empty(),
        "branding broke: {failed:#?}\n{summary:?}"
    );
    assert!(
        records.scenarios.len() >= 10,
        "the branded run covered only {} scenarios",
        records.scenarios.len()
    );
}
