//! VM descriptions (`vm-configs/*.toml`): parsed with serde, then validated
//! in a separate step whose errors name the offending field.
//!
//! ```toml
//! name = "reference"
//! memory_mib = 1024
//! cpus = 2
//! accelerator = "auto"        # auto | kvm | tcg
//! firmware = "bios"           # bios (SeaBIOS) | uefi (OVMF, Debian's `ovmf`)
//! kind = "tor"                # tor | bridges | vpn, when the ISO cannot say (optional)
//!
//! [boot]
//! iso = "../.cache/derivative/reference.iso"   # a CD (read-only)
//! # or: usb = "x.iso"          a USB stick (usb-storage on the xHCI), written to an overlay
//! # or: disk = "x.qcow2"       an internal disk (virtio), written to an overlay
//! # disk_format = "qcow2"      for `usb` and `disk` when the name does not tell
//! kernel_options = "autotest_never_use_this_option"   # typed at the boot menu on every boot
//!
//! [boot_menu]                 # only read when kernel options are typed
//! loader = "isolinux"         # default: isolinux under BIOS, grub under UEFI
//! menu_reference = "boot-menu-isolinux"          # default: boot-menu-LOADER
//! editor_reference = "boot-menu-isolinux-editor" # default: boot-menu-LOADER-editor
//! lines_down = 3              # GRUB: Down presses from the editor's first line to `linux`
//!
//! [agent]
//! kind = "qga"                # qga | tails-remote-shell
//! port = "org.qemu.guest_agent.0"               # default by kind
//! journal_port = "org.tails.journal_dumper.0"   # the guest's log stream
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

/// The machine's firmware.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Firmware {
    /// SeaBIOS, QEMU's default: boots isolinux from a hybrid ISO.
    #[default]
    Bios,
    /// OVMF (UEFI) from Debian's `ovmf`: boots the ISO's EFI image (GRUB).
    Uefi,
}

impl std::fmt::Display for Firmware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Firmware::Bios => "BIOS",
            Firmware::Uefi => "UEFI",
        })
    }
}

/// The boot loader whose menu the harness edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Loader {
    /// isolinux/syslinux's menu: Tab opens the command line.
    Isolinux,
    /// GRUB's menu: `e` opens the entry's editor.
    Grub,
}

impl Loader {
    pub fn name(self) -> &'static str {
        match self {
            Loader::Isolinux => "isolinux",
            Loader::Grub => "grub",
        }
    }
}

/// Which agent answers inside the guest (see `harness::guest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AgentKind {
    /// The QEMU Guest Agent (`qemu-ga`).
    #[default]
    Qga,
    /// Tails' autotest remote shell.
    TailsRemoteShell,
}

impl AgentKind {
    /// The virtio-serial port name the agent listens on by default.
    pub fn default_port(self) -> &'static str {
        match self {
            AgentKind::Qga => "org.qemu.guest_agent.0",
            AgentKind::TailsRemoteShell => "org.tails.remote_shell.0",
        }
    }
}

impl std::fmt::Display for AgentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AgentKind::Qga => "guest agent (QGA)",
            AgentKind::TailsRemoteShell => "remote shell (Tails' protocol)",
        })
    }
}

/// The virtio-serial port on which the guest streams its logs, as Tails
/// streams its journal.
pub const DEFAULT_JOURNAL_PORT: &str = "org.tails.journal_dumper.0";

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BootSection {
    pub iso: Option<PathBuf>,
    pub disk: Option<PathBuf>,
    pub usb: Option<PathBuf>,
    pub disk_format: Option<DiskFormat>,
    pub kernel_options: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BootMenuSection {
    pub loader: Option<Loader>,
    pub menu_reference: Option<String>,
    pub editor_reference: Option<String>,
    pub lines_down: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    #[serde(default)]
    pub kind: AgentKind,
    pub port: Option<String>,
    pub journal_port: Option<String>,
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
    #[serde(default)]
    pub firmware: Firmware,
    #[serde(default)]
    pub boot_menu: BootMenuSection,
    #[serde(default)]
    pub agent: AgentSection,
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
    /// An image (a hybrid ISO, say) on a USB stick (`usb-storage` on the
    /// xHCI controller), written to a qcow2 overlay like a disk.
    Usb { path: PathBuf, format: DiskFormat },
}

impl BootMedium {
    pub fn path(&self) -> &Path {
        match self {
            BootMedium::Iso(p) => p,
            BootMedium::Disk { path, .. } | BootMedium::Usb { path, .. } => path,
        }
    }

    /// The same kind of medium holding `path` instead (`--iso`): a USB
    /// stick stays a USB stick.
    pub fn with_path(&self, path: PathBuf) -> BootMedium {
        match self {
            BootMedium::Usb { .. } => BootMedium::Usb {
                format: image_format(&path).unwrap_or(DiskFormat::Raw),
                path,
            },
            _ => BootMedium::from_path(path),
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

/// An image's format as its name tells it (an ISO is raw).
fn image_format(path: &Path) -> Option<DiskFormat> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "qcow2" => Some(DiskFormat::Qcow2),
        "img" | "raw" | "iso" => Some(DiskFormat::Raw),
        _ => None,
    }
}

/// How the harness reaches the kernel command line at the boot menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootMenu {
    pub loader: Loader,
    /// Reference image of the menu (its timeout still running).
    pub menu_reference: String,
    /// Reference image of the command-line editor.
    pub editor_reference: String,
    /// GRUB: Down presses from the editor's first line to the `linux` line.
    pub lines_down: u32,
}

/// The guest's agent and log channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    pub kind: AgentKind,
    /// The virtio-serial port name of the agent.
    pub port: String,
    /// The virtio-serial port the guest streams its logs on.
    pub journal_port: String,
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
    pub firmware: Firmware,
    /// Typed at the boot menu on every boot (`Given the computer boots
    /// from "X"` and checkpoint boots), after the loader's own options.
    pub kernel_options: Option<String>,
    pub boot_menu: BootMenu,
    pub agent: AgentConfig,
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
        let given = [&self.boot.iso, &self.boot.disk, &self.boot.usb]
            .iter()
            .filter(|m| m.is_some())
            .count();
        if given > 1 {
            return Err(invalid(
                "boot",
                "give one of `iso`, `usb` or `disk`, not several".into(),
            ));
        }
        let unknown_format = |path: &Path| {
            invalid(
                "boot.disk_format",
                format!(
                    "cannot tell the format of {} from its name; set \"raw\" or \"qcow2\"",
                    path.display()
                ),
            )
        };
        let boot = match (self.boot.iso, self.boot.disk, self.boot.usb) {
            (Some(iso), None, None) => {
                if self.boot.disk_format.is_some() {
                    return Err(invalid(
                        "boot.disk_format",
                        "only applies to `disk` and `usb`, not to `iso`".into(),
                    ));
                }
                Some(BootMedium::Iso(resolve(iso)))
            }
            (None, Some(disk), None) => {
                let path = resolve(disk);
                let format = match self.boot.disk_format {
                    Some(f) => f,
                    None => match BootMedium::from_path(path.clone()) {
                        BootMedium::Disk { format, .. } => format,
                        _ => return Err(unknown_format(&path)),
                    },
                };
                Some(BootMedium::Disk { path, format })
            }
            (None, None, Some(usb)) => {
                let path = resolve(usb);
                let format = match self.boot.disk_format.or_else(|| image_format(&path)) {
                    Some(f) => f,
                    None => return Err(unknown_format(&path)),
                };
                Some(BootMedium::Usb { path, format })
            }
            _ => None,
        };
        let kernel_options = match self.boot.kernel_options.map(|o| o.trim().to_owned()) {
            Some(o) if o.is_empty() => None,
            Some(o) if !o.chars().all(|c| c == ' ' || c.is_ascii_graphic()) => {
                return Err(invalid(
                    "boot.kernel_options",
                    format!(
                        "{o:?} must be printable ASCII on one line: it is typed at the boot menu"
                    ),
                ))
            }
            other => other,
        };
        let loader = self.boot_menu.loader.unwrap_or(match self.firmware {
            Firmware::Bios => Loader::Isolinux,
            Firmware::Uefi => Loader::Grub,
        });
        let boot_menu = BootMenu {
            loader,
            menu_reference: self
                .boot_menu
                .menu_reference
                .unwrap_or_else(|| format!("boot-menu-{}", loader.name())),
            editor_reference: self
                .boot_menu
                .editor_reference
                .unwrap_or_else(|| format!("boot-menu-{}-editor", loader.name())),
            lines_down: self.boot_menu.lines_down.unwrap_or(3),
        };
        for (field, name) in [
            ("boot_menu.menu_reference", &boot_menu.menu_reference),
            ("boot_menu.editor_reference", &boot_menu.editor_reference),
        ] {
            if name.is_empty() || name.contains(['/', '\\']) {
                return Err(invalid(
                    field,
                    format!("`{name}` must name a reference image (no folder, no .png)"),
                ));
            }
        }
        if boot_menu.lines_down > 50 {
            return Err(invalid(
                "boot_menu.lines_down",
                format!(
                    "{} is more lines than a boot entry has",
                    boot_menu.lines_down
                ),
            ));
        }
        let agent = AgentConfig {
            kind: self.agent.kind,
            port: self
                .agent
                .port
                .unwrap_or_else(|| self.agent.kind.default_port().to_owned()),
            journal_port: self
                .agent
                .journal_port
                .unwrap_or_else(|| DEFAULT_JOURNAL_PORT.to_owned()),
        };
        for (field, port) in [
            ("agent.port", &agent.port),
            ("agent.journal_port", &agent.journal_port),
        ] {
            if port.is_empty()
                || !port
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(invalid(
                    field,
                    format!(
                        "`{port}` is not a virtio-serial port name like org.tails.remote_shell.0"
                    ),
                ));
            }
        }
        if agent.port == agent.journal_port {
            return Err(invalid(
                "agent.journal_port",
                format!("`{}` is also the agent's port", agent.port),
            ));
        }
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
            firmware: self.firmware,
            kernel_options,
            boot_menu,
            agent,
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
    fn agent_firmware_and_menu_defaults() {
        let c = parse("[boot]\niso = \"x.iso\"\n").unwrap();
        assert_eq!(c.firmware, Firmware::Bios);
        assert_eq!(c.kernel_options, None);
        assert_eq!(c.agent.kind, AgentKind::Qga);
        assert_eq!(c.agent.port, "org.qemu.guest_agent.0");
        assert_eq!(c.agent.journal_port, "org.tails.journal_dumper.0");
        assert_eq!(c.boot_menu.loader, Loader::Isolinux);
        assert_eq!(c.boot_menu.menu_reference, "boot-menu-isolinux");
        assert_eq!(c.boot_menu.editor_reference, "boot-menu-isolinux-editor");

        let c = parse(
            "firmware = \"uefi\"\n[boot]\nusb = \"live.iso\"\n\
             kernel_options = \" autotest_never_use_this_option  \"\n\
             [agent]\nkind = \"tails-remote-shell\"\n",
        )
        .unwrap();
        assert_eq!(c.firmware, Firmware::Uefi);
        assert_eq!(
            c.boot,
            Some(BootMedium::Usb {
                path: "/base/live.iso".into(),
                format: DiskFormat::Raw
            })
        );
        assert_eq!(
            c.kernel_options.as_deref(),
            Some("autotest_never_use_this_option")
        );
        assert_eq!(c.agent.kind, AgentKind::TailsRemoteShell);
        assert_eq!(c.agent.port, "org.tails.remote_shell.0");
        assert_eq!(c.boot_menu.loader, Loader::Grub);
        assert_eq!(c.boot_menu.editor_reference, "boot-menu-grub-editor");
        assert_eq!(c.boot_menu.lines_down, 3);

        let c = parse(
            "[boot_menu]\nloader = \"grub\"\nmenu_reference = \"tails-grub\"\nlines_down = 4\n\
             [agent]\nport = \"org.example.agent\"\njournal_port = \"org.example.log\"\n",
        )
        .unwrap();
        assert_eq!(c.boot_menu.menu_reference, "tails-grub");
        assert_eq!(c.boot_menu.lines_down, 4);
        assert_eq!(c.agent.port, "org.example.agent");
    }

    #[test]
    fn bad_agent_menu_and_media_are_named() {
        assert_eq!(
            field_of(parse("[boot]\niso = \"a.iso\"\nusb = \"b.iso\"").unwrap_err()),
            "boot"
        );
        assert_eq!(
            field_of(parse("[boot]\nusb = \"stick.bin\"").unwrap_err()),
            "boot.disk_format"
        );
        assert_eq!(
            field_of(parse("[boot]\nkernel_options = \"a\\nb\"").unwrap_err()),
            "boot.kernel_options"
        );
        assert_eq!(
            field_of(parse("[agent]\nport = \"a,b\"").unwrap_err()),
            "agent.port"
        );
        assert_eq!(
            field_of(parse("[agent]\njournal_port = \"org.qemu.guest_agent.0\"").unwrap_err()),
            "agent.journal_port"
        );
        assert_eq!(
            field_of(parse("[boot_menu]\neditor_reference = \"x/y\"").unwrap_err()),
            "boot_menu.editor_reference"
        );
        let err = parse("[agent]\nkind = \"ssh\"").unwrap_err().to_string();
        assert!(err.contains("ssh") && err.contains("kind"), "{err}");
        let err = parse("firmware = \"coreboot\"").unwrap_err().to_string();
        assert!(err.contains("coreboot"), "{err}");
    }

    #[test]
    fn another_image_keeps_a_usb_stick_a_usb_stick() {
        let stick = BootMedium::Usb {
            path: "a.iso".into(),
            format: DiskFormat::Raw,
        };
        assert_eq!(
            stick.with_path("b.qcow2".into()),
            BootMedium::Usb {
                path: "b.qcow2".into(),
                format: DiskFormat::Qcow2
            }
        );
        assert_eq!(
            BootMedium::Iso("a.iso".into()).with_path("b.iso".into()),
            BootMedium::Iso("b.iso".into())
        );
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
