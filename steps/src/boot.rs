//! Booting a computer as a person boots it: power on, and when there are
//! kernel options to add (the step's, after the vm-config's own
//! `kernel_options`), type them at the boot menu
//! (`harness::vm::boot_menu`). Checkpoint boots come through here too.

use cucumber::given;
use harness::screen::reference::Reference;
use harness::vm::boot_menu::{self, MenuReferences};
use harness::vm::{VmConfig, VmOptions};

use crate::TailorWorld;

/// The guest's log stream in a scenario's artifacts.
pub const GUEST_JOURNAL: &str = "guest-journal.log";

/// What is typed at the menu: the vm-config's options, then `extra`.
pub fn kernel_options(config: &VmConfig, extra: Option<&str>) -> Option<String> {
    let all: Vec<&str> = [config.kernel_options.as_deref(), extra]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|o| !o.is_empty())
        .collect();
    (!all.is_empty()).then(|| all.join(" "))
}

impl TailorWorld {
    /// Start `config`'s VM in place of any running one and boot it, typing
    /// the kernel options at its boot menu when there are any.
    pub async fn boot(
        &mut self,
        config: &VmConfig,
        options: VmOptions,
        extra_kernel_options: Option<&str>,
    ) -> anyhow::Result<()> {
        let typed = kernel_options(config, extra_kernel_options);
        let references = match &typed {
            Some(_) => Some(MenuReferences {
                menu: self.load_reference(&config.boot_menu.menu_reference)?,
                editor: self.load_reference(&config.boot_menu.editor_reference)?,
            }),
            None => None,
        };
        self.start_vm(config, options).await?;
        let (Some(text), Some(references)) = (typed, references) else {
            return Ok(());
        };
        let artifacts = self.scenario_dir.clone();
        let result = boot_menu::boot_with_options(
            self.vm()?,
            &config.boot_menu,
            &references,
            &text,
            &artifacts,
        )
        .await;
        match result {
            Ok(typed) => {
                for wait in typed.waits {
                    crate::report::evidence::screen_wait(wait);
                }
                Ok(())
            }
            Err(e) => {
                if let Some(outcome) = e.outcome() {
                    crate::report::evidence::screen_wait(outcome.clone());
                }
                Err(anyhow::Error::new(e).context(format!(
                    "typing the kernel options {text:?} at the boot menu of {}",
                    config.source.display()
                )))
            }
        }
    }

    fn load_reference(&self, name: &str) -> anyhow::Result<Reference> {
        Ok(Reference::load(self.settings.reference_dir(name), name)?)
    }
}

#[given(expr = "the computer boots from {string} with the kernel options {string}")]
async fn boots_with_options(
    world: &mut TailorWorld,
    name: String,
    options: String,
) -> anyhow::Result<()> {
    let config = world.settings.vm_config_for(&name)?;
    world
        .boot(&config, VmOptions::default(), Some(&options))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configs_options_come_first() {
        let mut config = VmConfig::for_medium(harness::vm::BootMedium::Iso("x.iso".into()));
        assert_eq!(kernel_options(&config, None), None);
        assert_eq!(kernel_options(&config, Some("  ")), None);
        assert_eq!(kernel_options(&config, Some("a=1")).as_deref(), Some("a=1"));
        config.kernel_options = Some("autotest_never_use_this_option".into());
        assert_eq!(
            kernel_options(&config, Some("a=1")).as_deref(),
            Some("autotest_never_use_this_option a=1")
        );
    }
}
