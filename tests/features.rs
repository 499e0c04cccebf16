//! `cargo test --features vm`: runs every feature in `features/` against
//! real VMs, with the same options as `tailor run` (pass them after `--`,
//! e.g. `cargo test --features vm --test features -- --name smoke`).

use std::path::Path;
use std::process::{Command, ExitCode};

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    run: steps::runner::RunArgs,
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
    let args = Args::parse_from(std::env::args().filter(|a| !is_libtest_flag(a)));
    let mut run = args.run;
    steps::runner::in_checkout(root, &mut run);

    // The guests the features boot, both cached by content.
    let status = Command::new("bash")
        .arg(root.join("tests/images/build-smoke-iso.sh"))
        .arg(root.join(".cache/smoke.iso"))
        .status();
    match status {
        Ok(s) if s.success() => {}
        other => {
            eprintln!("building the smoke ISO failed: {other:?}");
            return ExitCode::FAILURE;
        }
    }
    let derivative =
        harness::derivative::BuildOptions::new(root, root.join(".cache/derivative/derivative.iso"));
    if let Err(e) = harness::derivative::build(&derivative) {
        eprintln!("building the reference derivative failed: {e}");
        return ExitCode::FAILURE;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(steps::runner::run(run)) {
        Ok(summary) if summary.success() => ExitCode::SUCCESS,
        Ok(summary) => {
            eprintln!("feature run failed: {summary:?}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
