//! Choosing the accelerator. `/dev/kvm` existing is not enough: on some
//! hosts it belongs to a paravirtual KVM (the `kvm_pvm` module) on which
//! ordinary guest kernels hang silently. Only a loaded `kvm_intel` or
//! `kvm_amd` module plus a `/dev/kvm` we can open counts as usable KVM;
//! anything else means TCG, and the reason is said once, clearly.

use std::path::PathBuf;

use super::config::AcceleratorChoice;

/// The accelerator QEMU will be started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accelerator {
    Kvm,
    Tcg,
}

impl Accelerator {
    /// QEMU arguments for this accelerator.
    pub fn qemu_args(self) -> [&'static str; 4] {
        match self {
            Accelerator::Kvm => ["-accel", "kvm", "-cpu", "host"],
            // `max` gives TCG guests the newest CPU features it emulates;
            // several vCPU threads make a 2-core host boot faster.
            Accelerator::Tcg => ["-accel", "tcg,thread=multi", "-cpu", "max"],
        }
    }
}

impl std::fmt::Display for Accelerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Accelerator::Kvm => "KVM",
            Accelerator::Tcg => "TCG (software emulation)",
        })
    }
}

/// Whether hardware KVM is usable here, and why (not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmVerdict {
    Usable { module: &'static str },
    Unusable { reason: String },
}

/// Where to look; real hosts use [`HostPaths::system`], tests a fake tree.
#[derive(Debug, Clone)]
pub struct HostPaths {
    pub sys_module: PathBuf,
    pub dev_kvm: PathBuf,
}

impl HostPaths {
    pub fn system() -> Self {
        HostPaths {
            sys_module: "/sys/module".into(),
            dev_kvm: "/dev/kvm".into(),
        }
    }
}

/// Decide whether hardware KVM is usable.
pub fn probe_kvm(paths: &HostPaths) -> KvmVerdict {
    let loaded = |m: &str| paths.sys_module.join(m).exists();
    let module = if loaded("kvm_intel") {
        "kvm_intel"
    } else if loaded("kvm_amd") {
        "kvm_amd"
    } else if loaded("kvm_pvm") {
        return KvmVerdict::Unusable {
            reason: "only the paravirtual KVM module kvm_pvm is loaded; it cannot boot ordinary guest kernels (they hang silently)".into(),
        };
    } else {
        return KvmVerdict::Unusable {
            reason: "neither kvm_intel nor kvm_amd is loaded (no hardware virtualization, or it is disabled in firmware or by the host)".into(),
        };
    };
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&paths.dev_kvm)
    {
        Ok(_) => KvmVerdict::Usable { module },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => KvmVerdict::Unusable {
            reason: format!("{module} is loaded but {} does not exist", paths.dev_kvm.display()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => KvmVerdict::Unusable {
            reason: format!(
                "{module} is loaded but {} is not writable by this user (add the user to the `kvm` group)",
                paths.dev_kvm.display()
            ),
        },
        Err(e) => KvmVerdict::Unusable {
            reason: format!("{module} is loaded but {} cannot be opened: {e}", paths.dev_kvm.display()),
        },
    }
}

/// Errors choosing an accelerator.
#[derive(Debug, thiserror::Error)]
pub enum AccelError {
    #[error("the vm-config asks for KVM, but KVM is not usable here: {reason} (use accelerator = \"auto\" or \"tcg\")")]
    KvmUnavailable { reason: String },
}

/// Resolve the config's choice against the host.
pub fn choose(choice: AcceleratorChoice, paths: &HostPaths) -> Result<Accelerator, AccelError> {
    match (choice, probe_kvm(paths)) {
        (AcceleratorChoice::Tcg, _) => Ok(Accelerator::Tcg),
        (_, KvmVerdict::Usable { .. }) => Ok(Accelerator::Kvm),
        (AcceleratorChoice::Kvm, KvmVerdict::Unusable { reason }) => {
            Err(AccelError::KvmUnavailable { reason })
        }
        (AcceleratorChoice::Auto, KvmVerdict::Unusable { reason }) => {
            notice_tcg_once(&reason);
            Ok(Accelerator::Tcg)
        }
    }
}

/// Say once per process why we emulate: a run that is 10x slower than
/// expected should explain itself, but not on every boot.
fn notice_tcg_once(reason: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing::warn!("hardware KVM is not usable: {reason}. Falling back to TCG software emulation (-accel tcg,thread=multi): expect boots several times slower; raise TAILOR_TIMEOUT_SCALE if waits time out.");
    });
}

/// For `tailor doctor`: the verdict as a line.
pub fn describe(paths: &HostPaths) -> (bool, String) {
    match probe_kvm(paths) {
        KvmVerdict::Usable { module } => (
            true,
            format!("hardware KVM usable ({module}, /dev/kvm opens)"),
        ),
        KvmVerdict::Unusable { reason } => {
            (false, format!("KVM not usable, TCG will be used: {reason}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(modules: &[&str], kvm_node: bool) -> (tempfile::TempDir, HostPaths) {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys/module");
        std::fs::create_dir_all(&sys).unwrap();
        for m in modules {
            std::fs::create_dir(sys.join(m)).unwrap();
        }
        let dev = dir.path().join("kvm");
        if kvm_node {
            std::fs::write(&dev, b"").unwrap();
        }
        let paths = HostPaths {
            sys_module: sys,
            dev_kvm: dev,
        };
        (dir, paths)
    }

    #[test]
    fn paravirtual_kvm_is_not_usable() {
        let (_d, p) = fake(&["kvm", "kvm_pvm"], true);
        match probe_kvm(&p) {
            KvmVerdict::Unusable { reason } => assert!(reason.contains("kvm_pvm"), "{reason}"),
            v => panic!("{v:?}"),
        }
        assert_eq!(
            choose(AcceleratorChoice::Auto, &p).unwrap(),
            Accelerator::Tcg
        );
        let err = choose(AcceleratorChoice::Kvm, &p).unwrap_err().to_string();
        assert!(err.contains("kvm_pvm"), "{err}");
    }

    #[test]
    fn hardware_kvm_with_device_is_usable() {
        let (_d, p) = fake(&["kvm", "kvm_intel"], true);
        assert_eq!(
            probe_kvm(&p),
            KvmVerdict::Usable {
                module: "kvm_intel"
            }
        );
        assert_eq!(
            choose(AcceleratorChoice::Auto, &p).unwrap(),
            Accelerator::Kvm
        );
        assert_eq!(
            choose(AcceleratorChoice::Tcg, &p).unwrap(),
            Accelerator::Tcg
        );
    }

    #[test]
    fn module_without_device_is_not_usable() {
        let (_d, p) = fake(&["kvm_amd"], false);
        match probe_kvm(&p) {
            KvmVerdict::Unusable { reason } => {
                assert!(reason.contains("does not exist"), "{reason}")
            }
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn no_module_is_not_usable() {
        let (_d, p) = fake(&[], true);
        assert!(matches!(probe_kvm(&p), KvmVerdict::Unusable { .. }));
        assert_eq!(
            choose(AcceleratorChoice::Auto, &p).unwrap(),
            Accelerator::Tcg
        );
    }
}
