//! The CI files derivative maintainers copy (`ci-templates/`): they parse,
//! their shard jobs together run every scenario of the suite exactly once
//! (checked with `tailor run --list` on this checkout), each keeps its
//! JUnit and HTML reports also when it fails, and a scheduled job runs the
//! full leak matrix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn load(name: &str) -> Value {
    let path = root().join("ci-templates").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `tailor run --list` with `args` in this checkout: the scenarios.
fn list(args: &[String]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_tailor"))
        .arg("run")
        .arg("--list")
        .args(args)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tailor run --list {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The arguments after `tailor run` in a job's script, with the shard's
/// variables set and the rest (paths of the job's machine) made inert.
fn run_args(script: &str, vars: &[(&str, String)]) -> Vec<String> {
    let line = script
        .lines()
        .find(|l| l.contains("tailor run "))
        .unwrap_or_else(|| panic!("no `tailor run` in:\n{script}"));
    let mut line = line.split("tailor run ").nth(1).unwrap().to_owned();
    for (var, value) in vars {
        line = line.replace(var, value);
    }
    let words = shlex::split(&line).unwrap();
    let mut args = Vec::new();
    let mut it = words.into_iter();
    while let Some(w) = it.next() {
        match w.as_str() {
            // Where this job puts things: not what it selects.
            "--iso" | "--junit" | "--artifacts" => {
                it.next();
            }
            w if w.starts_with('$') => {}
            _ => args.push(w),
        }
    }
    args
}

/// Every shard's scenarios, counted: each must appear once, and all of
/// them must be the suite.
fn assert_covers(shards: &[Vec<String>]) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for s in shards.iter().flatten() {
        *seen.entry(s.as_str()).or_default() += 1;
    }
    let suite = list(&[]);
    assert!(!suite.is_empty());
    for scenario in &suite {
        assert_eq!(
            seen.get(scenario.as_str()),
            Some(&1),
            "{scenario} ran {:?} times across the shards",
            seen.get(scenario.as_str())
        );
    }
    assert_eq!(seen.len(), suite.len(), "{seen:?}");
    assert!(
        shards.iter().filter(|s| !s.is_empty()).count() > 1,
        "the suite is not split: {shards:?}"
    );
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Sequence(items) => items.iter().map(text).collect::<Vec<_>>().join("\n"),
        other => serde_yaml_ng::to_string(other).unwrap(),
    }
}

#[test]
fn gitlab_shards_cover_the_suite_and_keep_their_reports() {
    let ci = load("gitlab-ci.yml");
    let job = &ci["tailor"];
    let n = job["parallel"]
        .as_u64()
        .expect("`parallel: N` on the shard job") as usize;
    assert!(n >= 2, "{n} shards");
    let script = text(&job["script"]);
    assert!(
        script.contains("--shard \"$CI_NODE_INDEX/$CI_NODE_TOTAL\""),
        "{script}"
    );
    assert!(script.contains("--junit"), "{script}");
    let shards: Vec<Vec<String>> = (1..=n)
        .map(|i| {
            list(&run_args(
                &script,
                &[
                    ("$CI_NODE_INDEX", i.to_string()),
                    ("$CI_NODE_TOTAL", n.to_string()),
                ],
            ))
        })
        .collect();
    assert_covers(&shards);
    let artifacts = &job["artifacts"];
    assert_eq!(artifacts["when"].as_str(), Some("always"));
    let paths = text(&artifacts["paths"]);
    assert!(
        paths.contains("artifacts/") && paths.contains("junit-"),
        "{paths}"
    );
    assert!(text(&artifacts["reports"]["junit"]).contains("junit-"));
    let nightly = &ci["leak-matrix"];
    let script = text(&nightly["script"]);
    assert!(
        script.contains("TAILOR_FULL_MATRIX=1") && script.contains("--test leaks"),
        "{script}"
    );
    assert!(text(&nightly["rules"]).contains("schedule"));
}

#[test]
fn github_shards_cover_the_suite_and_keep_their_reports() {
    let ci = load("github-actions.yml");
    let job = &ci["jobs"]["tailor"];
    let shards: Vec<u64> = job["strategy"]["matrix"]["shard"]
        .as_sequence()
        .expect("a shard matrix")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let n = shards.len();
    assert_eq!(shards, (1..=n as u64).collect::<Vec<_>>());
    let steps = job["steps"].as_sequence().unwrap();
    let script = steps
        .iter()
        .map(|s| text(&s["run"]))
        .find(|r| r.contains("tailor run "))
        .expect("a step that runs tailor");
    assert!(
        script.contains(&format!("--shard \"${{{{ matrix.shard }}}}/{n}\"")),
        "{script}"
    );
    let listed: Vec<Vec<String>> = (1..=n)
        .map(|i| {
            list(&run_args(
                &script,
                &[("${{ matrix.shard }}", i.to_string())],
            ))
        })
        .collect();
    assert_covers(&listed);
    let upload = steps
        .iter()
        .find(|s| text(&s["uses"]).starts_with("actions/upload-artifact"))
        .expect("an upload step");
    assert_eq!(upload["if"].as_str(), Some("always()"));
    let paths = text(&upload["with"]["path"]);
    assert!(
        paths.contains("artifacts/") && paths.contains("junit-"),
        "{paths}"
    );
    let nightly = &ci["jobs"]["leak-matrix"];
    let runs: String = nightly["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| text(&s["run"]))
        .collect();
    assert!(
        runs.contains("TAILOR_FULL_MATRIX=1") && runs.contains("--test leaks"),
        "{runs}"
    );
    assert!(text(&nightly["if"]).contains("schedule"));
    assert!(!ci["on"]["schedule"].is_null(), "no schedule");
}

/// The README points maintainers at both files.
#[test]
fn the_readme_links_the_templates() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for file in [
        "ci-templates/gitlab-ci.yml",
        "ci-templates/github-actions.yml",
    ] {
        assert!(readme.contains(file), "README does not mention {file}");
        assert!(Path::new(&root().join(file)).is_file());
    }
}
