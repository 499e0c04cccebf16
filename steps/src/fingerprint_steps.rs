//! `Then the guest looks like the reference derivative on the network`:
//! what an observer on the LAN saw of the guest (its fingerprint,
//! `harness::net::fingerprint`), against the baseline recorded for the
//! derivative's kind.
//!
//! What is fingerprinted: the running VM's whole story from power-on. A VM
//! booted in the scenario has it in its own capture. A VM restored from a
//! checkpoint has it in the captures kept as each checkpoint of its chain
//! was saved ([`crate::checkpoints::kept_capture`]: the parent's first),
//! then its own; they are read in order as one capture ([`story`]).
//!
//! Which baseline: `fingerprints/KIND.toml` (`--fingerprints DIR`), one per
//! kind of derivative: a derivative is held to its base system of the same
//! kind (Tor straight to the relays, Tor through bridges, a VPN), since
//! those differ on the wire by design. A missing baseline fails, with the
//! command that records one.
//!
//! What it leaves in the scenario's folder: `fingerprint.toml` (the
//! story's fingerprint, in the baseline's format) and
//! `fingerprint-comparison.txt` (every difference, inconclusive part and
//! note). It fails on any difference, and when the comparison is
//! inconclusive (the story lacks something the baseline has, e.g. no
//! DHCP). On a failure the same captures are also judged by the kind's
//! policy: a difference that is a leak as well (DNS in the clear, mDNS to
//! the LAN) is then named by its flows, as every traffic check names it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cucumber::then;
use harness::net::analysis::{self, MacAddr};
use harness::net::fingerprint::{self, Fingerprint, Observer, Outcome};
use harness::net::policy::{self, Policy};

use crate::checkpoints::KeptCapture;
use crate::TailorWorld;

/// The step's text, for tests that look for its failures.
pub const STEP: &str = "the guest looks like the reference derivative on the network";

/// One capture of a VM's story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoryPart {
    pub path: PathBuf,
    /// Where it starts: `None` at power-on, else at the restore of that
    /// checkpoint.
    pub from: Option<String>,
    /// QEMU closed it; a kept copy or a capture still being written may
    /// end inside a record.
    pub closed: bool,
}

impl StoryPart {
    fn describe(&self) -> String {
        match &self.from {
            Some(name) => format!(
                "{} (from the restore of checkpoint `{name}`)",
                self.path.display()
            ),
            None => format!("{} (from power-on)", self.path.display()),
        }
    }
}

/// The captures that tell the story of the VM whose capture is `own`, from
/// power-on, in order: the kept capture of each checkpoint it descends from
/// (as `kept` finds them), then its own.
pub fn story(
    own: &crate::judging::ScenarioCapture,
    kept: impl Fn(&str) -> Option<KeptCapture>,
) -> anyhow::Result<Vec<StoryPart>> {
    let mut parts = vec![StoryPart {
        path: own.path.clone(),
        from: own.restored_from.clone(),
        closed: own.closed,
    }];
    let mut seen = BTreeSet::new();
    let mut next = own.restored_from.clone();
    while let Some(name) = next {
        if !seen.insert(name.clone()) {
            anyhow::bail!("the checkpoints' kept captures go round in a loop at `{name}`");
        }
        let k = kept(&name).ok_or_else(|| {
            anyhow::anyhow!(
                "the VM was restored from checkpoint `{name}`, but this run kept no capture of how `{name}` was reached (see the warnings above), so the story from power-on of {} cannot be told",
                own.path.display()
            )
        })?;
        parts.push(StoryPart {
            path: k.path,
            from: k.from.clone(),
            closed: false,
        });
        next = k.from;
    }
    parts.reverse();
    Ok(parts)
}

/// The baseline a derivative of `kind` is held to.
pub fn baseline_path(fingerprints: &Path, kind: harness::derivative::Kind) -> PathBuf {
    fingerprints.join(format!("{kind}.toml"))
}

/// The command that fingerprints `parts` as `tailor fingerprint` does here.
fn command(parts: &[StoryPart], observer: &Observer) -> String {
    let mut words = vec!["tailor fingerprint".to_owned()];
    words.extend(parts.iter().map(|p| p.path.display().to_string()));
    if let Some(mac) = observer.nic_mac {
        words.push(format!("--nic-mac {mac}"));
    }
    for mac in &observer.lab_macs {
        if *mac != harness::net::lab::BRIDGE_MAC {
            words.push(format!("--lab-mac {mac}"));
        }
    }
    words.join(" ")
}

/// The story's captures, each analysed (a kept copy or a growing capture
/// is read up to its last whole record).
fn analyse(
    parts: &[StoryPart],
    nic_mac: Option<MacAddr>,
) -> anyhow::Result<Vec<analysis::Analysis>> {
    parts
        .iter()
        .map(|p| {
            let options = analysis::Options {
                live: !p.closed,
                watch_macs: nic_mac.into_iter().collect(),
            };
            analysis::analyse_path_with(&p.path, &options).map_err(anyhow::Error::from)
        })
        .collect()
}

/// An observer who knows the lab's side of the link as the kind's policy
/// does (its listed MACs and any that sent from a lab address) and the
/// NIC's configured MAC.
fn observer(
    policy: &Policy,
    analyses: &[analysis::Analysis],
    nic_mac: Option<MacAddr>,
) -> Observer {
    let mut observer = Observer::lab(nic_mac);
    observer.lab_macs.extend(policy.lab_macs.iter().copied());
    for a in analyses {
        observer.lab_macs.extend(policy.lab_mac_set(a));
    }
    observer
}

/// Every check of the kind's policy (one per part) that fails on a
/// capture of the story, as text (empty when the story leaks nothing).
fn leaks(
    policies: &[Policy],
    parts: &[StoryPart],
    analyses: &[analysis::Analysis],
    nic_mac: Option<MacAddr>,
) -> String {
    let mut text = String::new();
    for ((part, a), policy) in parts.iter().zip(analyses).zip(policies) {
        // Offences only: a part without the guest's frames (power-on to
        // the greeter) is "inconclusive" to the checks, and that is no leak.
        let failed: Vec<String> = policy
            .all(a, nic_mac)
            .iter()
            .filter(|v| v.outcome() == policy::Outcome::Fail)
            .map(|v| v.to_string())
            .collect();
        if !failed.is_empty() {
            text.push_str(&format!("in {}:\n{}", part.describe(), failed.concat()));
        }
    }
    text
}

#[then("the guest looks like the reference derivative on the network")]
async fn looks_like_the_reference(world: &mut TailorWorld) -> anyhow::Result<()> {
    let own = world.captures.last().cloned().ok_or_else(|| {
        anyhow::anyhow!(
            "nothing to fingerprint: no computer of this scenario is on the lab network"
        )
    })?;
    let parts = story(&own, crate::checkpoints::kept_capture)?;
    let policy = crate::lab_steps::policy(world).await?;
    // Each part by its own policy (a bridges guest's relays are allowed
    // only in the capture where a person connected directly).
    let mut policies = Vec::new();
    for part in &parts {
        policies.push(crate::lab_steps::policy_for_capture(world, Some(&part.path)).await?);
    }
    let analyses = analyse(&parts, own.nic_mac)?;
    let observer = observer(&policy, &analyses, own.nic_mac);
    let paths: Vec<&Path> = parts.iter().map(|p| p.path.as_path()).collect();
    let seen = fingerprint::fingerprint_story(&paths, &observer)?;

    let kind = world.settings.kind;
    let dir = world.scenario_dir.clone();
    std::fs::create_dir_all(&dir)?;
    let mine = dir.join("fingerprint.toml");
    let listed: Vec<String> = parts
        .iter()
        .map(|p| format!("#   {}", p.describe()))
        .collect();
    let header = format!(
        "# What an observer on the LAN saw of the guest of a {kind} derivative in this\n# scenario, from power-on (fields: README, \"Fingerprint\"), in these captures:\n{}\n# The same, by hand: {}\n",
        listed.join("\n"),
        command(&parts, &observer)
    );
    std::fs::write(&mine, format!("{header}{}", seen.to_toml()))?;

    let baseline_file = baseline_path(&world.settings.fingerprints, kind);
    if !baseline_file.is_file() {
        anyhow::bail!(
            "expected a baseline for {kind} derivatives at {}, found none: there is nothing to hold this guest to.\n\
             This scenario's fingerprint is in {}. To record the baseline, run a scenario that covers power-on, Start, DHCP, going online and a fetch (features/boot.feature) on the base system of that kind, not on a customization; check that several boots give the same fingerprint; then:\n  {} > {}",
            baseline_file.display(),
            mine.display(),
            command(&parts, &observer),
            baseline_file.display()
        );
    }
    let baseline = Fingerprint::read(&baseline_file)?;
    let mut comparison = fingerprint::compare(&baseline, &seen);
    comparison.baseline = baseline_file.display().to_string();
    comparison.capture = parts
        .iter()
        .map(|p| p.path.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ");
    let compared = dir.join("fingerprint-comparison.txt");
    std::fs::write(&compared, comparison.to_string())?;
    if comparison.outcome() == Outcome::Same {
        return Ok(());
    }
    let leaked = leaks(&policies, &parts, &analyses, own.nic_mac);
    let leaked = if leaked.is_empty() {
        String::new()
    } else {
        format!(
            "\nThe same captures also break the {kind} policy (the scenario's judgement would fail too):\n{leaked}"
        )
    };
    anyhow::bail!(
        "expected the guest to look like a {kind} derivative's base system to an observer on the LAN, as recorded in {}; {}{comparison}{leaked}\nfingerprint: {}\ncomparison: {}",
        baseline_file.display(),
        match comparison.outcome() {
            Outcome::Differs => "it can be told apart:\n",
            _ => "the story does not cover what the baseline has, so it cannot be compared:\n",
        },
        mine.display(),
        compared.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judging::ScenarioCapture;
    use std::collections::BTreeMap;

    fn own(restored_from: Option<&str>) -> ScenarioCapture {
        ScenarioCapture {
            path: "run/scenario/capture.pcap".into(),
            vm: "derivative-lab".into(),
            nic_mac: None,
            restored_from: restored_from.map(str::to_owned),
            network_used: true,
            anonymity_traffic_expected: false,
            closed: true,
        }
    }

    fn kept(entries: &[(&str, Option<&str>)]) -> BTreeMap<String, KeptCapture> {
        entries
            .iter()
            .map(|(name, from)| {
                (
                    name.to_string(),
                    KeptCapture {
                        path: format!("run/checkpoints/{name}/capture.pcap").into(),
                        from: from.map(str::to_owned),
                    },
                )
            })
            .collect()
    }

    fn paths(parts: &[StoryPart]) -> Vec<String> {
        parts.iter().map(|p| p.path.display().to_string()).collect()
    }

    #[test]
    fn a_booted_vm_is_its_own_story() {
        let parts = story(&own(None), |_| None).unwrap();
        assert_eq!(paths(&parts), ["run/scenario/capture.pcap"]);
        assert!(parts[0].closed);
    }

    #[test]
    fn a_restored_vm_is_told_from_its_first_checkpoint_on() {
        let map = kept(&[("lab-greeter", None), ("tor-ready", Some("lab-greeter"))]);
        let parts = story(&own(Some("tor-ready")), |n| map.get(n).cloned()).unwrap();
        assert_eq!(
            paths(&parts),
            [
                "run/checkpoints/lab-greeter/capture.pcap",
                "run/checkpoints/tor-ready/capture.pcap",
                "run/scenario/capture.pcap"
            ]
        );
        // The copies were taken from a capture still being written.
        assert!(!parts[0].closed && !parts[1].closed && parts[2].closed);
        assert!(parts[1]
            .describe()
            .contains("restore of checkpoint `lab-greeter`"));
    }

    /// A checkpoint reached in the same VM as its parent kept everything
    /// from power-on: the parent's capture must not be read twice.
    #[test]
    fn a_checkpoint_reached_from_power_on_starts_the_story() {
        let map = kept(&[("lab-greeter", None), ("tor-ready", None)]);
        let parts = story(&own(Some("tor-ready")), |n| map.get(n).cloned()).unwrap();
        assert_eq!(
            paths(&parts),
            [
                "run/checkpoints/tor-ready/capture.pcap",
                "run/scenario/capture.pcap"
            ]
        );
    }

    #[test]
    fn a_missing_or_looping_chain_is_an_error() {
        let e = story(&own(Some("tor-ready")), |_| None).unwrap_err();
        assert!(e.to_string().contains("kept no capture"), "{e}");
        let map = kept(&[("a", Some("b")), ("b", Some("a"))]);
        let e = story(&own(Some("a")), |n| map.get(n).cloned()).unwrap_err();
        assert!(e.to_string().contains("loop"), "{e}");
    }

    #[test]
    fn each_kind_has_its_own_baseline() {
        use harness::derivative::Kind;
        let dir = Path::new("fingerprints");
        assert_eq!(baseline_path(dir, Kind::Tor), dir.join("tor.toml"));
        assert_eq!(baseline_path(dir, Kind::Bridges), dir.join("bridges.toml"));
        assert_eq!(baseline_path(dir, Kind::Vpn), dir.join("vpn.toml"));
    }

    /// The repository's baselines parse and carry this format.
    #[test]
    fn the_recorded_baselines_are_readable() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fingerprints");
        let tor = baseline_path(&dir, harness::derivative::Kind::Tor);
        Fingerprint::read(&tor).unwrap_or_else(|e| panic!("{}: {e}", tor.display()));
    }
}
