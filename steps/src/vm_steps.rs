//! Steps that boot and drive the computer: power, keyboard, mouse, screen,
//! serial console, checkpoints.

use std::time::Duration;

use anyhow::Context;
use cucumber::{given, then, when};
use harness::screen::simple::{self, Reference};
use harness::vm::VmOptions;

use crate::TailorWorld;

#[given(expr = "the computer boots from {string}")]
async fn boots_from(world: &mut TailorWorld, name: String) -> anyhow::Result<()> {
    let config = world.settings.vm_config_for(&name)?;
    world.start_vm(&config, VmOptions::default()).await
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
    let reference = Reference::load(world.settings.reference_dir(&name), &name)?;
    let artifacts = world.scenario_dir.clone();
    let found = simple::wait_for(
        world.vm()?,
        &reference,
        Duration::from_secs(secs),
        &artifacts,
    )
    .await?;
    world.last_match = Some(found);
    Ok(())
}

#[then(expr = "I no longer see {string} within {int} seconds")]
async fn no_longer_see(world: &mut TailorWorld, name: String, secs: u64) -> anyhow::Result<()> {
    let reference = Reference::load(world.settings.reference_dir(&name), &name)?;
    Ok(simple::wait_gone(world.vm()?, &reference, Duration::from_secs(secs)).await?)
}

async fn click_reference(world: &mut TailorWorld, name: &str, count: u32) -> anyhow::Result<()> {
    let reference = Reference::load(world.settings.reference_dir(name), name)?;
    let artifacts = world.scenario_dir.clone();
    let vm = world.vm()?;
    let found = simple::wait_for(vm, &reference, Duration::from_secs(10), &artifacts)
        .await
        .with_context(|| format!("cannot click `{name}`"))?;
    let (x, y) = found.center();
    vm.click_at(x, y, count).await?;
    world.last_match = Some(found);
    Ok(())
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
