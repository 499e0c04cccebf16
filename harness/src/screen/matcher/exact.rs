//! The search behind the matcher's guarantee: every window of the area is
//! either proven unable to reach the threshold or scored exactly. So
//! whenever a window scores at least the threshold, it is among those
//! scored.
//!
//! The proofs are the group bounds of module `groups`: one sweep down the
//! area bounds groups of 8x8 windows, then the 4x4 and 2x2 groups inside
//! those left, then each window of the 2x2 groups left with its own norm.
//! On the benchmark's screens a sweep leaves from none to about twelve
//! thousand windows of a million to score; scoring one is a dot product
//! of the reference with the screen (the window's sums came with it).
//!
//! Two cases have no bound: a flat reference (it scores by how close a
//! flat window's mean is, from the sums alone) and a threshold of 0 or
//! less (every window reaches it); then every window is scored.

use image::RgbImage;

use super::groups::{every_window, sweep, Window};
use super::{ncc_from_sums, Pattern, Rect};

/// Taken off the threshold for floating-point rounding in the bounds
/// (each bound adds its own margin for its sums; this covers the
/// comparison).
const ROUNDING: f64 = 1e-6;

/// Every window of one area, bounded or scored.
pub(super) struct Exhaustive<'a> {
    pat: &'a Pattern,
    screen: &'a RgbImage,
    area: Rect,
}

impl<'a> Exhaustive<'a> {
    pub(super) fn new(pat: &'a Pattern, screen: &'a RgbImage, area: Rect) -> Exhaustive<'a> {
        Exhaustive { pat, screen, area }
    }

    /// Every window whose gray NCC may reach `threshold`, with that score
    /// (`(score, x, y)`, area coordinates, in no particular order).
    pub(super) fn scored(&self, threshold: f32) -> Vec<(f32, usize, usize)> {
        let t = &self.pat.levels[0];
        if (self.area.w as usize) < t.w || (self.area.h as usize) < t.h {
            return Vec::new();
        }
        let floor = threshold as f64 - ROUNDING;
        let flat = t.var_n < (t.n as f64) * (t.n as f64);
        if flat {
            // A flat reference scores by how close a flat window's mean
            // is: the sums are all it takes. (The f32 score is rounded: a
            // little slack.)
            let (all, _) = every_window(t, self.screen, self.area);
            return all
                .into_iter()
                .map(|w| (self.score(0, &w), w.x, w.y))
                .filter(|&(s, _, _)| s as f64 >= floor - 1e-3)
                .collect();
        }
        let (windows, gray) = if floor > 0.0 {
            sweep(t, &self.pat.groups, self.screen, self.area, floor)
        } else {
            every_window(t, self.screen, self.area)
        };
        let w = self.area.w as usize;
        windows
            .into_iter()
            .map(|win| {
                (
                    self.score(dot(&gray, w, t, win.x, win.y), &win),
                    win.x,
                    win.y,
                )
            })
            .collect()
    }

    /// The windows `scored` would score, for tests of the bound.
    #[cfg(test)]
    pub(super) fn candidates(&self, threshold: f32) -> Vec<(usize, usize)> {
        self.scored(threshold)
            .into_iter()
            .map(|(_, x, y)| (x, y))
            .collect()
    }

    fn score(&self, dot: u64, w: &Window) -> f32 {
        let t = &self.pat.levels[0];
        ncc_from_sums(t.n, dot as f64, t.sum, t.var_n, w.sums.s, w.sums.q)
    }
}

/// The dot product of the reference level `t` with the window at `(x, y)`
/// of a gray image `w` wide. Excluded pixels are 0 in the reference: they
/// add nothing.
fn dot(gray: &[u8], w: usize, t: &super::Level, x: usize, y: usize) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { dot_avx2(gray, w, t, x, y) };
    }
    dot_body(gray, w, t, x, y)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(gray: &[u8], w: usize, t: &super::Level, x: usize, y: usize) -> u64 {
    dot_body(gray, w, t, x, y)
}

#[inline(always)]
fn dot_body(gray: &[u8], w: usize, t: &super::Level, x: usize, y: usize) -> u64 {
    let mut dot = 0u64;
    for r in 0..t.h {
        let srow = &gray[(y + r) * w + x..][..t.w];
        let trow = &t.px[r * t.w..(r + 1) * t.w];
        // Products of bytes in 16 bits, summed pairwise in 32 (one
        // instruction per 16 pixels); a row of up to 33000 pixels fits.
        let d: i32 = trow
            .iter()
            .zip(srow)
            .map(|(&a, &b)| a as i16 as i32 * b as i16 as i32)
            .sum();
        dot += d as u64;
    }
    dot
}
