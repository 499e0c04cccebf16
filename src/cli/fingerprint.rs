//! `tailor fingerprint`: what an observer on the LAN sees of the guest in
//! a capture, as TOML, or how it differs from a baseline.
//!
//! Exit codes with `--compare`: 0 when nothing differs, 1 when something
//! does, 2 when the capture or the baseline cannot be read, 3 when nothing
//! differs but part of the baseline had nothing to compare with (e.g. no
//! DHCP in the capture): a script can tell "looks different" from "could
//! not tell" from "broken input". Without `--compare`: 0, or 2.

use std::path::PathBuf;
use std::process::ExitCode;

use harness::net::analysis::MacAddr;
use harness::net::fingerprint::{self, Fingerprint, Observer, Outcome};

#[derive(clap::Args)]
pub struct Args {
    /// The capture (pcap or pcapng, Ethernet frames); several are read
    /// in order as one story (e.g. a scenario's checkpoint captures, then
    /// its own).
    #[arg(required = true, value_name = "CAPTURE")]
    captures: Vec<PathBuf>,
    /// Compare with this baseline (a fingerprint written by this command)
    /// instead of printing the capture's fingerprint.
    #[arg(long, value_name = "BASELINE.toml")]
    compare: Option<PathBuf>,
    /// The guest NIC's configured MAC: to judge whether the guest's MAC
    /// keeps its vendor part.
    #[arg(long, value_name = "MAC")]
    nic_mac: Option<MacAddr>,
    /// A MAC of the lab's side of the link (repeatable); frames from it are
    /// not the guest's. The Tailor lab's bridge (02:00:00:00:00:01) is
    /// always one.
    #[arg(long, value_name = "MAC")]
    lab_mac: Vec<MacAddr>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut observer = Observer::lab(args.nic_mac);
    observer.lab_macs.extend(args.lab_mac);
    let unreadable = |e: &dyn std::error::Error| {
        eprint!("error: {e}");
        let mut source = e.source();
        while let Some(s) = source {
            eprint!(": {s}");
            source = s.source();
        }
        eprintln!();
        ExitCode::from(2)
    };
    let baseline = match &args.compare {
        Some(path) => match Fingerprint::read(path) {
            Ok(b) => Some(b),
            Err(e) => return Ok(unreadable(&e)),
        },
        None => None,
    };
    let seen = match fingerprint::fingerprint_story(&args.captures, &observer) {
        Ok(f) => f,
        Err(e) => return Ok(unreadable(&e)),
    };
    let names: Vec<String> = args
        .captures
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let Some(baseline) = baseline else {
        println!("# What an observer on the LAN sees of the guest (tailor fingerprint; fields:");
        println!("# README, \"Fingerprint\"), from: {}", names.join(" "));
        print!("{}", seen.to_toml());
        return Ok(ExitCode::SUCCESS);
    };
    let mut comparison = fingerprint::compare(&baseline, &seen);
    comparison.baseline = args
        .compare
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    comparison.capture = names.join(" + ");
    print!("{comparison}");
    Ok(match comparison.outcome() {
        Outcome::Same => ExitCode::SUCCESS,
        Outcome::Differs => ExitCode::from(1),
        Outcome::Inconclusive => ExitCode::from(3),
    })
}
