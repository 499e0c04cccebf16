//! Named states a scenario can start from, like the Tails suite's
//! checkpoints: `Given a computer at checkpoint "NAME"` reaches NAME once per
//! run (booting and driving the guest through its recipe, after reaching its
//! parent checkpoint) and saves it; every later scenario that asks for it
//! starts a fresh QEMU straight from the saved state (`-loadvm`) instead of
//! booting.
//!
//! The saved states live in one qcow2 per vm-config in a run-wide folder
//! (`tailor-checkpoints-<pid>-*` in the temp dir), removed after the run or,
//! after a SIGKILL, by the next run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use futures::FutureExt as _;
use harness::derivative::markers;
use harness::vm::VmOptions;

use crate::TailorWorld;

type RecipeSteps = for<'a> fn(&'a mut TailorWorld) -> LocalBoxFuture<'a, anyhow::Result<()>>;

/// How to reach a checkpoint from its parent (or from power-on).
pub struct Recipe {
    pub name: &'static str,
    /// The vm-config it boots (name in `vm-configs/`).
    pub config: &'static str,
    pub parent: Option<&'static str>,
    pub steps: RecipeSteps,
    /// Whether a later scenario may start from the saved state (else it
    /// is reached again from its parent each time).
    pub reusable: bool,
    /// The guest is on the network in this state: a VM restored from it
    /// must show its traffic, and is brought back online first (its
    /// connections to the lab are stale: see `lab_steps::refresh_online`).
    pub online: bool,
}

/// Boot to the derivative's greeter with its guest agent answering and
/// the mouse working.
fn to_greeter(world: &mut TailorWorld) -> LocalBoxFuture<'_, anyhow::Result<()>> {
    async move {
        let vm = world.vm()?;
        vm.wait_serial(markers::GREETER_SHOWN, Duration::from_secs(90))
            .await?;
        vm.wait_serial(markers::POINTER_OPENED, Duration::from_secs(60))
            .await?;
        world
            .guest()?
            .wait_ready(harness::wait::scaled(Duration::from_secs(60)))
            .await?;
        Ok(())
    }
    .boxed_local()
}

/// Every checkpoint the features may name.
pub fn recipes() -> Vec<Recipe> {
    vec![
        Recipe {
            name: "greeter",
            config: "derivative",
            parent: None,
            reusable: true,
            online: false,
            steps: to_greeter,
        },
        Recipe {
            name: "lab-greeter",
            config: "derivative-lab",
            parent: None,
            reusable: true,
            online: false,
            steps: to_greeter,
        },
        Recipe {
            name: "tor-ready",
            config: "derivative-lab",
            parent: Some("lab-greeter"),
            reusable: true,
            online: true,
            steps: |world| go_online(world, Duration::from_secs(180)).boxed_local(),
        },
        // What `tor-ready` is for a VPN derivative (`online` resolves to
        // it). A restored guest's tunnel session is stale (the server has
        // seen its packet counters already and would drop them as
        // replays): `lab_steps::refresh_online` has the guest's VPN client
        // reconnect, and waits for its new handshake.
        Recipe {
            name: "vpn-ready",
            config: "derivative-lab",
            parent: Some("lab-greeter"),
            reusable: true,
            online: true,
            steps: |world| go_online(world, Duration::from_secs(120)).boxed_local(),
        },
        Recipe {
            name: "smoke-shell",
            config: "smoke",
            parent: None,
            reusable: true,
            online: false,
            steps: |world| {
                async move {
                    world
                        .vm()?
                        .wait_serial("TAILOR-SMOKE-SHELL", Duration::from_secs(90))
                        .await?;
                    Ok(())
                }
                .boxed_local()
            },
        },
    ]
}

struct Store {
    dir: tempfile::TempDir,
    /// Saved checkpoints per vm-config.
    saved: BTreeMap<String, BTreeSet<String>>,
}

static STORE: Mutex<Option<Store>> = Mutex::new(None);
const PREFIX: &str = "tailor-checkpoints-";

/// The run's checkpoint folder for a vm-config (created on first use).
fn store_dir(config: &str) -> anyhow::Result<PathBuf> {
    let mut store = STORE.lock().unwrap_or_else(|e| e.into_inner());
    if store.is_none() {
        remove_orphans(&std::env::temp_dir());
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .tempdir()?;
        *store = Some(Store {
            dir,
            saved: BTreeMap::new(),
        });
    }
    let dir = store.as_ref().expect("just set").dir.path().join(config);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn is_saved(config: &str, name: &str) -> bool {
    STORE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .is_some_and(|s| s.saved.get(config).is_some_and(|set| set.contains(name)))
}

fn mark_saved(config: &str, name: &str) {
    if let Some(store) = STORE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        store
            .saved
            .entry(config.into())
            .or_default()
            .insert(name.into());
    }
}

/// Forget every checkpoint and remove their files (end of a run).
pub fn clear() {
    STORE.lock().unwrap_or_else(|e| e.into_inner()).take();
    crate::bridge_steps::forget_checkpoints();
    KEPT.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

fn remove_orphans(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Keep what the guest sent until checkpoint `name` was saved (from
/// power-on, or from the parent's restore) with the checkpoint's artifacts,
/// `<run>/checkpoints/<name>/capture.pcap`. The scenario that reached it
/// judges the same frames: its capture goes on in the same file.
fn keep_boot_capture(world: &TailorWorld, name: &str) {
    let Some(capture) = world.captures.last() else {
        return;
    };
    let dir = world.settings.artifacts.join("checkpoints").join(name);
    let path = dir.join("capture.pcap");
    let kept = std::fs::create_dir_all(&dir).and_then(|()| std::fs::copy(&capture.path, &path));
    match kept {
        Ok(_) => {
            KEPT.lock().unwrap_or_else(|e| e.into_inner()).insert(
                name.to_owned(),
                KeptCapture {
                    path,
                    from: capture.restored_from.clone(),
                },
            );
        }
        Err(e) => tracing::warn!(
            "could not keep the capture of checkpoint `{name}` in {}: {e}",
            dir.display()
        ),
    }
}

/// The capture kept when a checkpoint was saved, and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptCapture {
    pub path: PathBuf,
    /// `None`: from power-on; else from the restore of this checkpoint
    /// (whose own kept capture holds what came before).
    pub from: Option<String>,
}

/// The kept captures of this run's checkpoints, by name.
static KEPT: Mutex<BTreeMap<String, KeptCapture>> = Mutex::new(BTreeMap::new());

/// The capture kept when checkpoint `name` was saved in this run.
pub fn kept_capture(name: &str) -> Option<KeptCapture> {
    KEPT.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
        .cloned()
}

/// The steps of an online checkpoint: the lab's network, Start, and the
/// derivative's own word that it is online within `timeout`.
async fn go_online(world: &mut TailorWorld, timeout: Duration) -> anyhow::Result<()> {
    crate::lab_steps::ensure_network().await?;
    crate::lab_steps::start_on_lab(world).await?;
    crate::lab_steps::wait_online(world, timeout).await
}

/// The checkpoint a kind-neutral name stands for: `online` is
/// `tor-ready` for a derivative that uses Tor, `vpn-ready` for a VPN one.
pub fn resolve_alias(name: &str, kind: harness::derivative::Kind) -> &str {
    match (name, kind.uses_tor()) {
        ("online", true) => "tor-ready",
        ("online", false) => "vpn-ready",
        _ => name,
    }
}

/// Put `world` at checkpoint `name`: restore it if this run saved it,
/// else reach it (parent first) and save it.
pub fn reach<'a>(
    world: &'a mut TailorWorld,
    name: &'a str,
) -> LocalBoxFuture<'a, anyhow::Result<()>> {
    async move {
        let all = recipes();
        let name = resolve_alias(name, world.settings.kind);
        let recipe = all.iter().find(|r| r.name == name).ok_or_else(|| {
            anyhow::anyhow!(
                "no checkpoint named `{name}`; known: {}",
                all.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
            )
        })?;
        let config = world.settings.vm_config_for(recipe.config)?;
        let dir = store_dir(recipe.config)?;
        // Any VM of an earlier step goes first: one QEMU per store.
        world.retire_vm().await;
        if recipe.reusable && is_saved(recipe.config, name) {
            let options = VmOptions {
                persistent_state: Some(dir),
                start_from: Some(name.into()),
                ..Default::default()
            };
            world.start_vm(&config, options).await?;
            if recipe.config.starts_with("derivative") {
                // The restored guest's clock is as old as the checkpoint;
                // Tor refuses a consensus from its "future".
                let guest = world.guest()?;
                guest
                    .wait_ready(harness::wait::scaled(Duration::from_secs(30)))
                    .await?;
                guest.sync_clock().await?;
            }
            // What the guest was given before the state was saved (its
            // bridges) holds for the restored guest too.
            crate::bridge_steps::checkpoint_restored(world, name);
            if recipe.online {
                world.network_used();
                crate::lab_steps::refresh_online(world).await?;
            }
            return Ok(());
        }
        match recipe.parent {
            Some(parent) => reach(world, parent).await?,
            None => {
                let options = VmOptions {
                    persistent_state: Some(dir),
                    ..Default::default()
                };
                // Through the boot menu when the vm-config has options.
                world.boot(&config, options, None).await?;
            }
        }
        (recipe.steps)(world).await?;
        if recipe.reusable {
            world.vm()?.save_checkpoint(name).await?;
            mark_saved(recipe.config, name);
            crate::bridge_steps::checkpoint_saved(world, name);
            keep_boot_capture(world, name);
        }
        Ok(())
    }
    .boxed_local()
}
