//! Bridge lines, as a person pastes them into Tor and a derivative ships
//! them: `[TRANSPORT] IP:PORT [FINGERPRINT] [KEY=VALUE ...]`, optionally
//! after the torrc keyword `Bridge`.
//!
//! One type serves the lab (the lines of its bridges), customizations (the
//! lines a derivative ships, checked before an ISO is built) and the
//! traffic policy ([`BridgeLine::endpoint`]: a vanilla bridge is reached
//! like a relay, TCP that opens with TLS, at its ORPort; a pluggable
//! transport's bytes look random, so any TCP at the transport's port).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

/// The transports the lab and the reference derivative can stand behind:
/// obfs4 (Debian's `obfs4proxy` on both sides). Snowflake, meek and
/// webtunnel need servers Debian does not package (see the README).
pub const SUPPORTED_TRANSPORTS: [&str; 1] = ["obfs4"];

/// One bridge: how to reach it and what its transport needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BridgeLine {
    /// `None` for a vanilla bridge (plain Tor at its ORPort).
    pub transport: Option<String>,
    pub addr: SocketAddr,
    /// The bridge's identity fingerprint: 40 upper-case hex digits.
    pub fingerprint: Option<String>,
    /// The transport's arguments, in order (`cert=...`, `iat-mode=0`).
    pub args: Vec<(String, String)>,
}

/// A bridge line that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected a bridge line `[TRANSPORT] IP:PORT [FINGERPRINT] [KEY=VALUE ...]`, got {line:?}: {problem}")]
pub struct BridgeLineError {
    pub line: String,
    pub problem: String,
}

impl BridgeLine {
    /// A vanilla bridge: plain Tor at `addr`.
    pub fn vanilla(addr: SocketAddr, fingerprint: &str) -> Self {
        BridgeLine {
            transport: None,
            addr,
            fingerprint: Some(fingerprint.to_ascii_uppercase()),
            args: Vec::new(),
        }
    }

    /// The transport's name, `"vanilla"` for none.
    pub fn transport_name(&self) -> &str {
        self.transport.as_deref().unwrap_or("vanilla")
    }

    pub fn is_vanilla(&self) -> bool {
        self.transport.is_none()
    }

    /// The value of argument `key` (`cert`, `iat-mode`).
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The same bridge with argument `key` set to `value`.
    pub fn with_arg(mut self, key: &str, value: &str) -> Self {
        match self.args.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_owned(),
            None => self.args.push((key.to_owned(), value.to_owned())),
        }
        self
    }

    /// The torrc line: `Bridge ...`.
    pub fn torrc_line(&self) -> String {
        format!("Bridge {self}")
    }

    /// Whether a client reaches this bridge with Tor's own TLS (a vanilla
    /// bridge) rather than through a pluggable transport.
    pub fn speaks_tor_tls(&self) -> bool {
        self.is_vanilla()
    }
}

impl fmt::Display for BridgeLine {
    /// Without the `Bridge` keyword, as Tor Browser and Tails show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.transport {
            write!(f, "{t} ")?;
        }
        write!(f, "{}", self.addr)?;
        if let Some(fp) = &self.fingerprint {
            write!(f, " {fp}")?;
        }
        for (k, v) in &self.args {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

fn is_transport_name(s: &str) -> bool {
    // tor accepts C identifiers as transport names.
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl FromStr for BridgeLine {
    type Err = BridgeLineError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let err = |problem: &str| BridgeLineError {
            line: line.to_owned(),
            problem: problem.to_owned(),
        };
        let mut words = line.split_whitespace().peekable();
        if words
            .peek()
            .is_some_and(|w| w.eq_ignore_ascii_case("bridge"))
        {
            words.next();
        }
        let first = words.next().ok_or_else(|| err("it is empty"))?;
        let (transport, addr_word) = match first.parse::<SocketAddr>() {
            Ok(_) => (None, first),
            Err(_) if is_transport_name(first) => (
                Some(first.to_owned()),
                words
                    .next()
                    .ok_or_else(|| err("the transport is not followed by IP:PORT"))?,
            ),
            Err(_) => return Err(err("it starts with neither a transport name nor IP:PORT")),
        };
        let addr: SocketAddr = addr_word
            .parse()
            .map_err(|_| err(&format!("{addr_word:?} is not IP:PORT")))?;
        if addr.port() == 0 {
            return Err(err("port 0 cannot be reached"));
        }
        let mut fingerprint = None;
        let mut args = Vec::new();
        for word in words {
            match word.split_once('=') {
                Some((k, v)) if !k.is_empty() => args.push((k.to_owned(), v.to_owned())),
                Some(_) => return Err(err(&format!("{word:?} has no key"))),
                None if fingerprint.is_none() && args.is_empty() => {
                    if word.len() != 40 || !word.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(err(&format!(
                            "{word:?} is not a fingerprint (40 hex digits)"
                        )));
                    }
                    fingerprint = Some(word.to_ascii_uppercase());
                }
                None => {
                    return Err(err(&format!(
                        "{word:?} is neither KEY=VALUE nor a fingerprint in its place"
                    )))
                }
            }
        }
        if transport.is_none() && !args.is_empty() {
            return Err(err("a vanilla bridge takes no KEY=VALUE arguments"));
        }
        if transport.as_deref() == Some("obfs4") {
            if fingerprint.is_none() {
                return Err(err("an obfs4 bridge needs its fingerprint"));
            }
            if !args.iter().any(|(k, _)| k == "cert") {
                return Err(err("an obfs4 bridge needs its cert=..."));
            }
        }
        Ok(BridgeLine {
            transport,
            addr,
            fingerprint,
            args,
        })
    }
}

/// The torrc lines that make a client use `bridges` (and nothing else):
/// `UseBridges 1`, one `Bridge` line each, and the client side of each
/// transport they use, from `plugin` (transport name -> executable).
pub fn client_lines<'a>(
    bridges: impl IntoIterator<Item = &'a BridgeLine>,
    plugin: impl Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut lines = vec!["UseBridges 1".to_owned()];
    let mut transports: Vec<&str> = Vec::new();
    for b in bridges {
        lines.push(b.torrc_line());
        if let Some(t) = b.transport.as_deref() {
            if !transports.contains(&t) {
                transports.push(t);
            }
        }
    }
    for t in transports {
        if let Some(exe) = plugin(t) {
            lines.push(format!("ClientTransportPlugin {t} exec {exe}"));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBFS4: &str = "obfs4 10.203.0.1:6101 82276CAEBBB8B7873279163E1DC803A51D62CCAB \
        cert=WRnV1r2T8Q4izYX/HfSv1B9whMIK9OHMH13j9E9jUfiY9kwQxeXiMAC/2V5DI5a7xXzXeg iat-mode=0";

    #[test]
    fn obfs4_lines_round_trip_with_or_without_the_keyword() {
        let line: BridgeLine = OBFS4.parse().unwrap();
        assert_eq!(line.transport.as_deref(), Some("obfs4"));
        assert_eq!(line.addr, "10.203.0.1:6101".parse().unwrap());
        assert_eq!(line.arg("iat-mode"), Some("0"));
        assert_eq!(line.to_string(), OBFS4);
        assert_eq!(line.torrc_line(), format!("Bridge {OBFS4}"));
        let again: BridgeLine = format!("Bridge {OBFS4}").parse().unwrap();
        assert_eq!(again, line);
        assert!(!line.speaks_tor_tls());
    }

    #[test]
    fn vanilla_lines_are_an_address_and_maybe_a_fingerprint() {
        let line: BridgeLine = "10.203.0.1:6000 82276caebbb8b7873279163e1dc803a51d62ccab"
            .parse()
            .unwrap();
        assert!(line.is_vanilla() && line.speaks_tor_tls());
        assert_eq!(
            line.fingerprint.as_deref(),
            Some("82276CAEBBB8B7873279163E1DC803A51D62CCAB")
        );
        assert_eq!(line.transport_name(), "vanilla");
        let bare: BridgeLine = "[2001:db8::1]:443".parse().unwrap();
        assert_eq!(bare.to_string(), "[2001:db8::1]:443");
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        for (text, problem) in [
            ("", "empty"),
            ("obfs4", "not followed by IP:PORT"),
            ("obfs4 10.0.0.1 AAAA", "is not IP:PORT"),
            ("10.0.0.1:0", "port 0"),
            ("10.0.0.1:443 ABC", "not a fingerprint"),
            ("10.0.0.1:443 cert=x", "vanilla bridge takes no"),
            ("obfs4 10.0.0.1:443 cert=x", "needs its fingerprint"),
            (
                "obfs4 10.0.0.1:443 82276CAEBBB8B7873279163E1DC803A51D62CCAB iat-mode=0",
                "needs its cert",
            ),
            ("-x 10.0.0.1:443", "neither a transport name"),
        ] {
            let err = text.parse::<BridgeLine>().unwrap_err();
            assert!(err.to_string().contains(problem), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_wrong_certificate_is_one_argument_changed() {
        let line: BridgeLine = OBFS4.parse().unwrap();
        let wrong = line.clone().with_arg("cert", "AAAA");
        assert_eq!(wrong.arg("cert"), Some("AAAA"));
        assert_eq!(wrong.args.len(), line.args.len());
    }

    #[test]
    fn client_lines_name_each_transport_once() {
        let a: BridgeLine = OBFS4.parse().unwrap();
        let b = BridgeLine {
            addr: "10.203.0.1:6102".parse().unwrap(),
            ..a.clone()
        };
        let v: BridgeLine = "10.203.0.1:6000".parse().unwrap();
        let lines = client_lines([&a, &b, &v], |t| {
            (t == "obfs4").then(|| "/usr/bin/obfs4proxy".to_owned())
        });
        assert_eq!(lines[0], "UseBridges 1");
        assert_eq!(lines.iter().filter(|l| l.starts_with("Bridge ")).count(), 3);
        assert_eq!(
            lines.last().unwrap(),
            "ClientTransportPlugin obfs4 exec /usr/bin/obfs4proxy"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("ClientTransportPlugin"))
                .count(),
            1
        );
    }
}
