//! The two devices the greeter drives: the framebuffer (`/dev/fb0`, set up
//! by the kernel's VESA driver from `vga=792`) and the keyboard through the
//! first virtual terminal (`/dev/tty1`). The mouse is in `pointer`.
//!
//! The VT is switched to graphics mode (`KDSETMODE KD_GRAPHICS`) so the
//! kernel's text console stops drawing over the greeter, and to raw,
//! no-echo input so every key reaches us at once.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::time::Duration;

use crate::canvas::Canvas;

const FBIOGET_VSCREENINFO: libc::c_ulong = 0x4600;
const FBIOGET_FSCREENINFO: libc::c_ulong = 0x4602;
const KDSETMODE: libc::c_ulong = 0x4B3A;
const KD_GRAPHICS: libc::c_ulong = 1;

pub struct Framebuffer {
    file: File,
    pub width: usize,
    pub height: usize,
    bytes_per_pixel: usize,
    stride: usize,
    shifts: [u32; 3],
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

impl Framebuffer {
    pub fn open(path: &str) -> io::Result<Framebuffer> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        // struct fb_var_screeninfo is 160 bytes, fb_fix_screeninfo 80 on
        // x86_64; the buffers are larger to be safe.
        let mut var = [0u8; 256];
        let mut fix = [0u8; 256];
        // SAFETY: both ioctls write at most the struct size into the buffer.
        unsafe {
            if libc::ioctl(file.as_raw_fd(), FBIOGET_VSCREENINFO, var.as_mut_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::ioctl(file.as_raw_fd(), FBIOGET_FSCREENINFO, fix.as_mut_ptr()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let bpp = u32_at(&var, 24) as usize;
        if bpp != 24 && bpp != 32 {
            return Err(io::Error::other(format!(
                "framebuffer has {bpp} bits per pixel; expected 24 or 32 (boot with vga=792)"
            )));
        }
        Ok(Framebuffer {
            file,
            width: u32_at(&var, 0) as usize,
            height: u32_at(&var, 4) as usize,
            bytes_per_pixel: bpp / 8,
            stride: u32_at(&fix, 48) as usize,
            // red, green, blue bitfield offsets
            shifts: [u32_at(&var, 32), u32_at(&var, 44), u32_at(&var, 56)],
        })
    }

    /// Copy the canvas to the screen in one write.
    pub fn show(&self, canvas: &Canvas) -> io::Result<()> {
        let mut buf = vec![0u8; self.stride * self.height];
        for y in 0..self.height.min(canvas.height) {
            for x in 0..self.width.min(canvas.width) {
                let p = canvas.pixels[y * canvas.width + x];
                let v = (u32::from(p.0) << self.shifts[0])
                    | (u32::from(p.1) << self.shifts[1])
                    | (u32::from(p.2) << self.shifts[2]);
                let off = y * self.stride + x * self.bytes_per_pixel;
                buf[off..off + self.bytes_per_pixel]
                    .copy_from_slice(&v.to_le_bytes()[..self.bytes_per_pixel]);
            }
        }
        self.file.write_all_at(&buf, 0)
    }
}

/// A key the greeter understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Up,
    Down,
    Tab,
    BackTab,
    Enter,
    Escape,
    Backspace,
    Char(char),
}

/// Turn the bytes a VT sends into keys. A lone ESC (no sequence after it in
/// the same read) is the Escape key.
pub fn parse_keys(bytes: &[u8]) -> Vec<Key> {
    let mut keys = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        let key = match b {
            0x1b if bytes.get(i) == Some(&b'[') => {
                let code = bytes.get(i + 1).copied();
                i += 2;
                match code {
                    Some(b'A') | Some(b'D') => Some(Key::Up),
                    Some(b'B') | Some(b'C') => Some(Key::Down),
                    Some(b'Z') => Some(Key::BackTab),
                    // Other sequences (F-keys: ESC [ [ A, ESC [ 1 ~ ...):
                    // skip up to their final byte.
                    _ => {
                        while i < bytes.len()
                            && !(bytes[i - 1].is_ascii_alphabetic() || bytes[i - 1] == b'~')
                        {
                            i += 1;
                        }
                        None
                    }
                }
            }
            0x1b => Some(Key::Escape),
            b'\t' => Some(Key::Tab),
            b'\r' | b'\n' => Some(Key::Enter),
            0x7f | 0x08 => Some(Key::Backspace),
            0x20..=0x7e => Some(Key::Char(char::from(b))),
            _ => None,
        };
        keys.extend(key);
    }
    keys
}

pub struct Terminal {
    file: File,
}

impl Terminal {
    /// Open the VT, switch it to graphics mode and raw input.
    pub fn open(path: &str) -> io::Result<Terminal> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let fd = file.as_raw_fd();
        // SAFETY: plain ioctls on an fd we own, with a zeroed termios that
        // tcgetattr fills before use.
        unsafe {
            if libc::ioctl(fd, KDSETMODE, KD_GRAPHICS) != 0 {
                eprintln!(
                    "greeter: KDSETMODE on {path} failed: {}",
                    io::Error::last_os_error()
                );
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return Err(io::Error::last_os_error());
            }
            t.c_lflag &= !(libc::ICANON | libc::ECHO | libc::ISIG);
            t.c_iflag &= !(libc::ICRNL | libc::IXON);
            t.c_cc[libc::VMIN] = 1;
            t.c_cc[libc::VTIME] = 0;
            if libc::tcsetattr(fd, libc::TCSANOW, &t) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(Terminal { file })
    }

    /// Wait up to `timeout` for a key or for one of `others` (the
    /// pointer's devices) to become readable; return the keys typed (empty
    /// when none, or when only another descriptor woke us).
    pub fn read_keys(&self, timeout: Duration, others: &[RawFd]) -> io::Result<Vec<Key>> {
        let mut fds: Vec<libc::pollfd> = std::iter::once(self.file.as_raw_fd())
            .chain(others.iter().copied())
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: a valid array of pollfds of the given length.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout.as_millis() as libc::c_int,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(Vec::new())
            } else {
                Err(err)
            };
        }
        if fds[0].revents & libc::POLLIN == 0 {
            return Ok(Vec::new());
        }
        let mut buf = [0u8; 64];
        // SAFETY: reading into a local buffer of the given length.
        let got = unsafe { libc::read(fds[0].fd, buf.as_mut_ptr().cast(), buf.len()) };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(parse_keys(&buf[..got as usize]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrows_tab_enter_and_text() {
        assert_eq!(
            parse_keys(b"\x1b[A\x1b[B\tab\r\x7f\x1b"),
            vec![
                Key::Up,
                Key::Down,
                Key::Tab,
                Key::Char('a'),
                Key::Char('b'),
                Key::Enter,
                Key::Backspace,
                Key::Escape
            ]
        );
    }

    #[test]
    fn function_keys_are_skipped() {
        assert_eq!(parse_keys(b"\x1b[[Ax"), vec![Key::Char('x')]);
        assert_eq!(parse_keys(b"\x1b[15~x"), vec![Key::Char('x')]);
    }
}
