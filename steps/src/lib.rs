//! Tailor's cucumber `World` and step definitions. Steps stay thin: each
//! calls one harness function. [`runner`] holds the one way features are
//! run, shared by `tailor run` and `cargo test --features vm`.
//!
//! Step files, one per domain:
//! - [`vm_steps`]: boot, keyboard, mouse, screen, serial, checkpoints.
//! - [`boot`]: booting with kernel options typed at the boot menu.
//! - [`guest_steps`]: commands in the guest through its agent.
//! - [`lab_steps`]: the lab, its Tor network and web server, traffic checks.
//! - [`bridge_steps`]: bridges derivatives: the lab's bridges, the
//!   greeter's question, the censored lab, only-the-bridges checks.
//! - [`firewall_steps`]: the derivative's firewall rules and counters, and
//!   network reconnects.
//! - [`vpn_steps`]: a VPN derivative's lab (the VPN server and its
//!   Internet), start, online and policy, and the VPN feature's steps.
//! - [`fingerprint_steps`]: whether the guest looks like the base system of
//!   its kind to an observer on the LAN.
//!
//! What a run leaves: [`report`] records every scenario and step (with a
//! screenshot after each step) and what steps saw, and writes
//! `artifacts/<run>/index.html` from both.

pub mod boot;
pub mod bridge_steps;
pub mod checkpoints;
pub mod fingerprint_steps;
pub mod firewall_steps;
pub mod guest_steps;
pub mod judging;
pub mod lab_steps;
pub mod preflight;
pub mod report;
pub mod rerun;
pub mod runner;
pub mod selection;
pub mod shard;
pub mod vm_steps;
pub mod vpn_steps;
mod world;

pub use world::{Settings, TailorWorld};
