//! Subcommands. One module per subcommand; add a variant here and a line in
//! [`dispatch`].

mod matching;

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Find a reference image in a screenshot: location, score and time.
    Match(matching::MatchArgs),
    /// Cut a reference image (and its sidecar) out of a screenshot.
    Crop(matching::CropArgs),
}

pub fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Match(args) => matching::run_match(args),
        Command::Crop(args) => matching::run_crop(args),
    }
}
