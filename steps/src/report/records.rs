//! A cucumber writer that records what happened (scenarios, steps, their
//! timing, failures, retries, a screenshot after each step, and the
//! [`evidence`](super::evidence) steps filed) for the end-of-run summary and
//! the HTML report ([`html`](super::html)).
//!
//! It sits beside cucumber's console and JUnit writers through `tee`, but
//! outside their normalization: it must see a step's end while the step's
//! VM still runs, to take the screenshot. Scenarios run one at a time, so
//! the raw event order is already one scenario after another.
//!
//! Screenshots: `<scenario>/steps/NN.png` (full size) and `NN-thumb.png`
//! (320 pixels wide), `steps/attemptK/` for a retry. When an attempt
//! passes, its full-size screens are removed and the thumbnails kept: a
//! nightly run's passing scenarios would otherwise leave tens of megabytes
//! nobody opens, while a failure's full screens are evidence.
//!
//! The screen is taken through the VM's observer monitor as soon as this
//! writer sees the step's end, in a task of its own: cucumber's executor
//! does not run while a writer works, and a next step held up between a
//! key's press and release would type differently. The next step may have
//! started when the screen is taken (at most its first command), except
//! after a scenario's last step, which the runner's after-hook waits for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cucumber::event::{self, Cucumber, Feature, Hook, Rule, Scenario, Step};
use cucumber::{gherkin, parser, Event};
use image::RgbImage;

use super::evidence::{self, Evidence};

/// Width of a step's thumbnail, in pixels.
pub const THUMB_WIDTH: u32 = 320;

/// One step as it ran.
#[derive(Debug, Clone)]
pub struct StepRecord {
    /// Keyword and text, e.g. "Then I see \"greeter\" within 30 seconds".
    pub text: String,
    /// A background step.
    pub background: bool,
    /// From the scenario's start to the step's start.
    pub offset: Duration,
    pub duration: Duration,
    pub status: Status,
    pub error: Option<String>,
    /// The screen after the step: `None` when no VM was running.
    pub screen: Option<StepScreen>,
    /// What the step filed (screen waits, traffic verdicts).
    pub evidence: Vec<Evidence>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed,
    Skipped,
}

/// The screen after a step.
#[derive(Debug, Clone, PartialEq)]
pub enum StepScreen {
    Shot(Shot),
    /// A VM was running but its screen could not be taken (why).
    Missing(String),
}

/// A step's screenshot files (absolute paths).
#[derive(Debug, Clone, PartialEq)]
pub struct Shot {
    /// The full-size PNG; `None` once removed (the attempt passed).
    pub full: Option<PathBuf>,
    pub thumb: PathBuf,
    /// The screen's size (the full image's).
    pub width: u32,
    pub height: u32,
}

/// One attempt of a scenario.
#[derive(Debug, Clone)]
pub struct ScenarioRecord {
    pub feature: String,
    pub name: String,
    pub file: String,
    pub line: usize,
    pub attempt: usize,
    pub duration: Duration,
    pub steps: Vec<StepRecord>,
    /// Its artifact folder (absolute).
    pub dir: Option<PathBuf>,
    /// A hook that failed, and how.
    pub hook_error: Option<String>,
    /// Evidence filed after the last step (by the after-hook).
    pub evidence: Vec<Evidence>,
    /// The run stopped while this scenario ran.
    pub interrupted: bool,
    /// The command that runs this scenario again.
    pub rerun: Option<String>,
}

impl ScenarioRecord {
    pub fn failed(&self) -> bool {
        self.interrupted
            || self.hook_error.is_some()
            || self.steps.iter().any(|s| s.status != Status::Passed)
    }
}

/// The scenario a step event belongs to, and that step while it runs.
#[derive(Debug)]
struct Open {
    serial: u64,
    started: SystemTime,
    step_started: Option<SystemTime>,
    /// Screenshots still being taken: step index, task.
    pending: Vec<(usize, tokio::task::JoinHandle<Result<Shot, String>>)>,
    record: ScenarioRecord,
}

/// The records, shared with whoever prints the summary.
#[derive(Debug, Default, Clone)]
pub struct Records {
    pub scenarios: Vec<ScenarioRecord>,
}

#[derive(Debug, Default)]
struct Shared {
    records: Records,
    open: BTreeMap<(String, usize), Open>,
}

/// What the runner reads back from a [`Recorder`].
#[derive(Debug, Clone, Default)]
pub struct RecordsHandle(Arc<Mutex<Shared>>);

impl RecordsHandle {
    /// The finished scenarios.
    pub fn records(&self) -> Records {
        self.lock().records.clone()
    }

    /// The finished scenarios, then those still running, marked
    /// interrupted (for a report written when a run is cut short).
    pub fn records_with_unfinished(&self) -> Records {
        let shared = self.lock();
        let mut records = shared.records.clone();
        records
            .scenarios
            .extend(shared.open.values().map(|open| ScenarioRecord {
                interrupted: true,
                ..open.record.clone()
            }));
        records
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The command that reruns a scenario, if the run knows one.
pub type RerunCommand =
    Arc<dyn Fn(&gherkin::Feature, &gherkin::Scenario) -> Option<String> + Send + Sync>;

/// The writer half: feed it events, read [`Records`] from the handle.
pub struct Recorder {
    shared: RecordsHandle,
    /// `Scenario::Started` events seen: the scenario's serial in the
    /// evidence journal.
    serial: u64,
    rerun: RerunCommand,
}

impl Recorder {
    pub fn new(rerun: RerunCommand) -> (Self, RecordsHandle) {
        let shared = RecordsHandle::default();
        (
            Recorder {
                shared: shared.clone(),
                serial: 0,
                rerun,
            },
            shared,
        )
    }

    async fn on_scenario<W>(
        &mut self,
        feature: &gherkin::Feature,
        scenario: &gherkin::Scenario,
        ev: event::RetryableScenario<W>,
        at: SystemTime,
    ) {
        let key = (
            feature
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            scenario.position.line,
        );
        let since = |from: SystemTime, to: SystemTime| to.duration_since(from).unwrap_or_default();
        let background = matches!(ev.event, Scenario::Background(..));
        match ev.event {
            Scenario::Started => {
                self.serial += 1;
                let open = Open {
                    serial: self.serial,
                    started: at,
                    step_started: None,
                    pending: Vec::new(),
                    record: ScenarioRecord {
                        feature: feature.name.clone(),
                        name: scenario.name.clone(),
                        file: key.0.clone(),
                        line: key.1,
                        attempt: ev.retries.map(|r| r.current).unwrap_or(0) + 1,
                        duration: Duration::ZERO,
                        steps: Vec::new(),
                        dir: None,
                        hook_error: None,
                        evidence: Vec::new(),
                        interrupted: false,
                        rerun: (self.rerun)(feature, scenario),
                    },
                };
                self.shared.lock().open.insert(key, open);
            }
            Scenario::Step(step, st) | Scenario::Background(step, st) => {
                // `st` lives to the end of this arm: a failed step's event
                // holds the World, so its VM runs while the screen is taken.
                let (status, error) = match &st {
                    Step::Started => {
                        if let Some(open) = self.shared.lock().open.get_mut(&key) {
                            open.step_started = Some(at);
                        }
                        return;
                    }
                    Step::Passed(..) => (Status::Passed, None),
                    Step::Skipped => (Status::Skipped, None),
                    Step::Failed(_, _, _, err) => (Status::Failed, Some(err.to_string())),
                };
                let Some((serial, started, step_started, attempt, index)) =
                    self.shared.lock().open.get(&key).map(|o| {
                        (
                            o.serial,
                            o.started,
                            o.step_started.unwrap_or(at),
                            o.record.attempt,
                            o.record.steps.len() + 1,
                        )
                    })
                else {
                    return;
                };
                let info = evidence::scenario_info(serial);
                // A failed step's event comes after the after-hook: the
                // step ended when the hook began.
                let end = match (status, info.ending) {
                    (Status::Failed, Some(ending)) if ending < at => ending.max(step_started),
                    _ => at,
                };
                let mut pending = None;
                let screen = match (&info.vm, &info.dir, status) {
                    // The scenario is over (this event comes after the
                    // after-hook) and the event holds the World: take the
                    // screen here.
                    (Some(vm), Some(dir), Status::Failed) => {
                        let shot = match observe(vm).await {
                            Ok(image) => save(image, steps_dir(dir, attempt), index).await,
                            Err(why) => Err(why),
                        };
                        evidence::step_recorded(serial);
                        Some(StepScreen::from(shot))
                    }
                    // The next step is running: never hold it up (a writer
                    // that takes its time stops the executor, e.g. between
                    // a key's press and release). Filled in at the end.
                    (Some(vm), Some(dir), Status::Passed) => {
                        let (vm, dir) = (vm.clone(), steps_dir(dir, attempt));
                        pending = Some(tokio::spawn(async move {
                            // The next step may have replaced the VM since.
                            let image = match evidence::left_screen(serial, &vm) {
                                Some(screen) => Ok(screen),
                                None => observe(&vm)
                                    .await
                                    .or_else(|e| evidence::left_screen(serial, &vm).ok_or(e)),
                            };
                            evidence::step_recorded(serial);
                            save(image?, dir, index).await
                        }));
                        None
                    }
                    _ => {
                        evidence::step_recorded(serial);
                        None
                    }
                };
                let record = StepRecord {
                    text: format!("{}{}", step.keyword, step.value),
                    background,
                    offset: since(started, step_started),
                    duration: since(step_started, end),
                    status,
                    error,
                    screen,
                    evidence: evidence::take_until(serial, end),
                };
                if let Some(open) = self.shared.lock().open.get_mut(&key) {
                    open.record.dir = info.dir;
                    if let Some(job) = pending {
                        open.pending.push((open.record.steps.len(), job));
                    }
                    open.record.steps.push(record);
                }
            }
            Scenario::Hook(kind, Hook::Failed(_, info)) => {
                if let Some(open) = self.shared.lock().open.get_mut(&key) {
                    open.record.hook_error =
                        Some(format!("{kind:?} hook failed: {}", panic_text(&info)));
                }
            }
            Scenario::Finished => {
                let Some(mut open) = self.shared.lock().open.remove(&key) else {
                    return;
                };
                for (i, job) in std::mem::take(&mut open.pending) {
                    let shot = job
                        .await
                        .unwrap_or_else(|e| Err(format!("the screenshot task failed: {e}")));
                    open.record.steps[i].screen = Some(StepScreen::from(shot));
                }
                let info = evidence::scenario_info(open.serial);
                open.record.dir = open.record.dir.or(info.dir);
                open.record.evidence = evidence::finish(open.serial);
                open.record.duration = since(open.started, at);
                if !open.record.failed() {
                    drop_full_screens(&mut open.record);
                }
                self.shared.lock().records.scenarios.push(open.record);
            }
            Scenario::Hook(..) | Scenario::Log(_) => {}
        }
    }
}

fn panic_text(info: &event::Info) -> String {
    info.downcast_ref::<String>()
        .cloned()
        .or_else(|| info.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

fn steps_dir(scenario_dir: &Path, attempt: usize) -> PathBuf {
    match attempt {
        1 => scenario_dir.join("steps"),
        n => scenario_dir.join("steps").join(format!("attempt{n}")),
    }
}

/// The screen through the VM's observer monitor.
async fn observe(vm: &harness::vm::VmPaths) -> Result<RgbImage, String> {
    if !vm.observer_socket.exists() {
        return Err("the computer was no longer running".into());
    }
    let timeout = harness::wait::scaled(Duration::from_secs(10));
    harness::vm::observe_screen(vm, timeout)
        .await
        // The whole chain: QEMU's own words are in the sources.
        .map_err(|e| format!("{:#}", anyhow::Error::new(e)))
}

/// [`save_shot`] off the async threads (PNG encoding takes a while).
async fn save(image: RgbImage, dir: PathBuf, index: usize) -> Result<Shot, String> {
    tokio::task::spawn_blocking(move || {
        save_shot(&image, &dir, index)
            .map_err(|e| format!("saving the screenshot in {}: {e}", dir.display()))
    })
    .await
    .unwrap_or_else(|e| Err(format!("the screenshot task failed: {e}")))
}

impl From<Result<Shot, String>> for StepScreen {
    fn from(shot: Result<Shot, String>) -> Self {
        match shot {
            Ok(shot) => StepScreen::Shot(shot),
            Err(why) => StepScreen::Missing(why),
        }
    }
}

/// Save `image` as `dir/NN.png` and `dir/NN-thumb.png`.
pub fn save_shot(image: &RgbImage, dir: &Path, index: usize) -> Result<Shot, image::ImageError> {
    std::fs::create_dir_all(dir)?;
    let full = dir.join(format!("{index:02}.png"));
    let thumb = dir.join(format!("{index:02}-thumb.png"));
    let (w, h) = image.dimensions();
    let tw = THUMB_WIDTH.min(w).max(1);
    let th = ((h as u64 * tw as u64) / w.max(1) as u64).max(1) as u32;
    image.save(&full)?;
    image::imageops::thumbnail(image, tw, th).save(&thumb)?;
    Ok(Shot {
        full: Some(full),
        thumb,
        width: w,
        height: h,
    })
}

/// A passed attempt keeps only its thumbnails.
fn drop_full_screens(record: &mut ScenarioRecord) {
    for step in &mut record.steps {
        if let Some(StepScreen::Shot(shot)) = &mut step.screen {
            if let Some(full) = shot.full.take() {
                let _ = std::fs::remove_file(full);
            }
        }
    }
}

impl<W: 'static> cucumber::Writer<W> for Recorder {
    type Cli = cucumber::cli::Empty;

    async fn handle_event(&mut self, ev: parser::Result<Event<Cucumber<W>>>, _cli: &Self::Cli) {
        let Ok(ev) = ev else { return };
        let (value, meta) = ev.split();
        if let Cucumber::Feature(feature, ev) = value {
            match ev {
                Feature::Scenario(sc, ev) => self.on_scenario(&feature, &sc, ev, meta.at).await,
                Feature::Rule(_, Rule::Scenario(sc, ev)) => {
                    self.on_scenario(&feature, &sc, ev, meta.at).await
                }
                _ => {}
            }
        }
    }
}

impl cucumber::writer::NonTransforming for Recorder {}

impl Records {
    /// The last attempt of each scenario: the one that decides it.
    pub fn final_outcomes(&self) -> impl Iterator<Item = &ScenarioRecord> {
        let mut last: BTreeMap<(&str, usize), &ScenarioRecord> = BTreeMap::new();
        for s in &self.scenarios {
            last.insert((s.file.as_str(), s.line), s);
        }
        last.into_values()
    }

    /// Every step with its scenario, slowest first.
    pub fn slowest_steps(&self) -> Vec<(&ScenarioRecord, &StepRecord)> {
        let mut steps: Vec<(&ScenarioRecord, &StepRecord)> = self
            .scenarios
            .iter()
            .flat_map(|s| s.steps.iter().map(move |st| (s, st)))
            .collect();
        steps.sort_by_key(|s| std::cmp::Reverse(s.1.duration));
        steps
    }

    /// The end-of-run summary: counts (retries apart), wall time, the
    /// slowest steps.
    pub fn summary(&self, wall: Duration) -> String {
        let failed = self.final_outcomes().filter(|s| s.failed()).count();
        let passed = self.final_outcomes().count() - failed;
        let retried = self.scenarios.iter().filter(|s| s.attempt > 1).count();
        let mut out = format!(
            "Run summary: {passed} passed, {failed} failed, {retried} retried, wall time {:.1?}\n",
            wall
        );
        let steps = self.slowest_steps();
        if !steps.is_empty() {
            out.push_str("Slowest steps:\n");
            for (sc, st) in steps.iter().take(5) {
                out.push_str(&format!(
                    "  {:>7.1?}  {} ({}:{})\n",
                    st.duration, st.text, sc.file, sc.line
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shots_are_saved_with_a_thumbnail() {
        let dir = tempfile::tempdir().unwrap();
        let image = RgbImage::from_fn(1280, 800, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 0])
        });
        let shot = save_shot(&image, dir.path(), 3).unwrap();
        assert_eq!((shot.width, shot.height), (1280, 800));
        assert!(shot.full.as_ref().unwrap().ends_with("03.png"));
        let thumb = image::open(&shot.thumb).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (THUMB_WIDTH, 200));
    }

    #[test]
    fn a_passed_attempt_keeps_only_thumbnails() {
        let dir = tempfile::tempdir().unwrap();
        let shot = save_shot(&RgbImage::new(64, 40), dir.path(), 1).unwrap();
        let full = shot.full.clone().unwrap();
        let mut record = ScenarioRecord {
            feature: "f".into(),
            name: "s".into(),
            file: "f.feature".into(),
            line: 3,
            attempt: 1,
            duration: Duration::ZERO,
            steps: vec![StepRecord {
                text: "Given x".into(),
                background: false,
                offset: Duration::ZERO,
                duration: Duration::ZERO,
                status: Status::Passed,
                error: None,
                screen: Some(StepScreen::Shot(shot)),
                evidence: vec![],
            }],
            dir: None,
            hook_error: None,
            evidence: vec![],
            interrupted: false,
            rerun: None,
        };
        assert!(!record.failed());
        drop_full_screens(&mut record);
        assert!(!full.exists());
        let Some(StepScreen::Shot(shot)) = &record.steps[0].screen else {
            panic!("{:?}", record.steps[0].screen)
        };
        assert!(shot.full.is_none() && shot.thumb.exists());
    }
}
