//! Subcommands. One module per subcommand; add a variant here and a line in
//! [`dispatch`].

mod build_iso;

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Build the reference derivative ISO (optionally customized).
    BuildIso(build_iso::Args),
}

pub fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::BuildIso(args) => build_iso::run(args),
    }
}
