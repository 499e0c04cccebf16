//! Steps about the derivative's firewall: its named counters, its rules,
//! and unplugging the network cable (QMP `set_link`) under it.

use std::time::Duration;

use cucumber::{then, when};
use harness::derivative::inspect::{self, FirewallState};
use harness::wait::{self, Check};

use crate::TailorWorld;

impl TailorWorld {
    async fn firewall_now(&mut self) -> anyhow::Result<FirewallState> {
        Ok(inspect::firewall(&self.guest()?).await?)
    }

    fn firewall_noted(&self) -> anyhow::Result<&FirewallState> {
        self.firewall_noted.as_ref().ok_or_else(|| {
            anyhow::anyhow!("nothing to compare with: add `When I note the firewall's state` first")
        })
    }
}

#[when("I note the firewall's state")]
async fn note_firewall(world: &mut TailorWorld) -> anyhow::Result<()> {
    let state = world.firewall_now().await?;
    if state.ruleset.trim().is_empty() {
        anyhow::bail!("the guest has no firewall rules at all (`nft -s list ruleset` is empty)");
    }
    world.firewall_noted = Some(state);
    Ok(())
}

#[then(expr = "the firewall's {string} counter went up")]
async fn counter_went_up(world: &mut TailorWorld, name: String) -> anyhow::Result<()> {
    let before = world
        .firewall_noted()?
        .counters
        .get(&name)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("the firewall has no counter named {name:?}"))?;
    let now = world.firewall_now().await?;
    let after = now.counters.get(&name).copied().unwrap_or_default();
    if after.packets <= before.packets {
        anyhow::bail!(
            "expected the firewall's {name:?} counter to count the attempt: it stayed at {} packets; all counters now: {:?}",
            before.packets,
            now.counters
        );
    }
    Ok(())
}

#[then("the firewall's rules are unchanged")]
async fn rules_unchanged(world: &mut TailorWorld) -> anyhow::Result<()> {
    let before = world.firewall_noted()?.ruleset.clone();
    let now = world.firewall_now().await?.ruleset;
    if now != before {
        let path = world.scenario_dir.join("firewall-rules-changed.txt");
        std::fs::create_dir_all(&world.scenario_dir)?;
        std::fs::write(&path, format!("--- noted\n{before}\n--- now\n{now}\n"))?;
        anyhow::bail!(
            "expected the firewall's rules to be as noted; they changed (both saved in {})",
            path.display()
        );
    }
    Ok(())
}

/// Whether every NIC of the guest (not lo) has carrier, as `up` asks.
async fn wait_carrier(world: &mut TailorWorld, up: bool) -> anyhow::Result<()> {
    let guest = &world.guest()?;
    let want = if up { "1" } else { "0" };
    let command = "for n in /sys/class/net/*; do [ \"${n##*/}\" = lo ] || echo \"${n##*/} $(cat $n/carrier 2>/dev/null || echo 0)\"; done";
    wait::wait_until::<_, harness::guest::Error, _, _>(
        &format!(
            "the guest to see its network cable {}",
            if up { "plugged in" } else { "unplugged" }
        ),
        wait::scaled(Duration::from_secs(30)),
        Duration::from_millis(200),
        || async move {
            match guest.exec(command, Duration::from_secs(10)).await {
                Ok(out) => {
                    let nics: Vec<&str> = out.stdout.lines().collect();
                    if !nics.is_empty() && nics.iter().all(|l| l.ends_with(want)) {
                        Check::Ready(())
                    } else {
                        Check::NotYet(format!("carrier: {}", out.stdout.trim()))
                    }
                }
                Err(e) => Check::Fatal(e),
            }
        },
    )
    .await?;
    Ok(())
}

/// How long a person's unplug lasts when the step does not say: long
/// enough for a system that polls its links, or waits for a new lease, to
/// notice that it was disconnected.
pub const PERSON_UNPLUG: Duration = Duration::from_secs(5);

#[when("I unplug and replug the network cable")]
async fn unplug_replug(world: &mut TailorWorld) -> anyhow::Result<()> {
    reconnect(world, PERSON_UNPLUG).await
}

#[when(expr = "I unplug the network cable for {int} seconds and plug it back in")]
async fn unplug_for(world: &mut TailorWorld, secs: u64) -> anyhow::Result<()> {
    reconnect(world, Duration::from_secs(secs)).await
}

/// Unplug the cable (QMP `set_link`), keep it out for `out_for` as a
/// person would, plug it back in, then wait until the guest has really
/// reconnected: a new DHCP exchange in its capture, after the replug.
async fn reconnect(world: &mut TailorWorld, out_for: Duration) -> anyhow::Result<()> {
    world.vm()?.set_link(false).await?;
    wait_carrier(world, false).await?;
    // The cable stays out: this pause is the point, not a wait for a state.
    tokio::time::sleep(out_for).await;
    // Nothing passes while the cable is out, so the capture's last frame
    // now comes before anything after the replug. (Its clock is not the
    // host's: QEMU stamps frames with the capture's start plus the VM's
    // virtual clock, which a restored checkpoint carries over.)
    let unplugged = world.analysed_capture()?.last.unwrap_or_default();
    world.vm()?.set_link(true).await?;
    wait_carrier(world, true).await?;
    world.network_used();
    let capture = world
        .current_capture()
        .map(|c| c.path.clone())
        .ok_or_else(|| {
            anyhow::anyhow!("the computer is not on the lab network: cannot see it reconnect")
        })?;
    let policy = crate::lab_steps::policy(world).await?;
    wait::wait_until::<_, std::convert::Infallible, _, _>(
        "the guest to redo DHCP after the cable came back (a request from it and the lab's answer, in its capture)",
        wait::scaled(Duration::from_secs(60)),
        Duration::from_millis(500),
        || {
            let capture = capture.clone();
            let policy = policy.clone();
            async move {
                match harness::net::analysis::analyse_path(&capture) {
                    Ok(a) => match dhcp_exchange_after(&policy, &a, unplugged) {
                        true => Check::Ready(()),
                        false => Check::NotYet("no DHCP exchange since the replug yet".into()),
                    },
                    Err(e) => Check::NotYet(format!("reading {}: {e}", capture.display())),
                }
            }
        },
    )
    .await?;
    Ok(())
}

/// Whether the guest sent a DHCP request after `since` and the lab
/// answered it after that.
fn dhcp_exchange_after(
    policy: &harness::net::policy::Policy,
    analysis: &harness::net::analysis::Analysis,
    since: harness::net::analysis::Timestamp,
) -> bool {
    let lab = policy.lab_mac_set(analysis);
    let from_guest =
        |f: &&harness::net::analysis::Flow| f.src_mac.is_some_and(|m| !lab.contains(&m));
    let dhcp = |f: &harness::net::analysis::Flow, src: u16, dst: u16| {
        f.key.protocol == harness::net::analysis::Protocol::Udp
            && f.key.src_port == Some(src)
            && f.key.dst_port == Some(dst)
    };
    let Some(request) = analysis
        .flows
        .iter()
        .filter(from_guest)
        .filter(|f| dhcp(f, 68, 67) && f.last > since)
        .map(|f| f.last)
        .min()
    else {
        return false;
    };
    analysis
        .flows
        .iter()
        .filter(|f| !from_guest(f))
        .any(|f| dhcp(f, 67, 68) && f.last >= request)
}
