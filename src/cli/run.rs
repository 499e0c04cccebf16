//! `tailor run`: run Gherkin features against a VM. Exit codes: 0 every
//! scenario passed (or nothing to do: `--list`, an empty shard), 1 a
//! scenario failed, 2 a usage or input error found before anything booted,
//! 130 interrupted.

use std::process::ExitCode;

pub use steps::runner::RunArgs;

pub async fn run(mut args: RunArgs) -> anyhow::Result<ExitCode> {
    // The rerun command starts the way this one did.
    args.rerun_prefix = vec![
        std::env::args().next().unwrap_or_else(|| "tailor".into()),
        "run".into(),
    ];
    let outcome = tokio::select! {
        outcome = steps::runner::run(args) => outcome,
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
    if let Err(e) = &outcome {
        eprintln!("error: {e:#}");
    }
    Ok(ExitCode::from(steps::runner::exit_code(&outcome)))
}
