//! Kernel options typed at the boot menu, as a person (and the Tails test
//! suite) adds them: by keyboard and screen matching only, on any ISO
//! whose menu the vm-config describes, with no `-kernel`/`-append`.
//!
//! - isolinux (BIOS): the menu shows with its countdown; Tab stops the
//!   countdown and opens the selected entry's command line with the cursor
//!   at its end; the options are typed after a space; Return boots.
//! - GRUB (UEFI): `e` stops the countdown and opens the entry's editor on
//!   its first line; Down [`BootMenu::lines_down`] times reaches the
//!   `linux` line, End its end; the options are typed; Ctrl-X boots.
//!
//! Each stage is confirmed on the screen: the menu's reference image, then
//! the editor's. A menu whose countdown ran out before the key arrived
//! boots without the options; the editor then never shows, and the
//! machine is reset and the menu tried again (the Tails suite does the
//! same), a few times at most.

use std::path::Path;
use std::time::{Duration, Instant};

use super::config::{BootMenu, Loader};
use super::{Vm, VmError};
use crate::screen::reference::Reference;
use crate::screen::waiting::{self, WaitOutcome, WaitScreenError};

/// How long to wait for the menu after power-on (firmware, then loader).
pub const MENU_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the editor may take to show after its key.
pub const EDITOR_TIMEOUT: Duration = Duration::from_secs(10);
/// Power-ons before giving up on a menu whose countdown keeps winning.
pub const ATTEMPTS: u32 = 3;

/// The two reference images a boot menu is recognised by.
pub struct MenuReferences {
    /// The menu, countdown running (the countdown itself left out).
    pub menu: Reference,
    /// The command-line editor open on the entry.
    pub editor: Reference,
}

#[derive(Debug, thiserror::Error)]
pub enum BootMenuError {
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error("the {loader} boot menu never showed")]
    NoMenu {
        loader: &'static str,
        #[source]
        source: WaitScreenError,
    },
    #[error("the {loader} boot menu booted on its own {attempts} times before its command line opened (its countdown ran out before the key arrived, or {editor} does not match this loader's editor)")]
    Missed {
        loader: &'static str,
        attempts: u32,
        editor: String,
        #[source]
        source: WaitScreenError,
    },
}

impl BootMenuError {
    /// What the last screen wait saw, for the run report.
    pub fn outcome(&self) -> Option<&WaitOutcome> {
        match self {
            BootMenuError::NoMenu { source, .. } | BootMenuError::Missed { source, .. } => {
                source.outcome()
            }
            BootMenuError::Vm(_) => None,
        }
    }
}

/// What typing the options took, for the report and BENCHMARKS.md.
#[derive(Debug, Clone)]
pub struct Typed {
    /// Every screen wait on the way (menu, editor; again after a reset).
    pub waits: Vec<WaitOutcome>,
    /// Power-on (or the last reset) to the menu on screen.
    pub menu_after: Duration,
    /// The menu on screen to the boot key pressed.
    pub typing: Duration,
    /// Resets because the countdown won.
    pub resets: u32,
}

/// The keys of each loader.
struct Keys {
    open_editor: &'static str,
    boot: &'static str,
}

fn keys(loader: Loader) -> Keys {
    match loader {
        Loader::Isolinux => Keys {
            open_editor: "Tab",
            boot: "Return",
        },
        Loader::Grub => Keys {
            open_editor: "e",
            boot: "ctrl+x",
        },
    }
}

/// The text typed after the loader's own options.
fn typed_text(options: &str) -> String {
    format!(" {}", options.trim())
}

/// From a freshly started (or reset) VM: wait for the boot menu, open its
/// command-line editor, add `options` and boot. A failure picture goes to
/// `artifacts`.
pub async fn boot_with_options(
    vm: &mut Vm,
    menu: &BootMenu,
    references: &MenuReferences,
    options: &str,
    artifacts: &Path,
) -> Result<Typed, BootMenuError> {
    let keys = keys(menu.loader);
    let loader = menu.loader.name();
    let mut waits = Vec::new();
    let mut started = Instant::now();
    let mut resets = 0;
    loop {
        let seen = waiting::wait_for(vm, &references.menu, MENU_TIMEOUT, artifacts)
            .await
            .map_err(|source| BootMenuError::NoMenu { loader, source })?;
        waits.push(seen);
        let menu_after = started.elapsed();
        let on_menu = Instant::now();
        // The key that opens the editor also stops the countdown.
        vm.press(keys.open_editor).await?;
        match waiting::wait_for(vm, &references.editor, EDITOR_TIMEOUT, artifacts).await {
            Ok(seen) => waits.push(seen),
            Err(source) => {
                if let Some(outcome) = source.outcome() {
                    waits.push(outcome.clone());
                }
                resets += 1;
                if resets >= ATTEMPTS {
                    return Err(BootMenuError::Missed {
                        loader,
                        attempts: resets,
                        editor: references.editor.name.clone(),
                        source,
                    });
                }
                tracing::warn!(
                    "the {loader} menu's countdown ran out before {} opened its editor; resetting",
                    keys.open_editor
                );
                vm.reset().await?;
                started = Instant::now();
                continue;
            }
        }
        if menu.loader == Loader::Grub {
            for _ in 0..menu.lines_down {
                vm.press("Down").await?;
            }
            vm.press("End").await?;
        }
        vm.type_text(&typed_text(options)).await?;
        vm.press(keys.boot).await?;
        let typed = Typed {
            waits,
            menu_after,
            typing: on_menu.elapsed(),
            resets,
        };
        tracing::info!(
            "{loader} menu on screen {:.1?} after power-on; `{}` typed and booted in {:.1?}",
            typed.menu_after,
            options.trim(),
            typed.typing
        );
        return Ok(typed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_loader_has_its_keys() {
        let isolinux = keys(Loader::Isolinux);
        assert_eq!((isolinux.open_editor, isolinux.boot), ("Tab", "Return"));
        let grub = keys(Loader::Grub);
        assert_eq!((grub.open_editor, grub.boot), ("e", "ctrl+x"));
        for combo in ["Tab", "Return", "e", "ctrl+x", "Down", "End"] {
            crate::input::keymap::parse_combo(combo).unwrap();
        }
    }

    #[test]
    fn options_follow_the_loaders_after_one_space() {
        assert_eq!(typed_text("  a=1 b "), " a=1 b");
    }
}
