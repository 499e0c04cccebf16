//! Steps that use the guest's shell (whichever agent the vm-config names):
//! commands as root or as another user, and what the greeter left behind
//! (the administration password).

use std::time::Duration;

use cucumber::{given, then, when};
use harness::guest::{shell_quote, Guest};

use crate::TailorWorld;

impl TailorWorld {
    /// The running VM's guest agent.
    pub fn guest(&mut self) -> anyhow::Result<Guest> {
        Ok(Guest::for_vm(self.vm()?))
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

#[when(expr = "I run {string} as {string} in the guest")]
async fn run_as_user(world: &mut TailorWorld, command: String, user: String) -> anyhow::Result<()> {
    let result = world
        .guest()?
        .exec_as(
            &user,
            &command,
            harness::wait::scaled(Duration::from_secs(60)),
        )
        .await?;
    world.last_exec = Some(result);
    Ok(())
}

/// The guest's agent answers (for Tails' remote shell this also sends
/// `signal_ready`, which a guest booted with
/// `autotest_wait_for_remote_shell` waits for).
#[given(expr = "the guest's agent answers within {int} seconds")]
#[then(expr = "the guest's agent answers within {int} seconds")]
async fn agent_answers(world: &mut TailorWorld, secs: u64) -> anyhow::Result<()> {
    world
        .guest()?
        .wait_ready(harness::wait::scaled(Duration::from_secs(secs)))
        .await?;
    Ok(())
}

/// A line in the guest's log stream (its journal port).
#[then(expr = "the guest's log shows {string} within {int} seconds")]
async fn guest_log_shows(world: &mut TailorWorld, text: String, secs: u64) -> anyhow::Result<()> {
    let path = world.vm()?.paths().journal_log.clone();
    harness::guest::journal::wait_for(&path, &text, Duration::from_secs(secs)).await?;
    Ok(())
}

#[then("the command fails")]
async fn command_fails(world: &mut TailorWorld) -> anyhow::Result<()> {
    let last = last(world)?;
    if last.success() {
        anyhow::bail!(
            "expected `{}` to fail, but it exited 0; its output: {:?}",
            last.command,
            last.stdout.trim()
        );
    }
    Ok(())
}

/// Whether root's password hash in /etc/shadow is `password`'s, checked in
/// the guest with the hash's own salt.
#[then(expr = "the administration password is {string}")]
async fn admin_password_is(world: &mut TailorWorld, password: String) -> anyhow::Result<()> {
    let check = format!(
        "h=$(awk -F: '$1==\"root\" {{print $2}}' /etc/shadow); \
         case \"$h\" in '$6$'*) ;; *) echo \"root's password field is '$h', not a SHA-512 hash\" >&2; exit 2;; esac; \
         salt=$(echo \"$h\" | cut -d'$' -f3); \
         [ \"$(mkpasswd -m sha512 -S \"$salt\" {})\" = \"$h\" ] || {{ echo 'the hash is not of the expected password' >&2; exit 1; }}",
        shell_quote(&password)
    );
    let out = world
        .guest()?
        .exec(&check, harness::wait::scaled(Duration::from_secs(30)))
        .await?;
    if !out.success() {
        anyhow::bail!(
            "expected root's password to be {password:?}: {}",
            out.stderr.trim()
        );
    }
    Ok(())
}

#[then("no administration password is set")]
async fn no_admin_password(world: &mut TailorWorld) -> anyhow::Result<()> {
    let out = world
        .guest()?
        .exec(
            "awk -F: '$1==\"root\" {print $2}' /etc/shadow",
            harness::wait::scaled(Duration::from_secs(30)),
        )
        .await?;
    out.ensure_success()?;
    let field = out.stdout.trim();
    // A locked account: no hash at all ("*", "!", "!..." or empty is not
    // allowed either: an empty field means no password is needed).
    if field.starts_with('*') || field.starts_with('!') {
        return Ok(());
    }
    anyhow::bail!(
        "expected root's account to be locked (`*` or `!` in /etc/shadow), found {field:?}"
    )
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
