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
    let capture = world
        .current_capture()
        .map(|c| c.path.clone())
        .ok_or_else(|| {
            anyhow::anyhow!("the computer is not on the lab network: cannot see it reconnect")
        })?;
    let policy = crate::lab_steps::policy(world).await?;
    world.vm()?.set_link(false).await?;
    wait_carrier(world, false).await?;
    // The cable stays out: this pause is the point, not a wait for a state.
    tokio::time::sleep(out_for).await;
    // What DHCP the capture holds before the replug. Counted, not timed:
    // filter-dump stamps frames with the guest's virtual clock, which
    // stands still while the VM is paused (a checkpoint being saved).
    let before = dhcp_packets(&policy, &harness::net::analysis::analyse_path(&capture)?);
    world.vm()?.set_link(true).await?;
    wait_carrier(world, true).await?;
    world.network_used();
    wait::wait_until::<_, std::convert::Infallible, _, _>(
        "the guest to redo DHCP after the cable came back (a request from it and the lab's answer, in its capture)",
        wait::scaled(Duration::from_secs(60)),
        Duration::from_millis(500),
        || {
            let capture = capture.clone();
            let policy = policy.clone();
            async move {
                match harness::net::analysis::analyse_path(&capture) {
                    Ok(a) => {
                        let now = dhcp_packets(&policy, &a);
                        if now.from_guest > before.from_guest && now.from_lab > before.from_lab {
                            Check::Ready(())
                        } else {
                            Check::NotYet(format!(
                                "DHCP since the replug: {} packets from the guest, {} from the lab",
                                now.from_guest - before.from_guest,
                                now.from_lab - before.from_lab
                            ))
                        }
                    }
                    Err(e) => Check::NotYet(format!("reading {}: {e}", capture.display())),
                }
            }
        },
    )
    .await?;
    Ok(())
}

/// DHCP packets in a capture: client to server from the guest, server to
/// client from the lab.
#[derive(Debug, Clone, Copy)]
struct DhcpPackets {
    from_guest: u64,
    from_lab: u64,
}

fn dhcp_packets(
    policy: &harness::net::policy::Policy,
    analysis: &harness::net::analysis::Analysis,
) -> DhcpPackets {
    let lab = policy.lab_mac_set(analysis);
    let count = |src: u16, dst: u16, guest: bool| {
        analysis
            .flows
            .iter()
            .filter(|f| {
                f.key.protocol == harness::net::analysis::Protocol::Udp
                    && f.key.src_port == Some(src)
                    && f.key.dst_port == Some(dst)
                    && f.src_mac.is_some_and(|m| lab.contains(&m) != guest)
            })
            .map(|f| f.packets)
            .sum()
    };
    DhcpPackets {
        from_guest: count(68, 67, true),
        from_lab: count(67, 68, false),
    }
}
