//! Steps that use the guest's shell (the QEMU guest agent).

use std::time::Duration;

use cucumber::{then, when};
use harness::guest::Guest;

use crate::TailorWorld;

impl TailorWorld {
    /// The running VM's guest agent.
    pub fn guest(&mut self) -> anyhow::Result<Guest> {
        Ok(Guest::new(&self.vm()?.paths().qga_socket))
    }
}

#[when(expr = "I run {string} in the guest")]
async fn run_in_guest(world: &mut TailorWorld, command: String) -> anyhow::Result<()> {
    let guest = world.guest()?;
    let result = guest
        .exec(&command, harness::wait::scaled(Duration::from_secs(60)))
        .await?;
    world.last_exec = Some(result);
    Ok(())
}

#[then("the command succeeds")]
async fn command_succeeds(world: &mut TailorWorld) -> anyhow::Result<()> {
    last(world)?.ensure_success()?;
    Ok(())
}

#[then(expr = "its output contains {string}")]
async fn output_contains(world: &mut TailorWorld, expected: String) -> anyhow::Result<()> {
    last(world)?.ensure_output_contains(&expected)?;
    Ok(())
}

fn last(world: &TailorWorld) -> anyhow::Result<&harness::guest::ExecResult> {
    world.last_exec.as_ref().ok_or_else(|| {
        anyhow::anyhow!("no command ran yet: use `When I run \"...\" in the guest` first")
    })
}
