//! The search behind the matcher's guarantee: every window of the area gets
//! an upper bound of its gray NCC, and only windows whose bound reaches the
//! threshold are scored exactly. So whenever a window scores at least the
//! threshold, it is among those scored.
//!
//! The bound comes from `b`x`b` blocks laid on the *reference* (not on the
//! screen's pyramid grid), so it holds at every pixel offset: the coarse
//! search aligns the reference with the screen's pyramid, and a reference
//! with fine detail (text, stripes) looks different there at each sub-block
//! offset, which is how the coarse search can miss it.
//!
//! For the window `s` at one position, over the compared pixels `I` of the
//! reference `t`: `F` is the union of the blocks whose pixels are all
//! compared, `R = I \ F`. With `t0 = t - mean(t)`, `μ = mean(s)`, and in each
//! block `B` `t0 = m_B + t'` (block mean plus deviation) and
//! `s = S_B / b² + s'` (`S_B` the block's sum):
//!
//! ```text
//! Σ_I t0·s = Σ_B m_B·S_B + Σ_F t'·s' + Σ_R t0·(s - μ) + μ·Σ_R t0
//!          ≤ Σ_B m_B·S_B + |t'_F|·|s'_F| + |t0_R|·|s_R - μ| + μ·Σ_R t0
//! ```
//!
//! (Cauchy-Schwarz on the middle terms), with `|s'_F|² = Σ_F s² - Σ_B S_B²/b²`.
//! Divided by `|t0|·|s - μ|` this bounds the NCC. Everything but the first
//! sum comes from integral images; the first sum is a correlation of the
//! block means with the screen's `b`x`b` box sums at every pixel, which
//! costs `b²` times less than correlating the reference itself. The bound is
//! tight when the reference's variance lives in its block means and the
//! window is like it.
//!
//! Windows that are flat on the screen go first (they score 0 against a
//! textured reference); 8x8 blocks then bound the rest, and 4x4 blocks,
//! tighter and dearer, the chunks of windows that 8x8 left. On the
//! benchmark's GUI screens that leaves from none to about a hundred windows of
//! a million to score (a 16x14 arrow: 1581).

use std::ops::Range;

use image::RgbImage;

use super::{mask_to_rects, ncc_from_sums, Integral, Level, Pattern, Rect};

/// Taken off the threshold for floating-point rounding in the bound (the
/// block correlation is summed in `f32` and its error bounded separately;
/// this covers the `f64` arithmetic around it).
const ROUNDING: f64 = 1e-6;
/// Positions whose block correlation is summed together (in registers).
const CHUNK: usize = 64;

/// The reference cut into `b`x`b` blocks, and what the bound needs of it.
#[derive(Debug, Clone)]
pub(super) struct Blocks {
    b: usize,
    /// Blocks per row.
    wc: usize,
    /// `m_B` of every block, row-major; 0 for blocks not compared.
    means: Vec<f64>,
    /// The compared blocks as rectangles, in blocks.
    rects: Vec<Rect>,
    /// `F` as rectangles in reference pixels (`R` is the rest of `I`).
    f_rects: Vec<Rect>,
    n_r: u64,
    /// `|t'_F|`, `|t0_R|`, `Σ_R t0`.
    dev_f: f64,
    norm_r: f64,
    sum_r: f64,
    /// Bound on the rounding error of the block correlation in `f32`.
    dot_error: f64,
}

impl Blocks {
    /// Blocks of `2^level` pixels on the full-resolution level `t`; `None`
    /// when not one block of the reference is compared.
    pub(super) fn new(t: &Level, level: usize) -> Option<Blocks> {
        let b = 1usize << level;
        let (wc, hc) = (t.w / b, t.h / b);
        if wc == 0 || hc == 0 {
            return None;
        }
        let mean_t = t.sum as f64 / t.n as f64;
        let compared = |x: usize, y: usize| t.mask.as_ref().is_none_or(|m| m[y * t.w + x] != 0);
        let mut means = vec![0f64; wc * hc];
        let mut block_mask = vec![0u8; wc * hc];
        for by in 0..hc {
            for bx in 0..wc {
                let (mut sum, mut all) = (0u64, true);
                for y in by * b..(by + 1) * b {
                    for x in bx * b..(bx + 1) * b {
                        all &= compared(x, y);
                        sum += t.px[y * t.w + x] as u64;
                    }
                }
                if all {
                    block_mask[by * wc + bx] = 1;
                    means[by * wc + bx] = sum as f64 / (b * b) as f64 - mean_t;
                }
            }
        }
        if block_mask.iter().all(|&k| k == 0) {
            return None;
        }
        let rects = mask_to_rects(&block_mask, wc, hc);
        let f_rects: Vec<Rect> = rects
            .iter()
            .map(|r| {
                let b = b as u32;
                Rect::new(r.x * b, r.y * b, r.w * b, r.h * b)
            })
            .collect();
        let (mut sq_f, mut sum_r, mut sq_r, mut n_r) = (0f64, 0f64, 0f64, 0u64);
        for y in 0..t.h {
            for x in 0..t.w {
                if !compared(x, y) {
                    continue;
                }
                let d = t.px[y * t.w + x] as f64 - mean_t;
                let (bx, by) = (x / b, y / b);
                if bx < wc && by < hc && block_mask[by * wc + bx] == 1 {
                    sq_f += d * d;
                } else {
                    sum_r += d;
                    sq_r += d * d;
                    n_r += 1;
                }
            }
        }
        let b2 = (b * b) as f64;
        let sq_means: f64 = means.iter().map(|m| m * m).sum();
        let abs_means: f64 = means.iter().map(|m| m.abs()).sum();
        let m = rects.iter().map(|r| (r.w * r.h) as f64).sum::<f64>();
        Some(Blocks {
            b,
            wc,
            means,
            rects,
            f_rects,
            n_r,
            dev_f: (sq_f - b2 * sq_means).max(0.0).sqrt(),
            norm_r: sq_r.sqrt(),
            sum_r,
            // Each term m_B·S_B has |S_B| <= 255·b²; a sum of m products in
            // f32 (means rounded to f32 too) is off by at most (m + 2)·u of
            // the sum of their magnitudes, u = 2^-24; doubled for margin.
            dot_error: (m + 2.0) * f32::EPSILON as f64 * 255.0 * b2 * abs_means,
        })
    }
}

/// The reference's statistics the bound divides by.
struct Template {
    n: f64,
    /// `|t0|`.
    norm: f64,
    flat: bool,
}

impl Template {
    fn of(t: &Level) -> Template {
        let n = t.n as f64;
        Template {
            n,
            norm: (t.var_n.max(0.0) / n).sqrt(),
            flat: t.var_n < n * n,
        }
    }
}

/// Per position of a row: what the bound needs of the window at one block
/// size (the sums over every compared pixel are the same at every size).
/// `f64` holds every sum exactly (integers below 2^53).
#[derive(Default)]
struct Sums {
    /// Over `F`.
    sum_f: Vec<f64>,
    sq_f: Vec<f64>,
    /// `Σ_B S_B²`.
    blocks_sq: Vec<f64>,
    /// `Σ_B m_B·S_B`.
    dot: Vec<f32>,
}

impl Sums {
    fn new(n: usize) -> Sums {
        Sums {
            sum_f: vec![0.0; n],
            sq_f: vec![0.0; n],
            blocks_sq: vec![0.0; n],
            dot: vec![0.0; n],
        }
    }
}

/// The window sums over every compared pixel, per position of a row.
struct Whole<'r> {
    sum: &'r [f64],
    sq: &'r [f64],
}

/// Clear `alive[j]` for each position `x0 + j` whose bound is below
/// `floor`.
fn bound_run(
    alive: &mut [bool],
    t: &Template,
    k: &Blocks,
    floor: f64,
    (whole, s): (&Whole, &Sums),
    x0: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { bound_run_avx2(alive, t, k, floor, (whole, s), x0) };
    }
    bound_run_body(alive, t, k, floor, (whole, s), x0)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn bound_run_avx2(
    alive: &mut [bool],
    t: &Template,
    k: &Blocks,
    floor: f64,
    sums: (&Whole, &Sums),
    x0: usize,
) {
    bound_run_body(alive, t, k, floor, sums, x0)
}

/// The bound, written without branches so that it vectorizes: `num >=
/// floor · |t0| · |s - μ|`, compared squared to save a square root.
#[inline(always)]
fn bound_run_body(
    alive: &mut [bool],
    t: &Template,
    k: &Blocks,
    floor: f64,
    (whole, s): (&Whole, &Sums),
    x0: usize,
) {
    let n = t.n;
    let b2 = (k.b * k.b) as f64;
    let n_r = k.n_r as f64;
    // |t0|² · floor² / n, the factor of the window's n·variance.
    let scale = t.norm * t.norm * floor * floor / n;
    let x1 = x0 + alive.len();
    let sums = whole.sum[x0..x1]
        .iter()
        .zip(&whole.sq[x0..x1])
        .zip(&s.sum_f[x0..x1])
        .zip(&s.sq_f[x0..x1])
        .zip(&s.blocks_sq[x0..x1])
        .zip(&s.dot[x0..x1]);
    for (a, (((((&si, &qi), &sf), &qf), &bsq), &dot)) in alive.iter_mut().zip(sums) {
        let s_var_n = n * qi - si * si;
        let mu = si / n;
        let dev_f = (qf - bsq / b2).max(0.0).sqrt();
        let sum_r = si - sf;
        let dev_r = ((qi - qf) - 2.0 * mu * sum_r + n_r * mu * mu)
            .max(0.0)
            .sqrt();
        let num = dot as f64 + k.dot_error + k.dev_f * dev_f + k.norm_r * dev_r + mu * k.sum_r;
        // A flat window scores 0 against a textured reference. (Bitwise
        // operators: no branches, so the loop vectorizes.)
        let textured = s_var_n >= n * n;
        let reaches = (floor <= 0.0) | ((num >= 0.0) & (num * num >= scale * s_var_n));
        *a &= textured & reaches;
    }
}

/// Every window of one area, bounded.
pub(super) struct Exhaustive<'a> {
    pat: &'a Pattern,
    /// The area's size and the integral image of its gray.
    w: usize,
    h: usize,
    ii: Integral,
}

impl<'a> Exhaustive<'a> {
    pub(super) fn new(pat: &'a Pattern, screen: &RgbImage, area: Rect) -> Exhaustive<'a> {
        Exhaustive {
            pat,
            w: area.w as usize,
            h: area.h as usize,
            ii: Integral::from_rgb(screen, area),
        }
    }

    /// Positions per row and per column.
    fn positions(&self) -> (usize, usize) {
        let t = &self.pat.levels[0];
        (self.w + 1 - t.w, self.h + 1 - t.h)
    }

    /// Every position whose gray NCC may reach `threshold`.
    pub(super) fn candidates(&self, threshold: f32) -> Vec<(usize, usize)> {
        let t = &self.pat.levels[0];
        if self.w < t.w || self.h < t.h {
            return Vec::new();
        }
        let floor = threshold as f64 - ROUNDING;
        let tmpl = Template::of(t);
        if tmpl.flat {
            return self.flat_candidates(floor);
        }
        let (nx, ny) = self.positions();
        let cascade = self.pat.cascade();
        if cascade.is_empty() {
            // Not even 2x2 blocks fit: every window is scored.
            return (0..ny).flat_map(|y| (0..nx).map(move |x| (x, y))).collect();
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { self.bounded_avx2(&tmpl, &cascade, floor) };
        }
        self.bounded(&tmpl, &cascade, floor)
    }

    /// [`Exhaustive::bounded`] compiled for AVX2: the window sums and box
    /// sums it computes inline are most of its work.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn bounded_avx2(
        &self,
        tmpl: &Template,
        cascade: &[&Blocks],
        floor: f64,
    ) -> Vec<(usize, usize)> {
        self.bounded(tmpl, cascade, floor)
    }

    /// The positions whose bound reaches `floor` at every level of the
    /// cascade.
    #[inline(always)]
    fn bounded(&self, tmpl: &Template, cascade: &[&Blocks], floor: f64) -> Vec<(usize, usize)> {
        let t = &self.pat.levels[0];
        let (nx, ny) = self.positions();
        let mut rows: Vec<LevelRow> = cascade
            .iter()
            .map(|k| LevelRow::new(k, self.w, nx))
            .collect();
        let (mut sum_i, mut sq_i) = (vec![0u64; nx], vec![0u64; nx]);
        let (mut sum, mut sq) = (vec![0f64; nx], vec![0f64; nx]);
        let mut alive = vec![false; nx];
        let chunks = nx.div_ceil(CHUNK);
        let chunk = |c: usize| c * CHUNK..((c + 1) * CHUNK).min(nx);
        // Whether a chunk has a position left.
        let mut live = vec![false; chunks];
        let mut out = Vec::new();
        for y in 0..ny {
            self.ii.window_row(y, 0, &t.included, &mut sum_i, &mut sq_i);
            // A flat window scores 0 against a textured reference: many
            // chunks of a GUI screen need no more than this.
            for (o, &v) in sum.iter_mut().zip(&sum_i) {
                *o = v as f64;
            }
            for (o, &v) in sq.iter_mut().zip(&sq_i) {
                *o = v as f64;
            }
            let n = t.n as f64;
            for ((a, &si), &qi) in alive.iter_mut().zip(&sum).zip(&sq) {
                *a = n * qi - si * si >= n * n;
            }
            let whole = Whole { sum: &sum, sq: &sq };
            for (c, l) in live.iter_mut().enumerate() {
                *l = alive[chunk(c)].contains(&true);
            }
            for (k, row) in cascade.iter().zip(rows.iter_mut()) {
                // Only the chunks of positions the coarser blocks left are
                // bounded with the finer, a run of chunks at a time. The box
                // sums of a run reach a reference's width past its end, so
                // a run goes on across a gap narrower than that rather than
                // computing those box sums twice.
                let gap = k.b * (k.wc - 1) / CHUNK;
                let mut c = 0;
                while c < chunks {
                    if !live[c] {
                        c += 1;
                        continue;
                    }
                    let first = c;
                    let mut last = c;
                    while c < chunks && c <= last + 1 + gap {
                        if live[c] {
                            last = c;
                        }
                        c += 1;
                    }
                    c = last + 1;
                    let (x0, x1) = (chunk(first).start, chunk(last).end);
                    row.prepare(k, &self.ii, y, x0..x1);
                    for (d, l) in live.iter_mut().enumerate().take(last + 1).skip(first) {
                        if !*l {
                            continue;
                        }
                        let run = chunk(d);
                        row.correlate(run.clone());
                        let a = &mut alive[run.clone()];
                        bound_run(a, tmpl, k, floor, (&whole, &row.sums), run.start);
                        *l = a.contains(&true);
                    }
                }
            }
            for run in (0..chunks).filter(|&c| live[c]).map(chunk) {
                out.extend(run.filter(|&x| alive[x]).map(|x| (x, y)));
            }
        }
        out
    }

    /// A flat reference scores by how close a flat window's mean is.
    fn flat_candidates(&self, floor: f64) -> Vec<(usize, usize)> {
        let t = &self.pat.levels[0];
        let (nx, ny) = self.positions();
        let mut ssum = vec![0u64; nx];
        let mut ssq = vec![0u64; nx];
        let mut out = Vec::new();
        for y in 0..ny {
            self.ii.window_row(y, 0, &t.included, &mut ssum, &mut ssq);
            for x in 0..nx {
                let s = ncc_from_sums(t.n, 0.0, t.sum, t.var_n, ssum[x], ssq[x]) as f64;
                // The f32 score is rounded: a little slack.
                if s >= floor - 1e-3 {
                    out.push((x, y));
                }
            }
        }
        out
    }
}

/// One row of positions at one block size: the screen's box sums for the
/// block rows the reference spans, and the sums the bound needs.
struct LevelRow {
    b: usize,
    /// Box sums per position, `w + 1 - b` of them, one row per block row
    /// of the reference.
    boxes: Vec<f32>,
    box_w: usize,
    /// `(m_B, offset of the block's box sum from the position's)`.
    terms: Vec<(f32, usize)>,
    sums: Sums,
    /// Window sums over `F`, exact.
    sum_f: Vec<u64>,
    sq_f: Vec<u64>,
    /// Squares of box sums down a column of blocks, per box position, and
    /// those summed along a row of blocks, per position.
    column: Vec<f64>,
    along: Vec<f64>,
}

impl LevelRow {
    fn new(k: &Blocks, screen_w: usize, nx: usize) -> LevelRow {
        let box_w = screen_w + 1 - k.b;
        let hc = k.means.len() / k.wc;
        let terms = k
            .means
            .iter()
            .enumerate()
            .filter(|(_, &m)| m != 0.0)
            .map(|(i, &m)| (m as f32, (i / k.wc) * box_w + (i % k.wc) * k.b))
            .collect();
        LevelRow {
            b: k.b,
            boxes: vec![0.0; hc * box_w],
            box_w,
            terms,
            sums: Sums::new(nx),
            sum_f: vec![0; nx],
            sq_f: vec![0; nx],
            column: vec![0.0; box_w],
            along: vec![0.0; nx],
        }
    }

    /// Everything but the block correlation, for the positions `xs` of
    /// row `y`.
    #[inline(always)]
    fn prepare(&mut self, k: &Blocks, ii: &Integral, y: usize, xs: Range<usize>) {
        let (b, bw, iw) = (self.b, self.box_w, ii.w);
        let (x0, x1) = (xs.start, xs.end);
        // The box sums these positions' blocks read (at most 255·b², so
        // exact in `i32`, whose conversion to `f32` vectorizes).
        let boxes = x0..(x1 + b * (k.wc - 1)).min(bw);
        for (r, out) in self.boxes.chunks_exact_mut(bw).enumerate() {
            let top = &ii.sum[(y + b * r) * iw..][..iw];
            let bottom = &ii.sum[(y + b * r + b) * iw..][..iw];
            for x in boxes.clone() {
                out[x] = bottom[x + b]
                    .wrapping_sub(bottom[x])
                    .wrapping_sub(top[x + b])
                    .wrapping_add(top[x]) as i32 as f32;
            }
        }
        ii.window_row(
            y,
            x0,
            &k.f_rects,
            &mut self.sum_f[xs.clone()],
            &mut self.sq_f[xs.clone()],
        );
        let s = &mut self.sums;
        for (o, &v) in s.sum_f[xs.clone()].iter_mut().zip(&self.sum_f[xs.clone()]) {
            *o = v as f64;
        }
        for (o, &v) in s.sq_f[xs.clone()].iter_mut().zip(&self.sq_f[xs.clone()]) {
            *o = v as f64;
        }
        // Σ_B S_B² per rectangle of blocks: down each column of blocks,
        // then along the row in steps of b (a running sum: each position
        // reuses the one b to its left).
        for (n, r) in k.rects.iter().enumerate() {
            let (i0, i1) = (r.x as usize, (r.x + r.w) as usize);
            let cols = x0 + b * i0..x1 + b * (i1 - 1);
            let rows = self
                .boxes
                .chunks_exact(bw)
                .skip(r.y as usize)
                .take(r.h as usize);
            for (j, row) in rows.enumerate() {
                for (c, &v) in self.column[cols.clone()].iter_mut().zip(&row[cols.clone()]) {
                    let v = v as f64;
                    *c = if j == 0 { v * v } else { *c + v * v };
                }
            }
            let (col, along) = (&self.column, &mut self.along);
            for x in x0..x1.min(x0 + b) {
                along[x] = (i0..i1).map(|i| col[x + b * i]).sum();
            }
            // b positions at a time, each from the b before: no dependency
            // inside a step, so it vectorizes.
            for start in (x0 + b..x1).step_by(b) {
                let (before, here) = along.split_at_mut(start);
                let end = (start + b).min(x1);
                for (j, o) in here[..end - start].iter_mut().enumerate() {
                    let x = start + j;
                    *o = before[x - b] - col[x - b + b * i0] + col[x - b + b * i1];
                }
            }
            for (o, &a) in s.blocks_sq[xs.clone()].iter_mut().zip(&along[xs.clone()]) {
                *o = if n == 0 { a } else { *o + a };
            }
        }
    }

    /// The block correlation for the positions `xs` (at most one chunk).
    fn correlate(&mut self, xs: Range<usize>) {
        correlate(
            &mut self.sums.dot[xs.clone()],
            &self.boxes,
            &self.terms,
            xs.start,
        );
    }
}

/// `out[j] = Σ m · rows[offset + x0 + j]` over `terms`: the block
/// correlation, one chunk of positions at a time so that the sums stay in
/// registers while every term is added.
fn correlate(out: &mut [f32], rows: &[f32], terms: &[(f32, usize)], x0: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { correlate_fma(out, rows, terms, x0) };
    }
    correlate_body::<false>(out, rows, terms, x0)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn correlate_fma(out: &mut [f32], rows: &[f32], terms: &[(f32, usize)], x0: usize) {
    correlate_body::<true>(out, rows, terms, x0)
}

#[inline(always)]
fn correlate_body<const FMA: bool>(
    out: &mut [f32],
    rows: &[f32],
    terms: &[(f32, usize)],
    x0: usize,
) {
    let mut acc = [0f32; CHUNK];
    let n = out.len();
    if n == CHUNK {
        for &(m, offset) in terms {
            let r: &[f32; CHUNK] = rows[offset + x0..offset + x0 + CHUNK]
                .try_into()
                .expect("a chunk of box sums");
            for (a, &v) in acc.iter_mut().zip(r) {
                *a = if FMA { m.mul_add(v, *a) } else { *a + m * v };
            }
        }
    } else {
        for &(m, offset) in terms {
            for (a, &v) in acc[..n].iter_mut().zip(&rows[offset + x0..offset + x0 + n]) {
                *a = if FMA { m.mul_add(v, *a) } else { *a + m * v };
            }
        }
    }
    out.copy_from_slice(&acc[..n]);
}
