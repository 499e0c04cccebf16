//! A VPN derivative (kind `vpn`) on the lab: the lab's WireGuard server and
//! the Internet behind it (`harness::vpn`), what the guest is handed before
//! Start (a wg-quick file), what "online" means (the guest says its tunnel
//! is up and the server completed a handshake with it, from the address
//! and port the guest names), the policy its captures are judged by (only
//! the VPN endpoint's UDP port), and the steps of `features/vpn.feature`.
//!
//! The VPN lives in the run's lab ([`crate::lab_steps`]), started once and
//! torn down with it; a scenario that stopped the server has it started
//! again by the next `Given the lab's network is running`.

use std::net::SocketAddr;
use std::time::Duration;

use cucumber::{given, then, when};
use harness::derivative::{GUEST_VPN_CONFIG, GUEST_VPN_STATE};
use harness::net::lab::{BRIDGE_ADDR, BRIDGE_MAC};
use harness::net::policy::{Endpoint, Policy};
use harness::vpn::{GuestVpnState, VpnLab, EXIT_ADDR};
use harness::wait::{self, Check};

use crate::lab_steps::{ensure_lab, judge_capture, INTERNET};
use crate::TailorWorld;

/// Start the lab's VPN server and its Internet (once per run), or start
/// the server again if a scenario stopped it.
pub async fn ensure_vpn() -> anyhow::Result<()> {
    let mut slot = INTERNET.lock().await;
    let internet = ensure_lab(&mut slot).await?;
    match internet.vpn.as_mut() {
        None => {
            let dir = internet._dir.path().join("vpn");
            let vpn = VpnLab::start(&mut internet.lab, &dir).await?;
            internet.vpn = Some(vpn);
        }
        Some(vpn) => {
            if !vpn.server_running() {
                vpn.start_server().await?;
            }
        }
    }
    Ok(())
}

/// Run `f` on the lab's VPN, or say which step is missing.
async fn with_vpn<T>(f: impl FnOnce(&mut VpnLab) -> T) -> anyhow::Result<T> {
    let mut slot = INTERNET.lock().await;
    let vpn = slot.as_mut().and_then(|i| i.vpn.as_mut()).ok_or_else(|| {
        anyhow::anyhow!(
            "the lab's VPN is not running: add `Given the lab's network is running` (with a VPN derivative)"
        )
    })?;
    Ok(f(vpn))
}

/// The policy for a VPN derivative: nothing but UDP to the endpoint (and
/// the usual tolerated link noise: ARP, DHCP with the lab), on a link
/// whose lab side is the bridge and the VPN server.
pub(crate) async fn policy() -> anyhow::Result<Policy> {
    let (endpoint, server_mac) = {
        let slot = INTERNET.lock().await;
        match slot.as_ref().and_then(|i| i.vpn.as_ref()) {
            Some(vpn) => (Some(vpn.endpoint()), Some(vpn.server_mac())),
            // Nothing started yet: nothing is allowed.
            None => (None, None),
        }
    };
    let mut policy = Policy::with_endpoints(
        endpoint.map(|e| Endpoint::udp(SocketAddr::V4(e))),
        Some(std::net::IpAddr::V4(BRIDGE_ADDR)),
    );
    policy.lab_macs.insert(BRIDGE_MAC);
    policy.lab_macs.extend(server_mac);
    Ok(policy)
}

/// Hand the guest its VPN configuration through its agent, then choose
/// Start in the greeter.
pub async fn start_with_lab_vpn(world: &mut TailorWorld) -> anyhow::Result<()> {
    let config = with_vpn(|vpn| vpn.client_config()).await?;
    let guest = world.guest()?;
    guest
        .wait_ready(wait::scaled(Duration::from_secs(60)))
        .await?;
    guest
        .write_file(GUEST_VPN_CONFIG, config.as_bytes())
        .await?;
    world.vm()?.press("Return").await?;
    world.network_used();
    Ok(())
}

/// What the guest's VPN client says of itself now.
async fn guest_state(guest: &harness::guest::Guest) -> anyhow::Result<Option<GuestVpnState>> {
    let out = guest
        .exec(
            &format!("cat {GUEST_VPN_STATE} 2>/dev/null; true"),
            wait::scaled(Duration::from_secs(10)),
        )
        .await?;
    Ok(GuestVpnState::parse(&out.stdout))
}

/// Online, for a VPN derivative: the guest says its tunnel is up, and the
/// server's last handshake with the guest's key came from the address and
/// port the guest's tunnel sends from (a handshake of this tunnel, not of
/// an earlier VM or an earlier tunnel of this one).
pub async fn wait_connected(world: &mut TailorWorld, timeout: Duration) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    wait_connected_anew(&world.guest()?, timeout, None).await?;
    tracing::info!(
        "the guest's VPN is connected after {:.2?} of waiting",
        started.elapsed()
    );
    Ok(())
}

/// [`wait_connected`], for a tunnel other than the one that sent from
/// `stale` (a restored guest's, before it reconnected).
/// One agent connection throughout: the agent's socket takes one client
/// at a time.
async fn wait_connected_anew(
    guest: &harness::guest::Guest,
    timeout: Duration,
    stale: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let what = "the guest's VPN to connect (its state file says connected, and the lab's server completed a handshake with it from where it says)";
    let result = wait::wait_until::<_, std::convert::Infallible, _, _>(
        what,
        wait::scaled(timeout),
        Duration::from_millis(250),
        || {
            let state = guest_state(guest);
            async move {
                let state = match state.await {
                    Ok(Some(s)) => s,
                    Ok(None) => return Check::NotYet(format!("no {GUEST_VPN_STATE} yet")),
                    Err(e) => return Check::NotYet(format!("asking the guest: {e:#}")),
                };
                let Some(local) = state.local.filter(|_| state.is_connected()) else {
                    return Check::NotYet(format!("the guest's VPN is {}", state.state));
                };
                if Some(local) == stale {
                    return Check::NotYet(format!(
                        "the guest still reports its old tunnel from {local}"
                    ));
                }
                match with_vpn(|vpn| vpn.guest_handshake()).await {
                    Ok(Ok(Some(h))) if h.from == local => Check::Ready(()),
                    Ok(Ok(Some(h))) => Check::NotYet(format!(
                        "the guest says connected from {local}; the server's last handshake with its key was from {}",
                        h.from
                    )),
                    Ok(Ok(None)) => Check::NotYet(format!(
                        "the guest says connected from {local}; the server has had no handshake with its key"
                    )),
                    Ok(Err(e)) => Check::NotYet(format!("the server: {e}")),
                    Err(e) => Check::NotYet(e.to_string()),
                }
            }
        },
    )
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(wait::WaitError::Timeout(t)) => Err(t.into()),
        Err(wait::WaitError::Fatal(never)) => match never {},
    }
}

/// Bring a guest restored from `vpn-ready` back online: its VPN client
/// reconnects on SIGHUP (a stale session's packets would be dropped by the
/// server as replays), and the new tunnel must complete its own handshake.
pub async fn reconnect(world: &mut TailorWorld) -> anyhow::Result<()> {
    let guest = world.guest()?;
    let stale = guest_state(&guest).await?.and_then(|s| s.local);
    let out = guest
        .exec(
            "kill -HUP \"$(cat /run/tailor/vpn/client.pid)\"",
            wait::scaled(Duration::from_secs(10)),
        )
        .await?;
    if !out.success() {
        anyhow::bail!(
            "expected the guest's VPN client running, to have it reconnect; `kill -HUP` said: {} {}",
            out.stdout.trim(),
            out.stderr.trim()
        );
    }
    let started = std::time::Instant::now();
    wait_connected_anew(&guest, Duration::from_secs(60), stale).await?;
    tracing::info!(
        "the restored guest's VPN reconnected in {:.2?}",
        started.elapsed()
    );
    Ok(())
}

/// The kind-neutral fetch of the lab's web page: through the VPN, by name.
pub async fn fetch_lab_page(world: &mut TailorWorld) -> anyhow::Result<()> {
    let url = format!("http://{}/", harness::vpn::WEB_NAME);
    fetch_through_vpn_as(world, url, "root".into()).await
}

#[then(expr = "the guest's VPN is down within {int} seconds")]
async fn vpn_down(world: &mut TailorWorld, secs: u64) -> anyhow::Result<()> {
    let guest = world.guest()?;
    let guest = &guest;
    let result = wait::wait_until::<_, std::convert::Infallible, _, _>(
        "the guest's VPN client to notice that its tunnel is down",
        wait::scaled(Duration::from_secs(secs)),
        Duration::from_millis(250),
        || {
            let state = guest_state(guest);
            async move {
                match state.await {
                    Ok(Some(s)) if !s.is_connected() => Check::Ready(()),
                    Ok(Some(s)) => Check::NotYet(format!("still {}", s.state)),
                    Ok(None) => Check::NotYet(format!("no {GUEST_VPN_STATE}")),
                    Err(e) => Check::NotYet(format!("asking the guest: {e:#}")),
                }
            }
        },
    )
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(wait::WaitError::Timeout(t)) => Err(t.into()),
        Err(wait::WaitError::Fatal(never)) => match never {},
    }
}

#[when("the lab's VPN server stops")]
async fn server_stops(_world: &mut TailorWorld) -> anyhow::Result<()> {
    with_vpn(VpnLab::stop_server).await
}

#[when("the lab's VPN server starts again")]
async fn server_starts(_world: &mut TailorWorld) -> anyhow::Result<()> {
    ensure_vpn().await
}

#[when(expr = "I fetch {string} through the VPN in the guest")]
async fn fetch_through_vpn(world: &mut TailorWorld, url: String) -> anyhow::Result<()> {
    fetch_through_vpn_as(world, url, "root".into()).await
}

/// A plain fetch: with the tunnel up, everything goes through it.
#[when(expr = "I fetch {string} through the VPN as {string} in the guest")]
async fn fetch_through_vpn_as(
    world: &mut TailorWorld,
    url: String,
    user: String,
) -> anyhow::Result<()> {
    let command = format!(
        "curl --silent --show-error --max-time 30 {}",
        harness::guest::shell_quote(&url)
    );
    // As the user, through whichever agent the guest has.
    let result = world
        .guest()?
        .exec_as(&user, &command, wait::scaled(Duration::from_secs(60)))
        .await?;
    if result.success() {
        // The page came through the network: the capture must show the
        // tunnel's packets.
        world.anonymity_traffic_expected();
    }
    world.last_exec = Some(result);
    Ok(())
}

/// Like an application that keeps the network busy (a sync client): a
/// fetch every half second as the desktop user, for the rest of the
/// scenario, so whatever state the network goes through, something tries
/// to get out in it.
#[given(expr = "an application keeps fetching {string} in the guest")]
async fn keeps_fetching(world: &mut TailorWorld, url: String) -> anyhow::Result<()> {
    let loop_ = format!(
        "(while true; do curl --silent --max-time 2 --output /dev/null {}; usleep 500000; done) </dev/null >/dev/null 2>&1 &",
        harness::guest::shell_quote(&url)
    );
    let result = world
        .guest()?
        .exec_as("amnesia", &loop_, wait::scaled(Duration::from_secs(20)))
        .await?;
    result.ensure_success()?;
    world.network_used();
    Ok(())
}

#[then("all Internet traffic has only flowed through the VPN")]
async fn only_vpn(world: &mut TailorWorld) -> anyhow::Result<()> {
    judge_capture(world, Policy::only_tor).await?;
    web_saw_only_the_vpn(world, false).await
}

#[then("no DNS left the guest outside the tunnel")]
async fn no_dns_outside(world: &mut TailorWorld) -> anyhow::Result<()> {
    judge_capture(world, Policy::no_dns).await
}

#[then("the web server saw only the VPN's address")]
async fn web_saw_vpn(world: &mut TailorWorld) -> anyhow::Result<()> {
    web_saw_only_the_vpn(world, true).await
}

/// Every request the web server behind the VPN got in this scenario came
/// from the VPN's address (and, if `some`, there was at least one). The
/// lab and its log may outlive a scenario: earlier requests are not its.
async fn web_saw_only_the_vpn(world: &TailorWorld, some: bool) -> anyhow::Result<()> {
    let all = with_vpn(|vpn| vpn.web().requests()).await??;
    let requests: Vec<_> = all.into_iter().skip(world.web_mark).collect();
    if let Some(r) = requests.iter().find(|r| *r.source.ip() != EXIT_ADDR) {
        anyhow::bail!(
            "the web server behind the VPN got a request from {} (expected only the VPN's address {EXIT_ADDR}): {r:?}",
            r.source
        );
    }
    if some && requests.is_empty() {
        anyhow::bail!("the web server behind the VPN got no request at all: nothing to judge by");
    }
    Ok(())
}
