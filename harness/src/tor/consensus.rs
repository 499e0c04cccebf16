//! The parts of a v3 network-status consensus (the "ns" flavour an authority
//! keeps in `DATADIR/cached-consensus`) that the lab needs: which relays it
//! lists, where they listen, and their flags. The traffic policy's allow-list
//! is built from this, not from the lab's own configuration, so a relay that
//! never made it into the consensus is not allowed either.

use std::net::Ipv4Addr;

/// One `r` entry of a consensus with its `s` (flags) and `p` (exit policy
/// summary) lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    pub nickname: String,
    /// The relay identity, 40 upper-case hex digits (as in `fingerprint`).
    pub fingerprint: String,
    pub address: Ipv4Addr,
    pub or_port: u16,
    /// `None` when the consensus says 0 (no DirPort).
    pub dir_port: Option<u16>,
    pub flags: Vec<String>,
    /// The `p` line, e.g. `accept 1-65535`.
    pub exit_policy: Option<String>,
}

impl Relay {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }
}

/// A parsed consensus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consensus {
    /// The `valid-after` time as written (`YYYY-MM-DD HH:MM:SS`, UTC).
    pub valid_after: String,
    pub relays: Vec<Relay>,
}

/// Why a text is not a consensus Tailor can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("expected a consensus starting with `network-status-version 3`, saw {first_line:?}")]
    NotAConsensus { first_line: String },
    #[error("expected `vote-status consensus`, saw {seen:?} (a vote, not a consensus)")]
    NotConsensusStatus { seen: String },
    #[error("line {line_no}: expected {expected}, saw {line:?}")]
    BadLine {
        line_no: usize,
        expected: &'static str,
        line: String,
    },
    #[error("expected a `valid-after` line; the consensus has none")]
    NoValidAfter,
}

impl Consensus {
    /// Parse consensus text. Unknown lines are skipped (the format grows);
    /// malformed `r`, `s` or `p` lines are errors, never panics.
    pub fn parse(text: &str) -> Result<Consensus, ParseError> {
        let mut lines = text.lines().enumerate();
        let first = lines.next().map(|(_, l)| l).unwrap_or_default();
        if first.trim() != "network-status-version 3" {
            return Err(ParseError::NotAConsensus {
                first_line: first.to_owned(),
            });
        }
        let mut valid_after = None;
        let mut relays: Vec<Relay> = Vec::new();
        for (i, line) in lines {
            let line_no = i + 1;
            let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
            let bad = |expected| ParseError::BadLine {
                line_no,
                expected,
                line: line.to_owned(),
            };
            match keyword {
                "vote-status" if rest != "consensus" => {
                    return Err(ParseError::NotConsensusStatus {
                        seen: rest.to_owned(),
                    })
                }
                "valid-after" => valid_after = Some(rest.to_owned()),
                "r" => relays.push(parse_r(rest).ok_or_else(|| {
                    bad("`r NICKNAME IDENTITY DIGEST DATE TIME IPV4 ORPORT DIRPORT`")
                })?),
                "s" => {
                    let relay = relays
                        .last_mut()
                        .ok_or_else(|| bad("an `s` line after an `r` line"))?;
                    relay.flags = rest.split_whitespace().map(str::to_owned).collect();
                }
                "p" => {
                    let relay = relays
                        .last_mut()
                        .ok_or_else(|| bad("a `p` line after an `r` line"))?;
                    relay.exit_policy = Some(rest.to_owned());
                }
                // Signatures follow the footer; nothing there lists relays.
                "directory-footer" => break,
                _ => {}
            }
        }
        Ok(Consensus {
            valid_after: valid_after.ok_or(ParseError::NoValidAfter)?,
            relays,
        })
    }

    pub fn relay(&self, fingerprint: &str) -> Option<&Relay> {
        self.relays
            .iter()
            .find(|r| r.fingerprint.eq_ignore_ascii_case(fingerprint))
    }
}

/// `NICKNAME IDENTITY DIGEST DATE TIME IP ORPORT DIRPORT`
fn parse_r(rest: &str) -> Option<Relay> {
    let f: Vec<&str> = rest.split_whitespace().collect();
    let [nickname, identity, _digest, _date, _time, ip, or_port, dir_port] = f[..] else {
        return None;
    };
    let id = base64_decode(identity)?;
    if id.len() != 20 {
        return None;
    }
    let dir_port: u16 = dir_port.parse().ok()?;
    Some(Relay {
        nickname: nickname.to_owned(),
        fingerprint: id.iter().map(|b| format!("{b:02X}")).collect(),
        address: ip.parse().ok()?,
        or_port: or_port.parse().ok()?,
        dir_port: (dir_port != 0).then_some(dir_port),
        flags: Vec::new(),
        exit_policy: None,
    })
}

/// Standard base64 with or without padding, as tor writes identities.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{general_purpose, DecodePaddingMode, GeneralPurpose};
    use base64::Engine as _;
    const TOR: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        general_purpose::NO_PAD.with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    TOR.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shaped like tor 0.4.9's cached-consensus, cut down.
    const SAMPLE: &str = "\
network-status-version 3
vote-status consensus
consensus-method 34
valid-after 2026-11-25 08:40:00
fresh-until 2026-11-25 08:40:20
valid-until 2026-11-25 08:41:00
known-flags Authority Exit Fast Guard HSDir Running Stable V2Dir Valid
dir-source auth0 4E39B8A99656FA6C9EFA4462A3AF68AE15840E3A 10.203.0.1 10.203.0.1 7000 5000
r auth0 A2gs5GT/8mdTA0/fYHrcoApINRs 3qgSmF0c1mUsqsB2y7wB6m4vTkk 2026-11-25 08:39:58 10.203.0.1 5000 7000
s Authority Fast Guard HSDir Running Stable V2Dir Valid
v Tor 0.4.9.11
w Bandwidth=0 Unmeasured=1
p reject 1-65535
r exit0 AAECAwQFBgcICQoLDA0ODxAREhM 3qgSmF0c1mUsqsB2y7wB6m4vTkk 2026-11-25 08:39:59 10.203.0.1 5010 0
s Exit Fast Guard Running Valid
p accept 1-65535
directory-footer
bandwidth-weights Wbd=0
r fake AAECAwQFBgcICQoLDA0ODxAREhM x 2026-11-25 08:39:59 10.203.0.9 1 0
";

    #[test]
    fn lists_relays_with_addresses_flags_and_policy() {
        let c = Consensus::parse(SAMPLE).unwrap();
        assert_eq!(c.valid_after, "2026-11-25 08:40:00");
        assert_eq!(c.relays.len(), 2, "nothing after the footer counts");
        let a = &c.relays[0];
        assert_eq!(a.nickname, "auth0");
        assert_eq!(a.fingerprint, "03682CE464FFF26753034FDF607ADCA00A48351B");
        assert_eq!(a.address, Ipv4Addr::new(10, 203, 0, 1));
        assert_eq!((a.or_port, a.dir_port), (5000, Some(7000)));
        assert!(a.has_flag("Authority") && !a.has_flag("Exit"));
        let e = c.relay("000102030405060708090a0b0c0d0e0f10111213").unwrap();
        assert_eq!((e.or_port, e.dir_port), (5010, None));
        assert!(e.has_flag("Exit"));
        assert_eq!(e.exit_policy.as_deref(), Some("accept 1-65535"));
    }

    #[test]
    fn rejects_what_is_not_a_consensus() {
        assert!(matches!(
            Consensus::parse("<html>404</html>"),
            Err(ParseError::NotAConsensus { .. })
        ));
        assert!(matches!(
            Consensus::parse(""),
            Err(ParseError::NotAConsensus { .. })
        ));
        let vote = SAMPLE.replace("vote-status consensus", "vote-status vote");
        assert!(matches!(
            Consensus::parse(&vote),
            Err(ParseError::NotConsensusStatus { .. })
        ));
        let no_time = SAMPLE.replace("valid-after", "xvalid-after");
        assert_eq!(Consensus::parse(&no_time), Err(ParseError::NoValidAfter));
    }

    #[test]
    fn malformed_lines_are_errors_not_panics() {
        for (from, to) in [
            ("10.203.0.1 5000 7000", "10.203.0.1 5000"),
            ("10.203.0.1 5000 7000", "10.203.0.300 5000 7000"),
            ("10.203.0.1 5000 7000", "10.203.0.1 70000 7000"),
            ("A2gs5GT/8mdTA0/fYHrcoApINRs", "A2gs5GT/8mdTA0"),
            ("A2gs5GT/8mdTA0/fYHrcoApINRs", "A2gs5GT/8mdTA0/fYHrcoApIN!s"),
        ] {
            let text = SAMPLE.replacen(from, to, 1);
            match Consensus::parse(&text) {
                Err(ParseError::BadLine { line_no: 9, .. }) => {}
                other => panic!("{to}: {other:?}"),
            }
        }
        let orphan = "network-status-version 3\ns Running\n";
        assert!(matches!(
            Consensus::parse(orphan),
            Err(ParseError::BadLine { line_no: 2, .. })
        ));
    }

    #[test]
    fn base64_decodes_with_and_without_padding() {
        assert_eq!(base64_decode("TWFu").unwrap(), b"Man");
        assert_eq!(base64_decode("TWE").unwrap(), b"Ma");
        assert_eq!(base64_decode("TWE=").unwrap(), b"Ma");
        assert!(base64_decode("T").is_none(), "a lone character is no byte");
        assert!(base64_decode("T*").is_none());
    }
}
