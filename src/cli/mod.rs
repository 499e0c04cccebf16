//! Subcommands. One module per subcommand; add a variant here and a line in
//! [`dispatch`].

use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {}

pub fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {}
}
