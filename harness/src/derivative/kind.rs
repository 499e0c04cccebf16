//! Kinds of derivative: how a derivative reaches the Internet.
//!
//! One feature suite serves every kind. The kind decides what the lab
//! starts for the guest (the private Tor network; bridges; a VPN server),
//! what the guest is told before Start (the lab's Tor network, bridge
//! lines, the VPN's endpoint and keys), what "online" means (Tor ready, the
//! VPN connected), and which policy judges its captures (only consensus
//! relays; only the configured bridges; only the VPN endpoint).
//!
//! How a run learns the kind, first answer wins: `tailor run --kind`, the
//! vm-config's `kind`, the file [`ISO_INFO_PATH`] inside the ISO (written by
//! `tailor build-iso`, so an ISO built here says what it is), else
//! [`Kind::Tor`] (a Tails-based ISO connects to Tor directly).
//!
//! Features and scenarios say which kinds they apply to with tags
//! `@kind-tor`, `@kind-bridges`, `@kind-vpn` (several may be given); one
//! without any `@kind-*` tag applies to every kind ([`applies`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a derivative reaches the Internet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Tor, connecting to the relays of the consensus directly.
    #[default]
    Tor,
    /// Tor through bridges (vanilla or a pluggable transport), never
    /// touching the public relays directly.
    Bridges,
    /// A VPN instead of Tor: everything goes through one tunnel endpoint.
    Vpn,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Tor, Kind::Bridges, Kind::Vpn];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Tor => "tor",
            Kind::Bridges => "bridges",
            Kind::Vpn => "vpn",
        }
    }

    /// The tag that marks a feature or scenario as applying to this kind.
    pub fn tag(self) -> String {
        format!("{TAG_PREFIX}{}", self.name())
    }

    /// Whether the derivative's network goes through Tor.
    pub fn uses_tor(self) -> bool {
        matches!(self, Kind::Tor | Kind::Bridges)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A kind name that is not one of [`Kind::ALL`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("expected a kind of derivative (tor, bridges or vpn), got {0:?}")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim())
            .ok_or_else(|| UnknownKind(s.into()))
    }
}

/// Tags (without `@`, as gherkin gives them) start with this.
const TAG_PREFIX: &str = "kind-";

/// The kinds a set of tags names, if any: `@kind-tor @kind-bridges` gives
/// both; tags that name no known kind are reported by [`unknown_kind_tags`].
pub fn kinds_in(tags: &[String]) -> Vec<Kind> {
    tags.iter()
        .filter_map(|t| t.trim_start_matches('@').strip_prefix(TAG_PREFIX))
        .filter_map(|name| name.parse().ok())
        .collect()
}

/// `@kind-*` tags that name no kind (a typo would otherwise make a
/// scenario apply to every kind, or to none).
pub fn unknown_kind_tags(tags: &[String]) -> Vec<String> {
    tags.iter()
        .filter(|t| {
            t.trim_start_matches('@')
                .strip_prefix(TAG_PREFIX)
                .is_some_and(|name| name.parse::<Kind>().is_err())
        })
        .cloned()
        .collect()
}

/// Whether a scenario applies to `kind`, given its tags and its feature's
/// (and rule's): the innermost level that names kinds decides; nothing
/// named anywhere means every kind.
pub fn applies(levels: &[&[String]], kind: Kind) -> bool {
    for tags in levels.iter().rev() {
        let kinds = kinds_in(tags);
        if !kinds.is_empty() {
            return kinds.contains(&kind);
        }
    }
    true
}

/// Where an ISO built by `tailor build-iso` says what it is.
pub const ISO_INFO_PATH: &str = "/tailor/derivative.toml";

/// What an ISO built here says of itself ([`ISO_INFO_PATH`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IsoInfo {
    pub kind: Kind,
    /// The customizations applied, by name.
    #[serde(default)]
    pub customizations: Vec<String>,
}

/// Errors reading an ISO's [`IsoInfo`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run xorriso to read {ISO_INFO_PATH} from {iso}")]
    Xorriso {
        iso: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{iso}: {ISO_INFO_PATH} is not what `tailor build-iso` writes: {detail}")]
    Malformed { iso: PathBuf, detail: String },
}

/// Read [`IsoInfo`] from an ISO; `Ok(None)` when the ISO has none (one not
/// built by `tailor build-iso`, such as a Tails-based ISO).
pub fn read_iso_info(iso: &Path) -> Result<Option<IsoInfo>, Error> {
    let dir = tempfile::tempdir().map_err(|source| Error::Xorriso {
        iso: iso.into(),
        source,
    })?;
    let out = dir.path().join("derivative.toml");
    let status = Command::new("xorriso")
        .args(["-osirrox", "on", "-indev"])
        .arg(iso)
        .args(["-extract", ISO_INFO_PATH])
        .arg(&out)
        .output()
        .map_err(|source| Error::Xorriso {
            iso: iso.into(),
            source,
        })?;
    // xorriso fails when the file is absent; that only means "no info".
    if !status.status.success() || !out.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&out).map_err(|e| Error::Malformed {
        iso: iso.into(),
        detail: e.to_string(),
    })?;
    toml::from_str(&text)
        .map(Some)
        .map_err(|e| Error::Malformed {
            iso: iso.into(),
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn kinds_parse_and_print() {
        for kind in Kind::ALL {
            assert_eq!(kind.name().parse::<Kind>().unwrap(), kind);
        }
        assert!("wireguard".parse::<Kind>().is_err());
        assert_eq!(Kind::Bridges.tag(), "kind-bridges");
    }

    #[test]
    fn the_innermost_level_naming_kinds_decides() {
        let feature = tags(&["lab", "kind-tor", "kind-bridges"]);
        let none = tags(&["lab"]);
        let vpn = tags(&["kind-vpn"]);
        assert!(applies(&[&feature, &none], Kind::Bridges));
        assert!(!applies(&[&feature, &none], Kind::Vpn));
        assert!(applies(&[&feature, &vpn], Kind::Vpn));
        assert!(!applies(&[&feature, &vpn], Kind::Tor));
        assert!(applies(&[&none, &none], Kind::Vpn));
    }

    #[test]
    fn a_misspelt_kind_tag_is_found() {
        assert_eq!(
            unknown_kind_tags(&tags(&["kind-brigdes", "kind-tor", "lab"])),
            ["kind-brigdes"]
        );
    }

    #[test]
    fn iso_info_round_trips_and_rejects_unknown_fields() {
        let info = IsoInfo {
            kind: Kind::Vpn,
            customizations: vec!["vpn".into()],
        };
        let text = toml::to_string(&info).unwrap();
        assert_eq!(toml::from_str::<IsoInfo>(&text).unwrap(), info);
        assert!(toml::from_str::<IsoInfo>("kind = \"tor\"\nflavour = 1\n").is_err());
    }
}
