//! Evidence for the run report: what a step saw (a screen wait's match or
//! best candidate, a traffic check's verdict with its flows), filed by the
//! step while it runs and attached by the report's [`Recorder`] to the step
//! it came from.
//!
//! Steps call [`screen_wait`] and [`verdict`]; nothing else here is for
//! step code. The journal is run-wide (one run at a time per process, as
//! with the run's settings) and works across the two halves of cucumber:
//! the executor, which owns the World and runs steps and hooks, and the
//! writers, which see events a moment later and never the World of a
//! passing step. Both count scenarios in the same order: the runner's
//! before-hook calls [`scenario_began`], the [`Recorder`] counts
//! `Scenario::Started` events. Evidence is stamped with the time it was
//! filed, and a step owns what was filed between its start and end events
//! (cucumber stamps events when they happen, not when a writer sees them).
//!
//! The VM a scenario runs is registered with [`vm_started`], so the
//! [`Recorder`] can take a screenshot after each step through the VM's
//! observer QMP monitor.
//!
//! [`Recorder`]: super::Recorder

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use harness::net::analysis::{Analysis, Host};
use harness::net::policy::{Offence, Policy, Verdict};
pub use harness::screen::matcher::Rect;

/// One screen wait, as the step that waited saw it: the harness's own
/// outcome of the wait.
pub use harness::screen::waiting::WaitOutcome as ScreenWait;

/// One flow of a capture, as a traffic check judged it.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRow {
    pub protocol: String,
    pub src: String,
    pub src_port: Option<u16>,
    pub dst: String,
    pub dst_port: Option<u16>,
    /// Time of the first packet (UTC, as Wireshark shows it).
    pub first: String,
    /// Seconds from the capture's first packet.
    pub offset: f64,
    pub packets: u64,
    pub bytes: u64,
    /// How the policy classes the flow ("allowed", "ARP", "leak", ...).
    pub class: String,
    /// The check objects to this flow.
    pub offence: bool,
    pub dns_names: Vec<String>,
}

/// Flows a report shows per verdict; offending flows are always shown.
pub const MAX_FLOW_ROWS: usize = 300;

/// A traffic check's verdict with the capture's flows.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficVerdict {
    /// Which check ("only Tor", "no DNS outside Tor", ...).
    pub check: String,
    pub passed: bool,
    /// The verdict as the step's error shows it.
    pub text: String,
    /// The capture's path.
    pub capture: String,
    pub packets: u64,
    pub flows: Vec<FlowRow>,
    /// Flows left out of `flows` (see [`MAX_FLOW_ROWS`]).
    pub flows_omitted: usize,
    /// Offences that are not flows (the MAC check's).
    pub other_offences: Vec<String>,
}

impl TrafficVerdict {
    /// Every flow of `analysis` with its class under `policy` and whether
    /// `verdict` objects to it.
    pub fn new(verdict: &Verdict, analysis: &Analysis, policy: &Policy) -> Self {
        let lab = policy.lab_mac_set(analysis);
        let offending: Vec<_> = verdict
            .offences
            .iter()
            .filter_map(|o| match o {
                Offence::Flow { flow, .. } => Some(flow.key),
                _ => None,
            })
            .collect();
        let host = |h: &Host| h.to_string();
        let mut rows: Vec<FlowRow> = analysis
            .flows
            .iter()
            .map(|flow| {
                // As the checks saw it: a flow to a relay that never
                // opened with TLS is "not Tor", the lab's own frames the lab's.
                let class = policy.flow_class(flow, &lab);
                FlowRow {
                    protocol: flow.key.protocol.to_string(),
                    src: host(&flow.key.src),
                    src_port: flow.key.src_port,
                    dst: host(&flow.key.dst),
                    dst_port: flow.key.dst_port,
                    first: flow.first.to_string(),
                    offset: analysis.offset(flow.first),
                    packets: flow.packets,
                    bytes: flow.bytes,
                    class: class.to_string(),
                    offence: offending.contains(&flow.key),
                    dns_names: flow.dns_names.clone(),
                }
            })
            .collect();
        let mut omitted = 0;
        if rows.len() > MAX_FLOW_ROWS {
            let mut kept = 0;
            rows.retain(|r| {
                let keep = r.offence || kept < MAX_FLOW_ROWS;
                kept += usize::from(keep && !r.offence);
                omitted += usize::from(!keep);
                keep
            });
        }
        TrafficVerdict {
            check: verdict.check.to_string(),
            passed: verdict.passed(),
            text: verdict.to_string(),
            capture: verdict.capture.clone(),
            packets: verdict.packets,
            flows: rows,
            flows_omitted: omitted,
            other_offences: verdict
                .offences
                .iter()
                .filter(|o| !matches!(o, Offence::Flow { .. }))
                .map(|o| o.to_string())
                .collect(),
        }
    }
}

/// Something a step saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    ScreenWait(ScreenWait),
    Traffic(TrafficVerdict),
}

/// File a screen wait's outcome (found or not) for the running step.
pub fn screen_wait(wait: ScreenWait) {
    file(Evidence::ScreenWait(wait));
}

/// File a traffic check's verdict (passed or not) for the running step.
pub fn verdict(verdict: &Verdict, analysis: &Analysis, policy: &Policy) {
    file(Evidence::Traffic(TrafficVerdict::new(
        verdict, analysis, policy,
    )));
}

fn file(evidence: Evidence) {
    let mut j = journal();
    let serial = j.serial;
    j.items.push((serial, SystemTime::now(), evidence));
}

#[derive(Default)]
struct Journal {
    /// The scenario the executor runs (counted from 1; 0 before the first).
    serial: u64,
    /// Each scenario's artifact folder, until the recorder is done with it.
    dirs: BTreeMap<u64, PathBuf>,
    /// The VM of a scenario, for the recorder's screenshots.
    vm: Option<(u64, harness::vm::VmPaths)>,
    /// When the after-hook of a scenario started: a failed step ended then.
    ending: BTreeMap<u64, SystemTime>,
    items: Vec<(u64, SystemTime, Evidence)>,
    /// Steps the recorder is done with (screen taken), per scenario.
    recorded: BTreeMap<u64, usize>,
    /// The last screen of each VM a scenario replaced, by the VM's folder:
    /// the step before the replacement may not have had its screen taken.
    left_screens: BTreeMap<(u64, PathBuf), image::RgbImage>,
}

static JOURNAL: Mutex<Option<Journal>> = Mutex::new(None);
static RECORDED: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);

struct Guard(MutexGuard<'static, Option<Journal>>);

impl std::ops::Deref for Guard {
    type Target = Journal;
    fn deref(&self) -> &Journal {
        self.0.as_ref().expect("initialised by journal()")
    }
}

impl std::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Journal {
        self.0.as_mut().expect("initialised by journal()")
    }
}

fn journal() -> Guard {
    let mut g = JOURNAL.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(Journal::default);
    Guard(g)
}

/// A new run: forget everything from the last one.
pub(crate) fn begin_run() {
    *JOURNAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(Journal::default());
}

/// Executor side, in the before-hook: the next scenario starts, with its
/// artifact folder.
pub(crate) fn scenario_began(dir: &Path) {
    let mut j = journal();
    j.serial += 1;
    let serial = j.serial;
    j.dirs
        .insert(serial, std::path::absolute(dir).unwrap_or(dir.to_owned()));
}

/// Executor side: the running scenario is about to replace its VM, whose
/// screen is now `screen`.
pub(crate) fn vm_leaving(paths: &harness::vm::VmPaths, screen: image::RgbImage) {
    let mut j = journal();
    let key = (j.serial, paths.dir.clone());
    j.left_screens.insert(key, screen);
}

/// Recorder side: the last screen of a VM that scenario `serial` replaced.
pub(crate) fn left_screen(serial: u64, paths: &harness::vm::VmPaths) -> Option<image::RgbImage> {
    journal()
        .left_screens
        .get(&(serial, paths.dir.clone()))
        .cloned()
}

/// Executor side: the running scenario started a VM (replacing any other).
pub fn vm_started(paths: &harness::vm::VmPaths) {
    let mut j = journal();
    j.vm = Some((j.serial, paths.clone()));
}

/// Executor side, first thing in the after-hook.
pub(crate) fn scenario_ending() {
    let mut j = journal();
    let serial = j.serial;
    j.ending.insert(serial, SystemTime::now());
}

/// Executor side, in the after-hook of a scenario whose `steps` steps all
/// passed: wait until the recorder has handled them, so their screenshots
/// are taken before the World (and its VM) goes away. A failed step needs
/// no wait: its event carries the World. Returns at once when the
/// scenario had no VM; gives up (with a warning) after `timeout`.
pub(crate) async fn steps_recorded(steps: usize, timeout: Duration) {
    let serial = {
        let j = journal();
        match &j.vm {
            Some((s, _)) if *s == j.serial => j.serial,
            _ => return,
        }
    };
    let wait = async {
        loop {
            let notified = RECORDED.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if journal().recorded.get(&serial).copied().unwrap_or(0) >= steps {
                return;
            }
            notified.await;
        }
    };
    if tokio::time::timeout(timeout, wait).await.is_err() {
        tracing::warn!(
            "the report writer did not catch up with the scenario's {steps} steps within {timeout:?}; their screenshots may be missing"
        );
    }
}

/// Recorder side: what it needs to know about scenario `serial`.
pub(crate) struct ScenarioInfo {
    pub dir: Option<PathBuf>,
    pub vm: Option<harness::vm::VmPaths>,
    pub ending: Option<SystemTime>,
}

pub(crate) fn scenario_info(serial: u64) -> ScenarioInfo {
    let j = journal();
    ScenarioInfo {
        dir: j.dirs.get(&serial).cloned(),
        vm: j
            .vm
            .as_ref()
            .filter(|(s, _)| *s == serial)
            .map(|(_, p)| p.clone()),
        ending: j.ending.get(&serial).copied(),
    }
}

/// Recorder side: the evidence scenario `serial` filed up to `until`.
pub(crate) fn take_until(serial: u64, until: SystemTime) -> Vec<Evidence> {
    take(|s, at| s == serial && at <= until)
}

/// Recorder side, at the scenario's end: what is left for `serial` (filed
/// after its last step, e.g. by the after-hook), and forget the scenario.
pub(crate) fn finish(serial: u64) -> Vec<Evidence> {
    let rest = take(|s, _| s <= serial);
    let mut j = journal();
    j.dirs.retain(|s, _| *s > serial);
    j.ending.retain(|s, _| *s > serial);
    j.recorded.retain(|s, _| *s > serial);
    j.left_screens.retain(|(s, _), _| *s > serial);
    rest
}

fn take(which: impl Fn(u64, SystemTime) -> bool) -> Vec<Evidence> {
    let mut j = journal();
    let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut j.items)
        .into_iter()
        .partition(|(s, at, _)| which(*s, *at));
    j.items = rest;
    mine.into_iter().map(|(_, _, e)| e).collect()
}

/// Recorder side: one more step of scenario `serial` is done with (its
/// screen taken, or there was none to take).
pub(crate) fn step_recorded(serial: u64) {
    *journal().recorded.entry(serial).or_default() += 1;
    RECORDED.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::net::analysis::{analyse_bytes, Format, Timestamp};
    use harness::net::synth::{capture, Station};

    fn guest() -> Station {
        Station::new(
            "02:00:00:aa:bb:cc".parse().unwrap(),
            "02:00:00:00:00:01".parse().unwrap(),
        )
    }

    fn policy() -> Policy {
        Policy::new(
            ["10.203.0.1:5001".parse().unwrap()],
            Some("10.203.0.1".parse().unwrap()),
        )
    }

    #[test]
    fn a_verdict_lists_every_flow_and_marks_the_offences() {
        let me = "10.203.0.57".parse().unwrap();
        let frames = vec![
            (
                Timestamp::from_nanos(1_000),
                guest().tcp_syn((me, 40000), ("10.203.0.1".parse().unwrap(), 5001)),
            ),
            (
                Timestamp::from_nanos(2_000_000_000),
                guest().dns_query(
                    (me, 40001),
                    ("10.203.0.1".parse().unwrap(), 53),
                    &["leak.example"],
                ),
            ),
        ];
        let analysis = analyse_bytes(&capture(Format::Pcap, &frames)).unwrap();
        let v = TrafficVerdict::new(&policy().no_dns(&analysis), &analysis, &policy());
        assert!(!v.passed);
        assert_eq!(v.flows.len(), 2, "{v:?}");
        let (tor, dns) = (&v.flows[0], &v.flows[1]);
        assert_eq!((tor.class.as_str(), tor.offence), ("allowed", false));
        assert_eq!((dns.class.as_str(), dns.offence), ("leak", true));
        assert_eq!(dns.dst_port, Some(53));
        assert_eq!(dns.dns_names, vec!["leak.example".to_string()]);
        assert!((dns.offset - 2.0).abs() < 0.01, "{}", dns.offset);
        assert!(v.text.contains("leak.example"), "{}", v.text);
    }

    #[test]
    fn long_flow_lists_are_cut_but_keep_every_offence() {
        let me = "10.203.0.57".parse().unwrap();
        let mut frames: Vec<_> = (0..MAX_FLOW_ROWS as u16 + 20)
            .map(|i| {
                (
                    Timestamp::from_nanos(1_000 + i as i128),
                    guest().tcp_syn((me, 30000 + i), ("10.203.0.1".parse().unwrap(), 5001)),
                )
            })
            .collect();
        frames.push((
            Timestamp::from_nanos(1_000_000),
            guest().tcp_syn((me, 50000), ("192.0.2.9".parse().unwrap(), 443)),
        ));
        let analysis = analyse_bytes(&capture(Format::Pcap, &frames)).unwrap();
        let v = TrafficVerdict::new(&policy().only_tor(&analysis), &analysis, &policy());
        assert_eq!(v.flows.len(), MAX_FLOW_ROWS + 1);
        assert_eq!(v.flows_omitted, 20);
        assert!(v.flows.last().unwrap().offence, "the leak is kept");
    }

    /// The journal's two halves in one test: it is process-wide.
    #[tokio::test]
    async fn evidence_goes_to_the_step_it_was_filed_in() {
        begin_run();
        scenario_began(Path::new("/tmp/a-line3"));
        let wait = ScreenWait {
            reference: "greeter".into(),
            reference_png: "screenshots/greeter.png".into(),
            matched: true,
            rect: Some(Rect::new(1, 2, 3, 4)),
            score: Some(0.99),
            threshold: 0.95,
            failure_png: None,
        };
        screen_wait(wait.clone());
        let first_end = SystemTime::now();
        // The next filing is stamped strictly later.
        while SystemTime::now() <= first_end {
            std::hint::spin_loop();
        }
        screen_wait(ScreenWait {
            matched: false,
            ..wait.clone()
        });
        assert_eq!(take_until(1, first_end), vec![Evidence::ScreenWait(wait)]);
        assert_eq!(take_until(2, SystemTime::now()), vec![], "another scenario");
        let info = scenario_info(1);
        assert_eq!(info.dir.as_deref(), Some(Path::new("/tmp/a-line3")));
        assert!(info.vm.is_none());
        assert_eq!(finish(1).len(), 1, "what no step took is the scenario's");
        assert!(scenario_info(1).dir.is_none(), "forgotten after finish");

        // No VM: nothing to wait for.
        steps_recorded(5, Duration::from_secs(60)).await;
        // With a VM, the after-hook waits for the recorder's steps.
        let dir = tempfile::tempdir().unwrap();
        let paths = harness::vm::VmPaths {
            dir: dir.path().into(),
            qmp_socket: dir.path().join("q"),
            observer_socket: dir.path().join("o"),
            vnc_socket: dir.path().join("v"),
            agent_socket: dir.path().join("g"),
            journal_log: dir.path().join("j"),
            serial_log: dir.path().join("s"),
            qemu_log: dir.path().join("l"),
            screendump: dir.path().join("d"),
        };
        vm_started(&paths);
        let waiter = tokio::spawn(steps_recorded(2, Duration::from_secs(60)));
        step_recorded(1);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "returned after one of two steps");
        step_recorded(1);
        tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .expect("returned once both steps were recorded")
            .unwrap();
    }
}
