//! `cargo test --features vm`: runs every feature in `features/` against
//! real VMs, with the same options as `tailor run` (pass them after `--`,
//! e.g. `cargo test --features vm --test features -- --name smoke`) and
//! the same exit codes: 0 passed, 1 a scenario failed, 2 a usage or input
//! error found before anything booted.
//!
//! With no filter (no feature, `--tags` or `--name`), as CI runs it, the
//! scenarios tagged `@full-matrix` are left out: they cost minutes and
//! prove what the rest of the run proves on a cheaper path (the lab
//! features already boot through the boot menu with Tails' remote shell).
//! `TAILOR_FULL_MATRIX=1` (the nightly run) keeps them and then runs the
//! `@lab` features a second time with the QEMU Guest Agent
//! (`vm-configs/derivative-lab-qga.toml`), so both agents pass the lab
//! suite. A filter runs what it names, tagged or not.

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

/// Scenarios only the nightly run has time for.
const FULL_MATRIX_TAG: &str = "@full-matrix";

fn full_matrix() -> bool {
    std::env::var("TAILOR_FULL_MATRIX").is_ok_and(|v| v == "1")
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
    let whole_suite =
        run_args.targets.is_empty() && run_args.tags.is_none() && run_args.name.is_none();
    if whole_suite && !full_matrix() {
        run_args.tags = Some(format!("not {FULL_MATRIX_TAG}"));
    }
    // The nightly's second pass: the lab features with the other agent.
    let qga_pass = (whole_suite && full_matrix() && !run_args.list).then(|| RunArgs {
        tags: Some("@lab".into()),
        vm_config: Some(root.join("vm-configs/derivative-lab-qga.toml")),
        artifacts: run_args.artifacts.join("lab-with-qga"),
        junit: run_args
            .junit
            .as_ref()
            .map(|j| j.with_extension("lab-with-qga.xml")),
        ..run_args.clone()
    });

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
    let mut code = report(runtime.block_on(run(run_args)), "feature run");
    if let Some(qga) = qga_pass {
        eprintln!("the lab features again, with the QEMU Guest Agent (TAILOR_FULL_MATRIX=1)");
        code = code.max(report(
            runtime.block_on(run(qga)),
            "lab features with the QEMU Guest Agent",
        ));
    }
    ExitCode::from(code)
}

/// Say how a run went; its exit code.
fn report(outcome: anyhow::Result<steps::runner::RunSummary>, what: &str) -> u8 {
    match &outcome {
        Ok(summary) if !summary.success() => eprintln!("{what} failed: {summary:?}"),
        Err(e) => eprintln!("error: {e:#}"),
        Ok(_) => {}
    }
    exit_code(&outcome)
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
