//! `tailor run`: run Gherkin features against a VM.

use std::process::ExitCode;

pub use steps::runner::RunArgs;

pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let summary = tokio::select! {
        summary = steps::runner::run(args) => summary?,
        // Ctrl-C: returning drops the running scenario's VM, which stops
        // QEMU and removes its files, instead of leaving them to the signal.
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: stopping the VM and cleaning up");
            // The run's lab lives in a static: stop its daemons (Tor
            // network, VPN server) and remove its namespaces now, rather
            // than leaving the namespaces to the next run.
            steps::lab_steps::teardown().await;
            return Ok(ExitCode::from(130));
        }
    };
    Ok(if summary.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
