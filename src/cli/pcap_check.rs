//! `tailor pcap-check`: judge a capture against an allow-list, outside the
//! test suite (e.g. a capture taken by hand with tcpdump or Wireshark).
//!
//! Exit codes: 0 when every check passes, 1 when a check finds a leak, 2
//! when the capture or the allow-list cannot be read (so a script can tell
//! "leak" from "could not judge").

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use harness::net::analysis::{self, MacAddr};
use harness::net::policy::{self, Policy};

#[derive(clap::Args)]
pub struct Args {
    /// The capture (pcap or pcapng).
    file: PathBuf,
    /// An endpoint the guest may talk to (a Tor relay's IP:ORPort); repeatable.
    #[arg(long = "allow", value_name = "IP:PORT", value_parser = parse_endpoint)]
    allow: Vec<SocketAddr>,
    /// A file of allowed endpoints, one IP:PORT per line, `#` comments.
    #[arg(long, value_name = "FILE")]
    allow_file: Option<PathBuf>,
    /// The guest NIC's configured MAC: adds the check that the guest sent
    /// from another (spoofed), constant MAC.
    #[arg(long, value_name = "MAC")]
    nic_mac: Option<MacAddr>,
    /// The lab's DHCP server; DHCP with any other server is a leak. Without
    /// it, DHCP with any server is tolerated.
    #[arg(long, value_name = "IP")]
    dhcp_server: Option<IpAddr>,
    /// A MAC of the lab's side of the link (repeatable), so the MAC check
    /// does not count it as the guest's.
    #[arg(long, value_name = "MAC")]
    lab_mac: Vec<MacAddr>,
    /// Also print the capture's summary (protocols, source MACs).
    #[arg(long)]
    summary: bool,
}

fn parse_endpoint(s: &str) -> Result<SocketAddr, String> {
    policy::parse_endpoint(s).map_err(|e| e.to_string())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut allowed = args.allow;
    if let Some(file) = &args.allow_file {
        match Policy::read_allow_file(file) {
            Ok(list) => allowed.extend(list),
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let mut policy = Policy::new(allowed, args.dhcp_server);
    policy.lab_macs.extend(args.lab_mac);
    let capture = match analysis::analyse_path(&args.file)
        .with_context(|| format!("cannot judge {}", args.file.display()))
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    if args.summary {
        print!("{capture}");
    }
    let verdicts = policy.all(&capture, args.nic_mac);
    for v in &verdicts {
        print!("{v}");
    }
    Ok(if verdicts.iter().all(|v| v.passed()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
