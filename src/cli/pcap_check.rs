//! `tailor pcap-check`: judge a capture against an allow-list, outside the
//! test suite (e.g. a capture taken by hand with tcpdump or Wireshark).
//!
//! Exit codes, so a script can tell a leak from a capture that proves
//! nothing from one it could not read:
//!
//! | code | meaning |
//! | ---: | --- |
//! | 0 | every check passed |
//! | 1 | a leak: some check failed |
//! | 2 | usage error or unreadable input (missing file, not a capture, bad allow-list) |
//! | 3 | inconclusive: no leak, but some check could not prove anything (e.g. no frame from the guest) |
//! | 4 | damaged capture: cut short, or corrupt |
//!
//! A leak wins over everything else that was judged: a capture with a leak
//! and an inconclusive check exits 1.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use harness::net::analysis::{self, MacAddr, Options};
use harness::net::policy::{Endpoint, Outcome, Policy};

const AFTER_HELP: &str = "\
Allow-list files hold one endpoint per line: IP:PORT (a Tor relay's ORPort: \
TCP whose first payload is a TLS handshake), tcp:IP:PORT (any TCP, e.g. an \
obfs4 bridge), udp:IP:PORT (any UDP, e.g. a WireGuard endpoint); IPv6 in \
brackets; `#` starts a comment.

Exit status: 0 every check passed; 1 a leak; 2 usage error or unreadable \
input (missing file, not a capture, bad allow-list); 3 inconclusive (no \
leak, but some check could not prove anything); 4 damaged capture (cut \
short or corrupt).";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// The capture (pcap or pcapng).
    file: PathBuf,
    /// A Tor relay's ORPort the guest may use: TCP only, and each
    /// connection must open with a TLS handshake (repeatable).
    #[arg(long = "allow", value_name = "IP:PORT")]
    allow: Vec<SocketAddr>,
    /// An endpoint the guest may reach over any TCP, e.g. an obfs4 bridge
    /// (repeatable).
    #[arg(long = "allow-tcp", value_name = "IP:PORT")]
    allow_tcp: Vec<SocketAddr>,
    /// An endpoint the guest may reach over UDP, e.g. a VPN (repeatable).
    #[arg(long = "allow-udp", value_name = "IP:PORT")]
    allow_udp: Vec<SocketAddr>,
    /// A file of allowed endpoints (format below).
    #[arg(long, value_name = "FILE")]
    allow_file: Option<PathBuf>,
    /// The guest NIC's configured MAC: adds the check that it appears
    /// nowhere in what the guest sent (Ethernet source, ARP, DHCP, EUI-64
    /// IPv6 addresses, raw bytes) and that the guest used one MAC.
    #[arg(long, value_name = "MAC")]
    nic_mac: Option<MacAddr>,
    /// The lab's DHCP server; DHCP with any other server is a leak. Without
    /// it, DHCP with any server is tolerated.
    #[arg(long, value_name = "IP")]
    dhcp_server: Option<IpAddr>,
    /// A MAC of the lab's side of the link (repeatable), so its frames are
    /// not taken for the guest's.
    #[arg(long, value_name = "MAC")]
    lab_mac: Vec<MacAddr>,
    /// The capture is still being written: a record cut short at the very
    /// end is tolerated (judged up to there); damage elsewhere is not.
    #[arg(long)]
    live: bool,
    /// Also print the capture's summary (protocols, source MACs).
    #[arg(long)]
    summary: bool,
}

const LEAK: u8 = 1;
const UNREADABLE: u8 = 2;
const INCONCLUSIVE: u8 = 3;
const DAMAGED: u8 = 4;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut allowed: Vec<Endpoint> = args.allow.into_iter().map(Endpoint::tor).collect();
    allowed.extend(args.allow_tcp.into_iter().map(Endpoint::tcp));
    allowed.extend(args.allow_udp.into_iter().map(Endpoint::udp));
    if let Some(file) = &args.allow_file {
        match Policy::read_allow_file(file) {
            Ok(list) => allowed.extend(list),
            Err(e) => {
                eprintln!("error: {}", chain(&e));
                return Ok(ExitCode::from(UNREADABLE));
            }
        }
    }
    let mut policy = Policy::with_endpoints(allowed, args.dhcp_server);
    policy.lab_macs.extend(args.lab_mac);
    let options = Options {
        live: args.live,
        watch_macs: args.nic_mac.into_iter().collect(),
    };
    let capture = match analysis::analyse_path_with(&args.file, &options) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: cannot judge {}: {}", args.file.display(), chain(&e));
            let code = if e.is_damage() { DAMAGED } else { UNREADABLE };
            return Ok(ExitCode::from(code));
        }
    };
    if args.summary {
        print!("{capture}");
    }
    let verdicts = policy.all(&capture, args.nic_mac);
    for v in &verdicts {
        print!("{v}");
    }
    let outcomes: Vec<Outcome> = verdicts.iter().map(|v| v.outcome()).collect();
    Ok(if outcomes.contains(&Outcome::Fail) {
        ExitCode::from(LEAK)
    } else if outcomes
        .iter()
        .any(|o| matches!(o, Outcome::Inconclusive(_)))
    {
        ExitCode::from(INCONCLUSIVE)
    } else {
        ExitCode::SUCCESS
    })
}

/// An error and its causes on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
