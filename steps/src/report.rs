//! A cucumber writer that records what happened (scenarios, steps, their
//! timing, failures, retries) for the end-of-run summary. It sits beside
//! cucumber's own console and JUnit writers through `tee`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cucumber::event::{self, Cucumber, Feature, Rule, Scenario, Step};
use cucumber::{gherkin, parser, Event};

/// One step as it ran.
#[derive(Debug, Clone)]
pub struct StepRecord {
    pub text: String,
    pub duration: Duration,
    pub status: Status,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Passed,
    Failed,
    Skipped,
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
}

impl ScenarioRecord {
    pub fn failed(&self) -> bool {
        self.steps.iter().any(|s| s.status != Status::Passed)
    }
}

#[derive(Debug, Default)]
struct Open {
    scenario_started: Option<Instant>,
    step_started: Option<Instant>,
    current: Option<ScenarioRecord>,
}

/// The records, shared with whoever prints the summary.
#[derive(Debug, Default, Clone)]
pub struct Records {
    pub scenarios: Vec<ScenarioRecord>,
}

/// The writer half: feed it events, read [`Records`] from the handle.
#[derive(Debug, Default)]
pub struct Recorder {
    records: Arc<Mutex<Records>>,
    open: BTreeMap<(String, usize), Open>,
}

impl Recorder {
    pub fn new() -> (Self, Arc<Mutex<Records>>) {
        let records = Arc::new(Mutex::new(Records::default()));
        (
            Recorder {
                records: records.clone(),
                open: BTreeMap::new(),
            },
            records,
        )
    }

    fn on_scenario<W>(
        &mut self,
        feature: &gherkin::Feature,
        scenario: &gherkin::Scenario,
        ev: event::RetryableScenario<W>,
    ) {
        let key = (
            feature
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            scenario.position.line,
        );
        let open = self.open.entry(key.clone()).or_default();
        let now = Instant::now();
        match ev.event {
            Scenario::Started => {
                open.scenario_started = Some(now);
                open.current = Some(ScenarioRecord {
                    feature: feature.name.clone(),
                    name: scenario.name.clone(),
                    file: key.0.clone(),
                    line: key.1,
                    attempt: ev.retries.map(|r| r.current).unwrap_or(0) + 1,
                    duration: Duration::ZERO,
                    steps: Vec::new(),
                });
            }
            Scenario::Step(step, st) | Scenario::Background(step, st) => {
                let text = format!("{}{}", step.keyword, step.value);
                let (status, error) = match st {
                    Step::Started => {
                        open.step_started = Some(now);
                        return;
                    }
                    Step::Passed(..) => (Status::Passed, None),
                    Step::Skipped => (Status::Skipped, None),
                    Step::Failed(_, _, _, err) => (Status::Failed, Some(err.to_string())),
                };
                let duration = open.step_started.map(|s| now - s).unwrap_or_default();
                if let Some(cur) = open.current.as_mut() {
                    cur.steps.push(StepRecord {
                        text,
                        duration,
                        status,
                        error,
                    });
                }
            }
            Scenario::Finished => {
                if let Some(mut cur) = open.current.take() {
                    cur.duration = open.scenario_started.map(|s| now - s).unwrap_or_default();
                    self.records
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .scenarios
                        .push(cur);
                }
            }
            Scenario::Hook(..) | Scenario::Log(_) => {}
        }
    }
}

impl<W: 'static> cucumber::Writer<W> for Recorder {
    type Cli = cucumber::cli::Empty;

    async fn handle_event(&mut self, ev: parser::Result<Event<Cucumber<W>>>, _cli: &Self::Cli) {
        let Ok(ev) = ev else { return };
        if let Cucumber::Feature(feature, ev) = ev.value {
            match ev {
                Feature::Scenario(sc, ev) => self.on_scenario(&feature, &sc, ev),
                Feature::Rule(_, Rule::Scenario(sc, ev)) => self.on_scenario(&feature, &sc, ev),
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
        let mut steps: Vec<(&ScenarioRecord, &StepRecord)> = self
            .scenarios
            .iter()
            .flat_map(|s| s.steps.iter().map(move |st| (s, st)))
            .collect();
        steps.sort_by_key(|s| std::cmp::Reverse(s.1.duration));
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
