//! The command that runs one scenario again, ready to paste: its
//! `FILE:LINE` and the options this run was given that change what runs
//! (`--iso`, `--vm-config`, `--screenshots`, `--vm-configs`,
//! `--fingerprints`, `--timeout-scale`), after the way this run was started (`tailor run`,
//! or `cargo test --features vm --test features --`). A failed scenario's
//! banner prints it, the end of the run lists it for every failure, and
//! the report shows it beside each scenario.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cucumber::gherkin;

use crate::runner::RunArgs;
use crate::selection::Chosen;

/// The rerun command of every scenario of a run.
#[derive(Debug, Clone, Default)]
pub struct Commands {
    /// By (canonical feature file, cucumber's line of the scenario).
    by_scenario: Arc<BTreeMap<(PathBuf, usize), String>>,
}

impl Commands {
    pub fn new(args: &RunArgs, chosen: &[Chosen]) -> Commands {
        let prefix = match &args.rerun_prefix[..] {
            [] => vec!["tailor".to_owned(), "run".to_owned()],
            given => given.to_vec(),
        };
        let options = options(args, harness::wait::timeout_scale());
        let by_scenario = chosen
            .iter()
            .map(|c| {
                let words = prefix
                    .iter()
                    .cloned()
                    .chain([c.target()])
                    .chain(options.iter().cloned());
                ((c.file.clone(), c.run_line), quote(words))
            })
            .collect();
        Commands {
            by_scenario: Arc::new(by_scenario),
        }
    }

    /// The command for a scenario as cucumber hands it over.
    pub fn get(&self, feature: &gherkin::Feature, scenario: &gherkin::Scenario) -> Option<String> {
        let file = feature.path.clone()?;
        self.by_scenario
            .get(&(file, scenario.position.line))
            .cloned()
    }

    /// [`Commands::get`] as a function the report's recorder can keep.
    pub fn for_report(&self) -> crate::report::RerunCommand {
        let this = self.clone();
        Arc::new(move |feature, scenario| this.get(feature, scenario))
    }
}

/// The options of `args` that differ from a plain `tailor run`, and the
/// timeout scale when it is not 1.
fn options(args: &RunArgs, scale: f64) -> Vec<String> {
    let mut out = Vec::new();
    let path = |p: &Path| p.display().to_string();
    if let Some(iso) = &args.iso {
        out.extend(["--iso".to_owned(), path(iso)]);
    }
    if let Some(config) = &args.vm_config {
        out.extend(["--vm-config".to_owned(), path(config)]);
    }
    let default_screens = [PathBuf::from("screenshots")];
    if !same_folders(&args.screenshots, &default_screens) {
        for dir in &args.screenshots {
            out.extend(["--screenshots".to_owned(), path(dir)]);
        }
    }
    if !same_folders(
        std::slice::from_ref(&args.vm_configs),
        &[PathBuf::from("vm-configs")],
    ) {
        out.extend(["--vm-configs".to_owned(), path(&args.vm_configs)]);
    }
    if !same_folders(
        std::slice::from_ref(&args.fingerprints),
        &[PathBuf::from("fingerprints")],
    ) {
        out.extend(["--fingerprints".to_owned(), path(&args.fingerprints)]);
    }
    if scale != 1.0 {
        out.extend(["--timeout-scale".to_owned(), scale.to_string()]);
    }
    out
}

/// Whether two lists of folders name the same folders (relative ones are
/// from the current folder, where the command will be pasted).
fn same_folders(a: &[PathBuf], b: &[PathBuf]) -> bool {
    let norm = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| norm(x) == norm(y))
}

/// Words joined into one shell command line, each quoted if it needs it.
fn quote(words: impl Iterator<Item = String>) -> String {
    words
        .map(|w| match shlex::try_quote(&w) {
            Ok(q) => q.into_owned(),
            // A NUL byte cannot be passed on a command line at all.
            Err(_) => w,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

static CURRENT: Mutex<Option<String>> = Mutex::new(None);

/// The running scenario's command (set by the runner's before-hook).
pub fn set_current(command: Option<String>) {
    *CURRENT.lock().unwrap_or_else(|e| e.into_inner()) = command;
}

/// The running scenario's command, for its failure banner.
pub fn current() -> Option<String> {
    CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_a_shell() {
        let words = [
            "tailor",
            "run",
            "my features/a.feature:3",
            "--iso",
            "x'y.iso",
        ];
        assert_eq!(
            quote(words.iter().map(|w| w.to_string())),
            r#"tailor run 'my features/a.feature:3' --iso "x'y.iso""#
        );
    }

    #[test]
    fn only_options_that_change_the_run_are_repeated() {
        let mut args = RunArgs::in_project(Path::new(""));
        assert_eq!(options(&args, 1.0), Vec::<String>::new());
        args.iso = Some("b.iso".into());
        args.screenshots = vec!["screenshots/branding".into(), "screenshots".into()];
        args.vm_configs = "my-configs".into();
        args.fingerprints = "my-baselines".into();
        assert_eq!(
            options(&args, 2.5),
            [
                "--iso",
                "b.iso",
                "--screenshots",
                "screenshots/branding",
                "--screenshots",
                "screenshots",
                "--vm-configs",
                "my-configs",
                "--fingerprints",
                "my-baselines",
                "--timeout-scale",
                "2.5"
            ]
        );
    }
}
