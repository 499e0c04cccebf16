//! A first, exact-leaning matcher: mean absolute RGB difference with early
//! rejection. Good enough to find text and widgets that render identically
//! each boot; the fast normalized matcher replaces it.

use std::path::{Path, PathBuf};

use image::RgbImage;

/// A reference image loaded from `screenshots/NAME.png`.
#[derive(Debug, Clone)]
pub struct Reference {
    pub name: String,
    pub path: PathBuf,
    pub image: RgbImage,
    /// Minimum similarity in [0, 1] to count as found.
    pub threshold: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("reference image {path} could not be read (expected a PNG in the screenshots folder)")]
    Read {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
}

impl Reference {
    /// Load `dir/NAME.png`.
    pub fn load(dir: &Path, name: &str) -> Result<Self, ReferenceError> {
        let path = dir.join(format!("{name}.png"));
        let image = image::open(&path)
            .map_err(|source| ReferenceError::Read {
                path: path.clone(),
                source,
            })?
            .into_rgb8();
        Ok(Reference {
            name: name.into(),
            path,
            image,
            threshold: 0.95,
        })
    }
}

/// Where a reference was best seen and how similar it was.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub score: f64,
}

impl Match {
    pub fn center(&self) -> (u32, u32) {
        (self.x + self.width / 2, self.y + self.height / 2)
    }
}

/// The best location of `needle` in `haystack` with score = 1 - mean
/// absolute difference / 255. Positions whose running difference already
/// exceeds what `threshold` allows are abandoned early.
pub fn best_match(haystack: &RgbImage, needle: &RgbImage, threshold: f64) -> Option<Match> {
    let (hw, hh) = haystack.dimensions();
    let (nw, nh) = needle.dimensions();
    if nw == 0 || nh == 0 || nw > hw || nh > hh {
        return None;
    }
    let total = (nw * nh * 3) as u64;
    let budget = ((1.0 - threshold) * 255.0 * total as f64) as u64;
    let hay = haystack.as_raw();
    let nee = needle.as_raw();
    let mut best: Option<(u64, u32, u32)> = None;
    for y in 0..=(hh - nh) {
        for x in 0..=(hw - nw) {
            let limit = best.map(|b| b.0).unwrap_or(u64::MAX).min(budget + 1);
            let mut sum = 0u64;
            'rows: for row in 0..nh {
                let h0 = (((y + row) * hw + x) * 3) as usize;
                let n0 = ((row * nw) * 3) as usize;
                let len = (nw * 3) as usize;
                sum += hay[h0..h0 + len]
                    .iter()
                    .zip(&nee[n0..n0 + len])
                    .map(|(a, b)| a.abs_diff(*b) as u64)
                    .sum::<u64>();
                if sum >= limit {
                    break 'rows;
                }
            }
            if sum < limit && best.map(|b| sum < b.0).unwrap_or(true) {
                best = Some((sum, x, y));
                if sum == 0 {
                    break;
                }
            }
        }
        if best.map(|b| b.0 == 0).unwrap_or(false) {
            break;
        }
    }
    best.map(|(sum, x, y)| Match {
        x,
        y,
        width: nw,
        height: nh,
        score: 1.0 - sum as f64 / (255.0 * total as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_an_exact_copy() {
        let mut screen = RgbImage::new(64, 48);
        for (x, y, p) in screen.enumerate_pixels_mut() {
            *p = image::Rgb([(x * 4) as u8, (y * 5) as u8, ((x + y) * 3) as u8]);
        }
        let needle = image::imageops::crop_imm(&screen, 20, 10, 8, 6).to_image();
        let m = best_match(&screen, &needle, 0.95).unwrap();
        assert_eq!((m.x, m.y), (20, 10));
        assert!((m.score - 1.0).abs() < 1e-9);
    }

    #[test]
    fn absent_needle_is_none() {
        let screen = RgbImage::new(32, 32);
        let needle = RgbImage::from_pixel(4, 4, image::Rgb([255, 255, 255]));
        assert!(best_match(&screen, &needle, 0.95).is_none());
    }
}

/// A reference that did not show up in time.
#[derive(Debug, thiserror::Error)]
#[error("expected to see `{name}` ({path}) within {waited:.1?}, but the best candidate scored {best_score:.3} (threshold {threshold:.2}){at}; last screen saved to {screenshot}")]
pub struct NotSeen {
    pub name: String,
    pub path: PathBuf,
    pub waited: std::time::Duration,
    pub best_score: f64,
    pub threshold: f64,
    pub at: String,
    pub screenshot: PathBuf,
}

/// Errors from waiting for a reference on a VM's screen.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    #[error(transparent)]
    NotSeen(#[from] NotSeen),
    #[error(transparent)]
    Vm(#[from] crate::vm::VmError),
}

/// Poll screendumps until `reference` is on screen; unchanged frames are
/// not searched again. On timeout the last screen is saved in `artifacts`.
pub async fn wait_for(
    vm: &mut crate::vm::Vm,
    reference: &Reference,
    timeout: std::time::Duration,
    artifacts: &Path,
) -> Result<Match, WaitError> {
    let timeout = crate::wait::scaled(timeout);
    let start = std::time::Instant::now();
    let mut last: Option<RgbImage> = None;
    let mut best: Option<Match> = None;
    loop {
        let screen = vm.screendump().await?;
        if last.as_ref() != Some(&screen) {
            // Score every frame at threshold 0 so the error can tell how
            // close it came.
            if let Some(m) = best_match(&screen, &reference.image, reference.threshold) {
                return Ok(m);
            }
            if let Some(m) = best_match(&screen, &reference.image, 0.0) {
                if best.map(|b| m.score > b.score).unwrap_or(true) {
                    best = Some(m);
                }
            }
            last = Some(screen);
        }
        if start.elapsed() >= timeout {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = std::fs::create_dir_all(artifacts);
    let screenshot = artifacts.join(format!("not-seen-{}.png", reference.name));
    if let Some(screen) = &last {
        let _ = screen.save(&screenshot);
    }
    Err(NotSeen {
        name: reference.name.clone(),
        path: reference.path.clone(),
        waited: start.elapsed(),
        best_score: best.map(|b| b.score).unwrap_or(0.0),
        threshold: reference.threshold,
        at: best
            .map(|b| format!(" at ({}, {})", b.x, b.y))
            .unwrap_or_default(),
        screenshot,
    }
    .into())
}

/// A reference that stayed on screen.
#[derive(Debug, thiserror::Error)]
#[error("expected `{name}` to leave the screen within {waited:.1?}, but it is still at ({x}, {y}) with score {score:.3}")]
pub struct StillSeen {
    pub name: String,
    pub waited: std::time::Duration,
    pub x: u32,
    pub y: u32,
    pub score: f64,
}

/// Errors from [`wait_gone`].
#[derive(Debug, thiserror::Error)]
pub enum GoneError {
    #[error(transparent)]
    StillSeen(#[from] StillSeen),
    #[error(transparent)]
    Vm(#[from] crate::vm::VmError),
}

/// Poll screendumps until `reference` is no longer on screen.
pub async fn wait_gone(
    vm: &mut crate::vm::Vm,
    reference: &Reference,
    timeout: std::time::Duration,
) -> Result<(), GoneError> {
    let timeout = crate::wait::scaled(timeout);
    let start = std::time::Instant::now();
    loop {
        let screen = vm.screendump().await?;
        let Some(m) = best_match(&screen, &reference.image, reference.threshold) else {
            return Ok(());
        };
        if start.elapsed() >= timeout {
            return Err(StillSeen {
                name: reference.name.clone(),
                waited: start.elapsed(),
                x: m.x,
                y: m.y,
                score: m.score,
            }
            .into());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
