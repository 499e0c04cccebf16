//! A request that failed, told the way Tails' server tells it: the name
//! of the Python exception it would have caught, a colon, and its text
//! (`FileNotFoundError: [Errno 2] No such file or directory: '/x'`).

use nix::errno::Errno;

/// What goes into an `error` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: String,
    pub message: String,
}

impl Failure {
    pub fn new(kind: &str, message: impl Into<String>) -> Failure {
        Failure {
            kind: kind.to_owned(),
            message: message.into(),
        }
    }

    /// An operating-system error, named like Python's `OSError` subclass
    /// for the errno, with the path it was about.
    pub fn os(errno: Errno, path: Option<&str>) -> Failure {
        let kind = match errno {
            Errno::ENOENT => "FileNotFoundError",
            Errno::EEXIST => "FileExistsError",
            Errno::EISDIR => "IsADirectoryError",
            Errno::ENOTDIR => "NotADirectoryError",
            Errno::EACCES | Errno::EPERM => "PermissionError",
            Errno::EINTR => "InterruptedError",
            Errno::ECHILD => "ChildProcessError",
            Errno::EAGAIN | Errno::EALREADY | Errno::EINPROGRESS => "BlockingIOError",
            Errno::EPIPE | Errno::ESHUTDOWN => "BrokenPipeError",
            Errno::ETIMEDOUT => "TimeoutError",
            _ => "OSError",
        };
        let mut message = format!("[Errno {}] {}", errno as i32, errno.desc());
        if let Some(path) = path {
            message.push_str(&format!(": {}", crate::run::py_repr(path)));
        }
        Failure::new(kind, message)
    }

    /// An I/O error, as [`Failure::os`] when it carries an errno.
    pub fn io(error: &std::io::Error, path: Option<&str>) -> Failure {
        match error.raw_os_error() {
            Some(code) => Failure::os(Errno::from_raw(code), path),
            None => Failure::new("OSError", error.to_string()),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_like_pythons() {
        assert_eq!(
            Failure::os(Errno::ENOENT, Some("/x")).to_string(),
            "FileNotFoundError: [Errno 2] No such file or directory: '/x'"
        );
        assert_eq!(
            Failure::os(Errno::EACCES, Some("it's")).to_string(),
            "PermissionError: [Errno 13] Permission denied: \"it's\""
        );
        assert_eq!(
            Failure::os(Errno::EISDIR, None).to_string(),
            "IsADirectoryError: [Errno 21] Is a directory"
        );
    }
}
