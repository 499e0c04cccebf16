//! Subcommands. One module per subcommand; add a variant here and a line in
//! [`dispatch`].

mod build_iso;
mod doctor;
mod fingerprint;
mod matching;
mod pcap_check;
mod run;
mod screenshot;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use harness::vm::{BootMedium, VmConfig};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Find a reference image in a screenshot: location, score and time.
    Match(matching::MatchArgs),
    /// Cut a reference image (and its sidecar) out of a screenshot.
    Crop(matching::CropArgs),
    /// Check this host: QEMU, accelerator, tun, daemons, disk.
    Doctor,
    /// Run Gherkin features against a VM (filters: --name, --tags, FILE:LINE).
    Run(run::RunArgs),
    /// Boot an ISO, wait, and save the screen as a PNG (smoke test).
    Screenshot(screenshot::ScreenshotArgs),
    /// Build the reference derivative ISO (optionally customized).
    BuildIso(build_iso::Args),
    /// Judge a packet capture: only Tor, no DNS, no IPv6, spoofed MAC.
    /// Exits 0 pass, 1 leak, 2 unreadable, 3 inconclusive, 4 damaged.
    PcapCheck(pcap_check::Args),
    /// What an observer on the LAN sees of the guest in a capture (TOML),
    /// or with --compare how it differs from a baseline. Exits 1 on a
    /// difference, 2 on unreadable input, 3 when inconclusive.
    Fingerprint(fingerprint::Args),
}

pub fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::BuildIso(args) => build_iso::run(args),
        Command::Match(args) => matching::run_match(args),
        Command::Crop(args) => matching::run_crop(args),
        Command::Doctor => Ok(doctor::run()),
        Command::PcapCheck(args) => pcap_check::run(args),
        Command::Fingerprint(args) => fingerprint::run(args),
        Command::Run(args) => runtime()?.block_on(run::run(args)),
        Command::Screenshot(args) => runtime()?
            .block_on(screenshot::run(args))
            .map(|()| ExitCode::SUCCESS),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The vm-config to boot: `--vm-config` (default `vm-configs/smoke.toml`
/// when no ISO is given), with `--iso` replacing its boot medium.
pub fn load_vm_config(vm_config: Option<&Path>, iso: Option<PathBuf>) -> anyhow::Result<VmConfig> {
    let mut config = match (vm_config, &iso) {
        (Some(path), _) => VmConfig::load(path)?,
        (None, Some(iso)) => VmConfig::for_medium(BootMedium::from_path(iso.clone())),
        (None, None) => anyhow::bail!("give --iso PATH or --vm-config FILE"),
    };
    if let Some(iso) = iso {
        config.boot = Some(match &config.boot {
            Some(medium) => medium.with_path(iso),
            None => BootMedium::from_path(iso),
        });
    }
    Ok(config)
}
