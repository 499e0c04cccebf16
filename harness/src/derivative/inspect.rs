//! Reading the running derivative's state through its guest agent: the
//! firewall (ruleset and named counters) and the logs worth keeping when a
//! scenario fails.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::guest::{self, Guest};

/// The firewall's table, as `firewall.nft` names it.
pub const FIREWALL_TABLE: &str = "inet tailor";

/// What the guest's logs are made of: a file name in the artifacts and the
/// shell command that produces it.
pub const GUEST_LOGS: &[(&str, &str)] = &[
    ("tor-notices.log", "cat /var/log/tor/notices.log"),
    ("firewall-counters.txt", "nft list counters"),
    ("firewall-ruleset.nft", "nft list ruleset"),
    ("start-status.txt", "cat /run/tailor/status"),
    ("network.txt", "ip addr; ip route; ip -6 route"),
    ("dmesg.txt", "dmesg | tail -n 200"),
    ("customizations.txt", "cat /etc/tailor/customizations"),
    // The VPN variant's client: its state and the tunnel's handshakes.
    (
        "vpn.txt",
        "cat /run/tailor/vpn-state 2>/dev/null || echo 'no VPN state'; wg show 2>/dev/null; true",
    ),
    ("processes.txt", "ps"),
];

/// One named nft counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// The firewall at one moment: its rules (without counter values, so two
/// snapshots compare equal when the rules did) and its named counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallState {
    pub ruleset: String,
    pub counters: BTreeMap<String, Counter>,
}

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("cannot read the firewall through the guest agent")]
    Guest(#[from] guest::Error),
    #[error("`{command}` in the guest failed (exit {code:?}): {stderr}")]
    Command {
        command: String,
        code: Option<i32>,
        stderr: String,
    },
}

async fn run(guest: &Guest, command: &str, timeout: Duration) -> Result<String, InspectError> {
    let out = guest.exec(command, timeout).await?;
    if !out.success() {
        return Err(InspectError::Command {
            command: command.to_owned(),
            code: out.exit_code,
            stderr: out.stderr.trim().to_owned(),
        });
    }
    Ok(out.stdout)
}

/// Read the firewall's rules (`nft -s`: stateless, no counter values) and
/// counters.
pub async fn firewall(guest: &Guest) -> Result<FirewallState, InspectError> {
    let timeout = crate::wait::scaled(Duration::from_secs(20));
    let ruleset = run(guest, "nft -s list ruleset", timeout).await?;
    let counters = run(
        guest,
        &format!("nft list counters table {FIREWALL_TABLE}"),
        timeout,
    )
    .await?;
    Ok(FirewallState {
        ruleset,
        counters: parse_counters(&counters),
    })
}

/// `nft list counters` output: `counter NAME {` then `packets N bytes M`.
pub fn parse_counters(text: &str) -> BTreeMap<String, Counter> {
    let mut counters = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["counter", name, "{", ..] => current = Some((*name).to_owned()),
            ["packets", packets, "bytes", bytes, ..] => {
                if let (Some(name), Ok(packets), Ok(bytes)) =
                    (current.take(), packets.parse(), bytes.parse())
                {
                    counters.insert(name, Counter { packets, bytes });
                }
            }
            _ => {}
        }
    }
    counters
}

/// Save [`GUEST_LOGS`] into `dir`, each command's output (or why it has
/// none) in its file. Returns what could not be saved; a guest whose agent
/// does not answer within `agent_timeout` gets one note instead.
pub async fn save_guest_logs(guest: &Guest, dir: &Path, agent_timeout: Duration) -> Vec<String> {
    let mut problems = Vec::new();
    if let Err(e) = std::fs::create_dir_all(dir) {
        return vec![format!("cannot create {}: {e}", dir.display())];
    }
    if let Err(e) = guest.wait_ready(agent_timeout).await {
        let note = format!("no guest logs: the guest agent did not answer ({e})\n");
        let _ = std::fs::write(dir.join("NO-GUEST-AGENT.txt"), &note);
        return vec![note];
    }
    for (file, command) in GUEST_LOGS {
        let text = match guest.exec(command, Duration::from_secs(10)).await {
            Ok(out) => {
                let failed = !out.success();
                let mut text = out.stdout;
                if failed {
                    text.push_str(&format!(
                        "\n[`{command}` exited {:?}: {}]\n",
                        out.exit_code,
                        out.stderr.trim()
                    ));
                }
                text
            }
            Err(e) => {
                problems.push(format!("{file}: {e}"));
                format!("[`{command}` could not run: {e}]\n")
            }
        };
        if let Err(e) = std::fs::write(dir.join(file), text) {
            problems.push(format!("{file}: {e}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_from_nft_output() {
        let text = "table inet tailor {\n\tcounter rejected_output {\n\t\tpackets 3 bytes 180\n\t}\n\tcounter dropped_ipv6 {\n\t\tpackets 0 bytes 0\n\t}\n}\n";
        let c = parse_counters(text);
        assert_eq!(
            c.get("rejected_output"),
            Some(&Counter {
                packets: 3,
                bytes: 180
            })
        );
        assert_eq!(c.get("dropped_ipv6"), Some(&Counter::default()));
        assert_eq!(c.len(), 2);
        assert!(parse_counters("garbage\npackets x bytes y\n").is_empty());
    }
}
