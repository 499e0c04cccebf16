//! `tailor run` as a user meets it, without a VM: what a filter, a path or
//! a line selects, the errors when they select nothing, the exit codes
//! (0 passed, 1 a scenario failed, 2 a usage or input error with nothing
//! booted), the rerun command of a failed scenario, colour only on a
//! terminal. Each test works in a project of its own in a temporary
//! folder; the scenarios have no steps that need a computer.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TAILOR: &str = env!("CARGO_BIN_EXE_tailor");

/// `features/` with three features (tags, a Background, outlines with
/// examples, a failing step) and one feature file outside `features/`.
/// Only `--list` reads alpha's steps: they are not defined, so running
/// them would fail; beta's scenarios have no steps and pass.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let features = dir.path().join("features");
    std::fs::create_dir(&features).unwrap();
    std::fs::write(
        features.join("alpha.feature"),
        "\
@alpha
Feature: Alpha
  Background:
    Given I note the time

  @quick
  Scenario: First of alpha
    Given I note the time
    And I note the time

  Scenario Outline: Outlined <word>
    Given I note the time

    Examples:
      | word |
      | red  |
      | blue |
",
    )
    .unwrap();
    std::fs::write(
        features.join("beta.feature"),
        "\
@beta
Feature: Beta
  Scenario: Only of beta

  Scenario Outline: Beta <n>
    Examples:
      | n   |
      | one |
      | two |
",
    )
    .unwrap();
    std::fs::write(
        features.join("failing.feature"),
        "\
@failing
Feature: Failing
  Scenario: Typing without a computer
    When I type \"x\"
",
    )
    .unwrap();
    let elsewhere = dir.path().join("elsewhere/deep");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(
        elsewhere.join("outside.feature"),
        "Feature: Outside\n  Scenario: Far away\n",
    )
    .unwrap();
    dir
}

fn tailor(dir: &Path, args: &[&str]) -> Output {
    Command::new(TAILOR)
        .args(args)
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env("TAILOR_LOG", "warn")
        .output()
        .unwrap()
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(dir: &Path, args: &[&str]) -> Ran {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    let out = tailor(dir, &all);
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The scenarios `--list` prints: `FILE:LINE` of each.
fn listed(dir: &Path, args: &[&str]) -> Vec<String> {
    let mut all = vec!["--list"];
    all.extend_from_slice(args);
    let r = run(dir, &all);
    assert_eq!(r.code, 0, "{r}");
    r.stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_owned())
        .collect()
}

fn no_run_happened(dir: &Path, r: &Ran) {
    assert!(
        !dir.join("artifacts").exists(),
        "a run started (artifacts/ exists):\n{r}"
    );
    assert!(!r.stdout.contains("Feature:"), "cucumber ran:\n{r}");
}

#[test]
fn a_tag_that_selects_nothing_fails_and_lists_the_tags() {
    let p = project();
    let r = run(p.path(), &["--tags", "@typo"]);
    assert_eq!(r.code, 2, "{r}");
    for needed in [
        "--tags `@typo`",
        "features/alpha.feature",
        "features/beta.feature",
        "@alpha",
        "@quick",
        "@beta",
    ] {
        assert!(r.stderr.contains(needed), "no {needed:?} in:\n{r}");
    }
    no_run_happened(p.path(), &r);
    let r = run(p.path(), &["--tags", "@alpha and"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("is not a tag expression"), "{r}");
}

#[test]
fn a_name_that_matches_nothing_fails_and_lists_the_names() {
    let p = project();
    let r = run(p.path(), &["--name", "^Zeta"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("--name `^Zeta`"), "{r}");
    assert!(r.stderr.contains("First of alpha"), "{r}");
    no_run_happened(p.path(), &r);
    let r = run(p.path(), &["--name", "(unclosed"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("not a valid regex"), "{r}");
}

#[test]
fn any_line_of_a_scenario_selects_it() {
    let p = project();
    let alpha = "features/alpha.feature";
    let first = vec![format!("{alpha}:7")];
    // Its tag line, its Scenario: line, a step.
    for line in [6, 7, 9] {
        assert_eq!(listed(p.path(), &[&format!("{alpha}:{line}")]), first);
    }
    // An example row: that example alone, by its row.
    assert_eq!(
        listed(p.path(), &[&format!("{alpha}:17")]),
        vec![format!("{alpha}:17")]
    );
    // The outline's step: every example.
    assert_eq!(
        listed(p.path(), &[&format!("{alpha}:12")]),
        vec![format!("{alpha}:16"), format!("{alpha}:17")]
    );
    // The Background and the header: the whole feature.
    let whole = vec![
        format!("{alpha}:7"),
        format!("{alpha}:16"),
        format!("{alpha}:17"),
    ];
    assert_eq!(listed(p.path(), &[&format!("{alpha}:4")]), whole);
    assert_eq!(listed(p.path(), &[&format!("{alpha}:1")]), whole);
    // Several lines, of several files.
    assert_eq!(
        listed(
            p.path(),
            &[
                &format!("{alpha}:9"),
                "features/beta.feature:3",
                &format!("{alpha}:16")
            ]
        ),
        vec![
            format!("{alpha}:7"),
            format!("{alpha}:16"),
            "features/beta.feature:3".into()
        ]
    );
    // An example row runs, and only its example.
    let r = run(p.path(), &["features/beta.feature:9"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("Beta two"), "{r}");
    assert!(!r.stdout.contains("Beta one"), "{r}");
    assert!(r.stdout.contains("features: 1 passed, 0 failed"), "{r}");
}

#[test]
fn a_line_outside_every_scenario_fails_and_names_the_nearest() {
    let p = project();
    let r = run(p.path(), &["features/alpha.feature:10"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr
            .contains("features/alpha.feature:10 is not a line of any scenario"),
        "{r}"
    );
    assert!(
        r.stderr
            .contains("features/alpha.feature:7 \"First of alpha\" (lines 6-9)"),
        "{r}"
    );
    assert!(r.stderr.contains("\"Outlined <word>\""), "{r}");
    no_run_happened(p.path(), &r);
    let r = run(p.path(), &["features/beta.feature:99"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("the file has 9 lines"), "{r}");
}

#[test]
fn a_feature_outside_features_runs_where_it_is() {
    let p = project();
    let r = run(p.path(), &["elsewhere/deep/outside.feature"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("Far away"), "{r}");
    assert!(r.stdout.contains("features: 1 passed, 0 failed"), "{r}");
    // A folder too, from another working directory and without
    // `features/` there.
    let r = run(
        &p.path().join("elsewhere"),
        &["--list", p.path().join("elsewhere").to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(r.stdout.trim(), "deep/outside.feature:2  Far away", "{r}");
}

#[test]
fn missing_and_malformed_inputs_are_usage_errors() {
    let p = project();
    let r = run(p.path(), &["features/nope.feature"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("features/nope.feature"), "{r}");
    std::fs::write(
        p.path().join("features/broken.feature"),
        "Feature: Broken\n  Scenario: x\n    Given a\n  Examples:\n    | a |\n  Scenario: y\n    When Feature: z\n  Background:\n",
    )
    .unwrap();
    let r = run(p.path(), &[]);
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr.contains("broken.feature is not a valid feature"),
        "{r}"
    );
    no_run_happened(p.path(), &r);
    std::fs::remove_file(p.path().join("features/broken.feature")).unwrap();
    let r = run(p.path(), &["--features", "not-here"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("not-here does not exist"), "{r}");
    // clap's own usage errors keep its code 2.
    let r = run(p.path(), &["--shard", "4/3"]);
    assert_eq!(r.code, 2, "{r}");
}

#[test]
fn a_missing_iso_stops_the_run_before_anything_boots() {
    let p = project();
    let r = run(p.path(), &["--iso", "missing.iso", "features/beta.feature"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("--iso missing.iso: no such file"), "{r}");
    no_run_happened(p.path(), &r);
    // A vm-config whose ISO is missing, named by a step.
    std::fs::create_dir(p.path().join("vm-configs")).unwrap();
    std::fs::write(
        p.path().join("vm-configs/mine.toml"),
        "name = \"mine\"\n[boot]\niso = \"../nothing-here.iso\"\n",
    )
    .unwrap();
    std::fs::write(
        p.path().join("features/boots.feature"),
        "Feature: Boots\n  Scenario: boot\n    Given the computer boots from \"mine\"\n",
    )
    .unwrap();
    let r = run(p.path(), &["features/boots.feature"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("nothing-here.iso"), "{r}");
    assert!(
        r.stderr.contains("needed by features/boots.feature:2"),
        "{r}"
    );
    no_run_happened(p.path(), &r);
}

#[test]
fn a_failed_scenario_exits_1_and_says_how_to_rerun_it() {
    let p = project();
    let r = run(p.path(), &["--tags", "@failing", "--timeout-scale", "2"]);
    assert_eq!(r.code, 1, "{r}");
    let command = format!("{TAILOR} run features/failing.feature:3 --timeout-scale 2");
    // In the failed scenario's banner and again at the end of the run.
    let banner = r
        .stderr
        .split("artifacts of the failed scenario")
        .nth(1)
        .unwrap_or_else(|| panic!("no banner:\n{r}"));
    assert!(banner.contains(&command), "{r}");
    assert!(r.stdout.contains(&command), "{r}");
    // And in the report.
    let report = std::fs::read_dir(p.path().join("artifacts"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("index.html"))
        .find(|p| p.is_file())
        .expect("a report");
    let html = std::fs::read_to_string(report).unwrap();
    assert!(
        html.contains(&format!(
            "Run it again: <code class=\"rerun\">{command}</code>"
        )),
        "{html}"
    );
    // Pasted, it runs that scenario alone, and fails the same way.
    let words: Vec<String> = shlex::split(&command).unwrap();
    let again = Command::new(&words[0])
        .args(&words[1..])
        .current_dir(p.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert_eq!(again.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("features: 0 passed, 1 failed"), "{stdout}");
}

#[test]
fn shards_cover_the_selection_and_an_empty_shard_is_not_an_error() {
    let p = project();
    // Three feature files without checkpoints: three groups.
    let all = listed(p.path(), &[]);
    assert_eq!(all.len(), 7, "{all:?}");
    let mut union: Vec<String> = (1..=3)
        .flat_map(|i| listed(p.path(), &["--shard", &format!("{i}/3")]))
        .collect();
    union.sort();
    let mut expected = all.clone();
    expected.sort();
    assert_eq!(union, expected);
    // Shards combine with the other filters.
    let alpha = listed(p.path(), &["--tags", "@alpha", "--shard", "1/1"]);
    assert_eq!(alpha.len(), 3, "{alpha:?}");
    // Four shards for three groups: the fourth is empty, says why, exits 0.
    let r = run(p.path(), &["--shard", "4/4"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("shard 4/4 has nothing to run"), "{r}");
    assert!(r.stdout.contains("3 group(s)"), "{r}");
    no_run_happened(p.path(), &r);
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let p = project();
    let r = run(p.path(), &["--tags", "@failing"]);
    assert!(
        !r.stdout.contains('\x1b') && !r.stderr.contains('\x1b'),
        "colour escapes in a pipe:\n{r}"
    );
    // A terminal, through script(1)'s pseudo-terminal.
    let on_terminal = |no_color: Option<&str>| -> String {
        let mut cmd = Command::new("script");
        cmd.args([
            "-qec",
            &format!("{TAILOR} run --tags @failing"),
            "/dev/null",
        ])
        .current_dir(p.path())
        .env("TAILOR_LOG", "info")
        .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = cmd.output().expect("script(1) from bsdutils");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let coloured = on_terminal(None);
    assert!(
        coloured.contains("\x1b["),
        "no colour on a terminal:\n{coloured}"
    );
    let plain = on_terminal(Some("1"));
    assert!(plain.contains("Typing without a computer"), "{plain}");
    assert!(
        !plain.contains("\x1b["),
        "colour despite NO_COLOR:\n{plain}"
    );
}

/// The README's "reproduce one scenario" commands, run in `--list` mode
/// against this checkout, so they cannot rot: each must select something.
#[test]
fn the_readmes_examples_select_scenarios() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("## Run the suite, reproduce one scenario")
        .nth(1)
        .expect("the README's section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut checked = 0;
    for line in section.lines() {
        // `cargo run --release -- run ARGS` and `cargo test ... -- ARGS`.
        let line = line.trim().trim_matches('`');
        let args = if let Some(rest) = line.strip_prefix("cargo run --release -- run") {
            rest
        } else if let Some(rest) = line.strip_prefix("cargo test --features vm --test features --")
        {
            rest
        } else {
            continue;
        };
        let args = args.split("  #").next().unwrap();
        let words = shlex::split(args).unwrap();
        let mut words: Vec<&str> = words.iter().map(String::as_str).collect();
        if !words.contains(&"--list") {
            words.insert(0, "--list");
        }
        let r = run(&root, &words);
        assert_eq!(r.code, 0, "README: `{line}`:\n{r}");
        assert!(
            !r.stdout.trim().is_empty(),
            "README: `{line}` selects nothing"
        );
        checked += 1;
    }
    assert!(checked >= 5, "only {checked} README examples found");
}
