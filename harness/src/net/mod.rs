//! The guest's network: the lab it lives in, captures of what it sent, and
//! the verdict on those captures.
//!
//! - [`lab`]: an isolated network namespace per run with a bridge, the
//!   VM's tap, and dnsmasq (DHCP, the LAN's DNS); no route anywhere else.
//! - [`capture`]: one pcap per scenario through QEMU's `filter-dump` on the
//!   guest's netdev, added and removed over QMP.
//! - [`analysis`]: flows, protocols, source MACs and DNS names of a capture.
//! - [`fingerprint`]: what an observer on the LAN sees of the guest (DHCP,
//!   IP and TCP habits, TLS ClientHellos, MAC policy, protocols), and how
//!   two such fingerprints differ.
//! - [`policy`]: what the guest may send, and a [`policy::Verdict`] per
//!   check (only Tor, no DNS, no IPv6, MAC spoofed).
//! - [`synth`]: captures written by code, for tests, fuzzing and benchmarks.
//!
//! ```
//! use harness::net::{analysis, policy::Policy, synth};
//! use harness::net::analysis::{Format, MacAddr, Timestamp};
//!
//! let guest = synth::Station::new("02:00:00:aa:bb:cc".parse()?, "02:00:00:00:00:01".parse()?);
//! let relay = ("10.203.0.1".parse()?, 5001);
//! let frames = vec![
//!     (Timestamp::from_nanos(1_000), guest.tcp_syn(("10.203.0.57".parse()?, 40000), relay)),
//!     (Timestamp::from_nanos(2_000), guest.dns_query(("10.203.0.57".parse()?, 40001),
//!                                                   ("10.203.0.1".parse()?, 53), &["example.com"])),
//! ];
//! let capture = analysis::analyse_bytes(&synth::capture(Format::Pcap, &frames))?;
//! let policy = Policy::new(["10.203.0.1:5001".parse()?], Some("10.203.0.1".parse()?));
//! assert!(!policy.only_tor(&capture).passed());
//! assert!(policy.no_dns(&capture).to_string().contains("example.com"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
pub mod analysis;
pub mod capture;
pub mod fingerprint;
pub mod lab;
pub mod policy;
pub mod synth;
