//! Customization files: what a derivative changes in the reference image.
//!
//! A customization is a TOML file (see `derivative/customizations/`):
//!
//! ```toml
//! name = "example"                 # [a-z0-9-], used in file names in the image
//! description = "what and why"
//! kind = "tor"                     # tor | bridges | vpn (see derivative::kind); default tor
//! packages = ["curl"]              # extra Debian packages, unpacked into the image
//! modules = ["wireguard"]          # extra kernel modules, loaded at boot after the recipe's
//!
//! [[files]]                        # add or replace a file
//! path = "/etc/motd"
//! content = "hello\n"              # or: source = "motd.txt" (relative to this TOML)
//! mode = "0644"
//!
//! [firewall]
//! output_rules = ["udp dport 53 accept"]  # nft rules, before the Tor-only rules
//! allow_ipv6 = false               # true: IPv6 stays enabled on the NICs
//!
//! [init]
//! mac_spoof = true                 # false: keep the NICs' own MAC addresses
//! boot_commands = ["..."]          # shell, at boot before the greeter
//! start_commands = ["..."]         # shell, after Start, once the network is up
//! reconnect_commands = ["..."]     # shell, after each reconnect's new DHCP lease
//!
//! [branding]
//! title = "My Live"
//! background = "#102030"
//! foreground = "#ffffff"
//! accent = "#ff8800"
//!
//! [tor]
//! options = ["ConnectionPadding 1"]  # torrc lines
//!
//! [vpn]                            # the VPN client's settings (kind = "vpn")
//! kill_switch = true               # false: traffic may leave outside the tunnel
//! dns = "tunnel"                   # "tunnel" | "lan": whose resolver answers names
//! allow_lan = false                # true: the LAN's subnet is reached outside the tunnel
//! [bridges]                        # Tor through bridges (vanilla or obfs4)
//! default = ["obfs4 192.0.2.10:443 FINGERPRINT cert=... iat-mode=0"]
//!                                  # offered by the greeter ("use the default bridges")
//! configured = ["192.0.2.20:9001 FINGERPRINT"]  # always used, nobody is asked
//! ```
//!
//! Parsing ([`Customization::load`]) only reads the TOML (unknown fields are
//! errors that name the field); [`Customization::validate`] then checks the
//! values and reads any `source` files, so an ISO is never built from a file
//! that would be misread.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors from reading or checking a customization file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read customization {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("customization {path} is not valid TOML for a customization")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("customization {path}: `{field}` {problem}")]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
    },
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Customization {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The kind of derivative this makes (see [`super::kind`]); the last
    /// customization that names one wins.
    #[serde(default)]
    pub kind: Option<super::kind::Kind>,
    #[serde(default)]
    pub packages: Vec<String>,
    /// Kernel modules loaded at boot after the recipe's (their
    /// dependencies come along, from the kernel's modules.dep).
    #[serde(default)]
    pub modules: Vec<String>,
    #[serde(default)]
    pub files: Vec<FileSpec>,
    #[serde(default)]
    pub firewall: Firewall,
    #[serde(default)]
    pub init: Init,
    #[serde(default)]
    pub branding: Option<Branding>,
    #[serde(default)]
    pub tor: Tor,
    #[serde(default)]
    pub vpn: Option<Vpn>,
    #[serde(default)]
    pub bridges: Bridges,
    /// Where the TOML was read from (`source` paths are relative to it).
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub path: String,
    pub content: Option<String>,
    pub source: Option<PathBuf>,
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    #[serde(default)]
    pub output_rules: Vec<String>,
    #[serde(default)]
    pub allow_ipv6: bool,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Init {
    pub mac_spoof: Option<bool>,
    #[serde(default)]
    pub boot_commands: Vec<String>,
    #[serde(default)]
    pub start_commands: Vec<String>,
    /// Shell run after each reconnection of a NIC, once its new DHCP lease
    /// is applied (`/etc/tailor/reconnect.d/`), like a network manager's
    /// dispatcher hooks; `$interface` names the NIC.
    #[serde(default)]
    pub reconnect_commands: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Branding {
    pub title: Option<String>,
    pub background: Option<String>,
    pub foreground: Option<String>,
    pub accent: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Tor {
    #[serde(default)]
    pub options: Vec<String>,
}

/// The settings of the VPN variant's client (`derivative/customizations/vpn`),
/// as a VPN application offers them; unset fields keep its safe defaults.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Vpn {
    /// Block everything that would leave outside the tunnel, before it is
    /// up and whenever it is down (default true).
    pub kill_switch: Option<bool>,
    /// Who resolves names: the VPN's resolver through the tunnel (default),
    /// or the LAN's, from the DHCP lease.
    pub dns: Option<VpnDns>,
    /// Let the LAN's own subnet be reached outside the tunnel ("local
    /// network sharing"; default false).
    pub allow_lan: Option<bool>,
}

/// Whose resolver the VPN client configures.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VpnDns {
    Tunnel,
    Lan,
}

impl Vpn {
    /// `KEY=value` lines for `/etc/tailor/settings`, for what is set.
    pub fn settings_lines(&self) -> Vec<String> {
        let flag = |b: bool| u8::from(b).to_string();
        let mut lines = Vec::new();
        if let Some(k) = self.kill_switch {
            lines.push(format!("VPN_KILL_SWITCH={}", flag(k)));
        }
        if let Some(dns) = self.dns {
            let value = match dns {
                VpnDns::Tunnel => "tunnel",
                VpnDns::Lan => "lan",
            };
            lines.push(format!("VPN_DNS={value}"));
        }
        if let Some(lan) = self.allow_lan {
            lines.push(format!("VPN_ALLOW_LAN={}", flag(lan)));
        }
        lines
    }
}

/// Tor bridges: lines as a person pastes them into Tor
/// (`[TRANSPORT] IP:PORT [FINGERPRINT] [KEY=VALUE ...]`), vanilla or
/// obfs4 (see [`crate::tor::bridge_line`]).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Bridges {
    /// The default bridges, written to the image's default bridges file;
    /// the greeter offers them after Start.
    #[serde(default)]
    pub default: Vec<String>,
    /// Bridges tor always uses; Start asks nothing.
    #[serde(default)]
    pub configured: Vec<String>,
}

impl Bridges {
    pub fn is_empty(&self) -> bool {
        self.default.is_empty() && self.configured.is_empty()
    }
}

/// A validated file to put in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFile {
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// The longest title that fits the greeter's 1024-pixel-wide screen at
/// its title size (32 pixels a character).
const MAX_TITLE: usize = 30;

fn is_debian_package_name(s: &str) -> bool {
    s.len() >= 2
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

fn is_colour(s: &str) -> bool {
    s.len() == 7 && s.starts_with('#') && s[1..].chars().all(|c| c.is_ascii_hexdigit())
}

impl Customization {
    /// Read and parse a customization file (no value checks: see
    /// [`Customization::validate`]).
    pub fn load(path: &Path) -> Result<Customization, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse TOML text read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Customization, Error> {
        let mut c: Customization = toml::from_str(text).map_err(|source| Error::Parse {
            path: path.to_owned(),
            source,
        })?;
        c.path = path.to_owned();
        Ok(c)
    }

    fn invalid(&self, field: impl Into<String>, problem: impl Into<String>) -> Error {
        Error::Invalid {
            path: self.path.clone(),
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// Check every value and resolve `files` into their contents.
    pub fn validate(&self) -> Result<Vec<ImageFile>, Error> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(self.invalid(
                "name",
                format!(
                    "must be lowercase letters, digits and '-' (it names files in the image); got {:?}",
                    self.name
                ),
            ));
        }
        for (i, p) in self.packages.iter().enumerate() {
            if !is_debian_package_name(p) {
                return Err(self.invalid(
                    format!("packages[{i}]"),
                    format!("{p:?} is not a Debian package name"),
                ));
            }
        }
        for (i, m) in self.modules.iter().enumerate() {
            let ok = !m.is_empty()
                && m.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !ok {
                return Err(self.invalid(
                    format!("modules[{i}]"),
                    format!("{m:?} is not a kernel module name"),
                ));
            }
        }
        if self.vpn.is_some() && self.kind.is_some_and(|k| k != super::kind::Kind::Vpn) {
            return Err(self.invalid(
                "vpn",
                format!(
                    "configures the VPN client, but this customization makes a derivative of kind {}",
                    self.kind.unwrap_or_default()
                ),
            ));
        }
        let one_line = |field: String, items: &[String]| -> Result<(), Error> {
            for (i, item) in items.iter().enumerate() {
                if item.trim().is_empty() || item.contains('\n') {
                    return Err(self.invalid(
                        format!("{field}[{i}]"),
                        format!("must be one non-empty line; got {item:?}"),
                    ));
                }
            }
            Ok(())
        };
        one_line("firewall.output_rules".into(), &self.firewall.output_rules)?;
        one_line("tor.options".into(), &self.tor.options)?;
        for (i, opt) in self.tor.options.iter().enumerate() {
            let key = opt.split_whitespace().next().unwrap_or_default();
            if !key.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(self.invalid(
                    format!("tor.options[{i}]"),
                    format!("must start with a torrc option name; got {opt:?}"),
                ));
            }
        }
        for (field, cmds) in [
            ("init.boot_commands", &self.init.boot_commands),
            ("init.start_commands", &self.init.start_commands),
            ("init.reconnect_commands", &self.init.reconnect_commands),
        ] {
            for (i, cmd) in cmds.iter().enumerate() {
                if cmd.trim().is_empty() {
                    return Err(self.invalid(format!("{field}[{i}]"), "is empty"));
                }
            }
        }
        for (field, lines) in [
            ("bridges.default", &self.bridges.default),
            ("bridges.configured", &self.bridges.configured),
        ] {
            for (i, line) in lines.iter().enumerate() {
                let parsed: crate::tor::BridgeLine =
                    line.parse().map_err(|e: crate::tor::BridgeLineError| {
                        self.invalid(format!("{field}[{i}]"), e.to_string())
                    })?;
                if let Some(t) = parsed.transport.as_deref() {
                    if !crate::tor::bridge_line::SUPPORTED_TRANSPORTS.contains(&t) {
                        return Err(self.invalid(
                            format!("{field}[{i}]"),
                            format!(
                                "uses transport {t:?}; the image has a client for {} only (Debian's obfs4proxy), and the lab a server for nothing else",
                                crate::tor::bridge_line::SUPPORTED_TRANSPORTS.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        if let Some(b) = &self.branding {
            if let Some(title) = &b.title {
                if title.is_empty()
                    || title.chars().count() > MAX_TITLE
                    || !title.chars().all(|c| c.is_ascii_graphic() || c == ' ')
                {
                    return Err(self.invalid(
                        "branding.title",
                        format!("must be 1 to {MAX_TITLE} printable ASCII characters (the greeter's font); got {title:?}"),
                    ));
                }
            }
            for (field, value) in [
                ("branding.background", &b.background),
                ("branding.foreground", &b.foreground),
                ("branding.accent", &b.accent),
            ] {
                if let Some(v) = value {
                    if !is_colour(v) {
                        return Err(self.invalid(
                            field,
                            format!("must be a colour like \"#1e1e2e\"; got {v:?}"),
                        ));
                    }
                }
            }
        }
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| self.validate_file(i, f))
            .collect()
    }

    fn validate_file(&self, i: usize, f: &FileSpec) -> Result<ImageFile, Error> {
        let field = |name: &str| format!("files[{i}].{name}");
        if !f.path.starts_with('/')
            || f.path.split('/').any(|part| part == "..")
            || f.path.ends_with('/')
        {
            return Err(self.invalid(
                field("path"),
                format!(
                    "must be an absolute file path without '..'; got {:?}",
                    f.path
                ),
            ));
        }
        let mode = match &f.mode {
            None => 0o644,
            Some(m) => u32::from_str_radix(m, 8)
                .ok()
                .filter(|m| *m <= 0o7777)
                .ok_or_else(|| {
                    self.invalid(
                        field("mode"),
                        format!("must be an octal mode like \"0755\"; got {m:?}"),
                    )
                })?,
        };
        let content = match (&f.content, &f.source) {
            (Some(text), None) => text.clone().into_bytes(),
            (None, Some(source)) => {
                let base = self.path.parent().unwrap_or(Path::new("."));
                let full = base.join(source);
                std::fs::read(&full).map_err(|e| {
                    self.invalid(
                        field("source"),
                        format!("cannot be read from {}: {e}", full.display()),
                    )
                })?
            }
            _ => {
                return Err(self.invalid(
                    format!("files[{i}]"),
                    "needs exactly one of `content` or `source`",
                ))
            }
        };
        Ok(ImageFile {
            path: f.path.clone(),
            content,
            mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Customization, Error> {
        Customization::parse(text, Path::new("/nonexistent/c.toml"))
    }

    #[test]
    fn full_example_parses_and_validates() {
        let c = parse(
            r##"
name = "example"
description = "d"
packages = ["curl", "libc6"]
[[files]]
path = "/etc/motd"
content = "hi\n"
mode = "0600"
[firewall]
output_rules = ["udp dport 53 accept"]
allow_ipv6 = true
[init]
mac_spoof = false
start_commands = ["echo hi"]
[branding]
title = "My Live"
background = "#102030"
[tor]
options = ["ConnectionPadding 1"]
"##,
        )
        .unwrap();
        let files = c.validate().unwrap();
        assert_eq!(files[0].mode, 0o600);
        assert_eq!(files[0].content, b"hi\n");
        assert!(c.firewall.allow_ipv6);
        assert_eq!(c.init.mac_spoof, Some(false));
    }

    #[test]
    fn vpn_settings_and_modules_parse() {
        let c = parse(
            "name = \"v\"\nkind = \"vpn\"\nmodules = [\"wireguard\"]\n[vpn]\nkill_switch = false\ndns = \"lan\"\n",
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.modules, ["wireguard"]);
        assert_eq!(
            c.vpn.unwrap().settings_lines(),
            ["VPN_KILL_SWITCH=0", "VPN_DNS=lan"]
        );
        let bad = parse("name = \"v\"\n[vpn]\ndns = \"cleartext\"\n").unwrap_err();
        let text = format!("{bad}: {}", std::error::Error::source(&bad).unwrap());
        assert!(text.contains("cleartext"), "{text}");
    }

    #[test]
    fn bridges_take_vanilla_and_obfs4_lines() {
        let c = parse(
            r#"
name = "b"
kind = "bridges"
[bridges]
default = ["obfs4 192.0.2.10:443 2B280B23E1107BB62ABFC40DDCC8824814F80A72 cert=abc iat-mode=0"]
configured = ["Bridge 192.0.2.20:9001 2B280B23E1107BB62ABFC40DDCC8824814F80A72"]
"#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.kind, Some(crate::derivative::Kind::Bridges));
        assert!(!c.bridges.is_empty());
        assert!(Customization::default().bridges.is_empty());
    }

    #[test]
    fn unknown_field_is_named() {
        let err = parse("name = \"x\"\n[firewall]\nallow_ipv7 = true\n").unwrap_err();
        let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(text.contains("allow_ipv7"), "{text}");
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            ("name = \"Bad Name\"", "name"),
            (
                "name = \"x\"\npackages = [\"Not_A_Package\"]",
                "packages[0]",
            ),
            (
                "name = \"x\"\n[[files]]\npath = \"etc/motd\"\ncontent = \"\"",
                "files[0].path",
            ),
            (
                "name = \"x\"\n[[files]]\npath = \"/a\"\ncontent = \"\"\nmode = \"999\"",
                "files[0].mode",
            ),
            ("name = \"x\"\n[[files]]\npath = \"/a\"", "files[0]"),
            (
                "name = \"x\"\n[[files]]\npath = \"/a\"\nsource = \"missing\"",
                "files[0].source",
            ),
            (
                "name = \"x\"\n[branding]\nbackground = \"red\"",
                "branding.background",
            ),
            ("name = \"x\"\n[branding]\ntitle = \"é\"", "branding.title"),
            (
                "name = \"x\"\n[firewall]\noutput_rules = [\"a\\nb\"]",
                "firewall.output_rules[0]",
            ),
            (
                "name = \"x\"\n[tor]\noptions = [\"%include /x\"]",
                "tor.options[0]",
            ),
            (
                "name = \"x\"\n[init]\nstart_commands = [\" \"]",
                "init.start_commands[0]",
            ),
            ("name = \"x\"\nmodules = [\"../x\"]", "modules[0]"),
            (
                "name = \"x\"\nkind = \"tor\"\n[vpn]\nkill_switch = true",
                "vpn",
            ),
            (
                "name = \"x\"\n[bridges]\ndefault = [\"obfs4 192.0.2.1:443\"]",
                "bridges.default[0]",
            ),
            (
                "name = \"x\"\n[bridges]\nconfigured = [\"192.0.2.1:443\", \"snowflake 192.0.2.3:80 2B280B23E1107BB62ABFC40DDCC8824814F80A72\"]",
                "bridges.configured[1]",
            ),
        ];
        for (text, field) in cases {
            let err = parse(text).unwrap().validate().unwrap_err();
            match &err {
                Error::Invalid { field: f, .. } => assert_eq!(f, field, "{text}: {err}"),
                other => panic!("{text}: unexpected {other}"),
            }
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn source_is_relative_to_the_toml() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("motd.txt"), "from a file").unwrap();
        let c = Customization::parse(
            "name = \"x\"\n[[files]]\npath = \"/etc/motd\"\nsource = \"motd.txt\"\n",
            &dir.path().join("c.toml"),
        )
        .unwrap();
        assert_eq!(c.validate().unwrap()[0].content, b"from a file");
    }
}

#[cfg(test)]
mod shipped {
    use super::*;

    /// Every customization in derivative/customizations/ parses and
    /// validates, so `tailor build-iso` never trips on one.
    #[test]
    fn shipped_customizations_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../derivative/customizations");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let c = Customization::load(&path).unwrap_or_else(|e| panic!("{e}"));
                c.validate().unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(path.file_stem().unwrap().to_string_lossy(), c.name);
                names.push(c.name);
            }
        }
        names.sort();
        for expected in [
            "branding",
            "boot-leak",
            "mac-in-dhcp",
            "no-mac-spoof",
            "vpn",
            "vpn-lan-dns",
            "vpn-no-kill-switch",
            "vpn-lan-bypass",
            "default-bridges",
            "other-default-bridges",
            "bridges-and-direct",
            "bridges-pt-dns",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} in {names:?}"
            );
        }
    }
}
