//! Every frame a scenario's guests sent is judged, whatever its steps say.
//!
//! A VM on the lab captures its NIC from its first instruction (QEMU starts
//! the capture itself, see `harness::net::capture`), including the boot
//! that builds a checkpoint. Each capture of a scenario is listed in the
//! World ([`ScenarioCapture`]). Steps may judge a capture early (`Then no
//! DNS left the guest outside Tor` reads the current VM's capture so far);
//! they never judge less than this module does at the end.
//!
//! The end: the runner appends one step to every scenario it runs
//! ([`append_judge_step`], [`JUDGE_STEP`]), so the judgement is a step like
//! any other: it
//! shows in the console, the JUnit file and the report, and a leak fails
//! the scenario instead of being reported after it as a pass. The step
//! freezes the guest (its CPUs stop and its capture is closed, so nothing
//! it sends afterwards goes unjudged), then runs every capture of the
//! scenario through every check of the derivative's kind: only the kind's
//! endpoints (Tor relays, bridges, the VPN), no DNS, no IPv6, the NIC's
//! MAC nowhere.
//!
//! No vacuous pass: a capture with no frame from the guest passes only when
//! the guest was never put on the network in that VM's life; once it was
//! (Start chosen, a checkpoint that is online, a fetch), an empty capture
//! is inconclusive and fails, and so is one without the traffic a step
//! relied on (a page fetched through Tor leaves Tor traffic).
//!
//! A scenario that deliberately tries to send something (the firewall's
//! direct connections, which must be blocked) says so with the tag
//! [`DELIBERATE_TAG`]; its report says which attempts it made, and
//! whatever of them reached the wire is still a leak.

use std::path::PathBuf;

use cucumber::gherkin;
use harness::net::analysis::{self, Analysis, MacAddr};
use harness::net::policy::{Policy, Verdict};

use crate::TailorWorld;

/// The step appended to every scenario.
pub const JUDGE_STEP: &str = "every frame the guest sent in this scenario is judged";

/// Tag of a scenario that deliberately attempts connections its derivative
/// must block.
pub const DELIBERATE_TAG: &str = "attempts-blocked-traffic";

/// One VM's capture within a scenario.
#[derive(Debug, Clone)]
pub struct ScenarioCapture {
    pub path: PathBuf,
    /// The vm-config's name, for messages.
    pub vm: String,
    /// The NIC's configured MAC, which the guest must never send.
    pub nic_mac: Option<MacAddr>,
    /// From power-on, or from a restored checkpoint (its name).
    pub restored_from: Option<String>,
    /// The guest was put on the network during this VM's life (or before
    /// the checkpoint it was restored from), so it must have sent frames.
    pub network_used: bool,
    /// A step relied on traffic through the derivative's anonymity network
    /// (a fetch through Tor): the capture must hold some.
    pub anonymity_traffic_expected: bool,
    /// QEMU closed the file (the capture was stopped or the VM is gone).
    pub closed: bool,
}

impl ScenarioCapture {
    /// Analyse the capture as it stands, looking for the NIC's MAC in
    /// every frame; a capture still being written may end in a partial
    /// frame, anything else cut short is damage.
    pub fn analyse(&self) -> anyhow::Result<Analysis> {
        let options = analysis::Options {
            live: !self.closed,
            watch_macs: self.nic_mac.into_iter().collect(),
        };
        Ok(analysis::analyse_path_with(&self.path, &options)?)
    }

    fn origin(&self) -> String {
        match &self.restored_from {
            Some(name) => format!("from the restore of checkpoint `{name}`"),
            None => "from power-on".into(),
        }
    }
}

impl TailorWorld {
    /// The capture of the running VM, if it is on the lab.
    pub fn current_capture(&mut self) -> Option<&mut ScenarioCapture> {
        self.vm.as_ref()?.capture()?;
        self.captures.last_mut().filter(|c| !c.closed)
    }

    /// Note that the guest was put on the network (Start, an online
    /// checkpoint): from now on its capture must hold its frames.
    pub fn network_used(&mut self) {
        if let Some(c) = self.current_capture() {
            c.network_used = true;
        }
    }

    /// Note that a step relied on traffic through the anonymity network.
    pub fn anonymity_traffic_expected(&mut self) {
        if let Some(c) = self.current_capture() {
            c.network_used = true;
            c.anonymity_traffic_expected = true;
        }
    }
}

/// Append [`JUDGE_STEP`] to each scenario of `feature` (and its rules'),
/// at the line of the scenario's last step.
pub fn append_judge_step(feature: &mut gherkin::Feature) {
    let scenarios = feature.scenarios.iter_mut().chain(
        feature
            .rules
            .iter_mut()
            .flat_map(|r| r.scenarios.iter_mut()),
    );
    for scenario in scenarios {
        if scenario.steps.iter().any(|s| s.value == JUDGE_STEP) {
            continue;
        }
        let (span, position) = scenario
            .steps
            .last()
            .map(|s| (s.span, s.position))
            .unwrap_or((scenario.span, scenario.position));
        scenario.steps.push(gherkin::Step {
            keyword: "Then ".into(),
            ty: gherkin::StepType::Then,
            value: JUDGE_STEP.into(),
            docstring: None,
            table: None,
            span,
            position,
        });
    }
}

/// The result of judging one capture with every check.
pub struct Judged {
    pub capture: ScenarioCapture,
    pub analysis: Analysis,
    pub verdicts: Vec<Verdict>,
    /// Why the capture proves nothing, when it does not.
    pub inconclusive: Option<String>,
}

impl Judged {
    pub fn passed(&self) -> bool {
        self.inconclusive.is_none() && self.verdicts.iter().all(Verdict::passed)
    }
}

/// Judge one capture (closed or still growing) with every check.
pub fn judge_capture(policy: &Policy, capture: &ScenarioCapture) -> anyhow::Result<Judged> {
    let analysis = capture.analyse()?;
    let mut verdicts = policy.all(&analysis, capture.nic_mac);
    let sent = policy.guest_frames(&analysis);
    let mut inconclusive = None;
    if sent == 0 {
        if capture.network_used {
            inconclusive = Some(format!(
                "the guest was put on the network, yet its capture {} ({}) holds no frame from it ({} frames in all): the capture proves nothing",
                capture.path.display(),
                capture.origin(),
                analysis.packets
            ));
        } else {
            // Nothing sent, by a guest never asked to use the network, in
            // a capture QEMU confirmed it was writing from the VM's start:
            // that is the proof that nothing left. The checks' own
            // "nothing to judge" does not apply here.
            verdicts.clear();
        }
    } else if capture.anonymity_traffic_expected && policy.allowed_guest_flows(&analysis) == 0 {
        inconclusive = Some(format!(
            "a step fetched through the derivative's anonymity network, yet the capture {} ({}) holds no guest traffic to an allowed endpoint: it did not record what the scenario did",
            capture.path.display(),
            capture.origin()
        ));
    }
    Ok(Judged {
        capture: capture.clone(),
        analysis,
        verdicts,
        inconclusive,
    })
}

/// Freeze the running guest: stop its CPUs, then close its capture, so the
/// files hold everything it will ever have sent in this scenario.
async fn freeze(world: &mut TailorWorld) -> anyhow::Result<()> {
    let Some(vm) = world.vm.as_mut() else {
        return Ok(());
    };
    if vm.capture().is_none() {
        return Ok(());
    }
    if vm.exit_status().is_some() {
        // QEMU is gone and closed the file itself.
        if let Some(c) = world.captures.last_mut() {
            c.closed = true;
        }
        return Ok(());
    }
    vm.pause().await?;
    world.frozen = true;
    vm.stop_capture().await?;
    if let Some(c) = world.captures.last_mut() {
        c.closed = true;
    }
    Ok(())
}

/// Judge every capture of the scenario; file each verdict for the report
/// and beside the captures. Returns the judged captures.
async fn judge_all(world: &mut TailorWorld) -> anyhow::Result<Vec<Judged>> {
    let mut judged = Vec::new();
    for (n, capture) in world.captures.iter().enumerate() {
        // Per capture: a bridges derivative's relays are allowed only in
        // the capture where a person connected directly.
        let policy = crate::lab_steps::policy_for_capture(world, Some(&capture.path)).await?;
        let j = judge_capture(&policy, capture)?;
        let mut text = format!(
            "capture {} of VM `{}` ({})\n",
            capture.path.display(),
            capture.vm,
            capture.origin()
        );
        if let Some(why) = &j.inconclusive {
            text.push_str(&format!("INCONCLUSIVE: {why}\n"));
        }
        for v in &j.verdicts {
            crate::report::verdict(v, &j.analysis, &policy);
            text.push_str(&v.to_string());
        }
        let file = world
            .scenario_dir
            .join(format!("verdict-judged-{}.txt", n + 1));
        if let Err(e) = std::fs::write(&file, &text) {
            eprintln!("cannot save the verdicts to {}: {e}", file.display());
        }
        judged.push(j);
    }
    Ok(judged)
}

/// The appended step: freeze, judge everything, fail on any leak or on a
/// capture that proves nothing.
pub async fn judge_scenario(world: &mut TailorWorld, deliberate: bool) -> anyhow::Result<()> {
    if world.captures.is_empty() {
        tracing::info!("no computer of this scenario was on the lab network: nothing to judge");
        return Ok(());
    }
    freeze(world).await?;
    let judged = judge_all(world).await?;
    let failures: Vec<String> = judged
        .iter()
        .filter(|j| !j.passed())
        .map(|j| {
            let mut text = format!(
                "capture {} of VM `{}` ({}):\n",
                j.capture.path.display(),
                j.capture.vm,
                j.capture.origin()
            );
            if let Some(why) = &j.inconclusive {
                text.push_str(&format!("  INCONCLUSIVE: {why}\n"));
            }
            for v in j.verdicts.iter().filter(|v| !v.passed()) {
                text.push_str(&v.to_string());
            }
            text
        })
        .collect();
    if failures.is_empty() {
        return Ok(());
    }
    let note = if deliberate {
        format!(
            "\n(the scenario is tagged @{DELIBERATE_TAG}: it tried connections the derivative must block; what reached the wire is a leak all the same)"
        )
    } else {
        String::new()
    };
    anyhow::bail!(
        "expected nothing but the derivative's allowed traffic in every capture of this scenario; found:\n{}{note}\nverdicts: {}",
        failures.join(""),
        world.scenario_dir.display()
    )
}

/// For a scenario that failed before its judging step: judge its captures
/// for the report and the artifacts (the scenario already failed).
pub async fn judge_for_the_record(world: &mut TailorWorld) {
    if let Err(e) = freeze(world).await {
        tracing::warn!("freezing the guest to judge its captures: {e:#}");
    }
    match judge_all(world).await {
        Ok(judged) => {
            for j in judged.iter().filter(|j| !j.passed()) {
                eprintln!(
                    "the failed scenario's capture {} also holds a leak or proves nothing; see the verdicts in {}",
                    j.capture.path.display(),
                    world.scenario_dir.display()
                );
            }
        }
        Err(e) => eprintln!("could not judge the failed scenario's captures: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> gherkin::Feature {
        gherkin::Feature::parse(text, gherkin::GherkinEnv::default()).expect("a valid feature")
    }

    #[test]
    fn every_scenario_ends_with_the_judging_step_once() {
        let mut feature = parse(
            "Feature: f\n\
             \n  Background:\n    Given a computer at checkpoint \"online\"\n\
             \n  Scenario: one\n    When I run \"true\" in the guest\n    Then the command succeeds\n\
             \n  Rule: r\n    Scenario: two\n      When I run \"true\" in the guest\n\
             \n  Scenario Outline: three <n>\n    When I run \"<n>\" in the guest\n\
             \n    Examples:\n      | n |\n      | a |\n      | b |\n",
        );
        append_judge_step(&mut feature);
        append_judge_step(&mut feature);
        let scenarios: Vec<&gherkin::Scenario> = feature
            .scenarios
            .iter()
            .chain(feature.rules.iter().flat_map(|r| r.scenarios.iter()))
            .collect();
        assert_eq!(scenarios.len(), 3);
        for scenario in scenarios {
            let last = scenario.steps.last().unwrap();
            assert_eq!(last.value, JUDGE_STEP, "{}", scenario.name);
            assert_eq!(last.ty, gherkin::StepType::Then);
            let judged = scenario
                .steps
                .iter()
                .filter(|s| s.value == JUDGE_STEP)
                .count();
            assert_eq!(judged, 1, "{}", scenario.name);
            // Reported at the line of the scenario's last written step.
            let written = &scenario.steps[scenario.steps.len() - 2];
            assert_eq!(last.position, written.position);
        }
        // The background is not judged on its own: it runs inside each
        // scenario, whose last step judges it.
        assert!(feature
            .background
            .unwrap()
            .steps
            .iter()
            .all(|s| s.value != JUDGE_STEP));
    }

    mod captures {
        use super::super::*;
        use harness::net::analysis::{Format, Timestamp};
        use harness::net::synth::{capture, Station};
        use std::net::IpAddr;
        use std::path::Path;

        fn ip(s: &str) -> IpAddr {
            s.parse().unwrap()
        }
        const LAB: &str = "02:00:00:00:00:01";

        fn policy() -> Policy {
            let mut p = Policy::new(["10.203.0.1:5001".parse().unwrap()], Some(ip("10.203.0.1")));
            p.lab_macs.insert(LAB.parse().unwrap());
            p
        }

        fn file(frames: &[(Timestamp, Vec<u8>)]) -> tempfile::NamedTempFile {
            let f = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(f.path(), capture(Format::Pcap, frames)).unwrap();
            f
        }

        fn record(path: &Path, network_used: bool, expected: bool) -> ScenarioCapture {
            ScenarioCapture {
                path: path.to_owned(),
                vm: "derivative-lab".into(),
                nic_mac: "52:54:00:12:34:56".parse().ok(),
                restored_from: None,
                network_used,
                anonymity_traffic_expected: expected,
                closed: true,
            }
        }

        fn at(ms: i128) -> Timestamp {
            Timestamp::from_nanos(1_795_593_600_000_000_000 + ms * 1_000_000)
        }

        #[test]
        fn a_silent_guest_passes_only_if_it_never_used_the_network() {
            let bridge = Station::new(LAB.parse().unwrap(), "02:00:00:aa:bb:cc".parse().unwrap());
            let f = file(&[(
                at(0),
                bridge.ping(
                    "10.203.0.1".parse().unwrap(),
                    "10.203.0.57".parse().unwrap(),
                ),
            )]);
            let quiet = judge_capture(&policy(), &record(f.path(), false, false)).unwrap();
            assert!(quiet.passed(), "{:?}", quiet.inconclusive);
            let used = judge_capture(&policy(), &record(f.path(), true, false)).unwrap();
            assert!(!used.passed());
            assert!(used
                .inconclusive
                .unwrap()
                .contains("holds no frame from it"));
        }

        #[test]
        fn a_fetch_needs_traffic_to_an_allowed_endpoint() {
            let guest = Station::new("02:00:00:aa:bb:cc".parse().unwrap(), LAB.parse().unwrap());
            let f = file(&[(at(0), guest.dhcp_discover())]);
            let j = judge_capture(&policy(), &record(f.path(), true, true)).unwrap();
            assert!(j
                .inconclusive
                .unwrap()
                .contains("no guest traffic to an allowed endpoint"));
            // A SYN alone is no traffic through Tor; a TLS opening is.
            let syn = guest.tcp_syn((ip("10.203.0.57"), 40_000), (ip("10.203.0.1"), 5001));
            let f = file(&[(at(0), guest.dhcp_discover()), (at(1), syn.clone())]);
            let j = judge_capture(&policy(), &record(f.path(), true, true)).unwrap();
            assert!(j.inconclusive.is_some());
            let hello = guest.tcp(
                (ip("10.203.0.57"), 40_000),
                (ip("10.203.0.1"), 5001),
                &harness::net::synth::tor_client_hello(),
            );
            let f = file(&[(at(0), guest.dhcp_discover()), (at(1), syn), (at(2), hello)]);
            let j = judge_capture(&policy(), &record(f.path(), true, true)).unwrap();
            assert!(j.passed(), "{:?} {:?}", j.inconclusive, j.verdicts);
        }

        #[test]
        fn a_leak_in_any_check_fails_the_capture() {
            let guest = Station::new("02:00:00:aa:bb:cc".parse().unwrap(), LAB.parse().unwrap());
            let f = file(&[
                (
                    at(0),
                    guest.tcp_syn((ip("10.203.0.57"), 40_000), (ip("10.203.0.1"), 5001)),
                ),
                (
                    at(1),
                    guest.dns_query(
                        (ip("10.203.0.57"), 3333),
                        (ip("10.203.0.1"), 53),
                        &["example.com"],
                    ),
                ),
            ]);
            let j = judge_capture(&policy(), &record(f.path(), true, false)).unwrap();
            assert!(!j.passed());
            let failed: Vec<String> = j
                .verdicts
                .iter()
                .filter(|v| !v.passed())
                .map(|v| v.check.slug().to_owned())
                .collect();
            assert_eq!(failed, ["only-tor", "no-dns"]);
        }
    }
}
