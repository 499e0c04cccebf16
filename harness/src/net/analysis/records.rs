//! The records of a pcap or pcapng capture, walked in place.
//!
//! A capture is a file header and then records (pcap) or blocks (pcapng).
//! [`Walker`] reads them straight out of a byte slice and hands out the
//! frames as borrowed slices of it: nothing is copied, nothing is
//! allocated per record. Before this walker the analysis went through
//! `pcap-parser`'s streaming reader, which parses every block through nom
//! into an owned enum (an options vector per packet block), copies its
//! buffer on each refill, and reports "not enough bytes" and "malformed"
//! through error kinds that do not say where a record began. Here the
//! fixed-size headers are read at known offsets, which is all the formats
//! need, and each stop says exactly where and why. `pcap-parser` still
//! writes the synthetic captures the tests read, and the tests compare this
//! walker with it record by record (pcap in micro- and nanoseconds, both
//! byte orders, and pcapng).
//!
//! The walker only splits records; the caller decides what a record cut
//! short at the end of the data means (an error, or the live end of a
//! capture still being written).

use super::Timestamp;

/// Link types the analysis decodes (pcap and pcapng share the numbers).
pub const LINKTYPE_ETHERNET: u16 = 1;
pub const LINKTYPE_RAW: u16 = 101;
pub const LINKTYPE_LINUX_SLL: u16 = 113;
pub const LINKTYPE_IPV4: u16 = 228;
pub const LINKTYPE_IPV6: u16 = 229;

/// The largest frame a pcap record may hold: libpcap's own limit on a
/// snap length (QEMU's filter-dump cuts frames at 64000 bytes). A longer
/// record is corruption, whatever the file's mode.
pub const MAX_FRAME: usize = 256 << 10;
/// The largest pcapng block accepted (name resolution or custom blocks may
/// be large; packet blocks are bounded by [`MAX_FRAME`] as well).
pub const MAX_BLOCK: usize = 64 << 20;

const PCAP_HEADER: usize = 24;
const PCAP_RECORD: usize = 16;
const SHB: u32 = 0x0A0D_0D0A;
const BOM: u32 = 0x1A2B_3C4D;
const IDB: u32 = 1;
const PB: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;

/// Which capture format the file was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap,
    PcapNg,
}

/// One frame, borrowed from the walked bytes.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub ts: Timestamp,
    pub linktype: u16,
    /// Where `data` starts in the slice given to [`Walker::next`].
    pub data_at: usize,
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub orig_len: u32,
}

/// Why the walk stopped before a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The slice ends inside a record that needs `need` bytes in all (from
    /// the record's start), which is plausible for its kind: more data may
    /// complete it.
    Incomplete { need: usize },
    /// The bytes at the record's start are not a valid record.
    Corrupt(String),
}

/// What the file header says, or why it is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// A valid start: the walker, and the header's length in bytes (pcapng
    /// has none of its own: its first block is read as a record).
    Ok(Walker, usize),
    Empty,
    /// The data ends inside the header (it starts like one).
    Incomplete,
    NotACapture,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interface {
    linktype: u16,
    snaplen: u32,
    /// Timestamp units per second.
    units: u64,
    /// Seconds added to every timestamp.
    offset: i64,
}

/// Walks the records after a file header; keeps what later records need
/// (byte order, link type, pcapng interfaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walker {
    format: Format,
    big_endian: bool,
    /// pcap: nanosecond timestamps.
    nanos: bool,
    /// pcap: the file's link type and snap length.
    linktype: u16,
    snaplen: u32,
    /// pcapng: inside a section (a section header was read).
    in_section: bool,
    interfaces: Vec<Interface>,
}

fn u16_at(b: &[u8], at: usize, big: bool) -> u16 {
    let v = [b[at], b[at + 1]];
    if big {
        u16::from_be_bytes(v)
    } else {
        u16::from_le_bytes(v)
    }
}

fn u32_at(b: &[u8], at: usize, big: bool) -> u32 {
    let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big {
        u32::from_be_bytes(v)
    } else {
        u32::from_le_bytes(v)
    }
}

fn u64_at(b: &[u8], at: usize, big: bool) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[at..at + 8]);
    if big {
        u64::from_be_bytes(v)
    } else {
        u64::from_le_bytes(v)
    }
}

/// The magic numbers a capture may start with, as bytes in file order.
const MAGICS: [[u8; 4]; 5] = [
    [0xd4, 0xc3, 0xb2, 0xa1], // pcap, microseconds, little-endian
    [0xa1, 0xb2, 0xc3, 0xd4], // pcap, microseconds, big-endian
    [0x4d, 0x3c, 0xb2, 0xa1], // pcap, nanoseconds, little-endian
    [0xa1, 0xb2, 0x3c, 0x4d], // pcap, nanoseconds, big-endian
    [0x0a, 0x0d, 0x0d, 0x0a], // pcapng section header
];

impl Walker {
    /// Read the file header at the start of `data`.
    pub fn start(data: &[u8]) -> Header {
        if data.is_empty() {
            return Header::Empty;
        }
        let head = &data[..data.len().min(4)];
        let Some(kind) = MAGICS.iter().position(|m| m.starts_with(head)) else {
            return Header::NotACapture;
        };
        if data.len() < 4 {
            return Header::Incomplete;
        }
        if kind == 4 {
            // The first section header is the file's header: it must be
            // whole (a damaged one is the walker's to report).
            if data.len() < 12 {
                return Header::Incomplete;
            }
            let bom = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
            let len = if bom == BOM.swap_bytes() {
                u32_at(data, 4, true)
            } else {
                u32_at(data, 4, false)
            } as usize;
            if len <= MAX_BLOCK && data.len() < len {
                return Header::Incomplete;
            }
            return Header::Ok(
                Walker {
                    format: Format::PcapNg,
                    big_endian: false,
                    nanos: false,
                    linktype: 0,
                    snaplen: 0,
                    in_section: false,
                    interfaces: Vec::new(),
                },
                0,
            );
        }
        if data.len() < PCAP_HEADER {
            return Header::Incomplete;
        }
        let big_endian = kind % 2 == 1;
        // The link type is the low 16 bits; the high bits may carry FCS
        // information that does not change how a frame starts.
        let linktype = (u32_at(data, 20, big_endian) & 0xffff) as u16;
        Header::Ok(
            Walker {
                format: Format::Pcap,
                big_endian,
                nanos: kind >= 2,
                linktype,
                snaplen: u32_at(data, 16, big_endian),
                in_section: false,
                interfaces: Vec::new(),
            },
            PCAP_HEADER,
        )
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// The record at the start of `data`: its length, and its frame if it
    /// is a packet (`None` for pcapng blocks that carry none). `data` must
    /// not be empty.
    pub fn next<'a>(&mut self, data: &'a [u8]) -> Result<(usize, Option<Packet<'a>>), Stop> {
        match self.format {
            Format::Pcap => self.pcap_record(data).map(|(len, p)| (len, Some(p))),
            Format::PcapNg => self.pcapng_block(data),
        }
    }

    fn pcap_record<'a>(&self, data: &'a [u8]) -> Result<(usize, Packet<'a>), Stop> {
        if data.len() < PCAP_RECORD {
            return Err(Stop::Incomplete { need: PCAP_RECORD });
        }
        let big = self.big_endian;
        let caplen = u32_at(data, 8, big) as usize;
        if caplen > MAX_FRAME {
            return Err(Stop::Corrupt(format!(
                "a record of {caplen} bytes, more than any capture's frames ({MAX_FRAME})"
            )));
        }
        let len = PCAP_RECORD + caplen;
        if data.len() < len {
            return Err(Stop::Incomplete { need: len });
        }
        let secs = i128::from(u32_at(data, 0, big));
        let frac = i128::from(u32_at(data, 4, big));
        let frac = if self.nanos { frac } else { frac * 1000 };
        Ok((
            len,
            Packet {
                ts: Timestamp::from_nanos(secs * 1_000_000_000 + frac),
                linktype: self.linktype,
                data_at: PCAP_RECORD,
                data: &data[PCAP_RECORD..len],
                orig_len: u32_at(data, 12, big),
            },
        ))
    }

    fn pcapng_block<'a>(&mut self, data: &'a [u8]) -> Result<(usize, Option<Packet<'a>>), Stop> {
        if data.len() < 8 {
            return Err(Stop::Incomplete { need: 12 });
        }
        // The section header's type reads the same in both byte orders;
        // its byte-order magic sets the order for the whole section.
        let raw_type = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
        if raw_type == SHB {
            if data.len() < 12 {
                return Err(Stop::Incomplete { need: 12 });
            }
            self.big_endian = match u32::from_le_bytes([data[8], data[9], data[10], data[11]]) {
                BOM => false,
                b if b == BOM.swap_bytes() => true,
                other => {
                    return Err(Stop::Corrupt(format!(
                        "a section header with byte-order magic {other:#010x} (expected 0x1a2b3c4d)"
                    )))
                }
            };
        } else if !self.in_section {
            return Err(Stop::Corrupt(format!(
                "a block of type {raw_type:#x} before any section header"
            )));
        }
        let big = self.big_endian;
        let block_type = u32_at(data, 0, big);
        let len = u32_at(data, 4, big) as usize;
        if len < 12 || !len.is_multiple_of(4) {
            return Err(Stop::Corrupt(format!(
                "a block of type {block_type:#x} whose length {len} is not a multiple of 4 of at least 12"
            )));
        }
        if len > MAX_BLOCK {
            return Err(Stop::Corrupt(format!(
                "a block of type {block_type:#x} of {len} bytes (at most {MAX_BLOCK} expected)"
            )));
        }
        if data.len() < len {
            return Err(Stop::Incomplete { need: len });
        }
        let trailer = u32_at(data, len - 4, big) as usize;
        if trailer != len {
            return Err(Stop::Corrupt(format!(
                "a block of type {block_type:#x} that says {len} bytes at its start and {trailer} at its end"
            )));
        }
        let body = &data[8..len - 4];
        let short = |need: usize, what: &str| {
            Stop::Corrupt(format!(
                "a {what} of {len} bytes, too short for its {need}-byte header"
            ))
        };
        let packet = match block_type {
            SHB => {
                if body.len() < 16 {
                    return Err(short(16, "section header"));
                }
                let major = u16_at(body, 4, big);
                if major != 1 {
                    return Err(Stop::Corrupt(format!(
                        "a section header of pcapng version {major} (expected 1)"
                    )));
                }
                self.in_section = true;
                self.interfaces.clear();
                None
            }
            IDB => {
                if body.len() < 8 {
                    return Err(short(8, "interface description"));
                }
                let mut iface = Interface {
                    linktype: u16_at(body, 0, big),
                    snaplen: u32_at(body, 4, big),
                    units: 1_000_000,
                    offset: 0,
                };
                for (code, value) in options(&body[8..], big) {
                    match (code, value.len()) {
                        // if_tsresol: a power of ten, or of two with the
                        // high bit set. One that makes no sense keeps the
                        // default microseconds rather than failing the file.
                        (9, 1..) => {
                            let v = value[0];
                            let units = if v & 0x80 == 0 {
                                10u64.checked_pow(u32::from(v))
                            } else {
                                1u64.checked_shl(u32::from(v & 0x7f))
                            };
                            iface.units = units.filter(|u| *u > 0).unwrap_or(1_000_000);
                        }
                        // if_tsoffset: seconds.
                        (14, 8..) => iface.offset = u64_at(value, 0, big) as i64,
                        _ => {}
                    }
                }
                self.interfaces.push(iface);
                None
            }
            EPB | PB => {
                if body.len() < 20 {
                    return Err(short(20, "packet block"));
                }
                // The obsolete packet block has a 16-bit interface id and
                // a drop count where the enhanced one has a 32-bit id.
                let if_id = if block_type == EPB {
                    u32_at(body, 0, big) as usize
                } else {
                    usize::from(u16_at(body, 0, big))
                };
                let iface = self.interface(if_id)?;
                let caplen = u32_at(body, 12, big) as usize;
                if caplen > body.len() - 20 || caplen > MAX_FRAME {
                    return Err(Stop::Corrupt(format!(
                        "a packet block of {len} bytes that says it holds a {caplen}-byte frame"
                    )));
                }
                let raw = (u64::from(u32_at(body, 4, big)) << 32) | u64::from(u32_at(body, 8, big));
                Some(Packet {
                    ts: iface.timestamp(raw),
                    linktype: iface.linktype,
                    data_at: 28,
                    data: &body[20..20 + caplen],
                    orig_len: u32_at(body, 16, big),
                })
            }
            SPB => {
                if body.len() < 4 {
                    return Err(short(4, "simple packet block"));
                }
                let iface = self.interface(0)?;
                let orig_len = u32_at(body, 0, big);
                let mut caplen = (body.len() - 4).min(orig_len as usize);
                if iface.snaplen > 0 {
                    caplen = caplen.min(iface.snaplen as usize);
                }
                // Simple packets carry no timestamp.
                Some(Packet {
                    ts: Timestamp::default(),
                    linktype: iface.linktype,
                    data_at: 12,
                    data: &body[4..4 + caplen],
                    orig_len,
                })
            }
            _ => None,
        };
        Ok((len, packet))
    }

    fn interface(&self, id: usize) -> Result<Interface, Stop> {
        self.interfaces.get(id).copied().ok_or_else(|| {
            Stop::Corrupt(format!(
                "a packet on interface {id} but only {} described",
                self.interfaces.len()
            ))
        })
    }
}

impl Interface {
    fn timestamp(&self, raw: u64) -> Timestamp {
        let units = i128::from(self.units);
        let raw = i128::from(raw);
        Timestamp::from_nanos(
            (raw / units) * 1_000_000_000
                + (raw % units) * 1_000_000_000 / units
                + i128::from(self.offset) * 1_000_000_000,
        )
    }
}

/// pcapng options: (code, value) until the end-of-options code or the end
/// of the bytes; a damaged option list just ends early.
fn options(mut rest: &[u8], big: bool) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let code = u16_at(rest, 0, big);
        let len = usize::from(u16_at(rest, 2, big));
        if code == 0 || rest.len() < 4 + len {
            return None;
        }
        let value = &rest[4..4 + len];
        rest = rest.get(4 + len.div_ceil(4) * 4..).unwrap_or(&[]);
        Some((code, value))
    })
}
