//! Host checks for `tailor doctor`: what a newcomer needs to know before the
//! first run, each with what to do about it.

use std::path::Path;

use crate::process::{install_hint, run_output};
use crate::vm::accel::{self, HostPaths};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    /// Works, but slower or with less coverage.
    Warn,
    Fail,
}

#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

fn result(name: &'static str, status: Status, detail: impl Into<String>) -> CheckResult {
    CheckResult {
        name,
        status,
        detail: detail.into(),
    }
}

/// A program's first output line (its version), or how to install it.
fn tool(name: &'static str, program: &str, args: &[&str], needed_for: &str) -> CheckResult {
    match run_output(program, args) {
        Ok(out) => result(
            name,
            Status::Ok,
            out.lines().next().unwrap_or("").trim().to_owned(),
        ),
        Err(crate::process::RunError::NotFound { .. }) => result(
            name,
            Status::Fail,
            format!(
                "`{program}` not found ({needed_for}); install: {}",
                install_hint(program)
            ),
        ),
        Err(e) => result(name, Status::Fail, format!("`{program}` does not run: {e}")),
    }
}

fn tun_check() -> CheckResult {
    match std::fs::OpenOptions::new().read(true).write(true).open("/dev/net/tun") {
        Ok(_) => result("/dev/net/tun", Status::Ok, "opens read-write (the lab's tap will work)"),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => result(
            "/dev/net/tun",
            Status::Fail,
            "permission denied: a rootless lab cannot create the VM's tap here (the device is mode 0600); run as root or `chmod 0666 /dev/net/tun`",
        ),
        Err(e) => result("/dev/net/tun", Status::Fail, format!("cannot open: {e} (load the `tun` module)")),
    }
}

fn disk_check(path: &Path) -> CheckResult {
    match nix::sys::statvfs::statvfs(path) {
        Ok(st) => {
            let free = st.blocks_available() * st.fragment_size();
            let gib = free as f64 / (1u64 << 30) as f64;
            let status = if gib < 2.0 {
                Status::Fail
            } else if gib < 10.0 {
                Status::Warn
            } else {
                Status::Ok
            };
            result(
                "free disk",
                status,
                format!(
                    "{gib:.1} GiB free in {} (checkpoints and captures need a few GiB)",
                    path.display()
                ),
            )
        }
        Err(e) => result(
            "free disk",
            Status::Warn,
            format!("cannot stat {}: {e}", path.display()),
        ),
    }
}

/// OVMF, for vm-configs with `firmware = "uefi"`.
fn ovmf_check() -> CheckResult {
    use crate::vm::media::{OVMF_CODE, OVMF_VARS};
    match [OVMF_CODE, OVMF_VARS].iter().find(|f| !Path::new(f).exists()) {
        None => result("OVMF", Status::Ok, format!("{OVMF_CODE} (UEFI boots)")),
        Some(missing) => result(
            "OVMF",
            Status::Warn,
            format!("{missing} is missing: vm-configs with firmware = \"uefi\" cannot boot; install Debian's `ovmf`"),
        ),
    }
}

/// Run every check.
pub fn run_checks() -> Vec<CheckResult> {
    let (kvm_ok, kvm_detail) = accel::describe(&HostPaths::system());
    vec![
        tool(
            "qemu-system-x86_64",
            "qemu-system-x86_64",
            &["--version"],
            "runs the VMs",
        ),
        tool(
            "qemu-img",
            "qemu-img",
            &["--version"],
            "creates checkpoint disks and overlays",
        ),
        result(
            "accelerator",
            if kvm_ok { Status::Ok } else { Status::Warn },
            kvm_detail,
        ),
        tun_check(),
        tool(
            "tor",
            "tor",
            &["--version"],
            "the lab's private Tor network",
        ),
        tool(
            "tor-gencert",
            "tor-gencert",
            &["--help"],
            "directory authority keys",
        )
        .downgrade_on_usage_exit(),
        tool(
            "dnsmasq",
            "dnsmasq",
            &["--version"],
            "the lab's DHCP and LAN resolver",
        ),
        tool("ip", "ip", &["-V"], "the lab's network namespace"),
        tool("xorriso", "xorriso", &["-version"], "building ISOs"),
        tool(
            "grub-mkstandalone",
            "grub-mkstandalone",
            &["--version"],
            "the reference ISO's UEFI boot loader",
        ),
        tool("mtools", "mformat", &["--version"], "the ISO's EFI image"),
        ovmf_check(),
        disk_check(&std::env::temp_dir()),
    ]
}

impl CheckResult {
    /// tor-gencert prints usage and exits non-zero for `--help`; being
    /// runnable is what counts.
    fn downgrade_on_usage_exit(self) -> Self {
        if self.status == Status::Fail && self.detail.contains("does not run") {
            result(self.name, Status::Ok, "present")
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_says_what_to_install() {
        let r = tool("qemu-img", "qemu-img-not-here", &[], "x");
        assert_eq!(r.status, Status::Fail);
        assert!(r.detail.contains("not found"), "{}", r.detail);
    }

    #[test]
    fn every_check_has_a_detail() {
        for c in run_checks() {
            assert!(!c.detail.is_empty(), "{} has no detail", c.name);
        }
    }
}
