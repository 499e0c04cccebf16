//! `tailor`: run Gherkin features against a derivative ISO in QEMU, and the
//! tools around that (doctor, screenshot, ...). Each subcommand lives in its
//! own module under `src/cli/`; this file only parses and dispatches.

mod cli;

use clap::Parser;

#[derive(Parser)]
#[command(name = "tailor", version, about)]
struct Args {
    /// Multiply every timeout by this factor (slow TCG hosts need more);
    /// the environment variable TAILOR_TIMEOUT_SCALE does the same.
    #[arg(long, global = true)]
    timeout_scale: Option<f64>,
    #[command(subcommand)]
    command: cli::Command,
}

fn main() -> std::process::ExitCode {
    steps::runner::init_logging();
    let args = Args::parse();
    if let Some(scale) = args.timeout_scale {
        harness::wait::set_timeout_scale(scale);
    }
    match cli::dispatch(args.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
