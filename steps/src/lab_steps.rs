//! The lab and its "Internet" for a run: one isolated network namespace
//! with dnsmasq, a private Tor network (with bridges, for a bridges
//! derivative: see [`crate::bridge_steps`]) and a web server, or for a VPN
//! derivative the VPN server and its Internet ([`crate::vpn_steps`]),
//! started on first use and shared by every scenario (a checkpoint restored
//! later finds the same relays it was connected to). Steps that check the
//! guest's traffic read the scenario's capture.

use std::net::SocketAddrV4;
use std::time::Duration;

use cucumber::{given, then, when};
use harness::derivative::Kind;
use harness::net::analysis::{self, MacAddr};
use harness::net::lab::{Lab, LabConfig, BRIDGE, BRIDGE_ADDR, INTERNET_ADDR, PREFIX_LEN};
use harness::net::policy::{Endpoint, Policy, Verdict};
use harness::tor::{BridgeLine, Bridges, BridgesSpec, Network, NetworkSpec, WebServer};
use harness::vm::LabAttachment;

use crate::TailorWorld;

/// The run's lab and what runs in it.
pub(crate) struct Internet {
    tor: Option<(Network, WebServer)>,
    /// The bridges next to the Tor network, for bridges derivatives.
    bridges: Option<Bridges>,
    /// The lab's censorship and the scenario (its artifact folder) that
    /// asked for it: it lasts until a VM of another scenario plugs in.
    censor: Option<(std::path::PathBuf, harness::net::lab::Censor)>,
    /// The VPN server and its Internet, for VPN derivatives.
    pub(crate) vpn: Option<harness::vpn::VpnLab>,
    pub(crate) lab: Lab,
    pub(crate) _dir: tempfile::TempDir,
}

pub(crate) static INTERNET: tokio::sync::Mutex<Option<Internet>> =
    tokio::sync::Mutex::const_new(None);

pub(crate) async fn ensure_lab(slot: &mut Option<Internet>) -> anyhow::Result<&mut Internet> {
    if slot.is_none() {
        let dir = harness::tor::run_dir()?;
        // A LAN that offers IPv6, as many do: the guest must not take it.
        let lab = Lab::start(LabConfig {
            ipv6_router_advertisements: true,
            ..Default::default()
        })
        .await?;
        // The web server's "Internet" address lives on the bridge too.
        lab.exec(&[
            "ip",
            "addr",
            "add",
            &format!("{INTERNET_ADDR}/{PREFIX_LEN}"),
            "dev",
            BRIDGE,
        ])?;
        *slot = Some(Internet {
            tor: None,
            vpn: None,
            bridges: None,
            censor: None,
            lab,
            _dir: dir,
        });
    }
    Ok(slot.as_mut().expect("just set"))
}

/// Where a VM of `scenario` (its artifact folder) plugs into the lab
/// (starting the lab if needed). Another scenario's censorship ends here.
pub async fn lab_attachment(scenario: &std::path::Path) -> anyhow::Result<LabAttachment> {
    let mut slot = INTERNET.lock().await;
    let internet = ensure_lab(&mut slot).await?;
    if internet.censor.as_ref().is_some_and(|(s, _)| s != scenario) {
        if let Some((_, mut censor)) = internet.censor.take() {
            censor.lift()?;
        }
    }
    // The last scenario's VM is gone; so must be its connections. Without
    // this Tor may only bootstrap slowly, so a failure is only a warning.
    if let Err(e) = internet.lab.close_guest_connections() {
        let e = anyhow::Error::new(e);
        tracing::warn!("closing the lab's connections to the last guest: {e:#}");
    }
    Ok(internet.lab.attachment())
}

/// Start the Tor network and web server in the lab (once per run).
pub async fn ensure_tor() -> anyhow::Result<()> {
    let mut slot = INTERNET.lock().await;
    let internet = ensure_lab(&mut slot).await?;
    if internet.tor.is_none() {
        // Entered the lab's way: the whole network also runs rootless.
        let namespace = internet.lab.namespace();
        let run = internet._dir.path().to_owned();
        let network =
            Network::start(NetworkSpec::new(&namespace, BRIDGE_ADDR, run.join("tor"))).await?;
        let web = WebServer::start(
            &namespace,
            SocketAddrV4::new(INTERNET_ADDR, 80),
            &run.join("web"),
        )
        .await?;
        internet.tor = Some((network, web));
    }
    Ok(())
}

/// Start the lab's bridges next to its Tor network (once per run).
pub async fn ensure_bridges() -> anyhow::Result<()> {
    ensure_tor().await?;
    let mut slot = INTERNET.lock().await;
    let internet = ensure_lab(&mut slot).await?;
    if internet.bridges.is_none() {
        let Some((network, _)) = internet.tor.as_ref() else {
            anyhow::bail!("the lab's Tor network stopped before its bridges could start");
        };
        // Entered the lab's way, as the relays: rootless too.
        let spec = BridgesSpec::new(
            internet.lab.namespace(),
            internet._dir.path().join("bridges"),
        );
        internet.bridges = Some(Bridges::start(network, spec).await?);
    }
    Ok(())
}

/// The lab's bridge lines, by nickname (`bridge0`, `obfs4bridge0`, ...);
/// the bridges must be running.
pub(crate) async fn lab_bridges() -> anyhow::Result<Vec<(String, BridgeLine)>> {
    let slot = INTERNET.lock().await;
    let bridges = slot
        .as_ref()
        .and_then(|i| i.bridges.as_ref())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the lab's bridges are not running: add `Given the lab's bridges are running`"
            )
        })?;
    Ok(bridges
        .all()
        .iter()
        .map(|b| (b.spec.nickname.clone(), b.line.clone()))
        .collect())
}

/// Every consensus relay's ORPort and DirPort: what a direct connection
/// to Tor uses.
pub(crate) async fn relay_endpoints() -> anyhow::Result<Vec<SocketAddrV4>> {
    let slot = INTERNET.lock().await;
    let (network, _) = slot.as_ref().and_then(|i| i.tor.as_ref()).ok_or_else(|| {
        anyhow::anyhow!("the Tor network is not running: add `Given the Tor network is running`")
    })?;
    let mut all = network.or_endpoints();
    all.extend(network.dir_endpoints());
    Ok(all)
}

/// Block the LAN's direct connections to every consensus relay, for
/// `scenario` (its artifact folder).
pub(crate) async fn censor_relays(scenario: &std::path::Path) -> anyhow::Result<()> {
    let endpoints = relay_endpoints().await?;
    let mut slot = INTERNET.lock().await;
    let internet = slot
        .as_mut()
        .ok_or_else(|| anyhow::anyhow!("the lab is not running"))?;
    // One censor at a time: a new one replaces the last.
    if let Some((_, mut old)) = internet.censor.take() {
        old.lift()?;
    }
    let ports: Vec<u16> = endpoints.iter().map(|e| e.port()).collect();
    let censor = internet.lab.censor(BRIDGE_ADDR, &ports)?;
    internet.censor = Some((scenario.to_owned(), censor));
    Ok(())
}

/// The packets the lab's censor has dropped, and the ports it blocks;
/// `None` when it blocks nothing.
pub(crate) async fn censored() -> anyhow::Result<Option<(u64, Vec<u16>)>> {
    let slot = INTERNET.lock().await;
    match slot.as_ref().and_then(|i| i.censor.as_ref()) {
        Some((_, censor)) => Ok(Some((censor.blocked_packets()?, censor.ports().to_vec()))),
        None => Ok(None),
    }
}

/// The torrc lines that point a client at the lab's Tor network.
async fn client_torrc() -> anyhow::Result<String> {
    let slot = INTERNET.lock().await;
    let (network, _) = slot.as_ref().and_then(|i| i.tor.as_ref()).ok_or_else(|| {
        anyhow::anyhow!("the Tor network is not running: add `Given the Tor network is running`")
    })?;
    Ok(network.client_torrc())
}

/// Stop everything in the lab and the lab itself (end of a run).
pub async fn teardown() {
    if let Some(mut internet) = INTERNET.lock().await.take() {
        if let Some(mut vpn) = internet.vpn.take() {
            vpn.stop();
        }
        if let Some((_, mut censor)) = internet.censor.take() {
            if let Err(e) = censor.lift() {
                eprintln!("lifting the lab's censorship: {e}");
            }
        }
        if let Some(mut bridges) = internet.bridges.take() {
            if let Err(e) = bridges.stop() {
                eprintln!("stopping the lab's bridges: {e}");
            }
        }
        if let Some((mut network, mut web)) = internet.tor.take() {
            web.stop();
            if let Err(e) = network.stop() {
                eprintln!("stopping the lab's Tor network: {e}");
            }
        }
        if let Err(e) = internet.lab.stop() {
            eprintln!("stopping the lab: {e}");
        }
    }
}

/// The DNS queries the lab's resolver has logged this run.
pub(crate) async fn resolver_queries() -> Vec<harness::net::lab::DnsQuery> {
    INTERNET
        .lock()
        .await
        .as_ref()
        .map(|i| i.lab.dns_queries())
        .unwrap_or_default()
}

/// The requests the lab's web server for the run's kind (behind the Tor
/// network, or behind the VPN) has logged so far (none without one).
pub(crate) async fn web_requests() -> anyhow::Result<Vec<harness::tor::web::Request>> {
    let slot = INTERNET.lock().await;
    let web = match crate::world::settings().kind {
        Kind::Vpn => slot.as_ref().and_then(|i| i.vpn.as_ref()).map(|v| v.web()),
        _ => slot
            .as_ref()
            .and_then(|i| i.tor.as_ref())
            .map(|(_, web)| web),
    };
    match web {
        Some(web) => Ok(web.requests()?),
        None => Ok(Vec::new()),
    }
}

impl TailorWorld {
    /// The capture a traffic step reads: the running VM's, else the last
    /// VM's of this scenario.
    pub(crate) fn capture_to_judge(&self) -> anyhow::Result<crate::judging::ScenarioCapture> {
        self.captures.last().cloned().ok_or_else(|| {
            anyhow::anyhow!(
                "no traffic was captured: no computer of this scenario is on the lab network"
            )
        })
    }

    /// The capture so far, analysed (the file may still be growing), with
    /// the NIC's MAC looked for in every frame.
    pub fn analysed_capture(&self) -> anyhow::Result<analysis::Analysis> {
        self.capture_to_judge()?.analyse()
    }
}

/// The policy the scenario's latest capture is judged by; see
/// [`policy_for_capture`].
pub(crate) async fn policy(world: &TailorWorld) -> anyhow::Result<Policy> {
    let latest = world.captures.last().map(|c| c.path.clone());
    policy_for_capture(world, latest.as_deref()).await
}

/// The policy `world`'s capture `capture` is judged by: the consensus
/// relays for a Tor derivative; for a bridges derivative the bridges its
/// guest was given in this scenario, and the relays only in the capture
/// and the stretch of it where a person connected directly (see
/// [`crate::bridge_steps::BridgeState`]).
pub(crate) async fn policy_for_capture(
    world: &TailorWorld,
    capture: Option<&std::path::Path>,
) -> anyhow::Result<Policy> {
    match world.settings.kind {
        Kind::Tor => Ok(lab_policy(
            relay_or_endpoints()
                .await
                .into_iter()
                .map(|r| Endpoint::tor(r.into())),
        )),
        Kind::Bridges => {
            let relays = relay_or_endpoints().await;
            Ok(world.bridges.policy(&relays, capture, lab_policy))
        }
        Kind::Vpn => crate::vpn_steps::policy().await,
    }
}

/// The consensus relays' ORPorts (none while the network is down).
async fn relay_or_endpoints() -> Vec<SocketAddrV4> {
    let slot = INTERNET.lock().await;
    slot.as_ref()
        .and_then(|i| i.tor.as_ref())
        .map(|(network, _)| network.or_endpoints())
        .unwrap_or_default()
}

/// A policy allowing `allowed` on the lab: its DHCP server, and its side
/// of the link.
pub(crate) fn lab_policy(allowed: impl IntoIterator<Item = Endpoint>) -> Policy {
    let mut policy = Policy::with_endpoints(allowed, Some(BRIDGE_ADDR.into()));
    // The lab's side of the link, even before it has sent any IPv4 (its
    // IPv6 housekeeping at the guest's power-on is the lab's, not a leak).
    policy.lab_macs.insert(harness::net::lab::BRIDGE_MAC);
    policy
}

/// Judge the capture so far with `check`: file the verdict for the
/// report, keep it beside the capture, and fail the step on a leak, or when
/// the capture holds no frame from the guest (nothing to judge by).
pub(crate) async fn judge_capture(
    world: &mut TailorWorld,
    check: impl FnOnce(&Policy, &analysis::Analysis) -> Verdict,
) -> anyhow::Result<()> {
    let policy = policy(world).await?;
    judge_capture_with(world, &policy, check)
}

/// [`judge_capture`] with a given policy.
pub(crate) fn judge_capture_with(
    world: &mut TailorWorld,
    policy: &Policy,
    check: impl FnOnce(&Policy, &analysis::Analysis) -> Verdict,
) -> anyhow::Result<()> {
    let capture = world.capture_to_judge()?;
    let analysis = capture.analyse()?;
    let verdict = check(policy, &analysis);
    crate::report::verdict(&verdict, &analysis, policy);
    save_verdict(world, &verdict, &capture.path);
    // Inconclusive (no frame from the guest) fails like a leak.
    if verdict.passed() {
        return Ok(());
    }
    anyhow::bail!("{verdict}\ncapture: {}", capture.path.display())
}

/// Keep a verdict beside the capture, as `verdict-<check>.txt`.
pub(crate) fn save_verdict(world: &TailorWorld, verdict: &Verdict, pcap: &std::path::Path) {
    let file = world
        .scenario_dir
        .join(format!("verdict-{}.txt", verdict.check.slug()));
    if let Err(e) = std::fs::write(&file, format!("{verdict}\ncapture: {}\n", pcap.display())) {
        eprintln!("cannot save the verdict to {}: {e}", file.display());
    }
}

/// Appended to every scenario by [`crate::judging::JudgingParser`].
#[then("every frame the guest sent in this scenario is judged")]
async fn judge_every_frame(world: &mut TailorWorld) -> anyhow::Result<()> {
    let deliberate = world.deliberate;
    crate::judging::judge_scenario(world, deliberate).await
}

#[given("the Tor network is running")]
async fn tor_network_running(_world: &mut TailorWorld) -> anyhow::Result<()> {
    ensure_tor().await
}

/// Start what the derivative's kind needs in the lab (once per run): the
/// private Tor network and its "Internet" for Tor; bridges as well for
/// bridges; a VPN server for a VPN.
pub async fn ensure_network() -> anyhow::Result<()> {
    match crate::world::settings().kind {
        Kind::Tor => ensure_tor().await,
        Kind::Vpn => crate::vpn_steps::ensure_vpn().await,
        Kind::Bridges => ensure_bridges().await,
    }
}

#[given("the lab's network is running")]
async fn lab_network_running(_world: &mut TailorWorld) -> anyhow::Result<()> {
    ensure_network().await
}

/// Tell the guest how to reach the lab's network (the kind's settings,
/// through its agent) and choose Start in the greeter.
pub async fn start_on_lab(world: &mut TailorWorld) -> anyhow::Result<()> {
    match world.settings.kind {
        Kind::Tor => start_with_lab_tor(world).await,
        Kind::Vpn => crate::vpn_steps::start_with_lab_vpn(world).await,
        Kind::Bridges => {
            crate::bridge_steps::start_with_bridges(
                world,
                crate::bridge_steps::Answer::DefaultBridges,
            )
            .await
        }
    }
}

/// Wait until the derivative says it is online: Tor bootstrapped, or the
/// VPN connected.
pub async fn wait_online(world: &mut TailorWorld, timeout: Duration) -> anyhow::Result<()> {
    match world.settings.kind {
        Kind::Tor | Kind::Bridges => crate::bridge_steps::wait_tor_ready(world, timeout).await,
        Kind::Vpn => crate::vpn_steps::wait_connected(world, timeout).await,
    }
}

/// Bring a guest restored from an online checkpoint back online: its
/// connections are stale (the lab closed its side) and its circuits old.
/// For Tor, restart the guest's tor and wait for it to bootstrap again.
pub async fn refresh_online(world: &mut TailorWorld) -> anyhow::Result<()> {
    match world.settings.kind {
        Kind::Tor | Kind::Bridges => {
            let guest = world.guest()?;
            let took = harness::derivative::online::restart_tor(
                &guest,
                harness::wait::scaled(Duration::from_secs(60)),
            )
            .await?;
            tracing::info!("the restored guest's tor bootstrapped again in {took:.2?}");
            Ok(())
        }
        Kind::Vpn => crate::vpn_steps::reconnect(world).await,
    }
}

#[when("I choose Start on the lab")]
async fn choose_start_on_lab(world: &mut TailorWorld) -> anyhow::Result<()> {
    ensure_network().await?;
    start_on_lab(world).await
}

#[then(expr = "the guest is online within {int} seconds")]
async fn guest_online(world: &mut TailorWorld, secs: u64) -> anyhow::Result<()> {
    wait_online(world, Duration::from_secs(secs)).await
}

/// Point the guest's tor at the lab network and choose Start in the
/// greeter (it has focus when the greeter appears); a derivative that
/// offers bridges then asks how to connect: directly.
pub async fn start_with_lab_tor(world: &mut TailorWorld) -> anyhow::Result<()> {
    prepare_lab_tor(world).await?;
    let asks = crate::bridge_steps::offers_default_bridges(world).await?;
    world.vm()?.press("Return").await?;
    world.network_used();
    if asks {
        crate::bridge_steps::answer(world, crate::bridge_steps::Answer::Directly).await?;
    }
    Ok(())
}

/// Write the lab's Tor network into the guest's torrc, before Start.
pub(crate) async fn prepare_lab_tor(world: &mut TailorWorld) -> anyhow::Result<()> {
    let torrc = client_torrc().await?;
    let guest = world.guest()?;
    guest
        .wait_ready(harness::wait::scaled(Duration::from_secs(60)))
        .await?;
    guest
        .write_file(harness::derivative::GUEST_LAB_TORRC, torrc.as_bytes())
        .await?;
    Ok(())
}

/// An observation window: what the guest does on its own within it ends up
/// in the capture (leaky timers, retries), not a wait for a state.
#[when(expr = "I capture the guest's traffic for {int} seconds")]
async fn capture_for(world: &mut TailorWorld, secs: u64) -> anyhow::Result<()> {
    if world.current_capture().is_none() {
        anyhow::bail!("no capture is running: the computer is not on the lab network");
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    Ok(())
}

#[then(expr = "Tor is ready within {int} seconds")]
async fn tor_ready(world: &mut TailorWorld, secs: u64) -> anyhow::Result<()> {
    crate::bridge_steps::wait_tor_ready(world, Duration::from_secs(secs)).await
}

/// Point the guest's tor at the lab's network and choose Start, as
/// checkpoint `tor-ready` does, within the scenario (so its capture holds
/// the guest's frames from before Start on).
#[when("I choose Start with the lab's Tor network")]
async fn choose_start(world: &mut TailorWorld) -> anyhow::Result<()> {
    ensure_tor().await?;
    start_with_lab_tor(world).await
}

#[then("the lab's resolver saw no query")]
async fn resolver_saw_nothing(world: &mut TailorWorld) -> anyhow::Result<()> {
    let queries = resolver_queries().await;
    let since = queries.get(world.resolver_mark..).unwrap_or_default();
    if !since.is_empty() {
        let list: Vec<String> = since
            .iter()
            .map(|q| format!("{} {} from {}", q.qtype, q.name, q.from))
            .collect();
        anyhow::bail!(
            "expected the lab's DNS resolver (dnsmasq at {BRIDGE_ADDR}) to see no query during the scenario; it saw {}: {}",
            since.len(),
            list.join("; ")
        );
    }
    Ok(())
}

#[when(expr = "I fetch {string} through Tor in the guest")]
async fn fetch_through_tor(world: &mut TailorWorld, url: String) -> anyhow::Result<()> {
    fetch_through_tor_as(world, url, "root".into()).await
}

#[when(expr = "I fetch {string} through Tor as {string} in the guest")]
async fn fetch_through_tor_as(
    world: &mut TailorWorld,
    url: String,
    user: String,
) -> anyhow::Result<()> {
    let command = format!(
        "curl --silent --show-error --max-time 60 --socks5-hostname 127.0.0.1:9050 {}",
        harness::guest::shell_quote(&url)
    );
    let result = world
        .guest()?
        .exec_as(
            &user,
            &command,
            harness::wait::scaled(Duration::from_secs(90)),
        )
        .await?;
    if result.success() {
        // Whatever the page was, it came through the network: the
        // capture must show the guest's traffic to the relays.
        world.anonymity_traffic_expected();
    }
    world.last_exec = Some(result);
    Ok(())
}

/// Fetch the lab's web page the way the derivative's users reach the
/// Internet: through Tor's SocksPort for Tor kinds, straight (into the
/// tunnel) for a VPN.
#[when("I fetch the lab's web page in the guest")]
async fn fetch_lab_page(world: &mut TailorWorld) -> anyhow::Result<()> {
    let url = format!("http://{INTERNET_ADDR}/");
    match world.settings.kind {
        Kind::Tor | Kind::Bridges => fetch_through_tor_as(world, url, "root".into()).await,
        Kind::Vpn => crate::vpn_steps::fetch_lab_page(world).await,
    }
}

#[then("the fetched page is the lab's web page")]
async fn fetched_lab_page(world: &mut TailorWorld) -> anyhow::Result<()> {
    let expected = {
        let slot = INTERNET.lock().await;
        let web = match world.settings.kind {
            Kind::Vpn => slot.as_ref().and_then(|i| i.vpn.as_ref()).map(|v| v.web()),
            _ => slot
                .as_ref()
                .and_then(|i| i.tor.as_ref())
                .map(|(_, web)| web),
        };
        web.map(|web| web.page().to_owned())
            .ok_or_else(|| anyhow::anyhow!("the lab's web server is not running"))?
    };
    let exec = world
        .last_exec
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("nothing was fetched yet"))?;
    exec.ensure_success()?;
    exec.ensure_output_contains(expected.trim())?;
    Ok(())
}

#[then("all Internet traffic has only flowed through Tor")]
async fn only_tor(world: &mut TailorWorld) -> anyhow::Result<()> {
    judge_capture(world, Policy::only_tor).await?;
    web_saw_only_exits(world).await
}

/// The web server must have seen the exits, never the guest itself, in
/// this scenario (the lab and its log may outlive a scenario).
pub(crate) async fn web_saw_only_exits(world: &TailorWorld) -> anyhow::Result<()> {
    let requests = web_requests().await?;
    let slot = INTERNET.lock().await;
    if let Some((network, _)) = slot.as_ref().and_then(|i| i.tor.as_ref()) {
        for request in requests.iter().skip(world.web_mark) {
            if *request.source.ip() != network.address() {
                anyhow::bail!(
                    "the lab web server got a request from {} (expected only the Tor exits at {}): {request:?}",
                    request.source,
                    network.address()
                );
            }
        }
    }
    Ok(())
}

#[then("no DNS left the guest outside Tor")]
async fn no_dns(world: &mut TailorWorld) -> anyhow::Result<()> {
    judge_capture(world, Policy::no_dns).await
}

#[then("no IPv6 left the guest")]
async fn no_ipv6(world: &mut TailorWorld) -> anyhow::Result<()> {
    judge_capture(world, Policy::no_ipv6).await
}

/// Wait for the lab's next router advertisement: dnsmasq sends them at
/// irregular gaps, so a fixed capture window alone may miss them.
#[when(expr = "the lab advertises IPv6 within {int} seconds")]
async fn lab_advertises_ipv6(_world: &mut TailorWorld, secs: u64) -> anyhow::Result<()> {
    let slot = INTERNET.lock().await;
    let Some(internet) = slot.as_ref() else {
        anyhow::bail!("the lab is not running: start a computer on the lab network first");
    };
    let seen = internet.lab.router_advertisements();
    internet
        .lab
        .wait_for_router_advertisement(seen, Duration::from_secs(secs))
        .await?;
    Ok(())
}

/// The lab's router advertisements reached the guest during the capture:
/// proof that the guest had IPv6 on offer and declined it.
#[then("the lab advertised IPv6 to the guest")]
async fn lab_advertised_ipv6(world: &mut TailorWorld) -> anyhow::Result<()> {
    const ROUTER_ADVERTISEMENT: u8 = 134;
    let analysis = world.analysed_capture()?;
    let seen = analysis.flows.iter().any(|f| {
        f.key.protocol
            == analysis::Protocol::Icmpv6 {
                kind: Some(ROUTER_ADVERTISEMENT),
            }
            && f.src_mac == Some(harness::net::lab::BRIDGE_MAC)
    });
    if !seen {
        anyhow::bail!(
            "expected router advertisements from the lab (ICMPv6 type 134 from {}) in the capture {}; it has {} flows",
            harness::net::lab::BRIDGE_MAC,
            analysis.source,
            analysis.flows.len()
        );
    }
    Ok(())
}

/// The running VM's capture starts at power-on and holds not one frame
/// from the guest: only the lab spoke (or nobody).
#[then("the guest has sent nothing since power-on")]
async fn sent_nothing(world: &mut TailorWorld) -> anyhow::Result<()> {
    let capture = world.capture_to_judge()?;
    if let Some(checkpoint) = &capture.restored_from {
        anyhow::bail!(
            "this VM was restored from checkpoint `{checkpoint}`, so its capture {} does not start at power-on; boot it with `Given the computer boots from \"NAME\"`",
            capture.path.display()
        );
    }
    let policy = policy(world).await?;
    let analysis = analysis::analyse_path(&capture.path)?;
    let lab = policy.lab_mac_set(&analysis);
    let sent: Vec<String> = analysis
        .flows
        .iter()
        .filter(|f| f.src_mac.is_none_or(|m| !lab.contains(&m)))
        .map(|f| {
            format!(
                "  {} from {} first {} (+{:.3}s), {} packets",
                f.key,
                f.src_mac
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "?".into()),
                f.first,
                analysis.offset(f.first),
                f.packets
            )
        })
        .collect();
    if !sent.is_empty() {
        anyhow::bail!(
            "expected nothing from the guest between power-on and now; it sent {} flows:\n{}\ncapture: {}",
            sent.len(),
            sent.join("\n"),
            capture.path.display()
        );
    }
    Ok(())
}

#[then("the guest's MAC address was spoofed")]
async fn mac_spoofed(world: &mut TailorWorld) -> anyhow::Result<()> {
    let nic: MacAddr = world.vm()?.config().mac_string().parse()?;
    judge_capture(world, |policy, analysis| policy.mac_spoofed(analysis, nic)).await
}
