//! An RGB back buffer the screens are drawn into, then copied to the
//! framebuffer in one write (no flicker, and the harness never screendumps a
//! half-drawn screen).

use crate::font::Font;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb` as written in the branding file.
    pub fn parse(s: &str) -> Option<Rgb> {
        let hex = s.trim().strip_prefix('#')?;
        if hex.len() != 6 {
            return None;
        }
        let v = u32::from_str_radix(hex, 16).ok()?;
        Some(Rgb((v >> 16) as u8, (v >> 8) as u8, v as u8))
    }
}

pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<Rgb>,
}

impl Canvas {
    pub fn new(width: usize, height: usize, fill: Rgb) -> Canvas {
        Canvas {
            width,
            height,
            pixels: vec![fill; width * height],
        }
    }

    pub fn fill_rect(&mut self, x: usize, y: usize, w: usize, h: usize, color: Rgb) {
        for row in y..(y + h).min(self.height) {
            for col in x..(x + w).min(self.width) {
                self.pixels[row * self.width + col] = color;
            }
        }
    }

    /// A rectangle outline `t` pixels thick.
    pub fn frame(&mut self, x: usize, y: usize, w: usize, h: usize, t: usize, color: Rgb) {
        self.fill_rect(x, y, w, t, color);
        self.fill_rect(x, y + h - t, w, t, color);
        self.fill_rect(x, y, t, h, color);
        self.fill_rect(x + w - t, y, t, h, color);
    }

    pub fn text_width(font: &Font, text: &str, scale: usize) -> usize {
        text.chars().count() * font.width * scale
    }

    /// Draw `text` with its top-left corner at (x, y), each font pixel
    /// `scale` x `scale` screen pixels.
    pub fn text(&mut self, font: &Font, x: usize, y: usize, text: &str, scale: usize, color: Rgb) {
        for (i, c) in text.chars().enumerate() {
            let ox = x + i * font.width * scale;
            for gy in 0..font.height {
                for gx in 0..font.width {
                    if font.pixel(c, gx, gy) {
                        self.fill_rect(ox + gx * scale, y + gy * scale, scale, scale, color);
                    }
                }
            }
        }
    }

    /// Draw `text` centred horizontally at row `y`.
    pub fn text_centered(&mut self, font: &Font, y: usize, text: &str, scale: usize, color: Rgb) {
        let w = Self::text_width(font, text, scale);
        let x = self.width.saturating_sub(w) / 2;
        self.text(font, x, y, text, scale, color);
    }

    /// Binary PPM (P6), for `greeter --snapshot` on the host.
    pub fn to_ppm(&self) -> Vec<u8> {
        let mut out = format!("P6\n{} {}\n255\n", self.width, self.height).into_bytes();
        for p in &self.pixels {
            out.extend([p.0, p.1, p.2]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_colours() {
        assert_eq!(Rgb::parse("#102030"), Some(Rgb(0x10, 0x20, 0x30)));
        assert_eq!(Rgb::parse("102030"), None);
        assert_eq!(Rgb::parse("#1020"), None);
    }

    #[test]
    fn rects_are_clipped() {
        let mut c = Canvas::new(4, 4, Rgb(0, 0, 0));
        c.fill_rect(2, 2, 10, 10, Rgb(1, 1, 1));
        assert_eq!(c.pixels[15], Rgb(1, 1, 1));
        assert_eq!(c.pixels[0], Rgb(0, 0, 0));
    }
}
