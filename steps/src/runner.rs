//! Running features: the options a user gives (`tailor run ...` or
//! `cargo test --features vm -- ...` take the same ones) and the cucumber
//! set-up behind them: one scenario at a time (each boots a VM on a host
//! that may have two cores), skipped steps count as failures. Every run
//! ends with a summary and the HTML report `artifacts/<run>/index.html`
//! (also when it is cut short).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use cucumber::writer::{self, Coloring};
use cucumber::{StatsWriter as _, World as _, WriterExt as _};
use futures::FutureExt as _;

use crate::evidence;
use crate::html::{self, RunInfo};
use crate::report::{Recorder, RecordsHandle};
use crate::shard::{self, Shard};
use crate::world::{set_settings, Settings};
use crate::TailorWorld;

/// Options of a feature run.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// ISO (or disk image) to test; replaces the boot medium of every
    /// vm-config the features name.
    #[arg(long)]
    pub iso: Option<PathBuf>,
    /// vm-config to use for every boot instead of the one a feature names.
    #[arg(long)]
    pub vm_config: Option<PathBuf>,
    /// Folder of .feature files.
    #[arg(long, default_value = "features")]
    pub features: PathBuf,
    /// Folder of reference images; repeat it to layer folders, first one
    /// first (a derivative's own look over the reference images:
    /// `--screenshots screenshots/branding --screenshots screenshots`).
    #[arg(long, default_value = "screenshots")]
    pub screenshots: Vec<PathBuf>,
    /// Folder of vm-configs that features name.
    #[arg(long, default_value = "vm-configs")]
    pub vm_configs: PathBuf,
    /// Where failure artifacts go.
    #[arg(long, default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// Only scenarios whose name matches this regex.
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// Only scenarios matching this tag expression, e.g. "@smoke and not @slow".
    #[arg(long, short = 't')]
    pub tags: Option<String>,
    /// Write a JUnit XML report here (for CI).
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Run only shard I of N (e.g. 2/4); scenarios that share a checkpoint
    /// stay in one shard, so N machines together run the suite once.
    #[arg(long)]
    pub shard: Option<Shard>,
    /// On a failure keep the VM running, print how to attach, and wait for
    /// Enter before tearing down.
    #[arg(long)]
    pub pause_on_failure: bool,
    /// The kind of derivative under test: tor, bridges or vpn. Default:
    /// what the lab vm-config or the ISO itself says, else tor. Scenarios
    /// tagged for other kinds (`@kind-vpn`, ...) are left out.
    #[arg(long)]
    pub kind: Option<harness::derivative::Kind>,
    /// Feature files, or FILE:LINE for the one scenario at that line.
    pub targets: Vec<String>,
    /// Leave the lab and its Tor network running after the run, for the
    /// next run in this process (a test that runs the suite against several
    /// ISOs); the last one calls `lab_steps::teardown`.
    #[arg(skip)]
    pub keep_lab: bool,
}

impl RunArgs {
    /// The whole suite of a project laid out like this one (`features/`,
    /// `screenshots/`, `vm-configs/`, `artifacts/` under `root`), with no
    /// filter and nothing kept: what the command line's defaults mean.
    pub fn in_project(root: &Path) -> RunArgs {
        RunArgs {
            iso: None,
            vm_config: None,
            features: root.join("features"),
            screenshots: vec![root.join("screenshots")],
            vm_configs: root.join("vm-configs"),
            artifacts: root.join("artifacts"),
            name: None,
            tags: None,
            junit: None,
            shard: None,
            pause_on_failure: false,
            kind: None,
            targets: vec![],
            keep_lab: false,
        }
    }
}

/// One FILE or FILE:LINE target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub file: PathBuf,
    pub line: Option<usize>,
}

impl Target {
    pub fn parse(text: &str) -> anyhow::Result<Target> {
        let (file, line) = match text.rsplit_once(':') {
            Some((file, line)) if !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()) => {
                (file, Some(line.parse().context("line number")?))
            }
            _ => (text, None),
        };
        let file = std::fs::canonicalize(file)
            .with_context(|| format!("feature file `{file}` not found"))?;
        Ok(Target { file, line })
    }

    fn selects(&self, feature: &gherkin::Feature, scenario: &gherkin::Scenario) -> bool {
        let same_file = feature
            .path
            .as_deref()
            .and_then(|p| std::fs::canonicalize(p).ok())
            .is_some_and(|p| p == self.file);
        same_file && self.line.is_none_or(|line| scenario.position.line == line)
    }
}

/// What a run ended with (scenarios by their last attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub passed: usize,
    pub failed: usize,
    pub retried: usize,
    pub skipped_steps: usize,
    pub parsing_errors: usize,
    pub execution_failed: bool,
}

impl RunSummary {
    pub fn success(&self) -> bool {
        !self.execution_failed
            && self.failed == 0
            && self.parsing_errors == 0
            && self.skipped_steps == 0
    }
}

use cucumber::gherkin;

/// Run the features as `args` say.
pub async fn run(args: RunArgs) -> anyhow::Result<RunSummary> {
    run_recorded(args).await.map(|(summary, _)| summary)
}

/// [`run`], also returning what every scenario and step did.
pub async fn run_recorded(args: RunArgs) -> anyhow::Result<(RunSummary, crate::report::Records)> {
    if !args.features.is_dir() {
        anyhow::bail!("features folder {} does not exist", args.features.display());
    }
    // Long waits report progress through `tracing`; the CLI sets up a
    // subscriber, `cargo test --features vm` does not.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TAILOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let keep_lab = args.keep_lab;
    let run_id = run_id();
    let run_artifacts = args.artifacts.join(&run_id);
    let mut settings = Settings {
        screenshots: args.screenshots.clone(),
        vm_configs: args.vm_configs.clone(),
        vm_config: args.vm_config.clone(),
        iso: args.iso.clone(),
        artifacts: run_artifacts.clone(),
        pause_on_failure: args.pause_on_failure,
        kind: harness::derivative::Kind::default(),
    };
    let (kind, why) = settings.resolve_kind(args.kind)?;
    settings.kind = kind;
    println!("derivative kind: {kind} (from {why})");
    set_settings(settings);
    let targets = args
        .targets
        .iter()
        .map(|t| Target::parse(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let shard_plan = match args.shard {
        Some(shard) => Some((shard, shard::plan(&args.features, shard.count)?)),
        None => None,
    };
    let mut opts: cucumber::cli::Opts<_, _, _, cucumber::cli::Empty> =
        cucumber::cli::Opts::default();
    if let Some(name) = &args.name {
        opts.re_filter = Some(
            regex::Regex::new(name)
                .with_context(|| format!("--name `{name}` is not a valid regex"))?,
        );
    }
    if let Some(tags) = &args.tags {
        opts.tags_filter = Some(
            tags.parse()
                .map_err(|e| anyhow::anyhow!("--tags `{tags}` is not a tag expression: {e}"))?,
        );
    }
    let junit: Box<dyn std::io::Write> = match &args.junit {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot write the JUnit report {}", path.display()))?,
        ),
        None => Box::new(std::io::sink()),
    };
    let (recorder, records) = Recorder::new();
    evidence::begin_run();
    let mut report = ReportOnDrop {
        records: records.clone(),
        run_dir: run_artifacts.clone(),
        info: RunInfo {
            run_id: run_id.clone(),
            started: SystemTime::now(),
            wall: Duration::ZERO,
            interrupted: true,
        },
        start: Instant::now(),
        written: false,
    };
    let start = Instant::now();
    let writer = TailorWorld::cucumber::<PathBuf>()
        // Every scenario ends with the step that judges all its captures.
        .with_parser(crate::judging::JudgingParser)
        .with_writer(
            writer::Basic::raw(std::io::stdout(), Coloring::Auto, 0)
                .summarized()
                .tee::<TailorWorld, _>(writer::JUnit::for_tee(junit, 0))
                .normalized()
                // The recorder sees events as they happen, not normalized:
                // it takes each step's screenshot while the step's VM still
                // runs. Scenarios run one at a time, so events already come
                // one scenario after another.
                .tee::<TailorWorld, _>(recorder.discard_stats_writes().discard_arbitrary_writes())
                .assert_normalized(),
        )
        .max_concurrent_scenarios(1)
        // @fragile scenarios get one more attempt; both are reported.
        .retries(1)
        .retry_filter(fragile_tag())
        .before(|feature, _rule, scenario, world| {
            async move {
                world.begin_scenario(feature, scenario);
                evidence::scenario_began(&world.scenario_dir);
            }
            .boxed_local()
        })
        .after(|feature, rule, scenario, finished, world| {
            async move {
                evidence::scenario_ending();
                if matches!(finished, cucumber::event::ScenarioFinished::StepPassed) {
                    // The last step's screenshot before the VM goes away.
                    let steps = steps_of(feature, rule, scenario);
                    evidence::steps_recorded(steps, harness::wait::scaled(Duration::from_secs(60)))
                        .await;
                }
                if let Some(world) = world {
                    world.end_scenario(finished).await;
                }
            }
            .boxed_local()
        })
        .fail_on_skipped()
        .with_cli(opts)
        .filter_run(args.features.clone(), move |feature, rule, scenario| {
            let in_shard = shard_plan.as_ref().is_none_or(|(shard, plan)| {
                let group = shard::group_of(feature, rule, scenario);
                plan.get(&group).copied().unwrap_or(0) == shard.index - 1
            });
            let for_kind = harness::derivative::kind::applies(
                &[
                    &feature.tags,
                    rule.map(|r| r.tags.as_slice()).unwrap_or_default(),
                    &scenario.tags,
                ],
                kind,
            );
            for_kind
                && in_shard
                && (targets.is_empty() || targets.iter().any(|t| t.selects(feature, scenario)))
        })
        .await;
    crate::checkpoints::clear();
    if !keep_lab {
        crate::lab_steps::teardown().await;
    }
    let records = records.records();
    let summary = RunSummary {
        passed: records.final_outcomes().filter(|s| !s.failed()).count(),
        failed: records.final_outcomes().filter(|s| s.failed()).count(),
        retried: records.scenarios.iter().filter(|s| s.attempt > 1).count(),
        skipped_steps: writer.skipped_steps(),
        parsing_errors: writer.parsing_errors(),
        execution_failed: writer.execution_has_failed(),
    };
    // The count alone on its line, so CI log readers recognise it.
    println!(
        "\nfeatures: {} passed, {} failed",
        summary.passed, summary.failed
    );
    print!("{}", records.summary(start.elapsed()));
    if summary.failed > 0 {
        println!("failure artifacts: {}", run_artifacts.display());
    }
    report.info.interrupted = false;
    if let Some(path) = report.write() {
        println!("report: {}", path.display());
    }
    Ok((summary, records))
}

/// Background, rule background and scenario steps: what a scenario whose
/// steps all passed has run.
fn steps_of(
    feature: &gherkin::Feature,
    rule: Option<&gherkin::Rule>,
    scenario: &gherkin::Scenario,
) -> usize {
    feature.background.as_ref().map_or(0, |b| b.steps.len())
        + rule
            .and_then(|r| r.background.as_ref())
            .map_or(0, |b| b.steps.len())
        + scenario.steps.len()
}

/// Writes the report once: at the end of the run, or when the run is
/// dropped half-way (Ctrl-C drops `run`'s future; a panic unwinds), with
/// the scenario that was running marked interrupted.
struct ReportOnDrop {
    records: RecordsHandle,
    run_dir: PathBuf,
    info: RunInfo,
    start: Instant,
    written: bool,
}

impl ReportOnDrop {
    fn write(&mut self) -> Option<PathBuf> {
        self.written = true;
        self.info.wall = self.start.elapsed();
        let records = if self.info.interrupted {
            self.records.records_with_unfinished()
        } else {
            self.records.records()
        };
        match html::write(&self.run_dir, &self.info, &records) {
            Ok(path) => Some(path),
            Err(e) => {
                eprintln!(
                    "could not write the report into {}: {e}",
                    self.run_dir.display()
                );
                None
            }
        }
    }
}

impl Drop for ReportOnDrop {
    fn drop(&mut self) {
        if !self.written {
            if let Some(path) = self.write() {
                eprintln!("report of the interrupted run: {}", path.display());
            }
        }
    }
}

fn fragile_tag() -> gherkin::tagexpr::TagOperation {
    "@fragile".parse().expect("a valid tag expression")
}

/// A run's folder name: UTC time, sortable, plus the PID for uniqueness.
fn run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    let (y, m, d) = harness::net::analysis::civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        std::process::id()
    )
}

/// `Path` helper for callers that resolve a checkout root.
pub fn in_checkout(root: &Path, args: &mut RunArgs) {
    for p in [
        &mut args.features,
        &mut args.vm_configs,
        &mut args.artifacts,
    ]
    .into_iter()
    .chain(args.screenshots.iter_mut())
    {
        if p.is_relative() {
            *p = root.join(&*p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_time() {
        let id = run_id();
        assert_eq!(
            id.len(),
            "20261125-104749".len() + 1 + std::process::id().to_string().len(),
            "{id}"
        );
        assert!(id.starts_with("20"), "{id}");
    }

    #[test]
    fn file_and_line_targets() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.feature");
        std::fs::write(&f, "Feature: x\n").unwrap();
        let t = Target::parse(&format!("{}:12", f.display())).unwrap();
        assert_eq!(t.line, Some(12));
        let t = Target::parse(&f.display().to_string()).unwrap();
        assert_eq!(t.line, None);
        let err = Target::parse("/nope/x.feature:3").unwrap_err().to_string();
        assert!(err.contains("/nope/x.feature"), "{err}");
    }
}
