//! The lab and its "Internet" for a run: one isolated network namespace
//! with dnsmasq, a private Tor network and a web server, started on first
//! use and shared by every scenario (a checkpoint restored later finds the
//! same relays it was connected to). Steps that check the guest's traffic
//! read the scenario's capture.

use std::net::SocketAddrV4;
use std::path::PathBuf;
use std::time::Duration;

use cucumber::{given, then, when};
use harness::derivative::markers;
use harness::net::analysis::{self, MacAddr};
use harness::net::capture::Capture;
use harness::net::lab::{Lab, LabConfig, BRIDGE, BRIDGE_ADDR, INTERNET_ADDR, PREFIX_LEN};
use harness::net::policy::{Policy, Verdict};
use harness::tor::{Network, NetworkSpec, WebServer};
use harness::vm::LabAttachment;

use crate::TailorWorld;

/// The run's lab and what runs in it.
struct Internet {
    tor: Option<(Network, WebServer)>,
    lab: Lab,
    _dir: tempfile::TempDir,
}

static INTERNET: tokio::sync::Mutex<Option<Internet>> = tokio::sync::Mutex::const_new(None);

async fn ensure_lab(slot: &mut Option<Internet>) -> anyhow::Result<&mut Internet> {
    if slot.is_none() {
        let dir = tempfile::Builder::new()
            .prefix("tailor-internet-")
            .tempdir()?;
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
            lab,
            _dir: dir,
        });
    }
    Ok(slot.as_mut().expect("just set"))
}

/// Where a VM on the lab plugs in (starting the lab if needed).
pub async fn lab_attachment() -> anyhow::Result<LabAttachment> {
    let mut slot = INTERNET.lock().await;
    let internet = ensure_lab(&mut slot).await?;
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
        let netns = internet.lab.netns_path().to_owned();
        let run = internet._dir.path().to_owned();
        let network =
            Network::start(NetworkSpec::new(&netns, BRIDGE_ADDR, run.join("tor"))).await?;
        let web = WebServer::start(
            &netns,
            SocketAddrV4::new(INTERNET_ADDR, 80),
            &run.join("web"),
        )
        .await?;
        internet.tor = Some((network, web));
    }
    Ok(())
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
async fn resolver_queries() -> Vec<harness::net::lab::DnsQuery> {
    INTERNET
        .lock()
        .await
        .as_ref()
        .map(|i| i.lab.dns_queries())
        .unwrap_or_default()
}

impl TailorWorld {
    /// Start capturing the VM's traffic into the scenario's folder, and
    /// mark where the lab resolver's log stands.
    pub async fn start_capture(&mut self) -> anyhow::Result<()> {
        self.resolver_mark = resolver_queries().await.len();
        std::fs::create_dir_all(&self.scenario_dir)?;
        let path = std::path::absolute(self.scenario_dir.join("capture.pcap"))?;
        let vm = self.vm()?;
        let capture = Capture::start(vm.qmp(), harness::vm::NETDEV_ID, &path).await?;
        self.capture = Some(capture);
        Ok(())
    }

    /// Stop the capture (if running) and analyse it; later checks reuse it.
    pub async fn analysed_capture(&mut self) -> anyhow::Result<&analysis::Analysis> {
        if let Some(capture) = self.capture.take() {
            let path = capture.stop(self.vm()?.qmp()).await?;
            // Look for the NIC's real MAC in every frame, for the MAC check.
            let options = analysis::Options {
                live: false,
                watch_macs: vec![self.vm()?.config().mac_string().parse()?],
            };
            self.analysis = Some(analysis::analyse_path_with(&path, &options)?);
            self.pcap = Some(path);
        }
        self.analysis.as_ref().ok_or_else(|| {
            anyhow::anyhow!("no traffic was captured: the computer is not on the lab network")
        })
    }
}

async fn policy() -> anyhow::Result<Policy> {
    let slot = INTERNET.lock().await;
    let allowed = slot
        .as_ref()
        .and_then(|i| i.tor.as_ref())
        .map(|(network, _)| network.or_endpoints())
        .unwrap_or_default();
    Ok(Policy::new(
        allowed.into_iter().map(std::net::SocketAddr::V4),
        Some(BRIDGE_ADDR.into()),
    ))
}

/// Judge the scenario's capture with `check`: file the verdict for the
/// report, keep it beside the capture, and fail the step on a leak.
async fn judge_capture(
    world: &mut TailorWorld,
    check: impl FnOnce(&Policy, &analysis::Analysis) -> Verdict,
) -> anyhow::Result<()> {
    let policy = policy().await?;
    let analysis = world.analysed_capture().await?;
    let verdict = check(&policy, analysis);
    crate::evidence::verdict(&verdict, analysis, &policy);
    judge(world, verdict)
}

/// Keep the verdict beside the capture, and fail the step on a leak.
fn judge(world: &TailorWorld, verdict: Verdict) -> anyhow::Result<()> {
    let pcap = world
        .pcap
        .clone()
        .unwrap_or_else(|| PathBuf::from("<none>"));
    let file = world
        .scenario_dir
        .join(format!("verdict-{}.txt", verdict.check.slug()));
    if let Err(e) = std::fs::write(&file, format!("{verdict}\ncapture: {}\n", pcap.display())) {
        eprintln!("cannot save the verdict to {}: {e}", file.display());
    }
    if verdict.passed() {
        return Ok(());
    }
    anyhow::bail!(
        "{verdict}\ncapture: {}\nverdict: {}",
        pcap.display(),
        file.display()
    )
}

#[given("the Tor network is running")]
async fn tor_network_running(_world: &mut TailorWorld) -> anyhow::Result<()> {
    ensure_tor().await
}

/// Point the guest's tor at the lab network and choose Start in the
/// greeter (it has focus when the greeter appears).
pub async fn start_with_lab_tor(world: &mut TailorWorld) -> anyhow::Result<()> {
    let torrc = client_torrc().await?;
    world
        .guest()?
        .write_file(harness::derivative::GUEST_LAB_TORRC, torrc.as_bytes())
        .await?;
    world.vm()?.press("Return").await?;
    Ok(())
}

/// An observation window: what the guest does on its own within it ends up
/// in the capture (leaky timers, retries), not a wait for a state.
#[when(expr = "I capture the guest's traffic for {int} seconds")]
async fn capture_for(world: &mut TailorWorld, secs: u64) -> anyhow::Result<()> {
    if world.capture.is_none() {
        anyhow::bail!("no capture is running: the computer is not on the lab network");
    }
    tokio::time::sleep(Duration::from_secs(secs)).await;
    Ok(())
}

#[then(expr = "Tor is ready within {int} seconds")]
async fn tor_ready(world: &mut TailorWorld, secs: u64) -> anyhow::Result<()> {
    Ok(world
        .vm()?
        .wait_serial(markers::TOR_READY, Duration::from_secs(secs))
        .await?)
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
    let command = crate::guest_steps::as_user(
        &user,
        &format!(
            "curl --silent --show-error --max-time 60 --socks5-hostname 127.0.0.1:9050 {}",
            crate::guest_steps::shell_quote(&url)
        ),
    );
    let result = world
        .guest()?
        .exec(&command, harness::wait::scaled(Duration::from_secs(90)))
        .await?;
    world.last_exec = Some(result);
    Ok(())
}

#[then("the fetched page is the lab's web page")]
async fn fetched_lab_page(world: &mut TailorWorld) -> anyhow::Result<()> {
    let expected = {
        let slot = INTERNET.lock().await;
        slot.as_ref()
            .and_then(|i| i.tor.as_ref())
            .map(|(_, web)| web.page().to_owned())
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
    // The web server must have seen the exits, never the guest itself.
    let slot = INTERNET.lock().await;
    if let Some((network, web)) = slot.as_ref().and_then(|i| i.tor.as_ref()) {
        for request in web.requests()? {
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
    let analysis = world.analysed_capture().await?;
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

#[then("the guest's MAC address was spoofed")]
async fn mac_spoofed(world: &mut TailorWorld) -> anyhow::Result<()> {
    let nic: MacAddr = world.vm()?.config().mac_string().parse()?;
    judge_capture(world, |policy, analysis| policy.mac_spoofed(analysis, nic)).await
}
