//! torrc text for the lab's daemons and for clients, as pure functions of the
//! network's layout, so they can be checked without starting anything.
//!
//! The option set is what TOR-LAB-NOTES.md measured with tor 0.4.9: every
//! node shares `TestingTorNetwork 1` and the same `DirAuthority` lines; the
//! voting timings are the smallest tor accepts (it refuses a config where
//! VoteDelay + DistDelay is not below half the VotingInterval); authorities
//! vote every relay Guard/Exit/HSDir because a handful of relays on one
//! address would otherwise never earn those flags.

use std::net::Ipv4Addr;
use std::path::Path;

/// What a daemon does in the lab network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A v3 directory authority; it also relays (never as an exit).
    Authority,
    /// A middle relay (no exit).
    Relay,
    /// An exit relay: `ExitPolicy accept *:*`.
    Exit,
}

impl Role {
    /// The nickname prefix, so a log file or consensus line names its role.
    pub fn prefix(self) -> &'static str {
        match self {
            Role::Authority => "auth",
            Role::Relay => "relay",
            Role::Exit => "exit",
        }
    }
}

/// One daemon of the lab network, as laid out before it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub nickname: String,
    pub role: Role,
    pub address: Ipv4Addr,
    pub or_port: u16,
    /// Only authorities serve a DirPort (clients bootstrap from it).
    pub dir_port: Option<u16>,
}

/// What a `DirAuthority` line needs to know about one authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirAuthority {
    pub nickname: String,
    pub address: Ipv4Addr,
    pub or_port: u16,
    pub dir_port: u16,
    /// The v3 identity: the `fingerprint` line of `authority_certificate`.
    pub v3ident: String,
    /// The relay identity fingerprint (40 hex digits, no spaces).
    pub fingerprint: String,
}

impl DirAuthority {
    /// `DirAuthority NICK orport=ORPORT no-v2 v3ident=V3IDENT IP:DIRPORT FINGERPRINT`
    pub fn line(&self) -> String {
        format!(
            "DirAuthority {} orport={} no-v2 v3ident={} {}:{} {}",
            self.nickname,
            self.or_port,
            self.v3ident,
            self.address,
            self.dir_port,
            self.fingerprint
        )
    }
}

/// Voting timings that converge within seconds (see TOR-LAB-NOTES.md).
const TIMINGS: &[&str] = &[
    "TestingV3AuthInitialVotingInterval 5",
    "TestingV3AuthInitialVoteDelay 2",
    "TestingV3AuthInitialDistDelay 2",
    "V3AuthVotingInterval 20",
    "V3AuthVoteDelay 4",
    "V3AuthDistDelay 4",
];

/// The lines every client of the lab network needs (the guest's tor, a test
/// client): the authorities, testing mode, and permission to reach the lab's
/// private addresses through Tor.
pub fn client_lines(authorities: &[DirAuthority]) -> Vec<String> {
    let mut lines = vec![
        "TestingTorNetwork 1".to_owned(),
        "ClientRejectInternalAddresses 0".to_owned(),
        "ClientDNSRejectInternalAddresses 0".to_owned(),
    ];
    lines.extend(authorities.iter().map(DirAuthority::line));
    lines
}

/// The full torrc of one lab daemon.
pub fn daemon_torrc(node: &Node, data_dir: &Path, authorities: &[DirAuthority]) -> String {
    let mut t = String::new();
    let mut line = |s: &str| {
        t.push_str(s);
        t.push('\n');
    };
    line("# Written by Tailor (harness::tor) for a private lab network.");
    for l in client_lines(authorities) {
        line(&l);
    }
    line(&format!("Nickname {}", node.nickname));
    line(&format!("DataDirectory {}", data_dir.display()));
    line(&format!("Address {}", node.address));
    line(&format!("ORPort {}:{}", node.address, node.or_port));
    line("SocksPort 0");
    line("RunAsDaemon 0");
    if node.role != Role::Exit {
        line("Log notice stdout");
    }
    line("SafeLogging 0");
    line("ContactInfo tailor-lab@localhost");
    // A relay waits 30 s for circuits to drain on SIGTERM by default; the
    // lab must be gone before the next network reuses its ports.
    line("ShutdownWaitLength 0");
    line("AssumeReachable 1");
    for l in TIMINGS {
        line(l);
    }
    match node.role {
        Role::Authority => {
            line("AuthoritativeDirectory 1");
            line("V3AuthoritativeDirectory 1");
            if let Some(port) = node.dir_port {
                line(&format!("DirPort {}:{}", node.address, port));
            }
            line("TestingDirAuthVoteExit *");
            line("TestingDirAuthVoteGuard *");
            line("TestingDirAuthVoteHSDir *");
            line("TestingMinExitFlagThreshold 0");
            line("ExitRelay 0");
            line("ExitPolicy reject *:*");
        }
        Role::Relay => {
            line("ExitRelay 0");
            line("ExitPolicy reject *:*");
        }
        Role::Exit => {
            // An exit that accepts only private addresses is summarized as
            // rejecting everything and clients never find an exit; accepting
            // everything is safe only because the lab has no route out,
            // which Network::start checks before any exit starts.
            line("ExitRelay 1");
            line("ExitPolicy accept *:*");
            line("ExitPolicyRejectPrivate 0");
            // Exit traffic leaves from the relays' address, so the web
            // server's log tells a request through Tor from a direct one.
            line(&format!("OutboundBindAddressExit {}", node.address));
            // Why a stream was refused (exit policy, connect error) is
            // logged at info in the edge domain.
            line("Log [edge]info notice stdout");
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auths() -> Vec<DirAuthority> {
        (0..3)
            .map(|i| DirAuthority {
                nickname: format!("auth{i}"),
                address: Ipv4Addr::new(10, 203, 0, 1),
                or_port: 5000 + i,
                dir_port: 7000 + i,
                v3ident: format!("{:040X}", i + 1),
                fingerprint: format!("{:040X}", i + 100),
            })
            .collect()
    }

    #[test]
    fn dir_authority_line_has_the_measured_shape() {
        assert_eq!(
            auths()[1].line(),
            "DirAuthority auth1 orport=5001 no-v2 \
             v3ident=0000000000000000000000000000000000000002 \
             10.203.0.1:7001 0000000000000000000000000000000000000065"
        );
    }

    #[test]
    fn client_lines_name_every_authority_and_testing_mode() {
        let lines = client_lines(&auths());
        assert_eq!(lines[0], "TestingTorNetwork 1");
        assert!(lines.contains(&"ClientRejectInternalAddresses 0".to_owned()));
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("DirAuthority "))
                .count(),
            3
        );
    }

    fn node(role: Role) -> Node {
        Node {
            nickname: format!("{}0", role.prefix()),
            role,
            address: Ipv4Addr::new(10, 203, 0, 1),
            or_port: 5005,
            dir_port: (role == Role::Authority).then_some(7005),
        }
    }

    #[test]
    fn exit_accepts_everything_and_binds_outbound_to_the_relay_address() {
        let t = daemon_torrc(&node(Role::Exit), Path::new("/run/x"), &auths());
        for want in [
            "ExitRelay 1",
            "ExitPolicy accept *:*",
            "ExitPolicyRejectPrivate 0",
            "OutboundBindAddressExit 10.203.0.1",
            "ORPort 10.203.0.1:5005",
            "DataDirectory /run/x",
            "ShutdownWaitLength 0",
            "AssumeReachable 1",
        ] {
            assert!(t.lines().any(|l| l == want), "missing {want:?} in\n{t}");
        }
        assert!(!t.contains("AuthoritativeDirectory"), "{t}");
        assert!(!t.contains("DirPort"), "{t}");
    }

    #[test]
    fn authority_votes_flags_and_serves_a_dirport_but_no_exit() {
        let t = daemon_torrc(&node(Role::Authority), Path::new("/d"), &auths());
        for want in [
            "V3AuthoritativeDirectory 1",
            "DirPort 10.203.0.1:7005",
            "TestingDirAuthVoteExit *",
            "TestingDirAuthVoteGuard *",
            "TestingMinExitFlagThreshold 0",
            "ExitPolicy reject *:*",
            "V3AuthVotingInterval 20",
        ] {
            assert!(t.lines().any(|l| l == want), "missing {want:?} in\n{t}");
        }
    }

    #[test]
    fn middle_relay_is_no_exit() {
        let t = daemon_torrc(&node(Role::Relay), Path::new("/d"), &auths());
        assert!(t.lines().any(|l| l == "ExitPolicy reject *:*"), "{t}");
        assert!(t.lines().any(|l| l == "ExitRelay 0"), "{t}");
        assert!(!t.contains("accept *:*"), "{t}");
    }

    #[test]
    fn voting_delays_fit_in_half_the_interval() {
        // tor refuses VoteDelay + DistDelay >= VotingInterval / 2, and the
        // initial delays adding up to the initial interval.
        let value = |name: &str| -> u32 {
            TIMINGS
                .iter()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
                .unwrap()
        };
        assert!(
            value("V3AuthVoteDelay ") + value("V3AuthDistDelay ")
                < value("V3AuthVotingInterval ") / 2
        );
        assert!(
            value("TestingV3AuthInitialVoteDelay ") + value("TestingV3AuthInitialDistDelay ")
                < value("TestingV3AuthInitialVotingInterval ")
        );
    }
}
