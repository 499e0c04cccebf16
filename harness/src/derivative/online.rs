//! Bringing a restored derivative back online.
//!
//! A checkpoint saved while the guest's tor was bootstrapped comes back
//! with tor holding TLS connections that the lab's relays dropped long ago
//! (the harness closes the relays' side before each VM starts) and with a
//! clock as old as the checkpoint. The clock is set by the caller; this
//! module restarts tor so that it opens fresh connections and builds fresh
//! circuits, and waits for tor's own word that it is ready: a new
//! "Bootstrapped 100%" in its log, never a sleep. The Tails suite restarts
//! Tor after every snapshot restore for the same reason.
//!
//! The restart keeps tor's command line as it was (read from
//! `/proc/PID/cmdline`), so whatever started it (the derivative's start
//! script, a service manager) configured it, not the harness. tor keeps
//! its data directory: the cached consensus and descriptors make the new
//! bootstrap take about a second on the lab's network.

use std::time::{Duration, Instant};

use crate::guest::{Error as GuestError, Guest};
use crate::wait::{self, Check};

/// Where the reference derivative's tor logs its notices.
pub const TOR_NOTICES: &str = "/var/log/tor/notices.log";

/// Errors bringing the guest's tor back.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("restarting the guest's tor")]
    Guest(#[from] GuestError),
    #[error("expected tor running in the guest to restart it; {seen}")]
    NotRunning { seen: String },
    #[error("the guest's tor did not bootstrap again after its restart")]
    Bootstrap(#[from] wait::WaitError<GuestError>),
}

/// Counts "Bootstrapped 100%" lines in tor's log (0 when there is none).
fn count_ready(log: &str) -> String {
    format!("grep -c 'Bootstrapped 100%' {log} 2>/dev/null; true")
}

/// Where the reference derivative keeps its system tor's pid: a
/// customization may run a tor of its own beside it.
const TOR_PID: &str = "/run/tailor/tor.pid";

/// Stops tor (waiting until it is gone) and starts it again, detached, with
/// the same command line. The system's tor: the one in [`TOR_PID`] when
/// that is alive, else the only one.
fn restart_script() -> String {
    // setsid and closed descriptors: the agent's command must not wait
    // for the new tor, which runs on.
    format!(
        "pid=$(cat {TOR_PID} 2>/dev/null); kill -0 \"$pid\" 2>/dev/null || pid=$(pidof -s tor) || {{ echo 'no tor process'; exit 3; }}
     set -- $(tr '\\0' ' ' < /proc/$pid/cmdline)
     kill $pid
     while kill -0 $pid 2>/dev/null; do usleep 20000; done
     setsid \"$@\" </dev/null >/dev/null 2>&1 &
     if [ -f {TOR_PID} ]; then echo $! > {TOR_PID}; fi"
    )
}

/// Restart the guest's tor and wait until it has bootstrapped again;
/// returns how long that took.
pub async fn restart_tor(guest: &Guest, timeout: Duration) -> Result<Duration, Error> {
    let start = Instant::now();
    let request = Duration::from_secs(20);
    let before: u64 = guest
        .exec(&count_ready(TOR_NOTICES), request)
        .await?
        .stdout
        .trim()
        .parse()
        .unwrap_or(0);
    let out = guest.exec(&restart_script(), request).await?;
    if !out.success() {
        return Err(Error::NotRunning {
            seen: format!("{} {}", out.stdout.trim(), out.stderr.trim()),
        });
    }
    wait::wait_until(
        "the guest's tor to bootstrap again after its restart (a new \"Bootstrapped 100%\" in its log)",
        timeout,
        Duration::from_millis(100),
        || async {
            match guest.exec(&count_ready(TOR_NOTICES), request).await {
                Ok(out) => match out.stdout.trim().parse::<u64>() {
                    Ok(now) if now > before => Check::Ready(()),
                    _ => Check::NotYet(format!(
                        "{} \"Bootstrapped 100%\" lines, {before} before the restart",
                        out.stdout.trim()
                    )),
                },
                Err(e) => Check::Fatal(e),
            }
        },
    )
    .await?;
    Ok(start.elapsed())
}
