//! `tailor doctor`: prints one line per host check.

use std::process::ExitCode;

pub fn run() -> ExitCode {
    let checks = harness::doctor::run_checks();
    let mut failed = 0;
    for check in &checks {
        let mark = match check.status {
            harness::doctor::Status::Ok => "OK  ",
            harness::doctor::Status::Warn => "WARN",
            harness::doctor::Status::Fail => {
                failed += 1;
                "FAIL"
            }
        };
        println!("{mark} {:<22} {}", check.name, check.detail);
    }
    if failed == 0 {
        println!("\nThis host can run Tailor.");
        ExitCode::SUCCESS
    } else {
        println!("\n{failed} check(s) failed; fix them as each line says.");
        ExitCode::FAILURE
    }
}
