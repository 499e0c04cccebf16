//! `tailor screenshot`: boot an ISO, wait, save the screen as PNG. A smoke
//! test of the whole QEMU path, and a quick way to make reference images.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use harness::vm::{Vm, VmOptions};

#[derive(clap::Args)]
pub struct ScreenshotArgs {
    /// ISO (or .qcow2/.img disk image) to boot.
    #[arg(long)]
    iso: Option<PathBuf>,
    /// vm-config to use (its boot medium is replaced by --iso if given).
    #[arg(long)]
    vm_config: Option<PathBuf>,
    /// Seconds to let the guest run before the screenshot.
    #[arg(long, default_value_t = 20.0)]
    after: f64,
    /// Wait for this text on the serial console instead of a fixed time.
    #[arg(long)]
    after_serial: Option<String>,
    /// Where to write the PNG.
    #[arg(long)]
    out: PathBuf,
}

pub async fn run(args: ScreenshotArgs) -> anyhow::Result<()> {
    let config = super::load_vm_config(args.vm_config.as_deref(), args.iso.clone())?;
    let mut vm = Vm::start(&config, VmOptions::default()).await?;
    match &args.after_serial {
        Some(text) => {
            vm.wait_serial(text, Duration::from_secs_f64(args.after))
                .await?
        }
        // A fixed delay is the point of this smoke tool: "what does the
        // screen show N seconds after power-on".
        None => tokio::time::sleep(Duration::from_secs_f64(args.after)).await,
    }
    let screen = vm.screendump().await?;
    screen
        .save(&args.out)
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{}: {}x{} after {}s ({})",
        args.out.display(),
        screen.width(),
        screen.height(),
        args.after,
        vm.accelerator()
    );
    vm.shutdown().await?;
    Ok(())
}
