//! Subcommands. One module per subcommand; add a variant here and a line in
//! [`dispatch`].

use std::process::ExitCode;

mod pcap_check;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Judge a packet capture: only Tor, no DNS, no IPv6, spoofed MAC.
    /// Exits 1 on a leak, 2 if the capture cannot be read.
    PcapCheck(pcap_check::Args),
}

pub fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::PcapCheck(args) => pcap_check::run(args),
    }
}
