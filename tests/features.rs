//! `cargo test --features vm`: runs every feature in `features/` against
//! real VMs, with the same options as `tailor run` (pass them after `--`,
//! e.g. `cargo test --features vm --test features -- --name smoke`) and
//! the same exit codes: 0 passed, 1 a scenario failed, 2 a usage or input
//! error found before anything booted.

use std::path::Path;
use std::process::{Command, ExitCode};

use clap::Parser;
use steps::runner::{exit_code, run, RunArgs};
use steps::selection::{select, Selection};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    run: RunArgs,
    /// Multiply every timeout by this factor (as `tailor --timeout-scale`).
    #[arg(long)]
    timeout_scale: Option<f64>,
}

/// libtest flags cargo may pass along; this runner has no use for them.
fn is_libtest_flag(arg: &str) -> bool {
    matches!(
        arg,
        "--nocapture" | "--quiet" | "-q" | "--show-output" | "--ignored" | "--include-ignored"
    ) || arg.starts_with("--test-threads")
        || arg.starts_with("--color")
}

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let args = match Args::try_parse_from(std::env::args().filter(|a| !is_libtest_flag(a))) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Some(scale) = args.timeout_scale {
        harness::wait::set_timeout_scale(scale);
    }
    let mut run_args = args.run;
    steps::runner::in_checkout(root, &mut run_args);
    run_args.rerun_prefix = [
        "cargo",
        "test",
        "--features",
        "vm",
        "--test",
        "features",
        "--",
    ]
    .map(String::from)
    .to_vec();

    // A wrong filter or feature says so before the guests are built.
    // Before the reference ISO is built its kind is the reference's.
    let kind = match run_args.resolve_kind() {
        Ok((kind, _)) => kind,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(exit_code(&Err(e)));
        }
    };
    match select(&run_args.request(kind)) {
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(exit_code(&Err(e)));
        }
        Ok(Selection::EmptyShard(_)) => {}
        Ok(Selection::Run { .. }) if run_args.list => {}
        // The guests the features boot, both cached by content.
        Ok(Selection::Run { .. }) => {
            if let Some(code) = build_guests(root) {
                return code;
            }
        }
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = runtime.block_on(run(run_args));
    match &outcome {
        Ok(summary) if !summary.success() => eprintln!("feature run failed: {summary:?}"),
        Err(e) => eprintln!("error: {e:#}"),
        Ok(_) => {}
    }
    ExitCode::from(exit_code(&outcome))
}

/// Build the smoke ISO and the reference derivative (cached); the exit
/// code if that failed.
fn build_guests(root: &Path) -> Option<ExitCode> {
    let status = Command::new("bash")
        .arg(root.join("tests/images/build-smoke-iso.sh"))
        .arg(root.join(".cache/smoke.iso"))
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => {
            eprintln!("building the smoke ISO failed: {other:?}");
            return Some(ExitCode::FAILURE);
        }
    }
    let derivative =
        harness::derivative::BuildOptions::new(root, root.join(".cache/derivative/derivative.iso"));
    if let Err(e) = harness::derivative::build(&derivative) {
        eprintln!("building the reference derivative failed: {e}");
        return Some(ExitCode::FAILURE);
    }
    None
}
