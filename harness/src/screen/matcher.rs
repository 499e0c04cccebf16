//! Finding a reference image in a screenshot.
//!
//! The score is normalized cross-correlation (NCC, the same quantity as
//! OpenCV's `TM_CCOEFF_NORMED`) on grayscale, so a reference found by the
//! Tails suite's OpenCV call is found here at the same place. Grayscale NCC
//! is blind to hue (a green row recoloured red keeps its luminance), so every
//! candidate is also scored with a colour NCC over the R, G and B values
//! together around one common mean: a channel that moves against the others
//! lowers that score. The reported score is the lower of the two, in [0, 1].
//!
//! Speed comes from the case that dominates a GUI test: the reference is on
//! the screen with (nearly) the same pixels. The search
//! 1. builds a gray pyramid of the screen (level `j` is `2^j` times smaller),
//!    reading the RGB frame once;
//! 2. computes NCC at every position of the coarsest useful level, with
//!    integral images for the window sums and a row-of-positions inner loop
//!    that the compiler vectorizes;
//! 3. refines the best few coarse peaks level by level in small windows, and
//!    verifies them at full resolution, in gray and then in colour.
//!
//! That pyramid search can miss: the coarse level sees the screen on its own
//! grid, and a reference with fine detail (text, stripes) placed a pixel or
//! two off that grid averages into a different picture there, which may
//! score below unrelated clutter. So when it finds nothing at the
//! threshold, [`Pattern::find`] bounds the score of every window (module
//! `exact`) and scores those that could reach it. Hence the guarantee:
//! whenever a window scores at least the threshold at full resolution,
//! `find` returns a match that does too. A miss costs that proof (a few
//! milliseconds for a full screen); a hit costs the pyramid search only.
//!
//! A warm search ([`Pattern::find_near`]) looks only a few pixels around the
//! last hit at full resolution, which is what a wait loop needs most of the
//! time.
//!
//! Excluded rectangles (a clock, a spinner) are left out of every sum, at
//! every level: a coarse pixel is compared only when all the pixels it covers
//! are.

use image::RgbImage;

mod exact;
mod groups;
use exact::Exhaustive;
use groups::GroupLevel;

/// A rectangle in pixels: top-left corner and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Rect {
    pub const fn new(x: u32, y: u32, w: u32, h: u32) -> Self {
        Rect { x, y, w, h }
    }

    /// One past the right edge, without overflow.
    pub fn right(&self) -> u64 {
        self.x as u64 + self.w as u64
    }

    /// One past the bottom edge, without overflow.
    pub fn bottom(&self) -> u64 {
        self.y as u64 + self.h as u64
    }

    pub fn is_empty(&self) -> bool {
        self.w == 0 || self.h == 0
    }

    /// Whether `other` lies entirely inside `self`.
    pub fn contains(&self, other: &Rect) -> bool {
        other.x >= self.x
            && other.y >= self.y
            && other.right() <= self.right()
            && other.bottom() <= self.bottom()
    }

    /// Area shared with `other`, in pixels.
    pub fn overlap(&self, other: &Rect) -> u64 {
        let x0 = self.x.max(other.x) as u64;
        let y0 = self.y.max(other.y) as u64;
        let x1 = self.right().min(other.right());
        let y1 = self.bottom().min(other.bottom());
        x1.saturating_sub(x0) * y1.saturating_sub(y0)
    }

    pub fn center(&self) -> (u32, u32) {
        (self.x + self.w / 2, self.y + self.h / 2)
    }
}

impl std::fmt::Display for Rect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{} at ({}, {})", self.w, self.h, self.x, self.y)
    }
}

/// Where a reference was found and how well it matched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// The matched area of the screen (the reference's size).
    pub rect: Rect,
    /// Similarity in [0, 1]: the lower of the gray and colour NCC.
    pub score: f32,
}

/// What can go wrong before any pixel is compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatchError {
    #[error("the reference image is empty ({w}x{h} pixels)")]
    EmptyReference { w: u32, h: u32 },
    #[error("excluded rectangle {rect} is not inside the {w}x{h} reference")]
    ExcludedOutside { rect: Rect, w: u32, h: u32 },
    #[error(
        "the excluded rectangles cover the whole {w}x{h} reference: nothing is left to compare"
    )]
    AllExcluded { w: u32, h: u32 },
    #[error("search region {region} is not inside the {w}x{h} screen")]
    RegionOutside { region: Rect, w: u32, h: u32 },
    #[error("the {rw}x{rh} reference is larger than the search area {area}")]
    ReferenceTooLarge { rw: u32, rh: u32, area: Rect },
}

/// Deepest pyramid level used for the exhaustive search.
const MAX_LEVEL: usize = 4;
/// The reference must keep at least this many pixels in each dimension, and
/// this many in all, at the level searched exhaustively; smaller and its
/// coarse correlation stops telling the right place from text-like clutter.
const MIN_COARSE_SIDE: u32 = 2;
const MIN_COARSE_AREA: u32 = 12;
/// ... and keep some contrast: a standard deviation of at least this many
/// gray levels, and this fraction of the full-resolution one.
const MIN_COARSE_STD: f64 = 4.0;
const MIN_COARSE_STD_RATIO: f64 = 0.15;
/// Coarse peaks followed down the pyramid for the best match: more when the
/// reference is small at the coarse level (its peaks are less telling),
/// `CANDIDATE_BUDGET / coarse pixels` within these bounds.
const CANDIDATE_BUDGET: usize = 4096;
const MIN_CANDIDATES: usize = 24;
const MAX_CANDIDATES: usize = 256;
/// Coarse peaks this far below the best one are not followed.
const CANDIDATE_SPREAD: f32 = 0.35;
/// Candidates kept at each finer level: those within this of the best there,
/// at most `REFINE_KEEP`.
const REFINE_SPREAD: f32 = 0.2;
const REFINE_KEEP: usize = 16;
/// The best coarse peaks whose neighbours are refined as well.
const NEIGHBOUR_PEAKS: usize = 4;
/// A warm search that scores this at the last place looks no further.
const SAME_PLACE: f32 = 0.995;
/// Gray value of one RGB pixel, ITU-R BT.601 weights in 8.8 fixed point
/// (the weights OpenCV's `cvtColor` uses).
#[inline]
fn luma(r: u8, g: u8, b: u8) -> u32 {
    77 * r as u32 + 150 * g as u32 + 29 * b as u32
}

/// Gray values of a row of RGB pixels.
#[inline(always)]
fn luma_row(rgb: &[u8], out: &mut [u8]) {
    for (o, p) in out.iter_mut().zip(rgb.chunks_exact(3)) {
        *o = ((luma(p[0], p[1], p[2]) + 128) >> 8) as u8;
    }
}

/// A gray image, one byte per pixel, rows packed.
#[derive(Debug, Clone)]
struct Gray {
    w: usize,
    h: usize,
    px: Vec<u8>,
}

impl Gray {
    /// Full-resolution gray of `area` of `rgb`.
    fn from_rgb(rgb: &RgbImage, area: Rect) -> Gray {
        let (w, h) = (area.w as usize, area.h as usize);
        let stride = rgb.width() as usize * 3;
        let raw = rgb.as_raw();
        let mut px = vec![0u8; w * h];
        for (y, out) in px.chunks_exact_mut(w.max(1)).enumerate().take(h) {
            let start = (area.y as usize + y) * stride + area.x as usize * 3;
            luma_row(&raw[start..start + w * 3], out);
        }
        Gray { w, h, px }
    }

    /// Half-resolution gray of `area` of `rgb` (level 1), each pixel the mean
    /// of a 2x2 block, read in one pass over the RGB rows. This reads every
    /// byte of the frame, so it gets the AVX2 build when the CPU has it.
    fn half_from_rgb(rgb: &RgbImage, area: Rect) -> Gray {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { half_from_rgb_avx2(rgb, area) };
        }
        half_from_rgb_portable(rgb, area)
    }

    /// The next pyramid level: 2x2 means, odd last row/column dropped.
    fn half(&self) -> Gray {
        let (w, h) = (self.w / 2, self.h / 2);
        let mut px = vec![0u8; w * h];
        for (y, out) in px.chunks_exact_mut(w.max(1)).enumerate().take(h) {
            let a = &self.px[2 * y * self.w..][..2 * w];
            let b = &self.px[(2 * y + 1) * self.w..][..2 * w];
            for ((o, pa), pb) in out.iter_mut().zip(a.chunks_exact(2)).zip(b.chunks_exact(2)) {
                *o = ((pa[0] as u16 + pa[1] as u16 + pb[0] as u16 + pb[1] as u16 + 2) >> 2) as u8;
            }
        }
        Gray { w, h, px }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn half_from_rgb_avx2(rgb: &RgbImage, area: Rect) -> Gray {
    half_from_rgb_portable(rgb, area)
}

#[inline(always)]
fn half_from_rgb_portable(rgb: &RgbImage, area: Rect) -> Gray {
    let (w, h) = (area.w as usize / 2, area.h as usize / 2);
    let stride = rgb.width() as usize * 3;
    let raw = rgb.as_raw();
    let mut px = vec![0u8; w * h];
    // Two rows added first (contiguous, vectorizes), then 2x1 pixels
    // weighted: splitting the work this way is what lets it vectorize.
    let mut pair = vec![0u16; w * 6];
    for (y, out) in px.chunks_exact_mut(w.max(1)).enumerate().take(h) {
        let top = (area.y as usize + 2 * y) * stride + area.x as usize * 3;
        let a = &raw[top..top + w * 6];
        let b = &raw[top + stride..top + stride + w * 6];
        for ((p, &x), &z) in pair.iter_mut().zip(a).zip(b) {
            *p = x as u16 + z as u16;
        }
        for (o, c) in out.iter_mut().zip(pair.chunks_exact(6)) {
            let r = (c[0] + c[3]) as u32;
            let g = (c[1] + c[4]) as u32;
            let bl = (c[2] + c[5]) as u32;
            *o = ((77 * r + 150 * g + 29 * bl + 512) >> 10) as u8;
        }
    }
    Gray { w, h, px }
}

/// One pyramid level of a reference.
#[derive(Debug, Clone)]
struct Level {
    w: usize,
    h: usize,
    /// Gray values, 0 where excluded so they drop out of the dot product.
    px: Vec<u8>,
    /// 1 where compared, 0 where excluded; `None` when nothing is excluded.
    mask: Option<Vec<u8>>,
    /// The compared area as disjoint rectangles, for integral-image sums.
    included: Vec<Rect>,
    n: u64,
    sum: u64,
    /// `n * sum(t^2) - sum(t)^2`: `n^2` times the variance.
    var_n: f64,
}

impl Level {
    fn new(gray: Gray, mask: Option<Vec<u8>>) -> Level {
        let Gray { w, h, mut px } = gray;
        if let Some(m) = &mask {
            for (p, &keep) in px.iter_mut().zip(m) {
                *p *= keep;
            }
        }
        let included = match &mask {
            Some(m) => mask_to_rects(m, w, h),
            None => vec![Rect::new(0, 0, w as u32, h as u32)],
        };
        let n = match &mask {
            Some(m) => m.iter().map(|&k| k as u64).sum(),
            None => (w * h) as u64,
        };
        let sum: u64 = px.iter().map(|&p| p as u64).sum();
        let sumsq: u64 = px.iter().map(|&p| (p as u64) * (p as u64)).sum();
        let var_n = n as f64 * sumsq as f64 - (sum as f64) * (sum as f64);
        Level {
            w,
            h,
            px,
            mask,
            included,
            n,
            sum,
            var_n,
        }
    }
}

/// Split the set pixels of a mask into disjoint rectangles: runs per row,
/// merged with the run right above when it spans the same columns.
fn mask_to_rects(mask: &[u8], w: usize, h: usize) -> Vec<Rect> {
    let mut done = Vec::new();
    let mut open: Vec<Rect> = Vec::new();
    for y in 0..h {
        let row = &mask[y * w..(y + 1) * w];
        let mut runs = Vec::new();
        let mut x = 0;
        while x < w {
            if row[x] == 0 {
                x += 1;
                continue;
            }
            let start = x;
            while x < w && row[x] != 0 {
                x += 1;
            }
            runs.push((start as u32, (x - start) as u32));
        }
        let mut next = Vec::with_capacity(runs.len());
        for (rx, rw) in runs {
            match open.iter().position(|r| r.x == rx && r.w == rw) {
                Some(i) => {
                    let mut r = open.swap_remove(i);
                    r.h += 1;
                    next.push(r);
                }
                None => next.push(Rect::new(rx, y as u32, rw, 1)),
            }
        }
        done.append(&mut open);
        open = next;
    }
    done.append(&mut open);
    done
}

/// NCC from sums, in [0, 1]. A flat reference or window has no structure to
/// correlate: two flat patches score by how close their means are, a flat
/// one against a textured one scores 0.
#[inline]
fn ncc_from_sums(n: u64, dot: f64, t_sum: u64, t_var_n: f64, s_sum: u64, s_sumsq: u64) -> f32 {
    let n_f = n as f64;
    let s_var_n = n_f * s_sumsq as f64 - (s_sum as f64) * (s_sum as f64);
    // Variances below one gray level squared count as flat.
    let flat = n_f * n_f;
    match (t_var_n < flat, s_var_n < flat) {
        (true, true) => {
            let diff = (t_sum as f64 - s_sum as f64).abs() / n_f;
            (1.0 - diff / 255.0).max(0.0) as f32
        }
        (true, false) | (false, true) => 0.0,
        (false, false) => {
            let num = n_f * dot - t_sum as f64 * s_sum as f64;
            (num / (t_var_n * s_var_n).sqrt()).clamp(0.0, 1.0) as f32
        }
    }
}

/// A reference image prepared for searching: its gray pyramid, excluded
/// pixels and the statistics that do not depend on the screen.
#[derive(Debug, Clone)]
pub struct Pattern {
    rgb: RgbImage,
    excluded: Vec<Rect>,
    /// `levels[j]` is `2^j` times smaller than the reference.
    levels: Vec<Level>,
    /// The levels of the group bound, coarsest first.
    groups: Vec<GroupLevel>,
}

impl Pattern {
    /// Prepare `image` for searching, leaving out the `excluded` rectangles
    /// (in the reference's own coordinates).
    pub fn new(image: RgbImage, excluded: &[Rect]) -> Result<Pattern, MatchError> {
        let (w, h) = image.dimensions();
        if w == 0 || h == 0 {
            return Err(MatchError::EmptyReference { w, h });
        }
        let whole = Rect::new(0, 0, w, h);
        if let Some(rect) = excluded.iter().find(|r| !whole.contains(r)) {
            return Err(MatchError::ExcludedOutside { rect: *rect, w, h });
        }
        let mask = (!excluded.is_empty()).then(|| {
            let mut m = vec![1u8; (w * h) as usize];
            for r in excluded {
                for y in r.y..r.y + r.h {
                    let row = (y * w) as usize;
                    m[row + r.x as usize..row + (r.x + r.w) as usize].fill(0);
                }
            }
            m
        });
        if mask.as_ref().is_some_and(|m| m.iter().all(|&k| k == 0)) {
            return Err(MatchError::AllExcluded { w, h });
        }
        let mut levels = vec![Level::new(Gray::from_rgb(&image, whole), mask.clone())];
        let mut level = 1;
        let mut mask = mask;
        let mut gray = Gray::half_from_rgb(&image, whole);
        while level <= MAX_LEVEL && gray.w as u32 >= 1 && gray.h as u32 >= 1 {
            // A coarse pixel is compared only if every pixel it covers is.
            mask = mask.map(|m| {
                let prev = &levels[level - 1];
                halve_mask(&m, prev.w, prev.h)
            });
            if mask.as_ref().is_some_and(|m| m.iter().all(|&k| k == 0)) {
                break;
            }
            let next = gray.half();
            levels.push(Level::new(gray, mask.clone()));
            gray = next;
            level += 1;
        }
        let groups = groups::levels(&levels[0]);
        Ok(Pattern {
            rgb: image,
            excluded: excluded.to_vec(),
            levels,
            groups,
        })
    }

    pub fn width(&self) -> u32 {
        self.rgb.width()
    }

    pub fn height(&self) -> u32 {
        self.rgb.height()
    }

    pub fn image(&self) -> &RgbImage {
        &self.rgb
    }

    pub fn excluded(&self) -> &[Rect] {
        &self.excluded
    }

    /// The level searched exhaustively: the coarsest one where the
    /// reference still has enough pixels to be told apart from clutter.
    fn coarse_level(&self) -> usize {
        let std = |l: &Level| (l.var_n.max(0.0)).sqrt() / (l.n.max(1) as f64);
        let full = std(&self.levels[0]);
        let mut k = 0;
        for (j, l) in self.levels.iter().enumerate().skip(1) {
            let (w, h) = (l.w as u32, l.h as u32);
            let big_enough =
                w >= MIN_COARSE_SIDE && h >= MIN_COARSE_SIDE && w * h >= MIN_COARSE_AREA;
            // Fine detail (text, stripes) averages out in coarse levels; a
            // level where the reference went flat cannot locate it.
            let keeps_detail = std(l) >= MIN_COARSE_STD.max(full * MIN_COARSE_STD_RATIO);
            if !(big_enough && keeps_detail) {
                break;
            }
            k = j;
        }
        k
    }

    /// The search area: `region` (checked against the screen) or the whole
    /// screen, which must be able to hold the reference.
    fn area(&self, screen: &RgbImage, region: Option<Rect>) -> Result<Rect, MatchError> {
        let (sw, sh) = screen.dimensions();
        let whole = Rect::new(0, 0, sw, sh);
        let area = match region {
            Some(r) if r.is_empty() || !whole.contains(&r) => {
                return Err(MatchError::RegionOutside {
                    region: r,
                    w: sw,
                    h: sh,
                })
            }
            Some(r) => r,
            None => whole,
        };
        if self.width() > area.w || self.height() > area.h {
            return Err(MatchError::ReferenceTooLarge {
                rw: self.width(),
                rh: self.height(),
                area,
            });
        }
        Ok(area)
    }

    /// The best match in `region` (default: the whole screen), whatever its
    /// score, with one guarantee: when any window scores at least
    /// `threshold`, so does the match returned.
    ///
    /// The pyramid search finds the reference quickly where it is; when it
    /// comes back below `threshold`, every window is bounded (see `exact`)
    /// and those that could reach it are scored, which also proves a miss.
    /// Below the threshold the match is the best place the searches saw, not
    /// necessarily the best window on the screen.
    pub fn find(
        &self,
        screen: &RgbImage,
        region: Option<Rect>,
        threshold: f32,
    ) -> Result<Match, MatchError> {
        let area = self.area(screen, region)?;
        let search = Search::new(self, screen, area);
        let peaks = search.coarse_peaks(search.candidates());
        // With no coarse peak at all, the area's first window stands in.
        let fast = search
            .refine(peaks)
            .into_iter()
            .max_by(|a, b| a.score.total_cmp(&b.score))
            .unwrap_or_else(|| search.verify(0, 0));
        if fast.score >= threshold {
            return Ok(fast);
        }
        let exact = self
            .exhaustive(screen, area, threshold)
            .into_iter()
            .max_by(|a, b| a.score.total_cmp(&b.score));
        Ok(match exact {
            Some(m) if m.score > fast.score => m,
            _ => fast,
        })
    }

    /// Every window of `area` that could score `threshold`, scored: all
    /// those that reach it, and the best of the others.
    fn exhaustive(&self, screen: &RgbImage, area: Rect, threshold: f32) -> Vec<Match> {
        let t = &self.levels[0];
        let mut scored = Exhaustive::new(self, screen, area).scored(threshold);
        // Best gray first: the score is at most the gray one, so once a
        // window below the threshold cannot beat the best seen, neither can
        // any after it, and the colour check is spared.
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut best = f32::NEG_INFINITY;
        let mut out = Vec::new();
        for (gray, x, y) in scored {
            if gray < threshold && gray <= best {
                break;
            }
            let rect = Rect::new(area.x + x as u32, area.y + y as u32, t.w as u32, t.h as u32);
            let colour = if gray > 0.0 {
                colour_ncc(self, screen, rect)
            } else {
                0.0
            };
            let m = Match {
                rect,
                score: gray.min(colour),
            };
            best = best.max(m.score);
            out.push(m);
        }
        out
    }

    /// Every non-overlapping match scoring at least `threshold`, best first
    /// (repeated elements: rows of a list, several identical icons). Every
    /// window is bounded, so none is missed.
    pub fn find_all(
        &self,
        screen: &RgbImage,
        region: Option<Rect>,
        threshold: f32,
    ) -> Result<Vec<Match>, MatchError> {
        let area = self.area(screen, region)?;
        let mut hits: Vec<Match> = self
            .exhaustive(screen, area, threshold)
            .into_iter()
            .filter(|m| m.score >= threshold)
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut kept: Vec<Match> = Vec::new();
        for m in hits {
            // Overlapping by more than half its area: the same element.
            let half = m.rect.w as u64 * m.rect.h as u64 / 2;
            if kept.iter().all(|k| k.rect.overlap(&m.rect) <= half) {
                kept.push(m);
            }
        }
        Ok(kept)
    }

    /// Warm search: the best match whose top-left corner is within `radius`
    /// pixels of `near`, with the guarantee of [`Pattern::find`] there. A
    /// wait loop tries this around its last hit before a cold
    /// [`Pattern::find`]: when nothing moved, one window is compared;
    /// otherwise only the neighbourhood is searched.
    pub fn find_near(
        &self,
        screen: &RgbImage,
        region: Option<Rect>,
        near: (u32, u32),
        radius: u32,
        threshold: f32,
    ) -> Result<Match, MatchError> {
        let area = self.area(screen, region)?;
        let (w, h) = (self.width(), self.height());
        // Top-left corners that keep the reference inside the area.
        let x = near.0.clamp(area.x, area.x + area.w - w);
        let y = near.1.clamp(area.y, area.y + area.h - h);
        let same = Search::new_warm(self, screen, area)
            .verify((x - area.x) as usize, (y - area.y) as usize);
        if same.score >= SAME_PLACE {
            return Ok(same);
        }
        let x0 = x.saturating_sub(radius).max(area.x);
        let y0 = y.saturating_sub(radius).max(area.y);
        let x1 = (x as u64 + radius as u64 + w as u64).min(area.right()) as u32;
        let y1 = (y as u64 + radius as u64 + h as u64).min(area.bottom()) as u32;
        let local = self.find(screen, Some(Rect::new(x0, y0, x1 - x0, y1 - y0)), threshold)?;
        Ok(if local.score >= same.score {
            local
        } else {
            same
        })
    }
}

fn halve_mask(m: &[u8], w: usize, h: usize) -> Vec<u8> {
    let (hw, hh) = (w / 2, h / 2);
    let mut out = vec![0u8; hw * hh];
    for y in 0..hh {
        for x in 0..hw {
            let i = 2 * y * w + 2 * x;
            out[y * hw + x] = m[i] & m[i + 1] & m[i + w] & m[i + w + 1];
        }
    }
    out
}

/// NCC of a row of positions for a textured reference, written without
/// branches so it vectorizes; same result as [`ncc_from_sums`].
fn score_row(out: &mut [f32], dot: &[u32], ssum: &[u64], ssq: &[u64], t: &Level) {
    let n = t.n as f64;
    let (tsum, tvar) = (t.sum as f64, t.var_n);
    let flat = n * n;
    for (((o, &d), &s), &q) in out.iter_mut().zip(dot).zip(ssum).zip(ssq) {
        let (s, q) = (s as f64, q as f64);
        let svar = n * q - s * s;
        let num = n * d as f64 - tsum * s;
        let v = num / (tvar * svar.max(flat)).sqrt();
        *o = if svar >= flat {
            v.clamp(0.0, 1.0) as f32
        } else {
            0.0
        };
    }
}

/// Integral images of a gray level: sums and sums of squares of any
/// rectangle in four lookups.
struct Integral {
    w: usize,
    sum: Vec<u32>,
    sq: Vec<u64>,
}

impl Integral {
    fn new(g: &Gray) -> Integral {
        Integral::build(g.w, g.h, |y, row| {
            row.copy_from_slice(&g.px[y * g.w..(y + 1) * g.w])
        })
    }

    /// The integral of a `gw`x`gh` gray image whose row `y` `row(y, out)`
    /// writes.
    #[inline(always)]
    fn build(gw: usize, gh: usize, mut row: impl FnMut(usize, &mut [u8])) -> Integral {
        let w = gw + 1;
        // Built row by row, each written once (no zeroing first: a frame's
        // integral is megabytes).
        let mut sum: Vec<u32> = Vec::with_capacity(w * (gh + 1));
        let mut sq: Vec<u64> = Vec::with_capacity(w * (gh + 1));
        sum.resize(w, 0);
        sq.resize(w, 0);
        let mut px = vec![0u8; gw];
        for y in 0..gh {
            row(y, &mut px);
            let row = &px;
            // The running sums along the row, then the row above added in
            // a second loop that vectorizes.
            let (mut rs, mut rq) = (0u32, 0u64);
            sum.push(0);
            sq.push(0);
            sum.extend(row.iter().map(|&p| {
                rs += p as u32;
                rs
            }));
            sq.extend(row.iter().map(|&p| {
                rq += (p as u64) * (p as u64);
                rq
            }));
            let (above, here) = sum.split_at_mut((y + 1) * w);
            for (o, &a) in here.iter_mut().zip(&above[y * w..]) {
                *o = o.wrapping_add(a);
            }
            let (above, here) = sq.split_at_mut((y + 1) * w);
            for (o, &a) in here.iter_mut().zip(&above[y * w..]) {
                *o += a;
            }
        }
        Integral { w, sum, sq }
    }

    /// Sums and sums of squares of the compared area (`included`) for the
    /// positions of row `y` from `x` on (as many as `ssum` holds), one
    /// rectangle at a time over contiguous slices so the loops vectorize.
    #[inline]
    fn window_row(&self, y: usize, x: usize, included: &[Rect], ssum: &mut [u64], ssq: &mut [u64]) {
        let w = self.w;
        for (k, r) in included.iter().enumerate() {
            // The first rectangle's sums are written, the others' added.
            let first = k == 0;
            let (x0, y0) = (x + r.x as usize, y + r.y as usize);
            let (x1, y1) = (x0 + r.w as usize, y0 + r.h as usize);
            let (a, b) = (&self.sum[y0 * w..], &self.sum[y1 * w..]);
            for (i, o) in ssum.iter_mut().enumerate() {
                let v = b[x1 + i]
                    .wrapping_sub(b[x0 + i])
                    .wrapping_sub(a[x1 + i])
                    .wrapping_add(a[x0 + i]) as u64;
                *o = if first { v } else { *o + v };
            }
            let (a, b) = (&self.sq[y0 * w..], &self.sq[y1 * w..]);
            for (i, o) in ssq.iter_mut().enumerate() {
                // Intermediate differences may wrap; the total is exact.
                let v = b[x1 + i]
                    .wrapping_sub(b[x0 + i])
                    .wrapping_sub(a[x1 + i])
                    .wrapping_add(a[x0 + i]);
                *o = if first { v } else { *o + v };
            }
        }
    }
}

/// One search of one pattern in one area of one screen.
struct Search<'a> {
    pat: &'a Pattern,
    screen: &'a RgbImage,
    area: Rect,
    /// Screen pyramid of the area: `levels[j]` for `j` in 1..=coarse (index 0
    /// unused unless the coarse level is 0 itself).
    levels: Vec<Option<Gray>>,
    coarse: usize,
}

impl<'a> Search<'a> {
    fn new(pat: &'a Pattern, screen: &'a RgbImage, area: Rect) -> Search<'a> {
        let coarse = pat.coarse_level();
        let mut levels: Vec<Option<Gray>> = vec![None; coarse + 1];
        if coarse == 0 {
            levels[0] = Some(Gray::from_rgb(screen, area));
        } else {
            let mut g = Gray::half_from_rgb(screen, area);
            for (j, slot) in levels.iter_mut().enumerate().skip(1) {
                let next = (j < coarse).then(|| g.half());
                *slot = Some(g);
                match next {
                    Some(n) => g = n,
                    None => break,
                }
            }
        }
        Search {
            pat,
            screen,
            area,
            levels,
            coarse,
        }
    }

    /// A search that only looks at full resolution, near a known place.
    fn new_warm(pat: &'a Pattern, screen: &'a RgbImage, area: Rect) -> Search<'a> {
        Search {
            pat,
            screen,
            area,
            levels: vec![None],
            coarse: 0,
        }
    }

    /// How many coarse peaks to follow for the best match.
    fn candidates(&self) -> usize {
        let l = &self.pat.levels[self.coarse];
        (CANDIDATE_BUDGET / (l.w * l.h).max(1)).clamp(MIN_CANDIDATES, MAX_CANDIDATES)
    }

    /// NCC at every position of the coarse level; the local peaks, best
    /// first: at most `max`, and those within [`CANDIDATE_SPREAD`] of the
    /// best.
    fn coarse_peaks(&self, max: usize) -> Vec<(usize, usize, f32)> {
        let k = self.coarse;
        let Some(g) = self.levels[k].as_ref() else {
            return Vec::new();
        };
        let t = &self.pat.levels[k];
        if g.w < t.w || g.h < t.h {
            return Vec::new();
        }
        let (nx, ny) = (g.w - t.w + 1, g.h - t.h + 1);
        let integral = Integral::new(g);
        let mut scores = vec![0f32; nx * ny];
        let mut acc = vec![0u32; nx];
        let mut ssum = vec![0u64; nx];
        let mut ssq = vec![0u64; nx];
        let flat_t = t.var_n < (t.n as f64) * (t.n as f64);
        for y in 0..ny {
            dot_row(&mut acc, g, t, y);
            integral.window_row(y, 0, &t.included, &mut ssum, &mut ssq);
            let out = &mut scores[y * nx..(y + 1) * nx];
            if flat_t {
                for (x, o) in out.iter_mut().enumerate() {
                    *o = ncc_from_sums(t.n, acc[x] as f64, t.sum, t.var_n, ssum[x], ssq[x]);
                }
            } else {
                score_row(out, &acc, &ssum, &ssq, t);
            }
        }
        let best = scores.iter().copied().fold(0f32, f32::max);
        let cut = best - CANDIDATE_SPREAD;
        let mut peaks = Vec::new();
        for y in 0..ny {
            for x in 0..nx {
                let v = scores[y * nx + x];
                if v < cut || v <= 0.0 {
                    continue;
                }
                // A peak: no 8-neighbour higher (ties broken by order).
                let mut peak = true;
                'n: for dy in -1i64..=1 {
                    for dx in -1i64..=1 {
                        let (xx, yy) = (x as i64 + dx, y as i64 + dy);
                        if (dx, dy) == (0, 0)
                            || xx < 0
                            || yy < 0
                            || xx >= nx as i64
                            || yy >= ny as i64
                        {
                            continue;
                        }
                        let o = scores[yy as usize * nx + xx as usize];
                        if o > v || (o == v && (dy, dx) < (0, 0)) {
                            peak = false;
                            break 'n;
                        }
                    }
                }
                if peak {
                    peaks.push((x, y, v));
                }
            }
        }
        peaks.sort_by(|a, b| b.2.total_cmp(&a.2));
        peaks.truncate(max);
        peaks
    }

    /// Follow coarse peaks down to full resolution, then score each in
    /// colour too. Peaks that converge on one place are kept once.
    fn refine(&self, peaks: Vec<(usize, usize, f32)>) -> Vec<Match> {
        // On a ridge (stripes, regularly spaced glyphs) the right place can
        // sit next to the best peaks without being a peak itself: start from
        // their neighbours too.
        let mut cands = peaks.clone();
        let t = &self.pat.levels[self.coarse];
        let (nx_max, ny_max) = match &self.levels[self.coarse] {
            Some(g) => ((g.w + 1).saturating_sub(t.w), (g.h + 1).saturating_sub(t.h)),
            None => (0, 0),
        };
        for &(x, y, v) in peaks.iter().take(NEIGHBOUR_PEAKS) {
            for (dx, dy) in [
                (-1, -1),
                (0, -1),
                (1, -1),
                (-1, 0),
                (1, 0),
                (-1, 1),
                (0, 1),
                (1, 1),
            ] {
                let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                if (0..nx_max as i64).contains(&nx) && (0..ny_max as i64).contains(&ny) {
                    cands.push((nx as usize, ny as usize, v));
                }
            }
        }
        for level in (0..self.coarse).rev() {
            // A peak from the exhaustive level can be a pixel off there:
            // look at 2p-2..2p+3; below that, 2p-1..2p+2 is enough.
            let (lo, hi) = if level + 1 == self.coarse {
                (2, 3)
            } else {
                (1, 2)
            };
            let mut next: Vec<(usize, usize, f32)> = Vec::with_capacity(cands.len());
            for (x, y, _) in cands {
                let (x, y) = (2 * x as i64, 2 * y as i64);
                if let Some(c) = self.best_in_window(level, x - lo, y - lo, x + hi, y + hi) {
                    if !next.iter().any(|n| (n.0, n.1) == (c.0, c.1)) {
                        next.push(c);
                    }
                }
            }
            next.sort_by(|a, b| b.2.total_cmp(&a.2));
            // Finer levels rank better: drop what falls clearly behind.
            let cut = next.first().map_or(0.0, |b| b.2 - REFINE_SPREAD);
            next.retain(|c| c.2 >= cut);
            next.truncate(REFINE_KEEP);
            cands = next;
        }
        cands
            .into_iter()
            .map(|(x, y, _)| self.verify(x, y))
            .collect()
    }

    /// Gray NCC at full resolution of the window at `(x, y)` (area
    /// coordinates) combined with its colour NCC.
    fn verify(&self, x: usize, y: usize) -> Match {
        let rect = Rect::new(
            self.area.x + x as u32,
            self.area.y + y as u32,
            self.pat.width(),
            self.pat.height(),
        );
        let gray = match self.best_in_window(0, x as i64, y as i64, x as i64, y as i64) {
            Some((_, _, s)) => s,
            None => 0.0,
        };
        let colour = if gray > 0.0 {
            colour_ncc(self.pat, self.screen, rect)
        } else {
            0.0
        };
        Match {
            rect,
            score: gray.min(colour),
        }
    }

    /// Best gray NCC at `level` for top-left corners in the inclusive window
    /// `x0..=x1, y0..=y1` (clamped to valid positions).
    fn best_in_window(
        &self,
        level: usize,
        x0: i64,
        y0: i64,
        x1: i64,
        y1: i64,
    ) -> Option<(usize, usize, f32)> {
        let t = &self.pat.levels[level];
        let (gw, gh) = match &self.levels[level] {
            Some(g) => (g.w, g.h),
            None => (
                (self.area.w >> level) as usize,
                (self.area.h >> level) as usize,
            ),
        };
        if gw < t.w || gh < t.h {
            return None;
        }
        let x0 = x0.max(0) as usize;
        let y0 = y0.max(0) as usize;
        let x1 = (x1.max(0) as usize).min(gw - t.w);
        let y1 = (y1.max(0) as usize).min(gh - t.h);
        if x0 > x1 || y0 > y1 {
            return None;
        }
        // Full resolution is cut out of the RGB frame only where needed.
        let patch;
        let (g, ox, oy) = match &self.levels[level] {
            Some(g) => (g, 0, 0),
            None => {
                let r = Rect::new(
                    self.area.x + x0 as u32,
                    self.area.y + y0 as u32,
                    (x1 - x0 + t.w) as u32,
                    (y1 - y0 + t.h) as u32,
                );
                patch = Gray::from_rgb(self.screen, r);
                (&patch, x0, y0)
            }
        };
        let mut best: Option<(usize, usize, f32)> = None;
        for y in y0..=y1 {
            for x in x0..=x1 {
                let s = window_ncc(t, g, x - ox, y - oy);
                if best.is_none_or(|b| s > b.2) {
                    best = Some((x, y, s));
                }
            }
        }
        best
    }
}

/// Dot products of the reference with the screen at every position of row
/// `y`, into `acc`. Positions along a row share each reference pixel, so it
/// is multiplied into a contiguous run of screen pixels: 16-bit products
/// (255 * 255 fits) added into 32-bit sums, which vectorizes well.
fn dot_row(acc: &mut [u32], g: &Gray, t: &Level, y: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { dot_row_avx2(acc, g, t, y) };
    }
    dot_row_portable(acc, g, t, y)
}

/// [`dot_row_portable`] compiled for AVX2 (twice the lanes of the SSE2
/// baseline), chosen at run time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_row_avx2(acc: &mut [u32], g: &Gray, t: &Level, y: usize) {
    dot_row_portable(acc, g, t, y)
}

#[inline(always)]
fn dot_row_portable(acc: &mut [u32], g: &Gray, t: &Level, y: usize) {
    let nx = acc.len();
    acc.fill(0);
    for r in 0..t.h {
        let srow = &g.px[(y + r) * g.w..(y + r + 1) * g.w];
        let trow = &t.px[r * t.w..(r + 1) * t.w];
        for (c, &tv) in trow.iter().enumerate() {
            if tv == 0 {
                continue;
            }
            let tv = tv as u16;
            for (a, &s) in acc.iter_mut().zip(&srow[c..c + nx]) {
                *a += (tv * s as u16) as u32;
            }
        }
    }
}

/// Gray NCC of level `t` against `g` at `(x, y)`, all sums taken directly.
fn window_ncc(t: &Level, g: &Gray, x: usize, y: usize) -> f32 {
    let (mut dot, mut s, mut q) = (0u64, 0u64, 0u64);
    for r in 0..t.h {
        let srow = &g.px[(y + r) * g.w + x..][..t.w];
        let trow = &t.px[r * t.w..(r + 1) * t.w];
        let (mut d, mut rs, mut rq) = (0u32, 0u32, 0u32);
        match &t.mask {
            None => {
                for (&a, &b) in trow.iter().zip(srow) {
                    let b = b as u32;
                    d += a as u32 * b;
                    rs += b;
                    rq += b * b;
                }
            }
            Some(m) => {
                let mrow = &m[r * t.w..(r + 1) * t.w];
                for ((&a, &b), &k) in trow.iter().zip(srow).zip(mrow) {
                    let b = b as u32 * k as u32;
                    d += a as u32 * b;
                    rs += b;
                    rq += b * b;
                }
            }
        }
        dot += d as u64;
        s += rs as u64;
        q += rq as u64;
    }
    ncc_from_sums(t.n, dot as f64, t.sum, t.var_n, s, q)
}

/// Colour NCC: R, G and B values of the compared pixels as one vector,
/// centred on one common mean, so a shift of one channel against the others
/// (green turned red) is structure that has to correlate, while a uniform
/// brightness change is forgiven as in gray NCC.
fn colour_ncc(pat: &Pattern, screen: &RgbImage, rect: Rect) -> f32 {
    let mask = pat.levels[0].mask.as_deref();
    let (w, h) = (rect.w as usize, rect.h as usize);
    let stride = screen.width() as usize * 3;
    let raw = screen.as_raw();
    let tr = pat.rgb.as_raw();
    let (mut n, mut ts, mut tq, mut ss, mut sq, mut dot) = (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    for y in 0..h {
        let srow = &raw[(rect.y as usize + y) * stride + rect.x as usize * 3..][..w * 3];
        let trow = &tr[y * w * 3..(y + 1) * w * 3];
        for x in 0..w {
            if mask.is_some_and(|m| m[y * w + x] == 0) {
                continue;
            }
            for c in 0..3 {
                let a = trow[3 * x + c] as u64;
                let b = srow[3 * x + c] as u64;
                ts += a;
                tq += a * a;
                ss += b;
                sq += b * b;
                dot += a * b;
            }
            n += 3;
        }
    }
    let t_var_n = n as f64 * tq as f64 - (ts as f64) * (ts as f64);
    ncc_from_sums(n, dot as f64, ts, t_var_n, ss, sq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// The default threshold of a reference.
    const T: f32 = 0.95;

    /// A deterministic, busy test screen: gradients plus pseudo-random
    /// "text" so every window is distinct.
    fn screen(w: u32, h: u32) -> RgbImage {
        let mut state = 0x2545_f491_u32;
        RgbImage::from_fn(w, h, |x, y| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = (state % 97) as u8;
            Rgb([
                (x * 255 / w) as u8 / 2 + noise,
                (y * 255 / h) as u8 / 2 + noise,
                ((x + y) % 128) as u8 + noise,
            ])
        })
    }

    fn crop(img: &RgbImage, r: Rect) -> RgbImage {
        image::imageops::crop_imm(img, r.x, r.y, r.w, r.h).to_image()
    }

    #[test]
    fn exact_match_scores_one() {
        let s = screen(320, 200);
        let p = Pattern::new(crop(&s, Rect::new(101, 57, 40, 18)), &[]).unwrap();
        let m = p.find(&s, None, T).unwrap();
        assert_eq!(m.rect, Rect::new(101, 57, 40, 18));
        assert!(m.score > 0.999, "{m:?}");
    }

    #[test]
    fn shifted_match_is_found_where_it_moved() {
        let s = screen(320, 200);
        let p = Pattern::new(crop(&s, Rect::new(30, 40, 50, 20)), &[]).unwrap();
        // Paste the same pixels elsewhere on a different screen.
        let mut other = screen(300, 180);
        image::imageops::replace(&mut other, p.image(), 213, 139);
        let m = p.find(&other, None, T).unwrap();
        assert_eq!((m.rect.x, m.rect.y), (213, 139));
        assert!(m.score > 0.999, "{m:?}");
        let warm = p.find_near(&other, None, (210, 141), 4, T).unwrap();
        assert_eq!(warm, m);
    }

    #[test]
    fn near_miss_scores_below_default_threshold() {
        let s = screen(320, 200);
        let r = Rect::new(60, 60, 48, 24);
        let mut reference = crop(&s, r);
        // One glyph drawn differently, the rest unchanged.
        for y in 6..18 {
            for x in 4..12 {
                let p = reference.get_pixel_mut(x, y);
                if (x / 3 + y / 4) % 2 == 0 {
                    p.0 = p.0.map(|c| c.saturating_add(90));
                }
            }
        }
        let p = Pattern::new(reference, &[]).unwrap();
        let m = p.find(&s, None, T).unwrap();
        let at = p.find_near(&s, None, (60, 60), 0, T).unwrap();
        assert_eq!(m.rect, r, "{m:?} {at:?}");
        assert!(m.score < 0.95 && m.score > 0.5, "{m:?}");
    }

    #[test]
    fn colour_only_difference_is_rejected() {
        // A green row with white text and the same row in a red of the same
        // luminance: gray NCC cannot tell them apart.
        let row = |bg: Rgb<u8>| {
            RgbImage::from_fn(90, 20, |x, y| {
                if (4..16).contains(&y) && (x % 7 < 3) && x > 5 && x < 80 {
                    Rgb([255, 255, 255])
                } else {
                    bg
                }
            })
        };
        let green = row(Rgb([0, 140, 70]));
        let red = row(Rgb([200, 40, 56]));
        let gl = |p: Rgb<u8>| luma(p[0], p[1], p[2]) >> 8;
        assert_eq!(gl(Rgb([0, 140, 70])), gl(Rgb([200, 40, 56])));
        let mut s = RgbImage::from_pixel(200, 100, Rgb([240, 240, 240]));
        image::imageops::replace(&mut s, &red, 50, 40);
        let p = Pattern::new(green, &[]).unwrap();
        let m = p.find(&s, None, T).unwrap();
        assert!(m.score < 0.95, "{m:?}");
        let mut s2 = s.clone();
        image::imageops::replace(&mut s2, p.image(), 50, 40);
        assert!(p.find(&s2, None, T).unwrap().score > 0.999);
    }

    #[test]
    fn excluded_regions_are_ignored() {
        let s = screen(320, 200);
        let r = Rect::new(80, 90, 60, 30);
        let reference = crop(&s, r);
        let mut changed = s.clone();
        // A clock that ticked: different pixels in part of the area.
        for y in 95..110 {
            for x in 120..138 {
                changed.put_pixel(x, y, Rgb([0, 0, 255]));
            }
        }
        let plain = Pattern::new(reference.clone(), &[]).unwrap();
        assert!(plain.find(&changed, None, T).unwrap().score < 0.95);
        let masked = Pattern::new(reference, &[Rect::new(38, 3, 22, 17)]).unwrap();
        let m = masked.find(&changed, None, T).unwrap();
        assert_eq!(m.rect, r);
        assert!(m.score > 0.999, "{m:?}");
    }

    #[test]
    fn reference_larger_than_screen_is_an_error() {
        let s = screen(64, 48);
        let p = Pattern::new(screen(80, 20), &[]).unwrap();
        assert!(matches!(
            p.find(&s, None, T),
            Err(MatchError::ReferenceTooLarge { .. })
        ));
        let small = Pattern::new(screen(20, 20), &[]).unwrap();
        let err = small
            .find(&s, Some(Rect::new(50, 40, 20, 20)), T)
            .unwrap_err();
        assert!(matches!(err, MatchError::RegionOutside { .. }), "{err}");
        let err = small
            .find(&s, Some(Rect::new(0, 0, 10, 40)), T)
            .unwrap_err();
        assert!(matches!(err, MatchError::ReferenceTooLarge { .. }), "{err}");
    }

    #[test]
    fn bad_references_are_errors() {
        assert!(matches!(
            Pattern::new(RgbImage::new(0, 5), &[]),
            Err(MatchError::EmptyReference { .. })
        ));
        assert!(matches!(
            Pattern::new(RgbImage::new(10, 5), &[Rect::new(5, 0, 6, 5)]),
            Err(MatchError::ExcludedOutside { .. })
        ));
        assert!(matches!(
            Pattern::new(RgbImage::new(10, 5), &[Rect::new(0, 0, 10, 5)]),
            Err(MatchError::AllExcluded { .. })
        ));
    }

    #[test]
    fn region_limits_the_search() {
        let s = screen(320, 200);
        let p = Pattern::new(crop(&s, Rect::new(200, 120, 30, 16)), &[]).unwrap();
        let m = p.find(&s, Some(Rect::new(150, 100, 120, 60)), T).unwrap();
        assert_eq!(m.rect, Rect::new(200, 120, 30, 16));
        let elsewhere = p.find(&s, Some(Rect::new(0, 0, 150, 100)), T).unwrap();
        assert!(elsewhere.score < 0.95, "{elsewhere:?}");
    }

    #[test]
    fn find_all_returns_every_copy() {
        let icon = screen(24, 16);
        let mut s = RgbImage::from_pixel(300, 200, Rgb([30, 30, 30]));
        let spots = [(10, 10), (150, 20), (40, 170), (260, 100)];
        for (x, y) in spots {
            image::imageops::replace(&mut s, &icon, x, y);
        }
        let p = Pattern::new(icon, &[]).unwrap();
        let mut found: Vec<(u32, u32)> = p
            .find_all(&s, None, 0.95)
            .unwrap()
            .iter()
            .map(|m| (m.rect.x, m.rect.y))
            .collect();
        found.sort();
        let mut want: Vec<(u32, u32)> = spots.iter().map(|&(x, y)| (x as u32, y as u32)).collect();
        want.sort();
        assert_eq!(found, want);
    }

    #[test]
    fn flat_reference_does_not_panic() {
        let s = screen(100, 80);
        let p = Pattern::new(RgbImage::from_pixel(10, 10, Rgb([9, 9, 9])), &[]).unwrap();
        let m = p.find(&s, None, T).unwrap();
        assert!((0.0..=1.0).contains(&m.score));
    }

    #[test]
    fn mask_splits_into_disjoint_rects() {
        let (w, h) = (6, 4);
        let mut m = vec![1u8; w * h];
        m[w + 2] = 0;
        m[2 * w + 2] = 0;
        let rects = mask_to_rects(&m, w, h);
        let area: u32 = rects.iter().map(|r| r.w * r.h).sum();
        assert_eq!(area, (w * h - 2) as u32);
        for (i, a) in rects.iter().enumerate() {
            for b in &rects[i + 1..] {
                assert_eq!(a.overlap(b), 0);
            }
        }
    }

    /// A small deterministic generator (xorshift64*), so a failing case can
    /// be replayed from its number.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
        }
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        /// Uniform in `lo..hi`.
        fn range(&mut self, lo: u32, hi: u32) -> u32 {
            lo + (self.next() % (hi - lo) as u64) as u32
        }
        fn colour(&mut self) -> Rgb<u8> {
            let v = self.next();
            Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
        }
    }

    /// A reference with much of its detail at the finest scale, where the
    /// pyramid's coarse levels lose it or alias it: stripes at odd periods,
    /// one-pixel checkers, noise, glyph-like strokes; or a smooth one.
    fn random_pattern(rng: &mut Rng) -> RgbImage {
        let (w, h) = (rng.range(6, 48), rng.range(5, 24));
        let (ink, paper) = (rng.colour(), rng.colour());
        let (period, phase) = (rng.range(2, 12), rng.range(0, 12));
        let step = rng.range(1, 8);
        match rng.range(0, 5) {
            0 => RgbImage::from_fn(w, h, |x, y| {
                if (x * step + y / 3 + phase) % period < period / 2 {
                    ink
                } else {
                    paper
                }
            }),
            1 => RgbImage::from_fn(w, h, |x, y| if (x + y) % 2 == 0 { ink } else { paper }),
            2 => {
                let mut r = Rng::new(rng.next());
                RgbImage::from_fn(w, h, |_, _| r.colour())
            }
            3 => RgbImage::from_fn(w, h, |x, y| {
                let stroke = (x * 7 + y / 4 + phase) % 11 < 3 && y > 1 && y + 2 < h;
                if stroke {
                    ink
                } else {
                    paper
                }
            }),
            _ => RgbImage::from_fn(w, h, |x, y| {
                Rgb([
                    (x * 5) as u8,
                    (y * 9) as u8,
                    ((x + y) * 3) as u8 / 2 + paper[2] / 2,
                ])
            }),
        }
    }

    /// A screen that competes with the reference: the sawtooth of the
    /// known miss, noise, or stripes like the reference's own.
    fn random_screen(rng: &mut Rng, w: u32, h: u32) -> RgbImage {
        let kind = rng.range(0, 4);
        let (a, b) = (rng.colour(), rng.colour());
        let period = rng.range(2, 9);
        let mut r = Rng::new(rng.next());
        RgbImage::from_fn(w, h, |x, y| match kind {
            0 => Rgb([(x % 50) as u8 + 90, (y % 30) as u8 + 90, 120]),
            1 => r.colour(),
            2 => {
                if (x * 3 + y) % period < 2 {
                    a
                } else {
                    b
                }
            }
            _ => Rgb([(x * 2) as u8, (y * 2) as u8, r.colour()[0] / 8]),
        })
    }

    /// The score of every window, computed directly: gray NCC at full
    /// resolution, and the colour NCC where gray is positive, as `verify`.
    fn brute_force(p: &Pattern, s: &RgbImage) -> Vec<Match> {
        let (w, h) = (p.width(), p.height());
        let g = Gray::from_rgb(s, Rect::new(0, 0, s.width(), s.height()));
        let mut all = Vec::new();
        for y in 0..=s.height() - h {
            for x in 0..=s.width() - w {
                let rect = Rect::new(x, y, w, h);
                let gray = window_ncc(&p.levels[0], &g, x as usize, y as usize);
                let colour = if gray > 0.0 {
                    colour_ncc(p, s, rect)
                } else {
                    0.0
                };
                all.push(Match {
                    rect,
                    score: gray.min(colour),
                });
            }
        }
        all
    }

    /// One random case: a screen, a reference, and the reference pasted
    /// onto the screen (or not), sometimes with noise or an excluded area
    /// drawn over.
    fn random_case(seed: u64) -> (Pattern, RgbImage) {
        let mut rng = Rng::new(seed);
        let reference = random_pattern(&mut rng);
        let (w, h) = reference.dimensions();
        let (sw, sh) = (rng.range(w + 2, 160), rng.range(h + 2, 96));
        let mut screen = random_screen(&mut rng, sw, sh);
        let mut excluded = Vec::new();
        if rng.range(0, 4) == 0 && w > 3 && h > 3 {
            let (ex, ey) = (rng.range(0, w - 2), rng.range(0, h - 2));
            excluded.push(Rect::new(
                ex,
                ey,
                rng.range(1, w - ex),
                rng.range(1, h - ey),
            ));
        }
        if rng.range(0, 5) != 0 {
            let mut copy = reference.clone();
            if rng.range(0, 3) == 0 {
                // Rendering noise: a few pixels a little off.
                for _ in 0..rng.range(1, 6) {
                    let p = copy.get_pixel_mut(rng.range(0, w), rng.range(0, h));
                    p.0 = p.0.map(|c| c.saturating_add(rng.range(0, 40) as u8));
                }
            }
            for r in &excluded {
                for y in r.y..r.y + r.h {
                    for x in r.x..r.x + r.w {
                        copy.put_pixel(x, y, rng.colour());
                    }
                }
            }
            // Anywhere, edges and corners included.
            let x = match rng.range(0, 4) {
                0 => 0,
                1 => screen.width() - w,
                _ => rng.range(0, screen.width() - w + 1),
            };
            let y = match rng.range(0, 4) {
                0 => 0,
                1 => screen.height() - h,
                _ => rng.range(0, screen.height() - h + 1),
            };
            image::imageops::replace(&mut screen, &copy, x as i64, y as i64);
        }
        (Pattern::new(reference, &excluded).unwrap(), screen)
    }

    /// The guarantee, checked against a brute-force search: whenever a
    /// window scores at least the threshold, `find` returns a match that
    /// does too; and the score it reports is the window's real score.
    #[test]
    fn find_agrees_with_brute_force() {
        let mut found = 0;
        for seed in 0..300 {
            let (p, s) = random_case(seed);
            let all = brute_force(&p, &s);
            let best = all.iter().map(|m| m.score).fold(0f32, f32::max);
            let m = p.find(&s, None, T).unwrap();
            let real = all
                .iter()
                .find(|b| b.rect == m.rect)
                .map(|b| b.score)
                .unwrap_or_else(|| {
                    panic!("case {seed}: {m:?} is off the {:?} screen", s.dimensions())
                });
            assert!(
                (m.score - real).abs() < 1e-5,
                "case {seed}: {m:?} is really {real}"
            );
            if best >= T {
                found += 1;
                assert!(
                    m.score >= T,
                    "case {seed}: best window scores {best}, find gave {m:?}"
                );
            }
            let hits: Vec<Match> = all.iter().copied().filter(|b| b.score >= T).collect();
            let every = p.find_all(&s, None, T).unwrap();
            for h in &hits {
                let half = h.rect.w as u64 * h.rect.h as u64 / 2;
                assert!(
                    every
                        .iter()
                        .any(|e| e.rect.overlap(&h.rect) > half && e.score >= h.score),
                    "case {seed}: find_all missed {h:?}: {every:?}"
                );
            }
        }
        // The cases must exercise the guarantee, not only misses.
        assert!(found > 150, "only {found} cases had a match");
    }

    /// The bound under the exhaustive search never falls below the real
    /// gray score, at any threshold: every window scoring at least the
    /// threshold is a candidate.
    #[test]
    fn exhaustive_candidates_cover_every_window_above_threshold() {
        for seed in 1000..1150 {
            let (p, s) = random_case(seed);
            let g = Gray::from_rgb(&s, Rect::new(0, 0, s.width(), s.height()));
            let search = Exhaustive::new(&p, &s, Rect::new(0, 0, s.width(), s.height()));
            for threshold in [0.2f32, 0.6, 0.9, 0.95] {
                let cands = search.candidates(threshold);
                for y in 0..=(s.height() - p.height()) as usize {
                    for x in 0..=(s.width() - p.width()) as usize {
                        let gray = window_ncc(&p.levels[0], &g, x, y);
                        assert!(
                            gray < threshold || cands.contains(&(x, y)),
                            "case {seed}, threshold {threshold}: ({x}, {y}) scores {gray} but is no candidate"
                        );
                    }
                }
            }
        }
    }

    /// A case built to sit on the edges of the bounds: tiny and thin
    /// references (smaller than a block or a group), flat and nearly flat
    /// ones, screens of nearly flat noise (window energy about the flatness
    /// limit), and copies blended with the screen so that the best window
    /// scores anywhere between the threshold's neighbours.
    fn adversarial_case(seed: u64) -> (Pattern, RgbImage) {
        let mut rng = Rng::new(seed);
        let (w, h) = match rng.range(0, 5) {
            0 => (rng.range(1, 5), rng.range(1, 5)),
            1 => (1, rng.range(2, 40)),
            2 => (rng.range(2, 60), 1),
            3 => (rng.range(3, 20), rng.range(3, 20)),
            _ => (rng.range(17, 70), rng.range(9, 30)),
        };
        let base = rng.colour();
        let reference = match rng.range(0, 4) {
            // Flat.
            0 => RgbImage::from_pixel(w, h, base),
            // One pixel off a flat field, by a little or a lot.
            1 => {
                let mut r = RgbImage::from_pixel(w, h, base);
                let d = rng.range(1, 60) as u8;
                let p = r.get_pixel_mut(rng.range(0, w), rng.range(0, h));
                p.0 = p.0.map(|c| c.wrapping_add(d));
                r
            }
            // Low contrast noise: two gray levels apart.
            2 => {
                let mut r = Rng::new(rng.next());
                RgbImage::from_fn(w, h, |_, _| {
                    let v = 100 + (r.next() % 3) as u8;
                    Rgb([v, v, v])
                })
            }
            _ => {
                let mut r = Rng::new(rng.next());
                RgbImage::from_fn(w, h, |_, _| r.colour())
            }
        };
        let (sw, sh) = (rng.range(w + 1, w + 90), rng.range(h + 1, h + 60));
        let mut r = Rng::new(rng.next());
        let mut screen = match rng.range(0, 3) {
            0 => RgbImage::from_fn(sw, sh, |_, _| {
                let v = 100 + (r.next() % 3) as u8;
                Rgb([v, v, v])
            }),
            1 => RgbImage::from_pixel(sw, sh, base),
            _ => RgbImage::from_fn(sw, sh, |_, _| r.colour()),
        };
        if rng.range(0, 4) != 0 {
            // The copy blended with what is under it: 0 keeps the copy.
            let mix = rng.range(0, 40);
            let (x, y) = (rng.range(0, sw - w + 1), rng.range(0, sh - h + 1));
            for (dx, dy, p) in reference.enumerate_pixels() {
                let under = screen.get_pixel_mut(x + dx, y + dy);
                for c in 0..3 {
                    let v = (p[c] as u32 * (100 - mix) + under[c] as u32 * mix) / 100;
                    under[c] = v as u8;
                }
            }
        }
        let mut excluded = Vec::new();
        if rng.range(0, 4) == 0 && w > 2 && h > 2 {
            let (ex, ey) = (rng.range(0, w - 1), rng.range(0, h - 1));
            excluded.push(Rect::new(
                ex,
                ey,
                rng.range(1, w - ex),
                rng.range(1, h - ey),
            ));
        }
        (Pattern::new(reference, &excluded).unwrap(), screen)
    }

    /// The bound at its edges: with the threshold set exactly at the best
    /// window's gray score (and one `f32` step under it, and halfway down),
    /// every window that reaches it is a candidate; tiny, thin, flat and
    /// nearly flat references and nearly flat screens included. And `find`
    /// at the best window's own score finds a window that scores it.
    #[test]
    fn exhaustive_keeps_windows_exactly_at_threshold() {
        let mut at_edge = 0;
        for seed in 0..400 {
            let (p, s) = if seed % 3 == 0 {
                random_case(5000 + seed)
            } else {
                adversarial_case(seed)
            };
            let g = Gray::from_rgb(&s, Rect::new(0, 0, s.width(), s.height()));
            let (nx, ny) = (
                (s.width() - p.width()) as usize,
                (s.height() - p.height()) as usize,
            );
            let mut grays = Vec::new();
            for y in 0..=ny {
                for x in 0..=nx {
                    grays.push((window_ncc(&p.levels[0], &g, x, y), x, y));
                }
            }
            let best = grays.iter().map(|w| w.0).fold(f32::NEG_INFINITY, f32::max);
            if best <= 0.0 {
                continue;
            }
            at_edge += 1;
            let below = f32::from_bits(best.to_bits() - 1);
            let search = Exhaustive::new(&p, &s, Rect::new(0, 0, s.width(), s.height()));
            for threshold in [best, below, best / 2.0] {
                let cands = search.candidates(threshold);
                for &(gray, x, y) in grays.iter().filter(|w| w.0 >= threshold) {
                    assert!(
                        cands.contains(&(x, y)),
                        "case {seed}, threshold {threshold}: ({x}, {y}) scores {gray} but is no candidate"
                    );
                }
            }
            let all = brute_force(&p, &s);
            let top = all.iter().map(|m| m.score).fold(0f32, f32::max);
            if top > 0.0 {
                let m = p.find(&s, None, top).unwrap();
                assert!(
                    m.score >= top - 1e-6,
                    "case {seed}: the best window scores {top}, find at that threshold gave {m:?}"
                );
            }
        }
        assert!(at_edge > 250, "only {at_edge} cases had a positive score");
    }
}
