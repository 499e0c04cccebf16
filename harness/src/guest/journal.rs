//! The guest's log stream: what the guest writes on its journal port
//! (`org.tails.journal_dumper.0` by default), which QEMU appends to a file
//! for the whole life of the VM (`VmPaths::journal_log`). Tails streams its
//! systemd journal there; the reference derivative its system log and
//! tor's log. Waiting on a line in it is a wait on the guest's own account
//! of what it did, whatever agent it has.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::wait::{self, Check, Timeout};

#[derive(Debug, thiserror::Error)]
#[error("{timeout}; the guest's log {path}, last lines:\n{tail}")]
pub struct JournalTimeout {
    pub timeout: Timeout,
    pub path: PathBuf,
    pub tail: String,
}

/// Everything the guest has streamed so far (lossy UTF-8).
pub fn read(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Wait until the stream holds `text` (a timeout scaled like every wait).
pub async fn wait_for(path: &Path, text: &str, timeout: Duration) -> Result<(), JournalTimeout> {
    let what = format!("{text:?} in the guest's log");
    let result = wait::wait_until::<(), std::convert::Infallible, _, _>(
        &what,
        wait::scaled(timeout),
        Duration::from_millis(100),
        || {
            let found = read(path).contains(text);
            async move {
                if found {
                    Check::Ready(())
                } else {
                    Check::NotYet("not yet streamed".into())
                }
            }
        },
    )
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(wait::WaitError::Timeout(timeout)) => Err(JournalTimeout {
            timeout,
            path: path.to_owned(),
            tail: crate::process::tail_of_file(path, 15),
        }),
        Err(wait::WaitError::Fatal(never)) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_line_streamed_later_is_found_and_a_missing_one_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.log");
        std::fs::write(&path, "boot\n").unwrap();
        let writer = {
            let path = path.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                std::fs::write(&path, "boot\ntor: Bootstrapped 100% (done)\n").unwrap();
            })
        };
        wait_for(&path, "Bootstrapped 100%", Duration::from_secs(5))
            .await
            .unwrap();
        writer.await.unwrap();
        let err = wait_for(&path, "never", Duration::from_millis(300))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("never") && err.contains("Bootstrapped"),
            "{err}"
        );
    }
}
