//! `tailor build-iso`: build the reference derivative's ISO, with
//! customizations, or take it from the cache when nothing changed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// A customization file (TOML, see derivative/customizations/); may be
    /// given several times, applied in order.
    #[arg(long = "customization", value_name = "FILE.toml")]
    customizations: Vec<PathBuf>,
    /// Where to write the ISO; the package manifest goes next to it
    /// (NAME.manifest.toml).
    #[arg(long, value_name = "PATH.iso")]
    out: PathBuf,
    /// The repository holding derivative/ and .cache/ (default: the current
    /// directory).
    #[arg(long, value_name = "DIR", default_value = ".")]
    repo: PathBuf,
    /// Use this greeter executable instead of building derivative/greeter.
    #[arg(long, value_name = "PATH")]
    greeter: Option<PathBuf>,
    /// Use this remote-shell server instead of building
    /// derivative/remote-shell.
    #[arg(long, value_name = "PATH")]
    remote_shell: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let repo = args
        .repo
        .canonicalize()
        .with_context(|| format!("repository {}", args.repo.display()))?;
    let mut opts = harness::derivative::BuildOptions::new(repo, args.out);
    opts.customizations = args.customizations;
    opts.greeter = args.greeter;
    opts.remote_shell = args.remote_shell;
    let built = harness::derivative::build(&opts)?;
    println!(
        "{} ({}; manifest {})",
        built.iso.display(),
        if built.cached {
            "from the cache"
        } else {
            "built"
        },
        built.manifest.display()
    );
    Ok(ExitCode::SUCCESS)
}
