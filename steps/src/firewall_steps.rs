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

#[when("I unplug and replug the network cable")]
async fn unplug_replug(world: &mut TailorWorld) -> anyhow::Result<()> {
    world.vm()?.set_link(false).await?;
    wait_carrier(world, false).await?;
    world.vm()?.set_link(true).await?;
    wait_carrier(world, true).await
}
