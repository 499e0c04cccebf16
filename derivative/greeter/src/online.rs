//! What "online" means for this derivative, and how far along it is.
//!
//! The reference derivative goes online through Tor: the progress screen
//! follows tor's bootstrap in its log until "Tor is ready". The VPN variant
//! (`KIND=vpn` in `/etc/tailor/settings`) goes online through its VPN
//! client instead, which writes its state to `/run/tailor/vpn-state`
//! (`state=connecting|connected|reconnecting|unconfigured`); the screen
//! says "VPN is connected" while the tunnel is up, and follows it when it
//! goes down and comes back.

const SETTINGS: &str = "/etc/tailor/settings";
const TOR_LOG: &str = "/var/log/tor/notices.log";
const TOR_READY: &str = "/run/tailor/tor-ready";
const VPN_STATE: &str = "/run/tailor/vpn-state";

/// How the derivative reaches the Internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Tor,
    Vpn,
}

/// Where the network stands, as the progress screen shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// How full the bar is.
    pub percent: u32,
    /// Online: the bar turns green and `text` is shown large.
    pub ready: bool,
    /// The line under the bar.
    pub text: String,
}

impl Network {
    /// The kind this system was built as: the last `KIND=` line of the
    /// settings (customizations append theirs), else Tor.
    pub fn of_this_system() -> Network {
        Self::from_settings(&std::fs::read_to_string(SETTINGS).unwrap_or_default())
    }

    fn from_settings(text: &str) -> Network {
        let kind = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("KIND="))
            .filter_map(|v| v.split_whitespace().next())
            .next_back();
        match kind {
            Some("vpn") => Network::Vpn,
            _ => Network::Tor,
        }
    }

    /// Where it stands now.
    pub fn progress(self) -> Progress {
        match self {
            Network::Tor => {
                let log = std::fs::read_to_string(TOR_LOG).unwrap_or_default();
                tor_progress(bootstrap_percent(&log).unwrap_or(0))
            }
            Network::Vpn => vpn_progress(&std::fs::read_to_string(VPN_STATE).unwrap_or_default()),
        }
    }

    /// Whether the screen keeps following the network once it is ready:
    /// a VPN tunnel can go down and come back; Tor's bootstrap is done once.
    pub fn keeps_watching(self) -> bool {
        self == Network::Vpn
    }

    /// Done when the screen first shows the network ready: the file the
    /// harness and other programs may look for (Tor only; the VPN client
    /// keeps its own state file).
    pub fn on_ready(self) {
        if self == Network::Tor {
            let _ = std::fs::write(TOR_READY, "");
        }
    }

    /// The sample the `--snapshot` option draws for `which`.
    pub fn sample(self, ready: bool) -> Progress {
        match (self, ready) {
            (Network::Tor, true) => tor_progress(100),
            (Network::Tor, false) => tor_progress(45),
            (Network::Vpn, true) => vpn_progress("state=connected\n"),
            (Network::Vpn, false) => vpn_progress("state=connecting\n"),
        }
    }
}

fn tor_progress(percent: u32) -> Progress {
    let ready = percent >= 100;
    Progress {
        percent,
        ready,
        text: if ready {
            "Tor is ready".into()
        } else {
            format!("Connecting to Tor: {percent}%")
        },
    }
}

/// The VPN client's state file, shown.
pub fn vpn_progress(state_file: &str) -> Progress {
    let state = state_file
        .lines()
        .find_map(|l| l.strip_prefix("state="))
        .unwrap_or("connecting");
    let (percent, ready, text) = match state {
        "connected" => (100, true, "VPN is connected"),
        "reconnecting" => (50, false, "VPN connection lost, reconnecting"),
        "unconfigured" => (0, false, "No VPN configuration: offline"),
        _ => (50, false, "Connecting to the VPN"),
    };
    Progress {
        percent,
        ready,
        text: text.into(),
    }
}

/// The last "Bootstrapped N%" in tor's log.
pub fn bootstrap_percent(log: &str) -> Option<u32> {
    log.lines().rev().find_map(|line| {
        let rest = line.split("Bootstrapped ").nth(1)?;
        rest.split('%').next()?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_last_bootstrap_percent() {
        let log = "[notice] Bootstrapped 5% (conn): x\n[notice] Bootstrapped 100% (done): Done\n";
        assert_eq!(bootstrap_percent(log), Some(100));
        assert_eq!(bootstrap_percent("nothing"), None);
    }

    #[test]
    fn the_last_kind_in_the_settings_wins() {
        let settings = "KIND=tor\nMAC_SPOOF=1\nKIND=vpn  # customization vpn\n";
        assert_eq!(Network::from_settings(settings), Network::Vpn);
        assert_eq!(Network::from_settings("KIND=tor\n"), Network::Tor);
        assert_eq!(Network::from_settings(""), Network::Tor);
    }

    #[test]
    fn vpn_states_are_shown() {
        let connected = vpn_progress("state=connected\nlocal=10.203.0.57:40000\n");
        assert!(connected.ready);
        assert_eq!(connected.text, "VPN is connected");
        let lost = vpn_progress("state=reconnecting\n");
        assert!(!lost.ready);
        assert!(lost.text.contains("lost"), "{lost:?}");
        assert!(!vpn_progress("").ready, "no state yet is not connected");
    }
}
