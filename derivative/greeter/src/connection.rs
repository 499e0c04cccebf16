//! How Tor connects, and noticing when it cannot.
//!
//! Three ways, each one mode of `/etc/tailor/tor-connect` (which writes
//! tor's bridge settings and starts or restarts tor):
//! - `configured`: the bridges the derivative configured
//!   ([`CONFIGURED_BRIDGES`], one bridge line each): always used, nobody
//!   is asked;
//! - `default`: the default bridges ([`DEFAULT_BRIDGES`], as Tails keeps
//!   Tor Browser's), when the person chooses them;
//! - `direct`: the relays of the consensus.
//!
//! When the derivative has default bridges and no configured ones, Start
//! asks which ([`Plan::Ask`]). Either way the greeter watches tor's
//! bootstrap: no sign of life (tor past "connected to a relay") within
//! [`Limits::sign_of_life`], or not done within [`Limits::bootstrap`],
//! and it says that Tor could not connect, offering the default bridges
//! when those were not the ones that failed. It keeps watching: a tor
//! that gets through later still becomes "Tor is ready".

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The derivative's default bridges, written when the image was built.
pub const DEFAULT_BRIDGES: &str = "/usr/share/tailor/default-bridges.txt";
/// Bridges the derivative always uses.
pub const CONFIGURED_BRIDGES: &str = "/etc/tailor/bridges.txt";
const TOR_CONNECT: &str = "/etc/tailor/tor-connect";
const SETTINGS: &str = "/etc/tailor/settings";

/// The bootstrap step tor reaches once it talks to a relay or bridge
/// ("Bootstrapped 10% (conn_done)"): its first sign of life.
const SIGN_OF_LIFE_PERCENT: u32 = 10;

/// One way for tor to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Direct,
    DefaultBridges,
    ConfiguredBridges,
}

impl Mode {
    /// The argument `/etc/tailor/tor-connect` takes.
    pub fn arg(self) -> &'static str {
        match self {
            Mode::Direct => "direct",
            Mode::DefaultBridges => "default",
            Mode::ConfiguredBridges => "configured",
        }
    }
}

/// What Start does about Tor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Use(Mode),
    /// Ask: directly, or through the default bridges.
    Ask,
}

/// Bridge lines in a list: lines that are neither blank nor comments.
pub fn count_bridges(text: &str) -> usize {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count()
}

fn bridges_in(path: &str) -> usize {
    count_bridges(&std::fs::read_to_string(path).unwrap_or_default())
}

/// Whether the system has default bridges to offer.
pub fn has_default_bridges() -> bool {
    bridges_in(DEFAULT_BRIDGES) > 0
}

/// What Start does, from the bridge lists as they are now (the harness
/// writes the lab's lines into them before Start).
pub fn plan() -> Plan {
    plan_for(bridges_in(CONFIGURED_BRIDGES), bridges_in(DEFAULT_BRIDGES))
}

fn plan_for(configured: usize, default: usize) -> Plan {
    match (configured, default) {
        (1.., _) => Plan::Use(Mode::ConfiguredBridges),
        (0, 1..) => Plan::Ask,
        (0, 0) => Plan::Use(Mode::Direct),
    }
}

/// Start tor (or restart it) connecting `mode`'s way.
pub fn connect(mode: Mode) -> std::io::Result<Child> {
    eprintln!("tailor-greeter: connecting to Tor: {}", mode.arg());
    Command::new("/bin/sh")
        .arg(TOR_CONNECT)
        .arg(mode.arg())
        .stdin(Stdio::null())
        .spawn()
}

/// How long tor may take before the greeter says it cannot connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Until the first sign of life.
    pub sign_of_life: Duration,
    /// Until "Bootstrapped 100%".
    pub bootstrap: Duration,
}

impl Limits {
    /// `TOR_SIGN_OF_LIFE` and `TOR_BOOTSTRAP_TIMEOUT` (seconds) from the
    /// settings, last line wins; 20 s and 300 s without them.
    pub fn from_settings() -> Limits {
        Self::parse(&std::fs::read_to_string(SETTINGS).unwrap_or_default())
    }

    fn parse(text: &str) -> Limits {
        let value = |key: &str| {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
                .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .rfind(|v| *v > 0)
                .map(Duration::from_secs)
        };
        Limits {
            sign_of_life: value("TOR_SIGN_OF_LIFE").unwrap_or(Duration::from_secs(20)),
            bootstrap: value("TOR_BOOTSTRAP_TIMEOUT").unwrap_or(Duration::from_secs(300)),
        }
    }
}

/// Why tor has failed to connect, `elapsed` after it started, at
/// `percent`; `None` while it may still.
pub fn failure(percent: u32, elapsed: Duration, limits: Limits) -> Option<String> {
    if percent >= 100 {
        return None;
    }
    let secs = |d: Duration| d.as_secs();
    if percent < SIGN_OF_LIFE_PERCENT && elapsed >= limits.sign_of_life {
        return Some(format!(
            "Nothing from the Tor network in {} s (at {percent}%)",
            secs(limits.sign_of_life)
        ));
    }
    if elapsed >= limits.bootstrap {
        return Some(format!(
            "Still at {percent}% after {} s",
            secs(limits.bootstrap)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_bridges_win_then_default_bridges_are_offered() {
        assert_eq!(plan_for(1, 3), Plan::Use(Mode::ConfiguredBridges));
        assert_eq!(plan_for(0, 2), Plan::Ask);
        assert_eq!(plan_for(0, 0), Plan::Use(Mode::Direct));
    }

    #[test]
    fn bridge_lists_skip_comments_and_blank_lines() {
        assert_eq!(
            count_bridges(
                "# the default bridges\n\nobfs4 192.0.2.1:443 X cert=y\n  \n10.0.0.1:9001\n"
            ),
            2
        );
        assert_eq!(count_bridges(""), 0);
    }

    #[test]
    fn limits_come_from_the_settings_last_line_winning() {
        let l = Limits::parse("MAC_SPOOF=1\nTOR_SIGN_OF_LIFE=20\nTOR_SIGN_OF_LIFE=45  # custom\n");
        assert_eq!(l.sign_of_life, Duration::from_secs(45));
        assert_eq!(l.bootstrap, Duration::from_secs(300));
        assert_eq!(
            Limits::parse("TOR_SIGN_OF_LIFE=x\n").sign_of_life,
            Duration::from_secs(20)
        );
    }

    #[test]
    fn no_sign_of_life_or_a_stall_is_a_failure() {
        let limits = Limits {
            sign_of_life: Duration::from_secs(30),
            bootstrap: Duration::from_secs(300),
        };
        let s = Duration::from_secs;
        assert_eq!(failure(5, s(29), limits), None);
        let stuck = failure(2, s(30), limits).unwrap();
        assert!(stuck.contains("at 2%") && stuck.contains("30 s"), "{stuck}");
        // Past the sign of life, only the overall limit counts.
        assert_eq!(failure(50, s(200), limits), None);
        assert!(failure(50, s(300), limits).unwrap().contains("50%"));
        assert_eq!(failure(100, s(900), limits), None);
    }
}
