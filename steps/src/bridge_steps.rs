//! Derivatives that reach Tor through bridges, on the lab.
//!
//! The lab's bridges ([`harness::tor::Bridges`]: one vanilla, two obfs4)
//! exist only while a run lasts, so the harness puts their lines into the
//! guest before Start, the way it points the guest's tor at the lab's
//! authorities:
//! - the derivative's default bridges (the file written when the ISO was
//!   built, [`harness::derivative::GUEST_DEFAULT_BRIDGES`]) are replaced
//!   line by line with lab bridges of the same transport, so the
//!   transports the derivative ships are the ones exercised;
//! - a scenario may configure a bridge
//!   ([`harness::derivative::GUEST_CONFIGURED_BRIDGES`]), as a derivative
//!   that always uses its own bridges does.
//!
//! [`BridgeState`] keeps, per scenario, which lab bridges the guest was
//! given and whether the person connected directly first; it decides the
//! policy a bridges derivative's captures are judged by: exactly the
//! endpoints of the bridges in use (a bridge's ORPort for a vanilla one,
//! its transport's port for obfs4) and, when the person chose to connect
//! directly, the consensus relays until the moment they chose the default
//! bridges instead, never after. A flow to a relay is otherwise a leak.
//!
//! The censored lab ([`harness::net::lab::Censor`]) drops the guest's
//! direct connections to every consensus relay, leaving the bridges
//! reachable; it lasts until a VM of another scenario plugs into the lab.

use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use cucumber::{given, then, when};
use harness::derivative::{markers, GUEST_CONFIGURED_BRIDGES, GUEST_DEFAULT_BRIDGES};
use harness::net::policy::{Endpoint, Policy, Window};
use harness::tor::BridgeLine;

use crate::lab_steps;
use crate::TailorWorld;

/// What a person answers when the greeter asks how to connect to Tor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Directly,
    DefaultBridges,
}

/// The person connected to Tor directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Direct {
    /// The capture of the VM they did it in: its clock is the one the
    /// window is on, and no other capture may reach the relays.
    pub capture: PathBuf,
    /// When the relays were the guest's business, on that capture's own
    /// clock: after its last frame before the choice, until its last frame
    /// once the direct tor was gone (open while they have not switched).
    /// (QEMU stamps frames with the time the capture began plus the VM's
    /// virtual clock, which stops while a checkpoint is saved: the host's
    /// clock is not the capture's.)
    pub window: Window,
}

/// A scenario's bridges; see the module docs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BridgeState {
    /// Lab lines written in place of the derivative's default bridges.
    pub default: Option<Vec<BridgeLine>>,
    /// Lab lines written as the derivative's configured bridges.
    pub configured: Option<Vec<BridgeLine>>,
    pub direct: Option<Direct>,
}

/// Where and how a client reaches a bridge: a vanilla bridge's ORPort is
/// Tor (TCP that opens with TLS); a transport's port carries whatever the
/// transport sends (obfs4's bytes look random), so any TCP.
fn endpoint(line: &BridgeLine) -> Endpoint {
    if line.is_vanilla() {
        Endpoint::tor(line.addr)
    } else {
        Endpoint::tcp(line.addr)
    }
}

impl BridgeState {
    /// The bridges the guest uses: the configured ones, else the default.
    pub fn in_use(&self) -> &[BridgeLine] {
        match (&self.configured, &self.default) {
            (Some(c), _) if !c.is_empty() => c,
            (_, Some(d)) => d,
            _ => &[],
        }
    }

    /// The policy for `capture` (a capture of this scenario; `None` for
    /// none in particular): `bridges`' endpoints and, in the capture where
    /// the person connected directly, the `relays` during that window.
    /// `lab` makes a lab policy from allowed endpoints.
    pub fn policy_for(
        &self,
        bridges: &[BridgeLine],
        relays: &[SocketAddrV4],
        capture: Option<&Path>,
        lab: impl Fn(Vec<Endpoint>) -> Policy,
    ) -> Policy {
        let mut policy = lab(bridges.iter().map(endpoint).collect());
        if let Some(direct) = &self.direct {
            if capture == Some(direct.capture.as_path()) {
                policy.allowed_during.extend(
                    relays
                        .iter()
                        .map(|r| (Endpoint::tor(SocketAddr::V4(*r)), direct.window)),
                );
            }
        }
        policy
    }

    /// [`BridgeState::policy_for`] the bridges in use.
    pub fn policy(
        &self,
        relays: &[SocketAddrV4],
        capture: Option<&Path>,
        lab: impl Fn(Vec<Endpoint>) -> Policy,
    ) -> Policy {
        self.policy_for(self.in_use(), relays, capture, lab)
    }
}

/// The bridges given to the guests of saved checkpoints, by checkpoint: a
/// guest restored from one holds them (in its files, in its tor).
static AT_CHECKPOINT: std::sync::Mutex<Vec<(String, BridgeState)>> =
    std::sync::Mutex::new(Vec::new());

/// Remember what `world`'s guest was given when checkpoint `name` was saved.
pub fn checkpoint_saved(world: &TailorWorld, name: &str) {
    let mut saved = AT_CHECKPOINT.lock().unwrap_or_else(|e| e.into_inner());
    saved.retain(|(n, _)| n != name);
    saved.push((name.to_owned(), world.bridges.clone()));
}

/// A guest restored from checkpoint `name` has what it had when saved.
pub fn checkpoint_restored(world: &mut TailorWorld, name: &str) {
    let saved = AT_CHECKPOINT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, state)) = saved.iter().find(|(n, _)| n == name) {
        world.bridges = state.clone();
    }
}

/// Forget every checkpoint's bridges (the run's checkpoints are gone).
pub fn forget_checkpoints() {
    AT_CHECKPOINT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
}

/// Bridge lines of a list file: skip blank lines and comments.
fn parse_list(text: &str, origin: &str) -> anyhow::Result<Vec<BridgeLine>> {
    text.lines()
        .enumerate()
        .map(|(n, l)| (n, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(n, l)| {
            l.parse::<BridgeLine>()
                .map_err(|e| anyhow::anyhow!("{origin} line {}: {e}", n + 1))
        })
        .collect()
}

/// For each of the derivative's lines, a lab bridge with its transport
/// (the lab's bridges of a transport taken in turn); duplicates dropped.
pub fn lab_substitutes(
    derivative: &[BridgeLine],
    lab: &[(String, BridgeLine)],
) -> anyhow::Result<Vec<BridgeLine>> {
    let mut out: Vec<BridgeLine> = Vec::new();
    let mut taken: std::collections::HashMap<Option<String>, usize> = Default::default();
    for line in derivative {
        let candidates: Vec<&BridgeLine> = lab
            .iter()
            .map(|(_, l)| l)
            .filter(|l| l.transport == line.transport)
            .collect();
        if candidates.is_empty() {
            let have: Vec<&str> = lab.iter().map(|(_, l)| l.transport_name()).collect();
            anyhow::bail!(
                "the derivative's bridge `{line}` uses transport {}, and the lab has bridges for {} only",
                line.transport_name(),
                have.join(", ")
            );
        }
        let n = taken.entry(line.transport.clone()).or_default();
        let pick = candidates[*n % candidates.len()].clone();
        *n += 1;
        if !out.contains(&pick) {
            out.push(pick);
        }
    }
    Ok(out)
}

/// A file of the guest, or "" when it does not exist.
async fn guest_text(world: &mut TailorWorld, path: &str) -> anyhow::Result<String> {
    let command = format!(
        "cat {} 2>/dev/null; true",
        harness::guest::shell_quote(path)
    );
    let out = world
        .guest()?
        .exec(&command, harness::wait::scaled(Duration::from_secs(30)))
        .await?;
    Ok(out.stdout)
}

/// Whether Start will ask how to connect: default bridges, none configured.
pub async fn offers_default_bridges(world: &mut TailorWorld) -> anyhow::Result<bool> {
    let default = parse_list(
        &guest_text(world, GUEST_DEFAULT_BRIDGES).await?,
        GUEST_DEFAULT_BRIDGES,
    )?;
    let configured = parse_list(
        &guest_text(world, GUEST_CONFIGURED_BRIDGES).await?,
        GUEST_CONFIGURED_BRIDGES,
    )?;
    Ok(configured.is_empty() && !default.is_empty())
}

/// Replace the derivative's default bridges in the guest with lab
/// bridges of the same transports; remember them.
async fn write_default_bridges(world: &mut TailorWorld) -> anyhow::Result<()> {
    let text = guest_text(world, GUEST_DEFAULT_BRIDGES).await?;
    let theirs = parse_list(&text, GUEST_DEFAULT_BRIDGES)?;
    if theirs.is_empty() {
        return Ok(());
    }
    let ours = lab_substitutes(&theirs, &lab_steps::lab_bridges().await?)?;
    let mut file = String::from(
        "# The lab's bridges, written by Tailor before Start in place of the\n# derivative's default bridges (same transports):\n",
    );
    for l in &theirs {
        file.push_str(&format!("#   {l}\n"));
    }
    for l in &ours {
        file.push_str(&format!("{l}\n"));
    }
    world
        .guest()?
        .write_file(GUEST_DEFAULT_BRIDGES, file.as_bytes())
        .await?;
    world.bridges.default = Some(ours);
    Ok(())
}

/// Prepare a bridges derivative for the lab (its tor pointed at the lab's
/// authorities, its default bridges replaced), choose Start, and answer
/// the greeter's question if it asks.
pub async fn start_with_bridges(
    world: &mut TailorWorld,
    answer_with: Answer,
) -> anyhow::Result<()> {
    lab_steps::ensure_bridges().await?;
    lab_steps::prepare_lab_tor(world).await?;
    write_default_bridges(world).await?;
    let configured = world
        .bridges
        .configured
        .as_ref()
        .is_some_and(|c| !c.is_empty());
    if !configured && world.bridges.default.is_none() {
        anyhow::bail!(
            "a bridges derivative needs bridges, but the guest's {GUEST_DEFAULT_BRIDGES} and {GUEST_CONFIGURED_BRIDGES} hold none (is it built with a `[bridges]` customization?)"
        );
    }
    world.vm()?.press("Return").await?;
    world.network_used();
    if !configured {
        answer(world, answer_with).await?;
    }
    Ok(())
}

/// Answer the greeter's question (after Start): directly with the mouse,
/// the default bridges with the keyboard.
pub async fn answer(world: &mut TailorWorld, with: Answer) -> anyhow::Result<()> {
    world
        .vm()?
        .wait_serial(markers::ASKING_HOW_TO_CONNECT, Duration::from_secs(60))
        .await?;
    crate::vm_steps::wait_seen(world, "greeter-connection-choice", Duration::from_secs(30)).await?;
    let since = world.vm()?.serial_len();
    match with {
        Answer::Directly => {
            // The relays become the guest's business only after this.
            let capture = world.capture_to_judge()?;
            let after = capture.analyse()?.last;
            crate::vm_steps::click_reference(world, "greeter-connect-directly", 1).await?;
            world.bridges.direct = Some(Direct {
                capture: capture.path,
                window: Window { after, until: None },
            });
        }
        Answer::DefaultBridges => {
            let vm = world.vm()?;
            vm.press("Down").await?;
            vm.press("Return").await?;
        }
    }
    let mode = match with {
        Answer::Directly => "direct",
        Answer::DefaultBridges => "default",
    };
    world
        .vm()?
        .wait_serial_since(
            since,
            &format!("{}{mode}", markers::CONNECTING),
            Duration::from_secs(60),
        )
        .await?;
    Ok(())
}

/// Wait until the greeter says Tor is ready; on a timeout, say where the
/// guest's tor is stuck (its last bootstrap line and log), read through
/// the guest agent.
pub async fn wait_tor_ready(world: &mut TailorWorld, timeout: Duration) -> anyhow::Result<()> {
    let waited = world.vm()?.wait_serial(markers::TOR_READY, timeout).await;
    let Err(e) = waited else { return Ok(()) };
    let log = guest_text(world, "/var/log/tor/notices.log")
        .await
        .unwrap_or_default();
    let last = log
        .lines()
        .rev()
        .find(|l| l.contains("Bootstrapped "))
        .map(|l| l.split("] ").nth(1).unwrap_or(l).to_owned())
        .unwrap_or_else(|| "no bootstrap progress logged".into());
    let tail: Vec<&str> = log.lines().rev().take(8).collect();
    let how = match world.bridges.in_use() {
        [] => "directly".to_owned(),
        b => format!(
            "through {}",
            b.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    anyhow::bail!(
        "Tor did not become ready: the guest's tor, connecting {how}, is at \"{last}\"; the last lines of its log:\n{}\n({e})",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    )
}

#[given("the lab's bridges are running")]
async fn bridges_running(_world: &mut TailorWorld) -> anyhow::Result<()> {
    lab_steps::ensure_bridges().await
}

#[given("the lab blocks direct connections to Tor")]
async fn lab_blocks_tor(world: &mut TailorWorld) -> anyhow::Result<()> {
    lab_steps::ensure_bridges().await?;
    lab_steps::censor_relays(&world.scenario_dir).await
}

#[then("the lab blocked the guest's direct connections to Tor")]
async fn lab_blocked(_world: &mut TailorWorld) -> anyhow::Result<()> {
    let (blocked, ports) = lab_steps::censored().await?.ok_or_else(|| {
        anyhow::anyhow!(
            "the lab blocks nothing: add `Given the lab blocks direct connections to Tor`"
        )
    })?;
    if blocked == 0 {
        anyhow::bail!(
            "expected the guest to try the consensus relays' ports {ports:?} directly, and the lab to drop those packets; it dropped none"
        );
    }
    Ok(())
}

/// Which lab bridge a scenario names: `vanilla`, `obfs4`, or `obfs4 with
/// a wrong certificate` (the second obfs4 bridge with the first one's
/// certificate: the obfs4 handshake cannot succeed).
async fn lab_bridge_named(which: &str) -> anyhow::Result<BridgeLine> {
    let lab = lab_steps::lab_bridges().await?;
    let named = |nick: &str| {
        lab.iter()
            .find(|(n, _)| n == nick)
            .map(|(_, l)| l.clone())
            .ok_or_else(|| anyhow::anyhow!("the lab has no bridge {nick}"))
    };
    match which {
        "vanilla" => named("bridge0"),
        "obfs4" => named("obfs4bridge0"),
        "obfs4 with a wrong certificate" => {
            let cert = named("obfs4bridge0")?
                .arg("cert")
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("obfs4bridge0's line has no cert"))?;
            Ok(named("obfs4bridge1")?.with_arg("cert", &cert))
        }
        other => anyhow::bail!(
            "expected `vanilla`, `obfs4` or `obfs4 with a wrong certificate`, got `{other}`"
        ),
    }
}

#[given(expr = "the derivative is configured to use the lab's {string} bridge")]
async fn configured_bridge(world: &mut TailorWorld, which: String) -> anyhow::Result<()> {
    lab_steps::ensure_bridges().await?;
    let line = lab_bridge_named(&which).await?;
    let text =
        format!("# Configured by Tailor for this scenario: the lab's {which} bridge.\n{line}\n");
    let guest = world.guest()?;
    guest
        .wait_ready(harness::wait::scaled(Duration::from_secs(60)))
        .await?;
    guest
        .write_file(GUEST_CONFIGURED_BRIDGES, text.as_bytes())
        .await?;
    world.bridges.configured = Some(vec![line]);
    Ok(())
}

#[when("I choose Start on the lab and connect to Tor directly")]
async fn start_directly(world: &mut TailorWorld) -> anyhow::Result<()> {
    start_with_bridges(world, Answer::Directly).await
}

#[then(expr = "the greeter says Tor could not connect within {int} seconds")]
async fn greeter_says_failed(world: &mut TailorWorld, secs: u64) -> anyhow::Result<()> {
    world
        .vm()?
        .wait_serial(markers::TOR_FAILED, Duration::from_secs(secs))
        .await?;
    crate::vm_steps::wait_seen(world, "greeter-tor-failed", Duration::from_secs(30)).await?;
    if world.vm()?.serial_text().contains(markers::TOR_READY) {
        anyhow::bail!("the greeter said Tor could not connect, but Tor is ready");
    }
    Ok(())
}

#[when("I choose the default bridges")]
async fn choose_default_bridges(world: &mut TailorWorld) -> anyhow::Result<()> {
    let since = world.vm()?.serial_len();
    crate::vm_steps::click_reference(world, "greeter-use-default-bridges", 1).await?;
    let vm = world.vm()?;
    vm.wait_serial_since(
        since,
        &format!("{}default", markers::CONNECTING),
        Duration::from_secs(30),
    )
    .await?;
    // tor-connect says so once the direct tor is gone and the new one runs:
    // from here on, a relay is no longer the guest's business.
    vm.wait_serial_since(since, markers::TOR_STARTED, Duration::from_secs(60))
        .await?;
    // Every frame the direct tor sent is in the capture by now.
    let switched = world.analysed_capture()?.last;
    if let Some(direct) = world.bridges.direct.as_mut() {
        direct.window.until = switched;
    }
    world.bridges.configured = None;
    Ok(())
}

/// Judge the capture so far against exactly `bridges`, then check that
/// the web server saw only the exits.
async fn only_through(world: &mut TailorWorld, which: &str) -> anyhow::Result<()> {
    let bridges = match which {
        "configured" => world.bridges.configured.clone(),
        _ => world.bridges.default.clone(),
    }
    .filter(|b| !b.is_empty())
    .ok_or_else(|| {
        anyhow::anyhow!("no {which} bridges were given to the guest in this scenario")
    })?;
    let relays = lab_steps::relay_endpoints().await?;
    let capture = world.current_capture().map(|c| c.path.clone());
    let policy =
        world
            .bridges
            .policy_for(&bridges, &relays, capture.as_deref(), lab_steps::lab_policy);
    let list: Vec<String> = bridges
        .iter()
        .map(|b| format!("{} ({})", b.addr, b.transport_name()))
        .collect();
    // The whole verdict stays in the message: it names the leaking flows.
    lab_steps::judge_capture_with(world, &policy, Policy::only_tor).map_err(|e| {
        anyhow::anyhow!(
            "expected the guest's traffic to go to the {which} bridges only ({}):\n{e:#}",
            list.join(", ")
        )
    })?;
    lab_steps::web_saw_only_exits(world).await
}

#[then("all Internet traffic has only flowed through the configured bridges")]
async fn only_configured(world: &mut TailorWorld) -> anyhow::Result<()> {
    only_through(world, "configured").await
}

#[then("all Internet traffic has only flowed through the default bridges")]
async fn only_default(world: &mut TailorWorld) -> anyhow::Result<()> {
    only_through(world, "default").await
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::net::analysis::Timestamp;

    fn line(s: &str) -> BridgeLine {
        s.parse().unwrap()
    }

    fn lab() -> Vec<(String, BridgeLine)> {
        vec![
            ("bridge0".into(), line("10.203.0.1:6000 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
            ("obfs4bridge0".into(), line("obfs4 10.203.0.1:6101 BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB cert=b iat-mode=0")),
            ("obfs4bridge1".into(), line("obfs4 10.203.0.1:6102 CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC cert=c iat-mode=0")),
        ]
    }

    #[test]
    fn default_bridges_are_replaced_transport_for_transport() {
        let theirs = vec![
            line("obfs4 192.0.2.1:443 1111111111111111111111111111111111111111 cert=x iat-mode=0"),
            line("192.0.2.2:9001 2222222222222222222222222222222222222222"),
            line("obfs4 192.0.2.3:443 3333333333333333333333333333333333333333 cert=y iat-mode=0"),
            line("obfs4 192.0.2.4:443 4444444444444444444444444444444444444444 cert=z iat-mode=0"),
        ];
        let ours = lab_substitutes(&theirs, &lab()).unwrap();
        let ports: Vec<u16> = ours.iter().map(|l| l.addr.port()).collect();
        assert_eq!(
            ports,
            [6101, 6000, 6102],
            "the third obfs4 line reuses the first lab bridge"
        );
        let err = lab_substitutes(
            &[line(
                "meek_lite 192.0.2.9:443 5555555555555555555555555555555555555555 url=x",
            )],
            &lab(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("meek_lite"), "{err}");
    }

    #[test]
    fn the_policy_allows_the_bridges_in_use_and_relays_only_in_the_direct_window() {
        let lab_policy = |a: Vec<Endpoint>| Policy::with_endpoints(a, None);
        let relays = [
            "10.203.0.1:5000".parse().unwrap(),
            "10.203.0.1:5001".parse().unwrap(),
        ];
        let mut state = BridgeState {
            default: Some(vec![lab()[1].1.clone()]),
            ..Default::default()
        };
        let here = Path::new("/captures/1.pcap");
        let p = state.policy(&relays, Some(here), lab_policy);
        assert_eq!(p.allowed.len(), 1);
        assert!(
            p.allowed.contains(&"tcp:10.203.0.1:6101".parse().unwrap()),
            "an obfs4 bridge's port is any TCP: {p:?}"
        );
        state.configured = Some(vec![lab()[0].1.clone()]);
        let p = state.policy(&relays, Some(here), lab_policy);
        assert!(
            p.allowed.contains(&"10.203.0.1:6000".parse().unwrap()),
            "a vanilla bridge's ORPort is Tor: {p:?}"
        );
        assert!(!p.allowed.contains(&"tcp:10.203.0.1:6101".parse().unwrap()));
        state.configured = None;
        let at = |s: i128| Timestamp::from_nanos(s * 1_000_000_000);
        let window = Window {
            after: Some(at(1_800_000_000)),
            until: Some(at(1_800_000_100)),
        };
        state.direct = Some(Direct {
            capture: here.to_owned(),
            window,
        });
        let p = state.policy(&relays, Some(here), lab_policy);
        assert_eq!(p.allowed.len(), 1, "relays are never allowed outright");
        assert_eq!(p.allowed_during.len(), 2);
        assert!(p.allowed_during.values().all(|w| *w == window));
        let elsewhere = state.policy(&relays, Some(Path::new("/captures/2.pcap")), lab_policy);
        assert!(
            elsewhere.allowed_during.is_empty(),
            "another capture's clock is not the window's"
        );
        assert!(state
            .policy(&relays, None, lab_policy)
            .allowed_during
            .is_empty());
    }

    #[test]
    fn list_files_skip_comments_and_name_a_bad_line() {
        let text =
            "# header\n\n10.203.0.1:6000 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\nnot a bridge\n";
        let err = parse_list(text, "/x").unwrap_err().to_string();
        assert!(err.contains("/x line 4"), "{err}");
        assert_eq!(parse_list("# only\n", "/x").unwrap().len(), 0);
    }
}
