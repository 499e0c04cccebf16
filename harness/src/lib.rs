//! Tailor's harness: everything that touches QEMU, the guest, the screen and
//! the lab network.
//!
//! - [`vm`]: a QEMU process from a vm-config (accelerator choice, scratch
//!   overlay, checkpoints, serial log), driven through [`qmp`].
//! - [`screen`]: screendumps as `image::RgbImage`, reference matching and
//!   waits for references to appear or leave.
//! - [`input`]: keyboard (US keymap) and absolute mouse.
//! - [`process`]: every child in a guard that dies with the harness.
//! - [`leftovers`]: temporary folders of a run, removed by the next run
//!   when it was killed.
//! - [`wait`]: one wait helper; every timeout scales with
//!   `TAILOR_TIMEOUT_SCALE`.
//! - [`net`]: the lab network, per-scenario captures, leak verdicts, and
//!   the guest's fingerprint as a LAN observer sees it.
//! - [`doctor`]: host checks for `tailor doctor`.
//! - [`derivative`]: builds the reference derivative ISO (`tailor build-iso`)
//!   from Debian packages, with customizations, cached by content.
//! - [`guest`]: a shell into the guest through its agent: the QEMU Guest
//!   Agent or Tails' remote shell.
//! - [`tor`]: a private Tor network of real daemons in the lab namespace,
//!   its consensus as the traffic allow-list, and the lab web server.
//! - [`vpn`]: a WireGuard server in the lab (userspace wireguard-go) and
//!   "the Internet" only its tunnel reaches, for VPN derivatives.
//!
//! ```
//! use harness::input::keymap::parse_combo;
//! assert_eq!(parse_combo("ctrl+alt+t").unwrap().len(), 3);
//! ```
pub mod derivative;
pub mod doctor;
pub mod guest;
pub mod input;
pub mod leftovers;
pub mod net;
pub mod process;
pub mod qmp;
pub mod screen;
pub mod tor;
pub mod vm;
pub mod vpn;
pub mod wait;
