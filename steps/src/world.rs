//! The per-scenario state and the run-wide settings it reads.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use harness::screen::simple::Match;
use harness::vm::{BootMedium, Vm, VmConfig};

/// Run-wide settings: where features find their inputs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Folder of reference images (`NAME.png` + optional `NAME.toml`).
    pub screenshots: PathBuf,
    /// Folder of vm-configs (`NAME.toml`).
    pub vm_configs: PathBuf,
    /// Replaces every boot's vm-config (`--vm-config`).
    pub vm_config: Option<PathBuf>,
    /// Replaces every boot's medium (`--iso`).
    pub iso: Option<PathBuf>,
    /// Where failure screenshots and logs go.
    pub artifacts: PathBuf,
}

impl Settings {
    /// Settings for a checkout rooted at `root`.
    pub fn for_checkout(root: &Path) -> Self {
        Settings {
            screenshots: root.join("screenshots"),
            vm_configs: root.join("vm-configs"),
            vm_config: None,
            iso: None,
            artifacts: root.join("artifacts"),
        }
    }

    /// The vm-config a step named `name` boots: `--vm-config` if given,
    /// else `vm-configs/NAME.toml`, else `name` as a path to an ISO or disk
    /// image; `--iso` then replaces the medium.
    pub fn vm_config_for(&self, name: &str) -> Result<VmConfig, harness::vm::VmError> {
        let named = self.vm_configs.join(format!("{name}.toml"));
        let mut config = match &self.vm_config {
            Some(path) => VmConfig::load(path)?,
            None if named.exists() => VmConfig::load(&named)?,
            None => VmConfig::for_medium(BootMedium::from_path(PathBuf::from(name))),
        };
        if let Some(iso) = &self.iso {
            config.boot = Some(BootMedium::from_path(iso.clone()));
        }
        Ok(config)
    }
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Set the run's settings (once, before the run); later calls are ignored.
pub fn set_settings(settings: Settings) {
    let _ = SETTINGS.set(settings);
}

/// The run's settings; defaults to the current folder as the checkout.
pub fn settings() -> &'static Settings {
    SETTINGS.get_or_init(|| Settings::for_checkout(Path::new(".")))
}

/// One scenario's state: the VM it drives and what its steps saw last.
#[derive(cucumber::World)]
#[world(init = Self::new)]
pub struct TailorWorld {
    pub vm: Option<Vm>,
    /// The last reference found on screen (for "When I click" after "I see").
    pub last_match: Option<Match>,
    pub settings: Settings,
}

impl TailorWorld {
    fn new() -> Self {
        TailorWorld {
            vm: None,
            last_match: None,
            settings: settings().clone(),
        }
    }

    /// The running VM, or an error that says which step is missing.
    pub fn vm(&mut self) -> anyhow::Result<&mut Vm> {
        self.vm.as_mut().ok_or_else(|| {
            anyhow::anyhow!(
                "no computer is running: start one with `Given the computer boots from \"NAME\"`"
            )
        })
    }
}

impl std::fmt::Debug for TailorWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TailorWorld")
            .field("vm", &self.vm.as_ref().map(|vm| vm.config().name.clone()))
            .field("last_match", &self.last_match)
            .finish()
    }
}
