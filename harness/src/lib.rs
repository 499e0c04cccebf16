//! Tailor's harness: everything that touches QEMU, the guest, the screen and
//! the lab network.
pub mod derivative;
pub mod guest;
pub mod process;
pub mod wait;
