//! The expected-failure suite: each leaky customization of the reference
//! derivative must be caught by the feature it breaks, with a verdict that
//! names the leak. Runs the real features against each customized ISO in
//! the lab, with the lab's real Tor network.
#![cfg(feature = "vm")]

use std::path::{Path, PathBuf};

use harness::derivative::{build, BuildOptions};
use steps::runner::{run_recorded, RunArgs};

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
        vm_config: None,
        features: root().join("features"),
        screenshots: root().join("screenshots"),
        vm_configs: root().join("vm-configs"),
        artifacts: root().join("artifacts/leaks"),
        name: None,
        tags: Some(tags.into()),
        junit: None,
        shard: None,
        pause_on_failure: false,
        targets: vec![],
    }
}

/// Run the features tagged `tags` against the customization and check that
/// exactly the step `failing_step` failed, with `detail` in its verdict.
async fn caught(customization: &str, tags: &str, failing_step: &str, detail: &str) {
    let iso = customized_iso(customization);
    let (summary, records) = run_recorded(args(&iso, tags))
        .await
        .expect("the run itself works");
    assert!(
        summary.failed >= 1,
        "{customization}: nothing failed: {summary:?}"
    );
    let failures: Vec<(String, String)> = records
        .scenarios
        .iter()
        .flat_map(|s| s.steps.iter())
        .filter(|st| st.status == steps::report::Status::Failed)
        .map(|st| (st.text.clone(), st.error.clone().unwrap_or_default()))
        .collect();
    assert!(
        failures.iter().all(|(text, _)| text.contains(failing_step)),
        "{customization}: expected only `{failing_step}` to fail, got {failures:#?}"
    );
    let (_, error) = failures.first().expect("a failed step");
    assert!(
        error.contains(detail),
        "{customization}: the verdict should name `{detail}`:\n{error}"
    );
}

#[tokio::test]
async fn leaky_customizations_are_caught_by_the_feature_they_break() {
    // One lab and VM at a time: these run in one test, in sequence.
    caught(
        "no-mac-spoof",
        "@mac",
        "MAC address was spoofed",
        "52:54:00:12:34:56",
    )
    .await;
    caught("clear-dns", "@dns", "no DNS left the guest", ":53").await;
    caught("ipv6-leak", "@ipv6", "no IPv6 left the guest", "ff02::1").await;
    caught("direct-tcp", "@tor", "only flowed through Tor", ":80").await;
}
