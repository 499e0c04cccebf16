//! The guest end of the virtio-serial port: request lines in, reply lines
//! out.
//!
//! A read on the port blocks while the host side (QEMU's socket) has a
//! client, and returns end-of-file at once while it has none: reading in a
//! loop would spin. As Tails' server does, the port is opened with
//! `O_ASYNC`, so the kernel raises SIGIO when the host connects or data
//! arrives; after an end-of-file the server waits for that signal (on a
//! signalfd, the signal itself blocked), at most a second in case one is
//! lost. Bytes of a line cut off by a disconnect are dropped: the next
//! client starts afresh. Replies are written whole; the kernel takes at
//! most 32 KiB per write to the port, and `write_all` continues from
//! where each write stopped.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::Path;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

pub struct Port {
    file: File,
    sigio: SignalFd,
    pending: Vec<u8>,
}

impl Port {
    /// Open the port device (or any character device, e.g. a pty in tests).
    pub fn open(path: &Path) -> std::io::Result<Port> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGIO);
        // Blocked before O_ASYNC: SIGIO's default action ends the process.
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
        let sigio = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this function owns; F_SETOWN takes
        // an int (our pid). nix has no wrapper for it.
        let owned =
            unsafe { nix::libc::fcntl(fd, nix::libc::F_SETOWN, nix::unistd::getpid().as_raw()) };
        if owned == -1 {
            return Err(std::io::Error::last_os_error());
        }
        let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)?;
        let flags = nix::fcntl::OFlag::from_bits_retain(flags) | nix::fcntl::OFlag::O_ASYNC;
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        Ok(Port {
            file,
            sigio,
            pending: Vec::new(),
        })
    }

    /// The next line from the host, without its `\n`.
    pub fn next_line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.pending.drain(..=end).collect();
                line.pop();
                return Ok(line);
            }
            let mut buf = [0u8; 64 * 1024];
            match self.file.read(&mut buf) {
                Ok(0) => self.host_gone(),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // A pty whose other end closed says EIO: no host either.
                Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => self.host_gone(),
                Err(e) => return Err(e),
            }
        }
    }

    /// No client on the host side: forget any half line, then wait for
    /// SIGIO (a client or data), a second at most.
    fn host_gone(&mut self) {
        if !self.pending.is_empty() {
            eprintln!(
                "tailor-remote-shell: the host left in the middle of a request; dropped {} bytes",
                self.pending.len()
            );
            self.pending.clear();
        }
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&self.sigio),
            PollFlags::POLLIN,
        )];
        let _ = poll(&mut fds, PollTimeout::from(1000u16));
        while let Ok(Some(_)) = self.sigio.read_signal() {}
    }

    /// Write one reply line (a `\n` is added).
    pub fn reply(&mut self, line: &str) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.file.write_all(&bytes)?;
        self.file.flush()
    }
}
