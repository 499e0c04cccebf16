//! Bounds on whole groups of neighbouring windows, so that most of a
//! screen is proven unable to hold the reference without looking at its
//! windows one by one.
//!
//! A group is `g`x`g` neighbouring positions (top-left corners `q + d`,
//! `0 <= d < g` in each direction). The reference is cut into blocks (`bh`x`bw`,
//! smaller at its right and bottom edges); block `B`'s compared pixels `C`
//! (`k` of them) land, for every window of the group, inside one box of
//! the screen, the block's *union* `U` (`(bh + g - 1)`x`(bw + g - 1)`,
//! clipped to the screen), whose mean `μ_U` and energy `E_U = Σ_U (s - μ_U)²`
//! come from the integral image in four look-ups each.
//!
//! With `t0 = t - mean(t)` on the compared pixels, `u = t0` on `C`
//! (`Σu = k·m`, `|u|² = k·m² + |t'|²`, `t'` the deviation from the block's
//! mean `m`), and `v = s - μ_U` on the `k` screen pixels a window puts
//! under `C`:
//!
//! ```text
//! Σ_C t0·s = k·m·μ_U + <u, v>
//! ```
//!
//! `v` is part of the deviation `w = s - μ_U` over `U`, which sums to 0
//! with `|w|² = E_U`: the other `|U| - k` values must cancel `Σv`, which
//! costs them at least `(Σv)² / (|U| - k)` of the energy. So
//! `vᵀ(I + 11ᵀ/(|U| - k))v <= E_U`, and the largest `<u, v>` under that
//! constraint (Cauchy-Schwarz in the metric of that matrix, whose inverse
//! is `I - 11ᵀ/|U|`) is
//!
//! ```text
//! <u, v> <= sqrt(E_U) · sqrt(|u|² - (Σu)²/|U|)
//!         = sqrt(E_U) · sqrt(k·m²·(|U| - k)/|U| + |t'|²)   =: sqrt(E_U)·β
//! ```
//!
//! (The inverse is Sherman-Morrison's, and with `A` that matrix,
//! `uᵀv = (A^-½u)ᵀ(A^½v) <= sqrt(uᵀA⁻¹u)·sqrt(vᵀAv)` is Cauchy-Schwarz.
//! When the union has no other pixel, `|U| = k`, `Σv = 0` and
//! `<u, v> = <u - m, v> <= |t'|·sqrt(E_U)`: the same `β`.)
//!
//! Summed over the blocks, for every window of the group:
//!
//! ```text
//! Σ t0·s <= Σ_B (k_B·m_B·μ_U(B) + β_B·sqrt(E_U(B)))  =: N
//! ```
//!
//! Nothing in `N` depends on which window of the group it is. `β` is
//! computed with the union's full size: a union clipped at the screen's
//! edge is smaller, and `β` only grows with `|U|`, so it stays an upper
//! bound. (At `g = 1` the union is the block itself, `μ_U` the block's mean
//! and `β = |t'|`: the bound is the per-block Cauchy-Schwarz of the block
//! means and deviations.)
//!
//! The score is `Σ t0·s / (|t0|·|s - μ|)`, so a window reaches `threshold`
//! only if `N >= threshold·|t0|·|s - μ|`. The window's own norm is bounded
//! from below by the pixels every window of the group compares (its
//! *core*: each compared rectangle of the reference less `g - 1` rows at its
//! top and `g - 1` columns at its left): a sum of squares over fewer pixels,
//! around their own mean, is never larger. A group whose `N` is below
//! `threshold·|t0|·sqrt(E_core)` holds no window that scores the threshold.
//! A group whose windows are all flat (the box covering them all has less
//! energy than a window's flatness limit) scores 0 against a textured
//! reference and goes too. At the last level each window of a group left
//! is tested with its own norm instead of the core's.
//!
//! Levels go from large groups with large blocks to small groups with
//! small blocks; each bounds only the groups inside the ones the level
//! above left. A union's statistics at one grid point serve every block of
//! its shape whose offset lands there, so a level keeps them per shape in
//! rows of an image on its grid, computed when first needed and kept as
//! long as a block row of the reference can still reach them.

use image::RgbImage;

use super::{luma_row, Level, Rect};

/// `(g, block height, block width)` of each level, coarsest first. Blocks
/// are twice the group or more: the unions stay close to the blocks.
const LEVELS: [(usize, usize, usize); 3] = [(8, 8, 16), (4, 8, 8), (2, 4, 8)];
/// Groups left this close together are bounded as one run.
const RUN_GAP: usize = 4;
/// Groups bounded at once (`f32` lanes of an AVX2 vector).
const LANES: usize = 8;

/// One level: groups of `g`x`g` positions, the reference in blocks.
#[derive(Debug, Clone)]
pub(super) struct GroupLevel {
    g: usize,
    /// The union box of the blocks (those at the reference's edges are
    /// smaller and use it too: a larger union still holds them).
    shape: Shape,
    /// The distinct row offsets of the blocks, in grid cells.
    oys: Vec<usize>,
    terms: Vec<Term>,
    /// Added to the bound for its rounding (it is summed in `f32`).
    err: f32,
}

/// The blocks' union box and the block offsets.
#[derive(Debug, Clone)]
struct Shape {
    uh: usize,
    uw: usize,
    /// Largest row offset (grid cells) of its blocks, plus one: the rows
    /// of its image a group row can reach.
    ring: usize,
    min_ox: usize,
    max_ox: usize,
}

/// One block of the reference at one level.
#[derive(Debug, Clone, Copy)]
struct Term {
    /// Offset of the block in grid cells (block offsets are multiples of
    /// `g`), the row as an index into the level's `oys`.
    row: usize,
    ox: usize,
    /// `k·m`, and `β`.
    alpha: f32,
    beta: f32,
}

impl GroupLevel {
    /// Level `g` with `bh`x`bw` blocks (multiples of `g`) on the
    /// full-resolution reference `t`.
    fn new(t: &Level, g: usize, bh: usize, bw: usize) -> GroupLevel {
        assert!(
            g > 0 && bh.is_multiple_of(g) && bw.is_multiple_of(g),
            "blocks {bh}x{bw} at g {g}"
        );
        let mean_t = t.sum as f64 / t.n as f64;
        let compared = |x: usize, y: usize| t.mask.as_ref().is_none_or(|m| m[y * t.w + x] != 0);
        let (uh, uw) = (bh.min(t.h) + g - 1, bw.min(t.w) + g - 1);
        let u = (uh * uw) as f64;
        let mut shape = Shape {
            uh,
            uw,
            ring: 0,
            min_ox: usize::MAX,
            max_ox: 0,
        };
        let mut terms = Vec::new();
        let mut oys = Vec::new();
        let mut magnitude = 0.0;
        for by in (0..t.h).step_by(bh) {
            oys.push(by / g);
            for bx in (0..t.w).step_by(bw) {
                let (h, w) = (bh.min(t.h - by), bw.min(t.w - bx));
                let (mut k, mut s, mut q) = (0u64, 0u64, 0u64);
                for y in by..by + h {
                    for x in bx..bx + w {
                        if compared(x, y) {
                            let v = t.px[y * t.w + x] as u64;
                            k += 1;
                            s += v;
                            q += v * v;
                        }
                    }
                }
                if k == 0 {
                    continue;
                }
                let kf = k as f64;
                let alpha = s as f64 - kf * mean_t;
                let m = alpha / kf;
                let dev2 = ((kf * q as f64 - (s as f64) * (s as f64)) / kf).max(0.0);
                let beta = (m * m * kf * (u - kf) / u + dev2).max(0.0).sqrt();
                let (oy, ox) = (by / g, bx / g);
                shape.ring = shape.ring.max(oy + 1);
                shape.min_ox = shape.min_ox.min(ox);
                shape.max_ox = shape.max_ox.max(ox);
                magnitude += alpha.abs() * 255.0 + beta * 255.0 * u.sqrt();
                terms.push(Term {
                    row: oys.len() - 1,
                    ox,
                    alpha: alpha as f32,
                    beta: beta as f32,
                });
            }
        }
        // Each term is off by at most 4 units of 2^-24 of its largest size
        // (`α`, `β` rounded to f32, `μ_U` and `sqrt(E_U)` computed in it),
        // and the sum by one more per term: four times that.
        let err = (magnitude * (terms.len() as f64 + 8.0) * (-21f64).exp2()) as f32;
        assert!(uh * uw < 1 << 15, "union {uh}x{uw} too large for i32 sums");
        GroupLevel {
            g,
            shape,
            oys,
            terms,
            err,
        }
    }
}

/// The levels of the group bound for a reference, coarsest first.
pub(super) fn levels(t: &Level) -> Vec<GroupLevel> {
    LEVELS
        .iter()
        .map(|&(g, bh, bw)| GroupLevel::new(t, g, bh, bw))
        .collect()
}

/// Sums over some pixels: of the values, of their squares, and the count.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sums {
    pub(super) s: u64,
    pub(super) q: u64,
    pub(super) n: u64,
}

impl Sums {
    /// `Σ (s - mean)²`, never below the exact value by more than a
    /// rounding of the result.
    #[inline]
    fn energy(&self) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        // Below 2^18 pixels both products are below 2^53: exact in f64.
        let en = if self.n < 1 << 18 {
            (self.n as f64 * self.q as f64 - self.s as f64 * self.s as f64).max(0.0)
        } else {
            (self.n as u128 * self.q as u128).saturating_sub(self.s as u128 * self.s as u128) as f64
        };
        en / self.n as f64
    }

    #[inline]
    fn add(&mut self, o: Sums) {
        self.s += o.s;
        self.q += o.q;
        self.n += o.n;
    }
}

/// The integral image of the gray of an area (sums and sums of squares of
/// every rectangle from the top-left corner), built a row at a time as a
/// sweep goes down and kept for the last `cap` rows only: everything the
/// bounds look up lies a reference's height (and a little) below the
/// current group row, so those rows stay in the cache. The gray itself is
/// kept whole, for scoring windows.
pub(super) struct Rolling<'a> {
    rgb: &'a RgbImage,
    area: Rect,
    /// Area size; integral rows have `w + 1` entries, rows `0..=h`.
    w: usize,
    h: usize,
    cap: usize,
    sum: Vec<u32>,
    sq: Vec<u64>,
    /// Integral rows `0..built` were made (row `r` in slot `r % cap`).
    built: usize,
    pub(super) gray: Vec<u8>,
}

impl<'a> Rolling<'a> {
    pub(super) fn new(rgb: &'a RgbImage, area: Rect, cap: usize) -> Rolling<'a> {
        let (w, h) = (area.w as usize, area.h as usize);
        let cap = cap.clamp(2, h + 1);
        Rolling {
            rgb,
            area,
            w,
            h,
            cap,
            sum: vec![0; cap * (w + 1)],
            sq: vec![0; cap * (w + 1)],
            built: 1,
            gray: vec![0; w * h],
        }
    }

    /// Build the integral up to row `y` (clipped to the area).
    #[inline(always)]
    pub(super) fn ensure(&mut self, y: usize) {
        let y = y.min(self.h);
        while self.built <= y {
            self.build();
        }
    }

    /// The next integral row: the gray row above it, its running sums,
    /// plus the integral row above.
    #[inline(always)]
    fn build(&mut self) {
        let (r, iw, cap) = (self.built, self.w + 1, self.cap);
        let stride = self.rgb.width() as usize * 3;
        let start = (self.area.y as usize + r - 1) * stride + self.area.x as usize * 3;
        let gray = &mut self.gray[(r - 1) * self.w..r * self.w];
        luma_row(&self.rgb.as_raw()[start..start + self.w * 3], gray);
        let (cur, prev) = ((r % cap) * iw, ((r - 1) % cap) * iw);
        // Running sums along the row, two independent chains (a row's sum
        // of squares fits in u32 below 66051 pixels).
        self.sum[cur] = 0;
        self.sq[cur] = 0;
        if self.w < 66051 {
            let (mut rs, mut rq) = (0u32, 0u32);
            let sums = self.sum[cur + 1..cur + iw].iter_mut();
            for ((o, q), &p) in sums
                .zip(self.sq[cur + 1..cur + iw].iter_mut())
                .zip(gray.iter())
            {
                rs += p as u32;
                rq += p as u32 * p as u32;
                *o = rs;
                *q = rq as u64;
            }
        } else {
            let (mut rs, mut rq) = (0u32, 0u64);
            let sums = self.sum[cur + 1..cur + iw].iter_mut();
            for ((o, q), &p) in sums
                .zip(self.sq[cur + 1..cur + iw].iter_mut())
                .zip(gray.iter())
            {
                rs = rs.wrapping_add(p as u32);
                rq += p as u64 * p as u64;
                *o = rs;
                *q = rq;
            }
        }
        // The row above added in a second loop, which vectorizes.
        let (here, above) = pair(&mut self.sum, cur, prev, iw);
        for (o, &a) in here.iter_mut().zip(above) {
            *o = o.wrapping_add(a);
        }
        let (here, above) = pair(&mut self.sq, cur, prev, iw);
        for (o, &a) in here.iter_mut().zip(above) {
            *o += a;
        }
        self.built += 1;
    }

    /// Integral row `y`, which must be among the rows kept.
    #[inline(always)]
    fn rows(&self, y: usize) -> (&[u32], &[u64]) {
        debug_assert!(y < self.built && y + self.cap >= self.built, "row {y} gone");
        let iw = self.w + 1;
        let at = (y % self.cap) * iw;
        (&self.sum[at..at + iw], &self.sq[at..at + iw])
    }

    /// The sums of the box `x0..x1` x `y0..y1`, clipped to the area.
    #[inline(always)]
    fn box_sums(&self, (x0, y0): (usize, usize), (x1, y1): (usize, usize)) -> Sums {
        let (x0, x1) = (x0.min(self.w), x1.min(self.w));
        let (y0, y1) = (y0.min(self.h), y1.min(self.h));
        let ((sa, qa), (sb, qb)) = (self.rows(y0), self.rows(y1));
        Sums {
            s: sb[x1]
                .wrapping_sub(sb[x0])
                .wrapping_sub(sa[x1])
                .wrapping_add(sa[x0]) as u64,
            q: qb[x1]
                .wrapping_sub(qb[x0])
                .wrapping_sub(qa[x1])
                .wrapping_add(qa[x0]),
            n: ((x1 - x0) * (y1 - y0)) as u64,
        }
    }

    /// The window sums (over the compared rectangles `included`) of the
    /// window at `(x, y)`.
    #[inline(always)]
    pub(super) fn window(&self, included: &[Rect], x: usize, y: usize) -> Sums {
        let mut s = Sums::default();
        for r in included {
            let (rx, ry) = (x + r.x as usize, y + r.y as usize);
            s.add(self.box_sums((rx, ry), (rx + r.w as usize, ry + r.h as usize)));
        }
        s
    }
}

/// The `len` values at `cur` (to write) and those at `prev` (to read), in
/// one slice.
#[inline(always)]
fn pair<T>(v: &mut [T], cur: usize, prev: usize, len: usize) -> (&mut [T], &[T]) {
    if prev < cur {
        let (lo, hi) = v.split_at_mut(cur);
        (&mut hi[..len], &lo[prev..prev + len])
    } else {
        let (lo, hi) = v.split_at_mut(prev);
        (&mut lo[cur..cur + len], &hi[..len])
    }
}

/// A band of rows of the integral image, differenced: a box inside the
/// band is two look-ups.
struct Band {
    s: Vec<u32>,
    q: Vec<u64>,
    rows: usize,
}

impl Band {
    fn new(w: usize) -> Band {
        Band {
            s: vec![0; w + 1],
            q: vec![0; w + 1],
            rows: 0,
        }
    }

    /// Rows `y0..y1` and integral columns `x0..=x1`, clipped to the area.
    #[inline(always)]
    fn fill(&mut self, ii: &Rolling, (y0, y1): (usize, usize), (x0, x1): (usize, usize)) {
        let (y0, y1) = (y0.min(ii.h), y1.min(ii.h));
        self.rows = y1 - y0;
        let (x0, x1) = (x0.min(ii.w), x1.min(ii.w) + 1);
        let ((sa, qa), (sb, qb)) = (ii.rows(y0), ii.rows(y1));
        for ((o, &t), &u) in self.s[x0..x1].iter_mut().zip(&sa[x0..x1]).zip(&sb[x0..x1]) {
            *o = u.wrapping_sub(t);
        }
        for ((o, &t), &u) in self.q[x0..x1].iter_mut().zip(&qa[x0..x1]).zip(&qb[x0..x1]) {
            *o = u - t;
        }
    }

    /// The box of columns `x0..x1` (clipped to the area) of the band,
    /// whose columns must have been filled.
    #[inline(always)]
    fn get(&self, x0: usize, x1: usize) -> Sums {
        let last = self.s.len() - 1;
        let (x0, x1) = (x0.min(last), x1.min(last));
        Sums {
            s: self.s[x1].wrapping_sub(self.s[x0]) as u64,
            q: self.q[x1] - self.q[x0],
            n: (self.rows * (x1 - x0)) as u64,
        }
    }
}

/// The union statistics of a level's block shape: `μ_U` and `sqrt(E_U)`
/// for the grid rows a group row can reach, in a ring of rows.
struct Image {
    mu: Vec<f32>,
    dev: Vec<f32>,
    /// Per slot: the grid row it holds and its computed columns.
    held: Vec<Option<(usize, usize, usize)>>,
    cols: usize,
    /// Scratch: the sums of one row's boxes.
    sums: Vec<[i32; 3]>,
}

impl Image {
    fn new(ring: usize, cols: usize) -> Image {
        Image {
            mu: vec![0.0; ring * cols],
            dev: vec![0.0; ring * cols],
            held: vec![None; ring],
            cols,
            sums: vec![[0; 3]; cols],
        }
    }

    /// Make sure grid row `gi`, columns `c0..c1`, are computed; the slot's
    /// start in `mu` and `dev`.
    #[inline(always)]
    fn row(
        &mut self,
        band: &mut Band,
        ii: &Rolling,
        (g, sh): (usize, &Shape),
        gi: usize,
        (c0, c1): (usize, usize),
    ) -> usize {
        let slot = gi % self.held.len();
        let at = slot * self.cols;
        match self.held[slot] {
            Some((r, a, b)) if r == gi => {
                if c0 < a {
                    self.compute(band, ii, (g, sh), (gi, at), (c0, a));
                }
                if b < c1 {
                    self.compute(band, ii, (g, sh), (gi, at), (b, c1));
                }
                self.held[slot] = Some((gi, a.min(c0), b.max(c1)));
            }
            _ => {
                self.compute(band, ii, (g, sh), (gi, at), (c0, c1));
                self.held[slot] = Some((gi, c0, c1));
            }
        }
        at
    }

    /// Columns `c0..c1` of grid row `gi`, into the slot at `at`.
    #[inline(always)]
    fn compute(
        &mut self,
        band: &mut Band,
        ii: &Rolling,
        (g, sh): (usize, &Shape),
        (gi, at): (usize, usize),
        (c0, c1): (usize, usize),
    ) {
        band.fill(ii, (gi * g, gi * g + sh.uh), (c0 * g, (c1 - 1) * g + sh.uw));
        // The boxes first (strided look-ups), then their statistics in a
        // loop that vectorizes. A union's sums fit in i32 (it has fewer
        // than 2^15 pixels), and `n·q - s²` is exact in f64.
        let sums = &mut self.sums[..c1 - c0];
        // Unions inside the area: two look-ups each, strided.
        let last = band.s.len() - 1;
        let inside = if c0 * g + sh.uw <= last {
            ((last - sh.uw) / g + 1).clamp(c0, c1)
        } else {
            c0
        };
        let n = (band.rows * sh.uw) as i32;
        let (x0, x1) = ((c0 * g).min(last), (c0 * g + sh.uw).min(last));
        let (bs, bq) = (&band.s[x0..], &band.q[x0..]);
        let (es, eq) = (&band.s[x1..], &band.q[x1..]);
        for ((((o, &s0), &q0), &s1), &q1) in sums[..inside - c0]
            .iter_mut()
            .zip(bs.iter().step_by(g))
            .zip(bq.iter().step_by(g))
            .zip(es.iter().step_by(g))
            .zip(eq.iter().step_by(g))
        {
            *o = [s1.wrapping_sub(s0) as i32, (q1 - q0) as i32, n];
        }
        for (o, j) in sums[inside - c0..].iter_mut().zip(inside..c1) {
            let b = band.get(j * g, j * g + sh.uw);
            *o = [b.s as i32, b.q as i32, b.n as i32];
        }
        let mu = &mut self.mu[at + c0..at + c1];
        let dev = &mut self.dev[at + c0..at + c1];
        for ((m, d), &[s, q, n]) in mu.iter_mut().zip(dev.iter_mut()).zip(sums.iter()) {
            let (s, q, n) = (s as f64, q as f64, n as f64);
            let en = (n * q - s * s).max(0.0) as f32;
            let (s, n) = (s as f32, n.max(1.0) as f32);
            *m = s / n;
            *d = (en / n).sqrt();
        }
    }
}

/// A window the group bounds could not rule out, with its sums.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) x: usize,
    pub(super) y: usize,
    pub(super) sums: Sums,
}

/// What one level keeps between its group rows.
struct State {
    /// Groups per grid row and grid rows.
    cols: usize,
    rows: usize,
    /// The current group row: candidates in, groups left out.
    cand: Vec<bool>,
    /// The rows left inside the current top-level group row.
    keep: Vec<bool>,
    image: Image,
    band: Band,
    num: Vec<f32>,
    cores: Vec<Sums>,
    slots: Vec<usize>,
    /// The compared rectangles less what some window of a group does not
    /// compare.
    core: Vec<Rect>,
}

/// One sweep of the group bounds down one area: the windows that may
/// score `floor` or more (`floor > 0`), level by level.
struct Sweep<'l, 'a> {
    t: &'l Level,
    levels: &'l [GroupLevel],
    ii: Rolling<'a>,
    nx: usize,
    ny: usize,
    /// `floor·|t0|`.
    scale: f64,
    states: Vec<State>,
    out: Vec<Window>,
}

/// The windows of `area` of `rgb` that the group bounds of `levels` (on
/// the reference `t`) leave for `floor` (`> 0`), with their sums; and the
/// area's gray.
pub(super) fn sweep(
    t: &Level,
    levels: &[GroupLevel],
    rgb: &RgbImage,
    area: Rect,
    floor: f64,
) -> (Vec<Window>, Vec<u8>) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { sweep_avx2(t, levels, rgb, area, floor) };
    }
    sweep_body(t, levels, rgb, area, floor)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn sweep_avx2(
    t: &Level,
    levels: &[GroupLevel],
    rgb: &RgbImage,
    area: Rect,
    floor: f64,
) -> (Vec<Window>, Vec<u8>) {
    sweep_body(t, levels, rgb, area, floor)
}

#[inline(always)]
fn sweep_body(
    t: &Level,
    levels: &[GroupLevel],
    rgb: &RgbImage,
    area: Rect,
    floor: f64,
) -> (Vec<Window>, Vec<u8>) {
    assert!(!levels.is_empty() && floor > 0.0);
    let (w, h) = (area.w as usize, area.h as usize);
    let (nx, ny) = (w + 1 - t.w, h + 1 - t.h);
    let g0 = levels[0].g;
    let max_bh = levels.iter().map(|l| l.shape.uh).max().unwrap_or(0);
    let states = levels
        .iter()
        .map(|l| {
            let g = l.g;
            let (cols, rows) = (nx.div_ceil(g), ny.div_ceil(g));
            // (Runs are bounded in whole vectors of `LANES` groups.)
            let icols = cols + t.w.div_ceil(g) + 1 + LANES;
            State {
                cols,
                rows,
                cand: vec![false; cols],
                keep: vec![false; cols * (g0 / g)],
                image: Image::new(l.shape.ring, icols),
                band: Band::new(w),
                num: vec![0.0; cols + LANES],
                cores: vec![Sums::default(); cols],
                slots: vec![0; l.oys.len()],
                core: t
                    .included
                    .iter()
                    .filter(|r| r.w as usize >= g && r.h as usize >= g)
                    .map(|r| {
                        let d = g as u32 - 1;
                        Rect::new(r.x + d, r.y + d, r.w - d, r.h - d)
                    })
                    .collect(),
            }
        })
        .collect();
    let mut sweep = Sweep {
        t,
        levels,
        // Rows from the current top-level group row to a reference's
        // height and a block union below the next one.
        ii: Rolling::new(rgb, area, 2 * g0 + t.h + max_bh + 2),
        nx,
        ny,
        scale: floor * (t.var_n.max(0.0) / t.n as f64).sqrt(),
        states,
        out: Vec::new(),
    };
    for top in 0..sweep.states[0].rows {
        sweep.top_row(top);
    }
    (sweep.out, sweep.ii.gray)
}

impl Sweep<'_, '_> {
    /// The rows of every level inside top-level group row `top`: each
    /// level's row `i` bounds the groups inside those its parent row
    /// `i / r` left.
    #[inline(always)]
    fn top_row(&mut self, top: usize) {
        let g0 = self.levels[0].g;
        for k in 0..self.levels.len() {
            let g = self.levels[k].g;
            let per = g0 / g;
            let r = if k == 0 { 1 } else { self.levels[k - 1].g / g };
            let first = top * per;
            for i in first..(first + per).min(self.states[k].rows) {
                let (parents, rest) = self.states.split_at_mut(k);
                let st = &mut rest[0];
                if k == 0 {
                    st.cand.fill(true);
                } else {
                    let parent = &parents[k - 1];
                    let p = i / r - top * (per / r);
                    let prow = &parent.keep[p * parent.cols..(p + 1) * parent.cols];
                    for (c, &a) in st.cand.chunks_mut(r).zip(prow) {
                        c.fill(a);
                    }
                }
                if st.cand.contains(&true) {
                    let level = &self.levels[k];
                    self.ii.ensure(i * g + self.t.h + level.shape.uh + g);
                    self.sieve_row(k, i);
                }
                let st = &mut self.states[k];
                let at = (i - first) * st.cols;
                let cols = st.cols;
                st.keep[at..at + cols].copy_from_slice(&st.cand);
            }
        }
    }

    /// Bound the candidate groups of row `i` of level `k`.
    #[inline(always)]
    fn sieve_row(&mut self, k: usize, i: usize) {
        let level = &self.levels[k];
        let last = k + 1 == self.levels.len();
        let g = level.g;
        let t = self.t;
        let st = &mut self.states[k];
        let Some(j0) = st.cand.iter().position(|&a| a) else {
            return;
        };
        let j1 = st.cand.iter().rposition(|&a| a).map_or(j0, |j| j) + 1;
        // Groups whose windows are all flat: nothing to correlate.
        st.band.fill(
            &self.ii,
            (i * g, i * g + t.h + g - 1),
            (j0 * g, (j1 - 1) * g + t.w + g - 1),
        );
        for (j, a) in (j0..j1).zip(st.cand[j0..j1].iter_mut()) {
            if *a {
                let u = st.band.get(j * g, j * g + t.w + g - 1);
                *a = u.energy() >= t.n as f64;
            }
        }
        // Runs of groups left, across gaps of a few groups.
        let mut j = 0;
        while let Some(a) = st.cand[j..].iter().position(|&a| a).map(|a| a + j) {
            let mut b = a + 1;
            while let Some(c) = st.cand[b..(b + RUN_GAP).min(st.cols)]
                .iter()
                .rposition(|&x| x)
            {
                b += c + 1;
            }
            j = b;
            bound_run(&self.ii, level, st, (i, a, b));
            for ((x, &v), c) in st.cand[a..b]
                .iter_mut()
                .zip(&st.num[a..b])
                .zip(&st.cores[a..b])
            {
                *x = *x && v as f64 >= self.scale * c.energy().sqrt();
            }
            if last {
                let (sizes, scale) = ((self.nx, self.ny, g), self.scale);
                windows(&self.ii, t, st, sizes, scale, (i, a, b), &mut self.out);
            }
        }
    }
}

/// The windows of the groups `a..b` left in group row `i` of the last
/// level (of `g`) that are textured and whose own norm lets them reach
/// the threshold (`scale = floor·|t0|`).
#[inline(always)]
fn windows(
    ii: &Rolling,
    t: &Level,
    st: &State,
    (nx, ny, g): (usize, usize, usize),
    scale: f64,
    (i, a, b): (usize, usize, usize),
    out: &mut Vec<Window>,
) {
    let n = t.n as f64;
    for y in i * g..((i + 1) * g).min(ny) {
        for j in (a..b).filter(|&j| st.cand[j]) {
            let v = st.num[j] as f64;
            for x in j * g..((j + 1) * g).min(nx) {
                let sums = ii.window(&t.included, x, y);
                let e = sums.energy();
                if e >= n && v >= scale * e.sqrt() {
                    out.push(Window { x, y, sums });
                }
            }
        }
    }
}

/// The bound (into `st.num`, a little past `b`: whole vectors) and the
/// core sums (into `st.cores`) of the groups `a..b` of group row `i`.
#[inline(always)]
fn bound_run(ii: &Rolling, level: &GroupLevel, st: &mut State, (i, a, b): (usize, usize, usize)) {
    let g = level.g;
    let sh = &level.shape;
    let len = (b - a).div_ceil(LANES) * LANES;
    for (slot, &oy) in st.slots.iter_mut().zip(&level.oys) {
        *slot = st.image.row(
            &mut st.band,
            ii,
            (g, sh),
            i + oy,
            (a + sh.min_ox, a + len + sh.max_ox),
        ) + a;
    }
    // A chunk of groups at a time, its bounds kept in registers while
    // every block adds its term.
    let (mu, dev) = (&st.image.mu, &st.image.dev);
    for (c, out) in st.num[a..a + len].chunks_exact_mut(LANES).enumerate() {
        let mut acc = [level.err; LANES];
        for term in &level.terms {
            let at = st.slots[term.row] + term.ox + c * LANES;
            let m: &[f32; LANES] = mu[at..at + LANES].try_into().expect("a chunk");
            let d: &[f32; LANES] = dev[at..at + LANES].try_into().expect("a chunk");
            for ((o, &m), &d) in acc.iter_mut().zip(m).zip(d) {
                *o = term.beta.mul_add(d, term.alpha.mul_add(m, *o));
            }
        }
        out.copy_from_slice(&acc);
    }
    let cores = &mut st.cores[a..b];
    cores.fill(Sums::default());
    for r in &st.core {
        let (x, y) = (r.x as usize, r.y as usize);
        st.band.fill(
            ii,
            (i * g + y, i * g + y + r.h as usize),
            (a * g + x, (b - 1) * g + x + r.w as usize),
        );
        for (c, j) in cores.iter_mut().zip(a..b) {
            c.add(st.band.get(j * g + x, j * g + x + r.w as usize));
        }
    }
}

/// Every window of `area` of `rgb` with its sums over `t`'s compared
/// rectangles, for the searches no bound helps; and the area's gray.
pub(super) fn every_window(t: &Level, rgb: &RgbImage, area: Rect) -> (Vec<Window>, Vec<u8>) {
    let (w, h) = (area.w as usize, area.h as usize);
    let (nx, ny) = (w + 1 - t.w, h + 1 - t.h);
    let mut ii = Rolling::new(rgb, area, t.h + 2);
    let mut out = Vec::with_capacity(nx * ny);
    for y in 0..ny {
        ii.ensure(y + t.h);
        for x in 0..nx {
            out.push(Window {
                x,
                y,
                sums: ii.window(&t.included, x, y),
            });
        }
    }
    (out, ii.gray)
}
