//! PC Screen Font (PSF1 and PSF2) bitmap fonts, as shipped by Debian's
//! `console-setup-linux` (`/usr/share/consolefonts/*.psf.gz`, decompressed by
//! the image builder). A real console font gives crisp, pixel-exact glyphs,
//! which keeps screen matching in the harness stable.

use std::collections::HashMap;

/// A parsed bitmap font: `glyphs[i]` is `height` rows of `bytes_per_row`.
pub struct Font {
    pub width: usize,
    pub height: usize,
    bytes_per_row: usize,
    glyphs: Vec<Vec<u8>>,
    map: HashMap<char, usize>,
}

#[derive(Debug)]
pub enum FontError {
    BadMagic,
    Truncated(&'static str),
}

impl std::fmt::Display for FontError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FontError::BadMagic => write!(f, "not a PSF1/PSF2 font (bad magic)"),
            FontError::Truncated(what) => write!(f, "font file truncated in its {what}"),
        }
    }
}

impl std::error::Error for FontError {}

fn u32_at(b: &[u8], off: usize) -> Result<usize, FontError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
        .ok_or(FontError::Truncated("header"))
}

impl Font {
    /// A font without glyphs, for layout tests.
    #[cfg(test)]
    pub fn blank(width: usize, height: usize) -> Font {
        Font {
            width,
            height,
            bytes_per_row: width.div_ceil(8),
            glyphs: Vec::new(),
            map: HashMap::new(),
        }
    }

    pub fn parse(data: &[u8]) -> Result<Font, FontError> {
        if data.starts_with(&[0x72, 0xb5, 0x4a, 0x86]) {
            Self::parse_psf2(data)
        } else if data.starts_with(&[0x36, 0x04]) {
            Self::parse_psf1(data)
        } else {
            Err(FontError::BadMagic)
        }
    }

    fn parse_psf2(data: &[u8]) -> Result<Font, FontError> {
        let header = u32_at(data, 8)?;
        let flags = u32_at(data, 12)?;
        let count = u32_at(data, 16)?;
        let charsize = u32_at(data, 20)?;
        let height = u32_at(data, 24)?;
        let width = u32_at(data, 28)?;
        let glyph_end = header + count * charsize;
        let table = data
            .get(header..glyph_end)
            .ok_or(FontError::Truncated("glyphs"))?;
        let glyphs = table.chunks(charsize).map(<[u8]>::to_vec).collect();
        let mut map = HashMap::new();
        if flags & 1 == 1 {
            // Unicode table: per glyph, UTF-8 characters, then optional
            // 0xFE-prefixed sequences, terminated by 0xFF.
            let mut rest = &data[glyph_end..];
            for index in 0..count {
                let end = rest.iter().position(|&b| b == 0xff).unwrap_or(rest.len());
                let entry = &rest[..end];
                let singles = entry.split(|&b| b == 0xfe).next().unwrap_or_default();
                if let Ok(text) = std::str::from_utf8(singles) {
                    for c in text.chars() {
                        map.entry(c).or_insert(index);
                    }
                }
                rest = rest.get(end + 1..).unwrap_or_default();
            }
        } else {
            for i in 0..count.min(256) {
                map.insert(char::from(i as u8), i);
            }
        }
        Ok(Font {
            width,
            height,
            bytes_per_row: width.div_ceil(8),
            glyphs,
            map,
        })
    }

    fn parse_psf1(data: &[u8]) -> Result<Font, FontError> {
        let mode = *data.get(2).ok_or(FontError::Truncated("header"))?;
        let height = *data.get(3).ok_or(FontError::Truncated("header"))? as usize;
        let count = if mode & 1 == 1 { 512 } else { 256 };
        let table = data
            .get(4..4 + count * height)
            .ok_or(FontError::Truncated("glyphs"))?;
        let glyphs = table.chunks(height).map(<[u8]>::to_vec).collect();
        let map = (0..256).map(|i| (char::from(i as u8), i)).collect();
        Ok(Font {
            width: 8,
            height,
            bytes_per_row: 1,
            glyphs,
            map,
        })
    }

    /// Whether pixel (x, y) of the glyph for `c` is set; unknown characters
    /// show as '?'.
    pub fn pixel(&self, c: char, x: usize, y: usize) -> bool {
        let index = self
            .map
            .get(&c)
            .or_else(|| self.map.get(&'?'))
            .copied()
            .unwrap_or(0);
        let Some(glyph) = self.glyphs.get(index) else {
            return false;
        };
        let byte = glyph
            .get(y * self.bytes_per_row + x / 8)
            .copied()
            .unwrap_or(0);
        byte & (0x80 >> (x % 8)) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psf1_identity_map() {
        let mut data = vec![0x36, 0x04, 0, 2];
        data.extend(std::iter::repeat_n(0u8, 256 * 2));
        data[4 + b'A' as usize * 2] = 0x80;
        let font = Font::parse(&data).unwrap();
        assert!(font.pixel('A', 0, 0));
        assert!(!font.pixel('A', 1, 0));
        assert!(!font.pixel('B', 0, 0));
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(matches!(Font::parse(b"hello"), Err(FontError::BadMagic)));
    }
}
