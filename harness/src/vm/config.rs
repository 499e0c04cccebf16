//! VM descriptions (`vm-configs/*.toml`): parsed with serde, then validated
//! in a separate step whose errors name the offending field.
//!
//! ```toml
//! name = "reference"
//! memory_mib = 1024
//! cpus = 2
//! accelerator = "auto"        # auto | kvm | tcg
//! kind = "tor"                # tor | bridges | vpn, when the ISO cannot say (optional)
//!
//! [boot]
//! iso = "../.cache/derivative/reference.iso"   # or: disk = "x.qcow2", disk_format = "qcow2"
//!
//! [nic]
//! model = "virtio-net-pci"    # virtio-net-pci | e1000 | none
//! mac = "52:54:00:12:34:56"
//! network = "none"            # none | isolated | lab
//!
//! [display]
//! width = 1024
//! height = 768
//! ```
//!
//! Relative paths are relative to the config file's folder.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Errors from reading or validating a vm-config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read vm-config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("vm-config {path} is not valid TOML for a VM: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("vm-config {path}: field `{field}`: {problem}")]
    Invalid {
        path: PathBuf,
        field: &'static str,
        problem: String,
    },
}

/// Which accelerator to ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AcceleratorChoice {
    /// KVM when hardware virtualization is really usable, else TCG.
    #[default]
    Auto,
    Kvm,
    Tcg,
}

/// How the VM's NIC is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// No NIC at all.
    #[default]
    None,
    /// A NIC on QEMU's user network with `restrict=on`: the guest sees a
    /// link and DHCP but nothing leaves QEMU.
    Isolated,
    /// A tap inside the lab's network namespace (supplied at start).
    Lab,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BootSection {
    pub iso: Option<PathBuf>,
    pub disk: Option<PathBuf>,
    pub disk_format: Option<DiskFormat>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicSection {
    #[serde(default = "default_nic_model")]
    pub model: String,
    #[serde(default = "default_mac")]
    pub mac: String,
    #[serde(default)]
    pub network: Network,
}

impl Default for NicSection {
    fn default() -> Self {
        NicSection {
            model: default_nic_model(),
            mac: default_mac(),
            network: Network::None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisplaySection {
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
}

impl Default for DisplaySection {
    fn default() -> Self {
        DisplaySection {
            width: default_width(),
            height: default_height(),
        }
    }
}

fn default_nic_model() -> String {
    "virtio-net-pci".into()
}
fn default_mac() -> String {
    "52:54:00:12:34:56".into()
}
fn default_width() -> u32 {
    1024
}
fn default_height() -> u32 {
    768
}
fn default_memory() -> u32 {
    1024
}
fn default_cpus() -> u32 {
    2
}

/// A vm-config as written in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVmConfig {
    pub name: Option<String>,
    #[serde(default = "default_memory")]
    pub memory_mib: u32,
    #[serde(default = "default_cpus")]
    pub cpus: u32,
    #[serde(default)]
    pub accelerator: AcceleratorChoice,
    #[serde(default)]
    pub boot: BootSection,
    #[serde(default)]
    pub nic: NicSection,
    #[serde(default)]
    pub display: DisplaySection,
    /// The QEMU binary; default `qemu-system-x86_64` from PATH.
    pub qemu: Option<String>,
    /// The kind of derivative it boots (tor, bridges, vpn), when the ISO
    /// cannot say (see `harness::derivative::kind`).
    pub kind: Option<crate::derivative::Kind>,
}

/// What the VM boots from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootMedium {
    /// An ISO attached as a CD-ROM (read-only).
    Iso(PathBuf),
    /// A disk image; the VM writes to a qcow2 overlay, never to the image.
    Disk { path: PathBuf, format: DiskFormat },
}

impl BootMedium {
    pub fn path(&self) -> &Path {
        match self {
            BootMedium::Iso(p) => p,
            BootMedium::Disk { path, .. } => path,
        }
    }

    /// An ISO or a disk image, told apart by the file name.
    pub fn from_path(path: PathBuf) -> Self {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        match ext.as_str() {
            "qcow2" => BootMedium::Disk {
                path,
                format: DiskFormat::Qcow2,
            },
            "img" | "raw" => BootMedium::Disk {
                path,
                format: DiskFormat::Raw,
            },
            _ => BootMedium::Iso(path),
        }
    }
}

/// A validated VM description.
#[derive(Debug, Clone)]
pub struct VmConfig {
    pub name: String,
    pub memory_mib: u32,
    pub cpus: u32,
    pub accelerator: AcceleratorChoice,
    pub boot: Option<BootMedium>,
    pub nic_model: Option<String>,
    pub mac: [u8; 6],
    pub network: Network,
    pub width: u32,
    pub height: u32,
    pub qemu: String,
    /// The kind of derivative, if the vm-config says.
    pub kind: Option<crate::derivative::Kind>,
    /// Where the config came from (for messages).
    pub source: PathBuf,
}

impl VmConfig {
    /// Read, parse and validate a vm-config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, path, base)
    }

    /// Parse and validate TOML text; `base` resolves relative paths.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Self, ConfigError> {
        let raw: RawVmConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        raw.validate(path, base)
    }

    /// A config with defaults for a given boot medium (for `--iso`).
    pub fn for_medium(medium: BootMedium) -> Self {
        let raw: RawVmConfig = toml::from_str("name = \"vm\"").expect("defaults parse");
        let mut config = raw
            .validate(Path::new("<defaults>"), Path::new("."))
            .expect("defaults are valid");
        config.boot = Some(medium);
        config
    }

    /// The guest's configured (not spoofed) MAC as `aa:bb:..`.
    pub fn mac_string(&self) -> String {
        format_mac(&self.mac)
    }
}

impl RawVmConfig {
    fn validate(self, path: &Path, base: &Path) -> Result<VmConfig, ConfigError> {
        let invalid = |field: &'static str, problem: String| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            problem,
        };
        if !(64..=65536).contains(&self.memory_mib) {
            return Err(invalid(
                "memory_mib",
                format!("{} MiB is outside 64..=65536", self.memory_mib),
            ));
        }
        if !(1..=64).contains(&self.cpus) {
            return Err(invalid("cpus", format!("{} is outside 1..=64", self.cpus)));
        }
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let boot = match (self.boot.iso, self.boot.disk) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "boot",
                    "give either `iso` or `disk`, not both".into(),
                ))
            }
            (Some(iso), None) => {
                if self.boot.disk_format.is_some() {
                    return Err(invalid(
                        "boot.disk_format",
                        "only applies to `disk`, not to `iso`".into(),
                    ));
                }
                Some(BootMedium::Iso(resolve(iso)))
            }
            (None, Some(disk)) => {
                let path = resolve(disk);
                let format = match self.boot.disk_format {
                    Some(f) => f,
                    None => match BootMedium::from_path(path.clone()) {
                        BootMedium::Disk { format, .. } => format,
                        BootMedium::Iso(_) => {
                            return Err(invalid(
                                "boot.disk_format",
                                format!(
                                    "cannot tell the format of {} from its name; set \"raw\" or \"qcow2\"",
                                    path.display()
                                ),
                            ))
                        }
                    },
                };
                Some(BootMedium::Disk { path, format })
            }
            (None, None) => None,
        };
        let nic_model = match self.nic.model.as_str() {
            "none" => None,
            m if m.is_empty() || m.contains([',', ' ', '=']) => {
                return Err(invalid(
                    "nic.model",
                    format!("`{m}` is not a QEMU device name"),
                ))
            }
            m => Some(m.to_owned()),
        };
        if nic_model.is_none() && self.nic.network != Network::None {
            return Err(invalid(
                "nic.network",
                "a network needs a NIC, but nic.model is \"none\"".into(),
            ));
        }
        let mac = parse_mac(&self.nic.mac).ok_or_else(|| {
            invalid(
                "nic.mac",
                format!(
                    "`{}` is not a MAC address like 52:54:00:12:34:56",
                    self.nic.mac
                ),
            )
        })?;
        if mac[0] & 1 == 1 {
            return Err(invalid(
                "nic.mac",
                format!(
                    "`{}` is a multicast address; a NIC needs a unicast one",
                    self.nic.mac
                ),
            ));
        }
        for (field, value) in [
            ("display.width", self.display.width),
            ("display.height", self.display.height),
        ] {
            if !(320..=4096).contains(&value) {
                return Err(invalid(field, format!("{value} is outside 320..=4096")));
            }
        }
        let name = self.name.unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "vm".into())
        });
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "name",
                format!("`{name}` must be letters, digits, - or _"),
            ));
        }
        Ok(VmConfig {
            name,
            memory_mib: self.memory_mib,
            cpus: self.cpus,
            accelerator: self.accelerator,
            boot,
            nic_model,
            mac,
            network: self.nic.network,
            width: self.display.width,
            height: self.display.height,
            qemu: self.qemu.unwrap_or_else(|| "qemu-system-x86_64".into()),
            kind: self.kind,
            source: path.to_owned(),
        })
    }
}

/// Parse `aa:bb:cc:dd:ee:ff` (or with `-`).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    if parts.len() != 6 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(parts) {
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    Some(mac)
}

pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<VmConfig, ConfigError> {
        VmConfig::parse(text, Path::new("vm-configs/t.toml"), Path::new("/base"))
    }

    fn field_of(err: ConfigError) -> String {
        match err {
            ConfigError::Invalid { field, .. } => field.to_owned(),
            other => panic!("expected a validation error, got {other}"),
        }
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = parse("[boot]\niso = \"x.iso\"\n").unwrap();
        assert_eq!(c.name, "t");
        assert_eq!(c.memory_mib, 1024);
        assert_eq!(c.accelerator, AcceleratorChoice::Auto);
        assert_eq!(c.boot, Some(BootMedium::Iso(PathBuf::from("/base/x.iso"))));
        assert_eq!(c.nic_model.as_deref(), Some("virtio-net-pci"));
        assert_eq!((c.width, c.height), (1024, 768));
    }

    #[test]
    fn full_config() {
        let c = parse(
            "name = \"ref\"\nmemory_mib = 2048\ncpus = 1\naccelerator = \"tcg\"\n\
             [boot]\ndisk = \"/img/d.raw\"\n[nic]\nmodel = \"e1000\"\nmac = \"52:54:00:ab:cd:ef\"\nnetwork = \"lab\"\n\
             [display]\nwidth = 800\nheight = 600\n",
        )
        .unwrap();
        assert_eq!(c.accelerator, AcceleratorChoice::Tcg);
        assert_eq!(
            c.boot,
            Some(BootMedium::Disk {
                path: "/img/d.raw".into(),
                format: DiskFormat::Raw
            })
        );
        assert_eq!(c.mac_string(), "52:54:00:ab:cd:ef");
        assert_eq!(c.network, Network::Lab);
    }

    #[test]
    fn unknown_field_is_named() {
        let err = parse("memroy_mib = 5\n").unwrap_err().to_string();
        assert!(err.contains("memroy_mib"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = parse("cpus = \"two\"\n").unwrap_err().to_string();
        assert!(err.contains("cpus"), "{err}");
    }

    #[test]
    fn bad_accelerator_is_named() {
        let err = parse("accelerator = \"hvf\"\n").unwrap_err().to_string();
        assert!(err.contains("hvf") && err.contains("accelerator"), "{err}");
    }

    #[test]
    fn invalid_values_name_their_field() {
        assert_eq!(field_of(parse("memory_mib = 8").unwrap_err()), "memory_mib");
        assert_eq!(field_of(parse("cpus = 0").unwrap_err()), "cpus");
        assert_eq!(
            field_of(parse("[boot]\niso = \"a\"\ndisk = \"b.raw\"").unwrap_err()),
            "boot"
        );
        assert_eq!(
            field_of(parse("[boot]\ndisk = \"b.bin\"").unwrap_err()),
            "boot.disk_format"
        );
        assert_eq!(
            field_of(parse("[nic]\nmac = \"52:54:00\"").unwrap_err()),
            "nic.mac"
        );
        assert_eq!(
            field_of(parse("[nic]\nmac = \"01:00:5e:00:00:01\"").unwrap_err()),
            "nic.mac"
        );
        assert_eq!(
            field_of(parse("[nic]\nmodel = \"none\"\nnetwork = \"lab\"").unwrap_err()),
            "nic.network"
        );
        assert_eq!(
            field_of(parse("[display]\nwidth = 10").unwrap_err()),
            "display.width"
        );
        assert_eq!(field_of(parse("name = \"a b\"").unwrap_err()), "name");
    }

    #[test]
    fn defaults_for_a_medium_are_valid() {
        let c = VmConfig::for_medium(BootMedium::Iso("x.iso".into()));
        assert_eq!(c.name, "vm");
        assert_eq!(c.boot, Some(BootMedium::Iso("x.iso".into())));
    }

    #[test]
    fn medium_from_path() {
        assert!(matches!(
            BootMedium::from_path("a.iso".into()),
            BootMedium::Iso(_)
        ));
        assert!(matches!(
            BootMedium::from_path("a.qcow2".into()),
            BootMedium::Disk {
                format: DiskFormat::Qcow2,
                ..
            }
        ));
    }
}
