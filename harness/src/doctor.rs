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
            "permission denied: the lab cannot create the VM's tap for this user; most distributions ship it mode 0666 (`chmod 0666 /dev/net/tun`), or give a group access (`chgrp GROUP /dev/net/tun; chmod 0660 /dev/net/tun`) and join it",
        ),
        Err(e) => result("/dev/net/tun", Status::Fail, format!("cannot open: {e} (load the `tun` module)")),
    }
}

/// A sysctl's value, if the kernel has it.
fn sysctl(path: &str) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A user who is not root gets the lab as a user+network namespace: the
/// kernel must allow unprivileged user namespaces, and `unshare` must be
/// able to make one (which also proves AppArmor or a container allows it).
fn userns_check() -> CheckResult {
    const NAME: &str = "user namespaces";
    if nix::unistd::geteuid().is_root() {
        return result(
            NAME,
            Status::Ok,
            "not needed: root makes the lab with `ip netns`",
        );
    }
    if sysctl("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
        return result(
            NAME,
            Status::Fail,
            "unprivileged user namespaces are off: `sysctl -w kernel.unprivileged_userns_clone=1`",
        );
    }
    if sysctl("/proc/sys/user/max_user_namespaces") == Some(0) {
        return result(
            NAME,
            Status::Fail,
            "user.max_user_namespaces is 0: `sysctl -w user.max_user_namespaces=10000`",
        );
    }
    match run_output(
        "unshare",
        &["--user", "--map-root-user", "--net", "--", "true"],
    ) {
        Ok(_) => result(
            NAME,
            Status::Ok,
            "this user can make a user+network namespace (the rootless lab)",
        ),
        Err(e) => {
            let hint = if sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
                == Some(1)
            {
                "AppArmor restricts them: `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`"
            } else {
                "check the kernel's and the container's settings"
            };
            result(
                NAME,
                Status::Fail,
                format!("cannot make a user+network namespace ({e}); {hint}"),
            )
        }
    }
}

/// The cache of lab Tor keys: under the user's home, and writable.
fn cache_check() -> CheckResult {
    const NAME: &str = "cache folder";
    let Some(keys) = crate::tor::default_key_cache() else {
        return result(
            NAME,
            Status::Warn,
            "no HOME or XDG_CACHE_HOME: tor keys are made afresh every run (slower)",
        );
    };
    let mut dir = keys.as_path();
    // The nearest folder that exists must let us create the rest.
    while !dir.exists() {
        match dir.parent() {
            Some(parent) => dir = parent,
            None => break,
        }
    }
    match nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK) {
        Ok(()) => result(
            NAME,
            Status::Ok,
            format!("{} (lab Tor keys are kept there)", keys.display()),
        ),
        Err(e) => result(
            NAME,
            Status::Warn,
            format!(
                "{} is not writable ({e}): tor keys are made afresh every run",
                dir.display()
            ),
        ),
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
        userns_check(),
        tool(
            "nsenter",
            "nsenter",
            &["--version"],
            "enters a rootless lab",
        ),
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
        cache_check(),
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
