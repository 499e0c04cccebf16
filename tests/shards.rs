//! `--shard I/N` with `--junit`: N runs together cover every scenario
//! exactly once, and scenarios that share a checkpoint share a shard.
//! (The scenarios here have no steps, so no VM is needed.)

use std::collections::BTreeMap;

use steps::runner::{run, RunArgs};

fn args(features: &std::path::Path, junit: std::path::PathBuf, shard: &str) -> RunArgs {
    RunArgs {
        features: features.to_owned(),
        junit: Some(junit),
        shard: Some(shard.parse().unwrap()),
        ..RunArgs::in_project(features)
    }
}

/// `name` attributes of the `<testcase>` elements of a JUnit report.
fn testcases(xml: &str) -> Vec<String> {
    xml.split("<testcase")
        .skip(1)
        .filter_map(|t| {
            t.split("name=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn shards_cover_every_scenario_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let features = dir.path().join("features");
    std::fs::create_dir(&features).unwrap();
    let mut all = Vec::new();
    for f in 0..4 {
        let mut text = format!("Feature: F{f}\n");
        for s in 0..3 {
            text.push_str(&format!("  Scenario: f{f}s{s}\n"));
            all.push(format!("f{f}s{s}"));
        }
        std::fs::write(features.join(format!("f{f}.feature")), text).unwrap();
    }
    let n = 3;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for i in 1..=n {
        let junit = dir.path().join(format!("junit-{i}.xml"));
        let summary = run(args(&features, junit.clone(), &format!("{i}/{n}")))
            .await
            .unwrap();
        assert!(summary.success(), "{summary:?}");
        let xml = std::fs::read_to_string(&junit).unwrap();
        for case in testcases(&xml) {
            *seen.entry(case).or_default() += 1;
        }
    }
    for name in &all {
        let count = seen
            .iter()
            .filter(|(k, _)| k.contains(name.as_str()))
            .map(|(_, v)| *v)
            .sum::<usize>();
        assert_eq!(
            count, 1,
            "scenario {name} ran {count} times across shards: {seen:?}"
        );
    }
    assert_eq!(seen.values().sum::<usize>(), all.len(), "{seen:?}");
}
