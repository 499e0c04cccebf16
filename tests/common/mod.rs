//! Shared by the integration tests: running part of Tailor as an
//! unprivileged user (CI runs as root; a maintainer's workstation does
//! not), and ending a test's shared lab.
#![allow(dead_code)] // each test binary uses its own part

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The unprivileged user and group the tests run as: nobody, nogroup.
pub const NOBODY: u32 = 65534;
const TUN: &str = "/dev/net/tun";

/// Lets group `gid` open /dev/net/tun for as long as it lives.
///
/// Most distributions ship /dev/net/tun mode 0666; this machine's is
/// 0600, root's alone, so a rootless lab could not give QEMU its tap.
/// The grant makes it group `gid`'s, mode 0660, and puts back the owner,
/// group and mode it found when dropped (a test killed meanwhile leaves
/// the grant in place: `chgrp root /dev/net/tun; chmod 0600 /dev/net/tun`
/// undoes it).
pub struct TunGrant {
    gid: u32,
    mode: u32,
    group: u32,
}

impl TunGrant {
    /// `None` when /dev/net/tun is already open to everyone.
    pub fn to_group(gid: u32) -> Option<TunGrant> {
        let meta = std::fs::metadata(TUN).expect("/dev/net/tun");
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o006 == 0o006 {
            return None;
        }
        let grant = TunGrant {
            gid,
            mode,
            group: meta.gid(),
        };
        nix::unistd::chown(TUN, None, Some(nix::unistd::Gid::from_raw(gid))).expect("chgrp tun");
        std::fs::set_permissions(TUN, std::fs::Permissions::from_mode(mode | 0o060))
            .expect("chmod tun");
        eprintln!(
            "granted group {gid} read-write access to {TUN} (mode {mode:04o} -> {:04o}) for this test",
            mode | 0o060
        );
        Some(grant)
    }
}

impl Drop for TunGrant {
    fn drop(&mut self) {
        let _ = nix::unistd::chown(TUN, None, Some(nix::unistd::Gid::from_raw(self.group)));
        let _ = std::fs::set_permissions(TUN, std::fs::Permissions::from_mode(self.mode));
        eprintln!(
            "gave back {TUN}: group {}, mode {:04o} (was lent to group {})",
            self.group, self.mode, self.gid
        );
    }
}

/// A home folder of nobody's own, removed on drop: the user's caches
/// (`~/.cache/tailor`) and temporary files (`$TMPDIR`) go there.
pub struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        let dir = tempfile::Builder::new()
            .prefix("tailor-nobody-home-")
            .tempdir()
            .expect("home folder");
        let home = Home { dir };
        std::fs::create_dir(home.tmp()).unwrap();
        for d in [home.path(), &home.tmp()] {
            nix::unistd::chown(
                d,
                Some(nix::unistd::Uid::from_raw(NOBODY)),
                Some(nix::unistd::Gid::from_raw(NOBODY)),
            )
            .expect("chown the home folder");
        }
        home
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// `program` as nobody (uid and gid 65534, no other group), with this
    /// home, its own temporary folder and no inherited cache settings.
    pub fn command(&self, program: &Path) -> std::process::Command {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args([
            format!("--reuid={NOBODY}"),
            format!("--regid={NOBODY}"),
            "--clear-groups".into(),
        ])
        .arg(program)
        .env("HOME", self.path())
        .env("TMPDIR", self.tmp())
        .env_remove("XDG_CACHE_HOME")
        .env_remove("TAILOR_TOR_KEY_CACHE")
        .stdin(std::process::Stdio::null());
        cmd
    }
}

/// Stops the runs' shared lab when a test ends, passed or not (the next
/// test starts a fresh one). For tests whose runs keep the lab
/// (`RunArgs::keep_lab`).
#[cfg(feature = "vm")]
pub struct TeardownAtEnd;

#[cfg(feature = "vm")]
impl Drop for TeardownAtEnd {
    fn drop(&mut self) {
        // The test's (multi-thread) runtime is still there while its
        // locals drop.
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(steps::lab_steps::teardown())
        });
    }
}
