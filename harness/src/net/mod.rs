//! The guest's network: the lab it lives in, captures of what it sent, and
//! the verdict on those captures.
//!
//! - [`lab`]: an isolated network namespace per run with a bridge, the
//!   VM's tap, and dnsmasq (DHCP, the LAN's DNS); no route anywhere else.
//! - [`capture`]: one pcap per scenario through QEMU's `filter-dump` on the
//!   guest's netdev, added and removed over QMP.
//! - [`analysis`]: flows, protocols, source MACs, DNS names, how TCP
//!   connections began and where watched MACs appear, in one pass over a
//!   capture walked in place (memory-mapped, memory flat).
//! - [`fingerprint`]: what an observer on the LAN sees of the guest (DHCP,
//!   IP and TCP habits, TLS ClientHellos, MAC policy, protocols), and how
//!   two such fingerprints differ.
//! - [`policy`]: what the guest may send (endpoints with their transport:
//!   Tor ORPorts are TCP that opens with TLS), and a [`policy::Verdict`] per
//!   check (only Tor, no DNS, no IPv6, MAC spoofed) whose outcome is pass,
//!   fail, or inconclusive when the capture proves nothing.
//! - [`synth`]: captures written by code, for tests, fuzzing and benchmarks.
//!
//! ```
//! use harness::net::{analysis, policy::{Endpoint, Outcome, Policy}, synth};
//! use harness::net::analysis::{Format, MacAddr, Options, Place, Timestamp};
//!
//! let nic: MacAddr = "52:54:00:12:34:56".parse()?;
//! let guest = synth::Station::new("02:00:00:aa:bb:cc".parse()?, "02:00:00:00:00:01".parse()?);
//! let (me, relay) = (("10.203.0.57".parse()?, 40000), ("10.203.0.1".parse()?, 5001));
//! let frames = vec![
//!     (Timestamp::from_nanos(1_000), guest.dhcp_discover_with(nic, None)),
//!     (Timestamp::from_nanos(2_000), guest.tcp_syn(me, relay)),
//!     (Timestamp::from_nanos(3_000), guest.tcp(me, relay, &synth::tor_client_hello())),
//!     (Timestamp::from_nanos(4_000), guest.dns_query(("10.203.0.57".parse()?, 40001),
//!                                                   ("10.203.0.1".parse()?, 53), &["example.com"])),
//! ];
//! let options = Options { watch_macs: vec![nic], ..Options::default() };
//! let capture = analysis::analyse_bytes_with(&synth::capture(Format::Pcap, &frames), &options)?;
//! let relays: Vec<Endpoint> = vec!["10.203.0.1:5001".parse()?];
//! let policy = Policy::with_endpoints(relays, Some("10.203.0.1".parse()?));
//! assert_eq!(policy.only_tor(&capture).outcome(), Outcome::Fail);
//! assert!(policy.no_dns(&capture).to_string().contains("example.com"));
//! assert_eq!(policy.allowed_guest_flows(&capture), 1);
//! let mac = policy.mac_spoofed(&capture, nic);
//! assert!(mac.to_string().contains("DHCP client hardware address (chaddr)"));
//! assert_eq!(capture.sightings[0].place, Place::DhcpChaddr);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
pub mod analysis;
pub mod capture;
pub mod fingerprint;
pub mod lab;
pub mod policy;
pub mod synth;
