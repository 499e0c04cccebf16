//! What the machine boots: its firmware (SeaBIOS or OVMF) and its boot
//! medium (a CD, a USB stick on the xHCI controller, or an internal disk),
//! as QEMU arguments, with the qcow2 files the VM writes to.
//!
//! The image a vm-config names is never written: a CD is read-only, and a
//! USB stick or a disk is a qcow2 overlay over the image. An ISO on a CD
//! gets an empty qcow2 beside it that only holds checkpoints (QEMU saves
//! VM state into a writable qcow2). Under UEFI, OVMF's variable store is a
//! qcow2 copy of Debian's template, so it is saved with the checkpoints too
//! (`savevm` refuses a writable raw drive).
//!
//! The medium gets `bootindex=0`: both firmwares boot it before anything
//! else (the NIC's network boot ROM included). A CD sits on an AHCI
//! controller: under OVMF, GRUB read the kernel and initramfs from it in
//! 27 s where it took 40 s from QEMU's IDE (TCG, 2026-11-30).

use std::path::{Path, PathBuf};

use super::config::{BootMedium, DiskFormat, Firmware};
use super::VmError;

/// OVMF's code and variable-store template, from Debian's `ovmf`.
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/// Where the VM's writable files live and whether it boots or resumes.
pub(super) struct State<'a> {
    /// The folder of the qcow2 files (persistent across VMs of one
    /// vm-config when checkpoints are kept).
    pub dir: &'a Path,
    /// Resuming from this checkpoint: the files must already exist.
    pub start_from: Option<&'a str>,
}

impl State<'_> {
    /// A VM that boots gets a fresh file made by `create`; one that starts
    /// from a checkpoint needs the file the checkpoint was saved in.
    fn prepare(
        &self,
        file: &Path,
        create: impl FnOnce() -> Result<(), VmError>,
    ) -> Result<(), VmError> {
        match self.start_from {
            Some(name) if !file.exists() => Err(VmError::Checkpoint {
                name: name.to_owned(),
                action: "loadvm",
                detail: format!("no checkpoint store at {}", file.display()),
            }),
            Some(_) => Ok(()),
            None => {
                let _ = std::fs::remove_file(file);
                create()
            }
        }
    }
}

fn p(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The firmware's arguments: none for SeaBIOS (QEMU's default); OVMF's
/// code (read-only) and a variable store of the VM's own.
pub(super) fn firmware_args(firmware: Firmware, state: &State) -> Result<Vec<String>, VmError> {
    match firmware {
        Firmware::Bios => Ok(Vec::new()),
        Firmware::Uefi => {
            for file in [OVMF_CODE, OVMF_VARS] {
                if !Path::new(file).exists() {
                    return Err(VmError::Firmware {
                        file: file.into(),
                        hint: "install Debian's `ovmf` (scripts/debian-packages.txt)".into(),
                    });
                }
            }
            let vars = state.dir.join("ovmf-vars.qcow2");
            state.prepare(&vars, || {
                super::qemu_img(
                    &[
                        "convert",
                        "-q",
                        "-f",
                        "raw",
                        "-O",
                        "qcow2",
                        OVMF_VARS,
                        &p(&vars),
                    ],
                    "OVMF's variable store",
                )
            })?;
            Ok(vec![
                "-drive".into(),
                format!("if=pflash,unit=0,format=raw,readonly=on,file={OVMF_CODE}"),
                "-drive".into(),
                format!("if=pflash,unit=1,format=qcow2,file={}", p(&vars)),
            ])
        }
    }
}

/// The boot medium's arguments (the xHCI controller `xhci` must exist for
/// a USB stick).
pub(super) fn medium_args(medium: &BootMedium, state: &State) -> Result<Vec<String>, VmError> {
    let overlay = |image: &Path, format: DiskFormat| -> Result<PathBuf, VmError> {
        let file = state.dir.join("overlay.qcow2");
        let fmt = match format {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        };
        state.prepare(&file, || {
            super::qemu_img(
                &[
                    "create",
                    "-q",
                    "-f",
                    "qcow2",
                    "-F",
                    fmt,
                    "-b",
                    &p(&absolute(image)),
                    &p(&file),
                ],
                "the disk overlay",
            )
        })?;
        Ok(file)
    };
    Ok(match medium {
        BootMedium::Iso(iso) => {
            let store = state.dir.join("checkpoints.qcow2");
            state.prepare(&store, || {
                super::qemu_img(
                    &["create", "-q", "-f", "qcow2", &p(&store), "4G"],
                    "the checkpoint disk",
                )
            })?;
            vec![
                "-drive".into(),
                format!(
                    "if=none,id=cd0,file={},format=raw,media=cdrom,readonly=on",
                    p(&absolute(iso))
                ),
                "-device".into(),
                "ahci,id=ahci0".into(),
                "-device".into(),
                "ide-cd,drive=cd0,bus=ahci0.0,bootindex=0".into(),
                // Not attached to the guest: it only holds savevm state.
                "-drive".into(),
                format!("file={},format=qcow2,if=none,id=checkpoints", p(&store)),
            ]
        }
        BootMedium::Usb { path, format } => {
            let file = overlay(path, *format)?;
            vec![
                "-drive".into(),
                format!("if=none,id=stick0,file={},format=qcow2", p(&file)),
                "-device".into(),
                "usb-storage,bus=xhci.0,drive=stick0,removable=on,bootindex=0".into(),
            ]
        }
        BootMedium::Disk { path, format } => {
            let file = overlay(path, *format)?;
            vec![
                "-drive".into(),
                format!("if=none,id=disk0,file={},format=qcow2", p(&file)),
                "-device".into(),
                "virtio-blk-pci,drive=disk0,bootindex=0".into(),
            ]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(dir: &Path) -> State<'_> {
        State {
            dir,
            start_from: None,
        }
    }

    #[test]
    fn a_usb_stick_is_an_overlay_on_the_xhci_bus() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("live.iso");
        std::fs::write(&image, vec![0u8; 4096]).unwrap();
        let args = medium_args(
            &BootMedium::Usb {
                path: image,
                format: DiskFormat::Raw,
            },
            &state(dir.path()),
        )
        .unwrap()
        .join(" ");
        assert!(
            args.contains("usb-storage,bus=xhci.0,drive=stick0,removable=on,bootindex=0"),
            "{args}"
        );
        assert!(dir.path().join("overlay.qcow2").exists());
    }

    #[test]
    fn a_cd_is_read_only_and_boots_first() {
        let dir = tempfile::tempdir().unwrap();
        let args = medium_args(&BootMedium::Iso("/x/live.iso".into()), &state(dir.path()))
            .unwrap()
            .join(" ");
        assert!(args.contains("media=cdrom,readonly=on"), "{args}");
        assert!(
            args.contains("ide-cd,drive=cd0,bus=ahci0.0,bootindex=0"),
            "{args}"
        );
        assert!(dir.path().join("checkpoints.qcow2").exists());
    }

    #[test]
    fn resuming_needs_the_saved_files() {
        let dir = tempfile::tempdir().unwrap();
        let resume = State {
            dir: dir.path(),
            start_from: Some("greeter"),
        };
        let err = medium_args(&BootMedium::Iso("/x/live.iso".into()), &resume)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("greeter") && err.contains("checkpoints.qcow2"),
            "{err}"
        );
        if Path::new(OVMF_VARS).exists() {
            let err = firmware_args(Firmware::Uefi, &resume)
                .unwrap_err()
                .to_string();
            assert!(err.contains("ovmf-vars.qcow2"), "{err}");
        }
    }

    #[test]
    fn uefi_gets_ovmf_with_a_store_of_its_own() {
        assert!(
            firmware_args(Firmware::Bios, &state(Path::new("/nonexistent")))
                .unwrap()
                .is_empty()
        );
        if !Path::new(OVMF_CODE).exists() {
            let err = firmware_args(Firmware::Uefi, &state(Path::new("/tmp")))
                .unwrap_err()
                .to_string();
            assert!(err.contains("ovmf"), "{err}");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let args = firmware_args(Firmware::Uefi, &state(dir.path()))
            .unwrap()
            .join(" ");
        assert!(
            args.contains(&format!(
                "if=pflash,unit=0,format=raw,readonly=on,file={OVMF_CODE}"
            )),
            "{args}"
        );
        assert!(args.contains("if=pflash,unit=1,format=qcow2"), "{args}");
        assert!(dir.path().join("ovmf-vars.qcow2").exists());
    }
}
