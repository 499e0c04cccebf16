//! Temporary folders that belong to one run: named `<prefix><pid>-...`
//! after the process that made them, removed when dropped, and, when that
//! process was killed (SIGKILL leaves no chance to clean up), by the next
//! run that makes a folder with the same prefix. The lab's state folders
//! (`tailor-<pid>-<n>-*`) and the lab Tor network's run folders
//! (`tailor-internet-<pid>-*`) are made here.
//!
//! A folder is a leftover when no process has its pid any more; a reused
//! pid only delays the removal until that process ends too. Folders of
//! another user's dead run that this user may not remove stay, silently.

use std::path::{Path, PathBuf};

/// A new folder `<prefix><pid>-<label>XXXXXX` in the temporary folder,
/// after removing the leftovers of dead runs with the same prefix.
pub fn tempdir(prefix: &str, label: &str) -> std::io::Result<tempfile::TempDir> {
    tempdir_in(&std::env::temp_dir(), prefix, label)
}

/// [`tempdir`] in `parent` (e.g. `/dev/shm`).
pub fn tempdir_in(parent: &Path, prefix: &str, label: &str) -> std::io::Result<tempfile::TempDir> {
    for dir in reap(parent, prefix) {
        tracing::info!(
            "removed {} left behind by a run that was killed",
            dir.display()
        );
    }
    tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-{label}", std::process::id()))
        .tempdir_in(parent)
}

/// Remove the folders `<prefix><pid>-*` in `parent` whose process is
/// gone; returns those removed.
pub fn reap(parent: &Path, prefix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = owner(&name, prefix) else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && !Path::new(&format!("/proc/{pid}")).exists() {
            let path = entry.path();
            if std::fs::remove_dir_all(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    removed.sort();
    removed
}

/// The pid in `<prefix><pid>-...`, if `name` is such a name.
fn owner(name: &str, prefix: &str) -> Option<u32> {
    let (pid, _) = name.strip_prefix(prefix)?.split_once('-')?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_names_have_an_owner() {
        assert_eq!(owner("tailor-123-0-abc", "tailor-"), Some(123));
        assert_eq!(
            owner("tailor-internet-77-xyz", "tailor-internet-"),
            Some(77)
        );
        assert_eq!(owner("tailor-internet-77-xyz", "tailor-"), None);
        assert_eq!(owner("tailor-vm-77-xyz", "tailor-"), None);
        assert_eq!(owner("tailor-123", "tailor-"), None);
        assert_eq!(owner("other-1-2", "tailor-"), None);
    }

    #[test]
    fn dead_runs_folders_go_and_live_ones_stay() {
        let parent = tempfile::tempdir().unwrap();
        // A pid that cannot be running: above the kernel's maximum.
        let dead = parent.path().join("tailor-test-4294967-0-x");
        let live = parent
            .path()
            .join(format!("tailor-test-{}-0-x", std::process::id()));
        let other = parent.path().join("tailor-other-4294967-x");
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d.join("inside")).unwrap();
        }
        assert_eq!(reap(parent.path(), "tailor-test-"), vec![dead.clone()]);
        assert!(!dead.exists() && live.exists() && other.exists());
    }
}
