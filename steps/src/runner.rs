//! Running features: the options a user gives (`tailor run ...` or
//! `cargo test --features vm -- ...` take the same ones) and the cucumber
//! set-up behind them: one scenario at a time (each boots a VM on a host
//! that may have two cores), skipped steps count as failures. Every run
//! ends with a summary and the HTML report `artifacts/<run>/index.html`
//! (also when it is cut short).
//!
//! Before anything boots, [`selection`](crate::selection) decides which
//! scenarios run and [`preflight`](crate::preflight) checks what they
//! need, so a wrong filter, path, feature or ISO ends the run at once with
//! exit code 2 ([`exit_code`]). Cucumber gets the selected features as
//! they are (`Selected`), so every feature passes through one place on
//! its way in.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use cucumber::writer::{self, Coloring};
use cucumber::{StatsWriter as _, World as _, WriterExt as _};
use futures::FutureExt as _;

use crate::report::evidence;
use crate::report::html::{self, RunInfo};
use crate::report::{Recorder, RecordsHandle};
use crate::rerun;
use crate::selection::{self, InputError, Selection};
use crate::shard::Shard;
use crate::world::{set_settings, Settings};
use crate::TailorWorld;
use cucumber::gherkin;

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
    /// Folder of .feature files, read when no feature file or folder is
    /// named.
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
    /// Folder of recorded fingerprints: the baseline of each kind of
    /// derivative (`tor.toml`, `bridges.toml`, `vpn.toml`) that
    /// `Then the guest looks like the reference derivative on the network`
    /// compares with.
    #[arg(long, default_value = "fingerprints")]
    pub fingerprints: PathBuf,
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
    /// Print the selected scenarios (FILE:LINE and name), one a line, and
    /// exit without booting anything.
    #[arg(long)]
    pub list: bool,
    /// Feature files or folders, wherever they are, or FILE:LINE for the
    /// scenario at that line (any line of it: tags, steps, an example
    /// row); several may be given.
    pub targets: Vec<String>,
    /// How this program was started, for the command that reruns a failed
    /// scenario (e.g. `tailor run`); the options follow it.
    #[arg(skip)]
    pub rerun_prefix: Vec<String>,
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
            fingerprints: root.join("fingerprints"),
            artifacts: root.join("artifacts"),
            name: None,
            tags: None,
            junit: None,
            shard: None,
            pause_on_failure: false,
            kind: None,
            list: false,
            targets: vec![],
            rerun_prefix: vec![],
            keep_lab: false,
        }
    }

    /// What to select, as [`selection::select`] takes it, for a
    /// derivative of `kind`.
    pub fn request(&self, kind: harness::derivative::Kind) -> selection::Request {
        selection::Request {
            targets: self.targets.clone(),
            features_dir: self.features.clone(),
            tags: self.tags.clone(),
            name: self.name.clone(),
            shard: self.shard,
            kind,
        }
    }

    /// The derivative's kind this run would test (see
    /// [`Settings::resolve_kind`]), and where that came from.
    pub fn resolve_kind(&self) -> anyhow::Result<(harness::derivative::Kind, String)> {
        self.settings(self.artifacts.clone())
            .map(|(s, why)| (s.kind, why))
    }

    /// The run's settings, with `artifacts` as the run's folder and the
    /// derivative's kind resolved (see [`Settings::resolve_kind`]); also
    /// says where the kind came from.
    fn settings(&self, artifacts: PathBuf) -> anyhow::Result<(Settings, String)> {
        let mut settings = Settings {
            screenshots: self.screenshots.clone(),
            vm_configs: self.vm_configs.clone(),
            fingerprints: self.fingerprints.clone(),
            vm_config: self.vm_config.clone(),
            iso: self.iso.clone(),
            artifacts,
            pause_on_failure: self.pause_on_failure,
            kind: harness::derivative::Kind::default(),
        };
        let (kind, why) = settings
            .resolve_kind(self.kind)
            .map_err(|e| anyhow::Error::new(InputError(format!("{e:#}"))))?;
        settings.kind = kind;
        Ok((settings, why))
    }
}

/// What a run ended with (scenarios by their last attempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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

/// Run the features as `args` say.
pub async fn run(args: RunArgs) -> anyhow::Result<RunSummary> {
    run_recorded(args).await.map(|(summary, _)| summary)
}

/// The process exit code for a run's outcome: 0 all passed (or nothing
/// to do: an empty shard, a listing), 1 a scenario failed, 2 a usage or
/// input error (bad filter, missing file, malformed feature, missing ISO),
/// which is always found before anything boots.
pub fn exit_code(outcome: &anyhow::Result<RunSummary>) -> u8 {
    match outcome {
        Ok(summary) if summary.success() => 0,
        Ok(_) => 1,
        Err(e) if e.downcast_ref::<InputError>().is_some() => 2,
        Err(_) => 1,
    }
}

/// Whether to colour what goes to a stream: only a terminal's, and not
/// when `NO_COLOR` is set (to anything but "").
pub fn colour(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// The `tracing` subscriber every entry point uses: `TAILOR_LOG` filters
/// (default `info`), stderr, colour as [`colour`] says.
pub fn init_logging() {
    use std::io::IsTerminal as _;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TAILOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(colour(std::io::stderr().is_terminal()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// [`run`], also returning what every scenario and step did.
pub async fn run_recorded(args: RunArgs) -> anyhow::Result<(RunSummary, crate::report::Records)> {
    use std::io::IsTerminal as _;
    // Long waits report progress through `tracing`; the CLI sets up a
    // subscriber, `cargo test --features vm` does not.
    init_logging();
    let run_id = run_id();
    let run_artifacts = args.artifacts.join(&run_id);
    let (settings, kind_from) = args.settings(run_artifacts.clone())?;
    let (features, chosen) = match selection::select(&args.request(settings.kind))? {
        Selection::Run { features, chosen } => (features, chosen),
        Selection::EmptyShard(why) => {
            println!("{why}");
            return Ok(Default::default());
        }
    };
    if args.list {
        for c in &chosen {
            println!("{}  {}", c.target(), c.name);
        }
        return Ok(Default::default());
    }
    let keep_lab = args.keep_lab;
    println!("derivative kind: {} (from {kind_from})", settings.kind);
    crate::preflight::check(&settings, &features)?;
    set_settings(settings);
    let junit: Box<dyn std::io::Write> = match &args.junit {
        Some(path) => Box::new(std::fs::File::create(path).map_err(|e| {
            anyhow::Error::new(InputError(format!(
                "cannot write the JUnit report {}: {e}",
                path.display()
            )))
        })?),
        None => Box::new(std::io::sink()),
    };
    let rerun = rerun::Commands::new(&args, &chosen);
    let (recorder, records) = Recorder::new(rerun.for_report());
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
    let coloring = if colour(std::io::stdout().is_terminal()) {
        Coloring::Always
    } else {
        Coloring::Never
    };
    let banner_commands = rerun.clone();
    let writer = TailorWorld::cucumber::<PathBuf>()
        .with_parser(Selected)
        .with_writer(
            writer::Basic::raw(std::io::stdout(), coloring, 0)
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
        .before(move |feature, _rule, scenario, world| {
            let rerun = banner_commands.get(feature, scenario);
            async move {
                rerun::set_current(rerun);
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
        .with_cli(cucumber::cli::Opts::<_, _, _, cucumber::cli::Empty>::default())
        .run(features)
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
        println!("rerun a failed scenario:");
        for s in records.final_outcomes().filter(|s| s.failed()) {
            if let Some(command) = &s.rerun {
                println!("  {command}");
            }
        }
    }
    report.info.interrupted = false;
    if let Some(path) = report.write() {
        println!("report: {}", path.display());
    }
    Ok((summary, records))
}

/// Hands cucumber the features [`selection::select`] chose: the one way in
/// for every feature a run runs, and so the place to change them on their
/// way (say, a step appended to every scenario).
struct Selected;

impl cucumber::Parser<Vec<gherkin::Feature>> for Selected {
    type Cli = cucumber::cli::Empty;
    type Output =
        futures::stream::Iter<std::vec::IntoIter<cucumber::parser::Result<gherkin::Feature>>>;

    fn parse(self, features: Vec<gherkin::Feature>, _cli: Self::Cli) -> Self::Output {
        // Every scenario ends with the step that judges all its captures.
        let judged = features.into_iter().map(|mut feature| {
            crate::judging::append_judge_step(&mut feature);
            Ok(feature)
        });
        futures::stream::iter(judged.collect::<Vec<_>>())
    }
}

/// The banner printed for a failed scenario: where its artifacts are, and
/// the command that runs it again.
pub fn failure_banner(dir: &Path) -> String {
    let rule = "=".repeat(74);
    let rerun = rerun::current()
        .map(|c| format!("rerun it:\n{c}\n"))
        .unwrap_or_default();
    format!(
        "==================== artifacts of the failed scenario ====================\n{}\n{rerun}{rule}",
        dir.display()
    )
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
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}-{:02}{:02}{:02}-{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        std::process::id()
    )
}

/// `Path` helper for callers that resolve a checkout root.
pub fn in_checkout(root: &Path, args: &mut RunArgs) {
    for p in [
        &mut args.features,
        &mut args.vm_configs,
        &mut args.fingerprints,
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
}
