//! Steps that boot and drive the computer: power, keyboard, mouse, screen,
//! serial console, checkpoints.

use std::time::Duration;

use anyhow::Context;
use cucumber::{given, then, when};
use harness::screen::matcher::Match;
use harness::screen::reference::Reference;
use harness::screen::waiting::{self, WaitOutcome, WaitScreenError};
use harness::vm::VmOptions;

use crate::TailorWorld;

#[given(expr = "the computer boots from {string}")]
async fn boots_from(world: &mut TailorWorld, name: String) -> anyhow::Result<()> {
    let config = world.settings.vm_config_for(&name)?;
    world.boot(&config, VmOptions::default(), None).await
}

#[given(expr = "a computer at checkpoint {string}")]
async fn at_checkpoint(world: &mut TailorWorld, name: String) -> anyhow::Result<()> {
    crate::checkpoints::reach(world, &name).await
}

#[given(expr = "the serial console shows {string} within {int} seconds")]
#[then(expr = "the serial console shows {string} within {int} seconds")]
async fn serial_shows(world: &mut TailorWorld, text: String, secs: u64) -> anyhow::Result<()> {
    Ok(world
        .vm()?
        .wait_serial(&text, Duration::from_secs(secs))
        .await?)
}

#[when(expr = "I type {string}")]
async fn type_text(world: &mut TailorWorld, text: String) -> anyhow::Result<()> {
    Ok(world.vm()?.type_text(&text).await?)
}

#[when(expr = "I press {string}")]
async fn press(world: &mut TailorWorld, combo: String) -> anyhow::Result<()> {
    Ok(world.vm()?.press(&combo).await?)
}

#[then(expr = "I see {string} within {int} seconds")]
async fn see(world: &mut TailorWorld, name: String, secs: u64) -> anyhow::Result<()> {
    wait_seen(world, &name, Duration::from_secs(secs)).await?;
    Ok(())
}

#[then(expr = "I see {string} or {string} within {int} seconds")]
async fn see_either(
    world: &mut TailorWorld,
    first: String,
    second: String,
    secs: u64,
) -> anyhow::Result<()> {
    let references = [reference(world, &first)?, reference(world, &second)?];
    let artifacts = world.scenario_dir.clone();
    let result = waiting::wait_for_any(
        world.vm()?,
        &[&references[0], &references[1]],
        Duration::from_secs(secs),
        &artifacts,
    )
    .await
    .map(|(_, outcome)| outcome);
    world.last_match = record(world, result)?.found();
    Ok(())
}

#[then(expr = "I no longer see {string} within {int} seconds")]
async fn no_longer_see(world: &mut TailorWorld, name: String, secs: u64) -> anyhow::Result<()> {
    let reference = reference(world, &name)?;
    let artifacts = world.scenario_dir.clone();
    let result = waiting::wait_gone(
        world.vm()?,
        &reference,
        Duration::from_secs(secs),
        &artifacts,
    )
    .await;
    record(world, result)?;
    Ok(())
}

pub(crate) async fn click_reference(
    world: &mut TailorWorld,
    name: &str,
    count: u32,
) -> anyhow::Result<()> {
    let (reference, found) = wait_seen(world, name, Duration::from_secs(10))
        .await
        .with_context(|| format!("cannot click `{name}`"))?;
    // The sidecar's click point (the reference's centre by default).
    let (x, y) = reference.click_point(&found);
    world.vm()?.click_at(x, y, count).await?;
    Ok(())
}

/// `NAME.png` (and its sidecar) from the run's reference folders.
fn reference(world: &TailorWorld, name: &str) -> anyhow::Result<Reference> {
    Ok(Reference::load(world.settings.reference_dir(name), name)?)
}

/// Wait until reference `name` is on the screen; it and its match. A
/// timeout's picture goes into the scenario's artifact folder.
pub(crate) async fn wait_seen(
    world: &mut TailorWorld,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<(Reference, Match)> {
    let reference = reference(world, name)?;
    let artifacts = world.scenario_dir.clone();
    let result = waiting::wait_for(world.vm()?, &reference, timeout, &artifacts).await;
    let outcome = record(world, result)?;
    let found = outcome
        .found()
        .ok_or_else(|| anyhow::anyhow!("the wait for `{name}` ended without a match"))?;
    world.last_match = Some(found);
    Ok((reference, found))
}

/// File a screen wait's outcome for the run report (and keep it on the
/// world), whether the wait passed or timed out.
fn record(
    world: &mut TailorWorld,
    result: Result<WaitOutcome, WaitScreenError>,
) -> Result<WaitOutcome, WaitScreenError> {
    world.last_screen_wait = match &result {
        Ok(outcome) => Some(outcome.clone()),
        Err(e) => e.outcome().cloned(),
    };
    if let Some(outcome) = &world.last_screen_wait {
        crate::report::screen_wait(outcome.clone());
    }
    result
}

#[when(expr = "I click {string}")]
async fn click(world: &mut TailorWorld, name: String) -> anyhow::Result<()> {
    click_reference(world, &name, 1).await
}

#[when(expr = "I double-click {string}")]
async fn double_click(world: &mut TailorWorld, name: String) -> anyhow::Result<()> {
    click_reference(world, &name, 2).await
}

#[when(expr = "I save the checkpoint {string}")]
async fn save_checkpoint(world: &mut TailorWorld, name: String) -> anyhow::Result<()> {
    Ok(world.vm()?.save_checkpoint(&name).await?)
}

#[when(expr = "I restore the checkpoint {string}")]
async fn restore_checkpoint(world: &mut TailorWorld, name: String) -> anyhow::Result<()> {
    Ok(world.vm()?.restore_checkpoint(&name).await?)
}

#[then(expr = "the computer powers off within {int} seconds")]
async fn powers_off(world: &mut TailorWorld, secs: u64) -> anyhow::Result<()> {
    let vm = world.vm()?;
    vm.qmp()
        .wait_event(
            &["SHUTDOWN"],
            harness::wait::scaled(Duration::from_secs(secs)),
        )
        .await?;
    if let Some(vm) = world.vm.take() {
        vm.shutdown().await?;
    }
    Ok(())
}
