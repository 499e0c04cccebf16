//! Tailor's harness: everything that touches QEMU, the guest, the screen and
//! the lab network.
pub mod process;
pub mod screen;
pub mod wait;
