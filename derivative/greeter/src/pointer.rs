//! The mouse: absolute pointing devices (QEMU's usb-tablet, a touch screen)
//! read through evdev (`/dev/input/event*`).
//!
//! Only absolute devices are used: their coordinates map straight onto the
//! framebuffer, so no cursor has to be drawn for a click to land where the
//! person (or the harness) aimed. USB devices appear a moment after boot,
//! so [`Pointer::rescan`] is called until one is found.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

const EV_KEY: u16 = 0x01;
const EV_ABS: u16 = 0x03;
const ABS_X: u16 = 0x00;
const ABS_Y: u16 = 0x01;
const BTN_LEFT: u16 = 0x110;
const BTN_TOUCH: u16 = 0x14a;

/// `struct input_event` on 64-bit Linux: a timeval, then type, code, value.
const EVENT_SIZE: usize = 24;

/// `EVIOCGBIT(ev, len)`: which codes of event type `ev` a device reports.
fn eviocgbit(ev: u16, len: usize) -> libc::c_ulong {
    ioc_read(0x20 + libc::c_ulong::from(ev), len)
}

/// `EVIOCGABS(axis)`: an axis' `struct input_absinfo` (six i32).
fn eviocgabs(axis: u16) -> libc::c_ulong {
    ioc_read(0x40 + libc::c_ulong::from(axis), 24)
}

fn ioc_read(nr: libc::c_ulong, size: usize) -> libc::c_ulong {
    const IOC_READ: libc::c_ulong = 2;
    (IOC_READ << 30) | ((size as libc::c_ulong) << 16) | ((b'E' as libc::c_ulong) << 8) | nr
}

/// One axis' range, from `EVIOCGABS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    pub min: i32,
    pub max: i32,
}

impl Axis {
    /// A raw axis value as a pixel in `0..size`.
    pub fn to_pixel(self, value: i32, size: usize) -> usize {
        let span = i64::from(self.max) - i64::from(self.min);
        if span <= 0 || size == 0 {
            return 0;
        }
        let v = (i64::from(value) - i64::from(self.min)).clamp(0, span);
        ((v * (size as i64 - 1) + span / 2) / span) as usize
    }
}

struct Device {
    file: File,
    x: Axis,
    y: Axis,
}

/// What the pointer did since the last read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointerEvent {
    /// The left button (or a touch) was released at this pixel: a click.
    Click { x: usize, y: usize },
}

/// The absolute pointing devices found so far and where the pointer is.
pub struct Pointer {
    devices: Vec<Device>,
    width: usize,
    height: usize,
    x: usize,
    y: usize,
    pressed: bool,
}

fn test_bit(bits: &[u8], bit: u16) -> bool {
    bits.get(usize::from(bit / 8))
        .is_some_and(|b| b & (1 << (bit % 8)) != 0)
}

fn open_absolute(path: &std::path::Path) -> io::Result<Option<Device>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let fd = file.as_raw_fd();
    let mut abs_bits = [0u8; 8];
    let mut key_bits = [0u8; 96];
    let mut x = [0i32; 6];
    let mut y = [0i32; 6];
    // SAFETY: each ioctl writes at most the length encoded in its request
    // into a buffer of that length.
    let ok = unsafe {
        libc::ioctl(fd, eviocgbit(EV_ABS, abs_bits.len()), abs_bits.as_mut_ptr()) >= 0
            && libc::ioctl(fd, eviocgbit(EV_KEY, key_bits.len()), key_bits.as_mut_ptr()) >= 0
    };
    if !ok || !test_bit(&abs_bits, ABS_X) || !test_bit(&abs_bits, ABS_Y) {
        return Ok(None);
    }
    if !test_bit(&key_bits, BTN_LEFT) && !test_bit(&key_bits, BTN_TOUCH) {
        return Ok(None);
    }
    // SAFETY: as above, 24 bytes into six i32.
    let ranges = unsafe {
        libc::ioctl(fd, eviocgabs(ABS_X), x.as_mut_ptr()) >= 0
            && libc::ioctl(fd, eviocgabs(ABS_Y), y.as_mut_ptr()) >= 0
    };
    if !ranges {
        return Err(io::Error::last_os_error());
    }
    // input_absinfo: value, minimum, maximum, fuzz, flat, resolution.
    Ok(Some(Device {
        file,
        x: Axis {
            min: x[1],
            max: x[2],
        },
        y: Axis {
            min: y[1],
            max: y[2],
        },
    }))
}

impl Pointer {
    pub fn new(width: usize, height: usize) -> Pointer {
        Pointer {
            devices: Vec::new(),
            width,
            height,
            x: 0,
            y: 0,
            pressed: false,
        }
    }

    pub fn has_devices(&self) -> bool {
        !self.devices.is_empty()
    }

    /// Open the absolute pointing devices in `/dev/input` (once each).
    /// Returns how many were added.
    pub fn rescan(&mut self) -> usize {
        let Ok(entries) = std::fs::read_dir("/dev/input") else {
            return 0;
        };
        let mut added = 0;
        for entry in entries.flatten() {
            let path = entry.path();
            let is_event = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("event"));
            if !is_event {
                continue;
            }
            // Already open? Compare device numbers, not paths.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let known = self.devices.iter().any(|d| {
                d.file
                    .metadata()
                    .map(|m| {
                        use std::os::unix::fs::MetadataExt;
                        m.rdev() == meta.rdev()
                    })
                    .unwrap_or(false)
            });
            if known {
                continue;
            }
            match open_absolute(&path) {
                Ok(Some(device)) => {
                    eprintln!(
                        "tailor-greeter: pointer {} (x {}..{}, y {}..{})",
                        path.display(),
                        device.x.min,
                        device.x.max,
                        device.y.min,
                        device.y.max
                    );
                    self.devices.push(device);
                    added += 1;
                }
                Ok(None) => {}
                Err(e) => eprintln!("tailor-greeter: {}: {e}", path.display()),
            }
        }
        added
    }

    /// The devices' descriptors, to poll beside the keyboard.
    pub fn fds(&self) -> Vec<RawFd> {
        self.devices.iter().map(|d| d.file.as_raw_fd()).collect()
    }

    /// Read what every device has queued; a device that fails (unplugged)
    /// is dropped.
    pub fn read_events(&mut self) -> Vec<PointerEvent> {
        let mut events = Vec::new();
        let mut gone = Vec::new();
        for (i, device) in self.devices.iter().enumerate() {
            let mut buf = [0u8; EVENT_SIZE * 64];
            loop {
                // SAFETY: reading into a local buffer of the given length.
                let got = unsafe {
                    libc::read(device.file.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                };
                if got < 0 {
                    let err = io::Error::last_os_error();
                    if err.kind() != io::ErrorKind::WouldBlock {
                        eprintln!("tailor-greeter: pointer device lost: {err}");
                        gone.push(i);
                    }
                    break;
                }
                if got == 0 {
                    gone.push(i);
                    break;
                }
                for raw in buf[..got as usize].chunks_exact(EVENT_SIZE) {
                    let kind = u16::from_ne_bytes([raw[16], raw[17]]);
                    let code = u16::from_ne_bytes([raw[18], raw[19]]);
                    let value = i32::from_ne_bytes([raw[20], raw[21], raw[22], raw[23]]);
                    let (x, y) = (device.x, device.y);
                    if let Some(event) = apply(
                        &mut self.x,
                        &mut self.y,
                        &mut self.pressed,
                        (x, y, self.width, self.height),
                        kind,
                        code,
                        value,
                    ) {
                        events.push(event);
                    }
                }
            }
        }
        for i in gone.into_iter().rev() {
            self.devices.remove(i);
        }
        events
    }
}

/// Apply one evdev event to the pointer state; a release of the button is
/// a click where the pointer is.
fn apply(
    px: &mut usize,
    py: &mut usize,
    pressed: &mut bool,
    (ax, ay, width, height): (Axis, Axis, usize, usize),
    kind: u16,
    code: u16,
    value: i32,
) -> Option<PointerEvent> {
    match (kind, code) {
        (EV_ABS, ABS_X) => *px = ax.to_pixel(value, width),
        (EV_ABS, ABS_Y) => *py = ay.to_pixel(value, height),
        (EV_KEY, BTN_LEFT | BTN_TOUCH) => {
            let was = *pressed;
            *pressed = value != 0;
            if was && !*pressed {
                return Some(PointerEvent::Click { x: *px, y: *py });
            }
        }
        _ => {}
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tablet_axis_maps_onto_the_screen() {
        let a = Axis { min: 0, max: 32767 };
        assert_eq!(a.to_pixel(0, 1024), 0);
        assert_eq!(a.to_pixel(32767, 1024), 1023);
        assert_eq!(a.to_pixel(16384, 1024), 512);
        assert_eq!(a.to_pixel(-5, 1024), 0);
        assert_eq!(a.to_pixel(40000, 1024), 1023);
    }

    #[test]
    fn a_release_after_a_press_is_a_click_where_the_pointer_is() {
        let a = Axis { min: 0, max: 32767 };
        let geo = (a, a, 1024, 768);
        let (mut x, mut y, mut down) = (0, 0, false);
        let mut feed = |kind, code, value| apply(&mut x, &mut y, &mut down, geo, kind, code, value);
        assert_eq!(feed(EV_ABS, ABS_X, 16384), None);
        assert_eq!(feed(EV_ABS, ABS_Y, 32767), None);
        assert_eq!(feed(EV_KEY, BTN_LEFT, 0), None, "a release without a press");
        assert_eq!(feed(EV_KEY, BTN_LEFT, 1), None);
        assert_eq!(
            feed(EV_KEY, BTN_LEFT, 0),
            Some(PointerEvent::Click { x: 512, y: 767 })
        );
    }
}
