//! Running features: the options a user gives (`tailor run ...` or
//! `cargo test --features vm -- ...` take the same ones) and the cucumber
//! set-up behind them: one scenario at a time (each boots a VM on a host
//! that may have two cores), skipped steps count as failures.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use cucumber::{StatsWriter as _, World as _};

use crate::world::{set_settings, Settings};
use crate::TailorWorld;

/// Options of a feature run.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// ISO (or disk image) to test; replaces the boot medium of every
    /// vm-config the features name.
    #[arg(long)]
    pub iso: Option<PathBuf>,
    /// vm-config to use for every boot instead of the one a feature names.
    #[arg(long)]
    pub vm_config: Option<PathBuf>,
    /// Folder of .feature files.
    #[arg(long, default_value = "features")]
    pub features: PathBuf,
    /// Folder of reference images.
    #[arg(long, default_value = "screenshots")]
    pub screenshots: PathBuf,
    /// Folder of vm-configs that features name.
    #[arg(long, default_value = "vm-configs")]
    pub vm_configs: PathBuf,
    /// Where failure artifacts go.
    #[arg(long, default_value = "artifacts")]
    pub artifacts: PathBuf,
    /// Only scenarios whose name matches this regex.
    #[arg(long, short = 'n')]
    pub name: Option<String>,
    /// Only scenarios matching this tag expression, e.g. "@smoke and not @slow".
    #[arg(long, short = 't')]
    pub tags: Option<String>,
    /// Feature files, or FILE:LINE for the one scenario at that line.
    pub targets: Vec<String>,
}

/// One FILE or FILE:LINE target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub file: PathBuf,
    pub line: Option<usize>,
}

impl Target {
    pub fn parse(text: &str) -> anyhow::Result<Target> {
        let (file, line) = match text.rsplit_once(':') {
            Some((file, line)) if !line.is_empty() && line.bytes().all(|b| b.is_ascii_digit()) => {
                (file, Some(line.parse().context("line number")?))
            }
            _ => (text, None),
        };
        let file = std::fs::canonicalize(file)
            .with_context(|| format!("feature file `{file}` not found"))?;
        Ok(Target { file, line })
    }

    fn selects(&self, feature: &gherkin::Feature, scenario: &gherkin::Scenario) -> bool {
        let same_file = feature
            .path
            .as_deref()
            .and_then(|p| std::fs::canonicalize(p).ok())
            .is_some_and(|p| p == self.file);
        same_file && self.line.is_none_or(|line| scenario.position.line == line)
    }
}

/// What a run ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSummary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub parsing_errors: usize,
}

impl RunSummary {
    pub fn success(&self) -> bool {
        self.failed == 0 && self.parsing_errors == 0 && self.skipped == 0
    }
}

use cucumber::gherkin;

/// Run the features as `args` say.
pub async fn run(args: RunArgs) -> anyhow::Result<RunSummary> {
    if !args.features.is_dir() {
        anyhow::bail!("features folder {} does not exist", args.features.display());
    }
    set_settings(Settings {
        screenshots: args.screenshots.clone(),
        vm_configs: args.vm_configs.clone(),
        vm_config: args.vm_config.clone(),
        iso: args.iso.clone(),
        artifacts: args.artifacts.clone(),
    });
    let targets = args
        .targets
        .iter()
        .map(|t| Target::parse(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut opts: cucumber::cli::Opts<_, _, _, cucumber::cli::Empty> =
        cucumber::cli::Opts::default();
    if let Some(name) = &args.name {
        opts.re_filter = Some(
            regex::Regex::new(name)
                .with_context(|| format!("--name `{name}` is not a valid regex"))?,
        );
    }
    if let Some(tags) = &args.tags {
        opts.tags_filter = Some(
            tags.parse()
                .map_err(|e| anyhow::anyhow!("--tags `{tags}` is not a tag expression: {e}"))?,
        );
    }
    let start = Instant::now();
    let writer = TailorWorld::cucumber()
        .max_concurrent_scenarios(1)
        .fail_on_skipped()
        .with_cli(opts)
        .filter_run(args.features.clone(), move |feature, _rule, scenario| {
            targets.is_empty() || targets.iter().any(|t| t.selects(feature, scenario))
        })
        .await;
    let summary = RunSummary {
        passed: writer.passed_steps(),
        failed: writer.failed_steps(),
        skipped: writer.skipped_steps(),
        parsing_errors: writer.parsing_errors(),
    };
    let scenarios = writer.scenarios_stats();
    // The count alone on its line, so CI log readers recognise it.
    println!(
        "\nfeatures: {} passed, {} failed, {} skipped",
        scenarios.passed, scenarios.failed, scenarios.skipped
    );
    println!("scenarios ran in {:.1?}", start.elapsed());
    if scenarios.failed > 0 {
        println!("failure artifacts: {}", args.artifacts.display());
    }
    Ok(summary)
}

/// `Path` helper for callers that resolve a checkout root.
pub fn in_checkout(root: &Path, args: &mut RunArgs) {
    for p in [
        &mut args.features,
        &mut args.screenshots,
        &mut args.vm_configs,
        &mut args.artifacts,
    ] {
        if p.is_relative() {
            *p = root.join(&*p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_and_line_targets() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.feature");
        std::fs::write(&f, "Feature: x\n").unwrap();
        let t = Target::parse(&format!("{}:12", f.display())).unwrap();
        assert_eq!(t.line, Some(12));
        let t = Target::parse(&f.display().to_string()).unwrap();
        assert_eq!(t.line, None);
        let err = Target::parse("/nope/x.feature:3").unwrap_err().to_string();
        assert!(err.contains("/nope/x.feature"), "{err}");
    }
}
