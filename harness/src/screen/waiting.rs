//! Waiting for references to appear on (or leave) the screen.
//!
//! Frames come from any [`FrameSource`] (the VM's screendump, or a list of
//! images in tests). Each poll takes a frame, skips the matching work when
//! the frame is identical to the last one, and tries each reference near its
//! last hit before a cold search. After a frame where a reference was
//! proved absent (no window reached its threshold), only the windows that
//! overlap what changed since are searched: a wait for something that is
//! not there yet costs little while the screen stays mostly the same. On a
//! timeout the error names the
//! reference, the best score and place seen, and points at a PNG in the
//! artifacts folder showing the last frame with that best candidate boxed,
//! next to the reference.
//!
//! Every wait ends with a [`WaitOutcome`], passed or timed out (the error
//! carries it then): a small record of what was seen, for reports.
//!
//! Timeouts are scaled here by [`crate::wait::scaled`], like every wait of
//! the harness.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use image::{Rgb, RgbImage};

use super::matcher::{Match, MatchError, Rect};
use super::reference::Reference;
use crate::wait::{self, Timeout};

/// Pause between polls, as in `wait::wait_until`. A screendump costs a few
/// milliseconds, so this keeps the loop responsive without spinning.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How far around the last hit a warm search looks.
const WARM_RADIUS: u32 = 16;

/// Something that can show the current screen.
pub trait FrameSource {
    type Error: std::error::Error + Send + Sync + 'static;
    fn frame(&mut self) -> impl Future<Output = Result<RgbImage, Self::Error>> + Send;
}

/// What one screen wait came to, for a run report: the reference, where it
/// was (or its best candidate), how well it scored against what it needed,
/// and the failure picture when the wait timed out.
///
/// For [`wait_for_any`] the record is about the reference that was seen,
/// or, on a timeout, the one that came closest to its threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitOutcome {
    /// The reference's name (`screenshots/NAME.png` without `.png`).
    pub reference: String,
    /// The reference image.
    pub reference_png: PathBuf,
    /// The reference was on the screen (scoring at least `threshold`) when
    /// the wait ended: a match found, or what a wait for it to leave still
    /// saw.
    pub matched: bool,
    /// Where on the screen: the match; on a timeout, the best candidate
    /// (waits to appear) or the last place seen (waits to leave); `None`
    /// when no screen was searched.
    pub rect: Option<Rect>,
    pub score: Option<f32>,
    pub threshold: f32,
    /// The PNG saved on a timeout: the last screen with the candidate
    /// boxed, the reference beside it.
    pub failure_png: Option<PathBuf>,
}

impl WaitOutcome {
    /// The match, when the reference was on the screen.
    pub fn found(&self) -> Option<Match> {
        match (self.matched, self.rect, self.score) {
            (true, Some(rect), Some(score)) => Some(Match { rect, score }),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WaitScreenError {
    #[error("{what} did not happen: {seen}; last screen saved as {}", artifact.display())]
    NotSeen {
        what: String,
        seen: String,
        artifact: PathBuf,
        outcome: Box<WaitOutcome>,
        #[source]
        timeout: Box<Timeout>,
    },
    #[error("{what} did not happen: {seen} (last screen could not be saved to {}: {save_error})", artifact.display())]
    NotSeenUnsaved {
        what: String,
        seen: String,
        artifact: PathBuf,
        save_error: String,
        outcome: Box<WaitOutcome>,
        #[source]
        timeout: Box<Timeout>,
    },
    #[error("could not take a screenshot while waiting for {what}")]
    Frame {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("reference {name} cannot be searched for on this screen")]
    Match {
        name: String,
        #[source]
        source: MatchError,
    },
    #[error("a screen wait needs at least one reference")]
    NoReferences,
}

impl WaitScreenError {
    /// What the wait saw, when it timed out (the other errors stop a wait
    /// before it has an outcome).
    pub fn outcome(&self) -> Option<&WaitOutcome> {
        match self {
            WaitScreenError::NotSeen { outcome, .. }
            | WaitScreenError::NotSeenUnsaved { outcome, .. } => Some(outcome),
            _ => None,
        }
    }
}

/// Which match of a reference a wait reports: the best of every frame
/// (waiting for it to appear) or the last frame's (waiting for it to go).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Report {
    Best,
    Last,
}

/// Where one reference stands across polls.
struct Tracker<'a> {
    reference: &'a Reference,
    last_hit: Option<(u32, u32)>,
    best: Option<Match>,
    last: Option<Match>,
    /// No window of the last frame reached the threshold (proved by a
    /// search of every window, or of every window that changed).
    absent: bool,
}

impl<'a> Tracker<'a> {
    fn new(reference: &'a Reference) -> Self {
        Tracker {
            reference,
            last_hit: None,
            best: None,
            last: None,
            absent: false,
        }
    }

    /// Best match on `frame`, whose pixels differ from the last frame's
    /// only in `changed` (`None`: anywhere). After a frame without it,
    /// only windows that overlap the change are searched; otherwise near
    /// the last hit first, then everywhere. A match below the threshold is
    /// the best candidate seen, not necessarily the best window.
    fn search(
        &mut self,
        frame: &RgbImage,
        changed: Option<Rect>,
    ) -> Result<Match, WaitScreenError> {
        let r = self.reference;
        let map = |source| WaitScreenError::Match {
            name: r.name.clone(),
            source,
        };
        let m = match (self.absent, changed, self.last, self.last_hit) {
            (true, Some(changed), Some(last), _) => {
                // No window that changed can hold it: the last frame's
                // candidate is still there, unchanged.
                r.find_overlapping(frame, changed)
                    .map_err(map)?
                    .unwrap_or(last)
            }
            (_, _, _, Some(near)) => {
                let warm = r.find_near(frame, near, WARM_RADIUS).map_err(map)?;
                if r.accepts(&warm) {
                    warm
                } else {
                    r.find(frame).map_err(map)?
                }
            }
            _ => r.find(frame).map_err(map)?,
        };
        // Every search above that comes back below the threshold proves
        // that no window of the frame reaches it.
        self.absent = !r.accepts(&m);
        self.last_hit = Some((m.rect.x, m.rect.y));
        if self.best.is_none_or(|b| m.score > b.score) {
            self.best = Some(m);
        }
        self.last = Some(m);
        Ok(m)
    }

    fn reported(&self, report: Report) -> Option<Match> {
        match report {
            Report::Best => self.best,
            Report::Last => self.last,
        }
    }

    fn describe(&self, report: Report) -> String {
        let r = self.reference;
        let name = format!("{} ({})", r.name, r.path.display());
        let Some(m) = self.reported(report) else {
            return format!("{name}: no screen was searched");
        };
        let seen = match report {
            Report::Best => "best was",
            Report::Last => "last seen",
        };
        format!(
            "{seen} {name} scoring {:.3} (needs {:.3}) at {}",
            m.score, r.sidecar.threshold, m.rect
        )
    }

    fn outcome(&self, report: Report, failure_png: Option<PathBuf>) -> WaitOutcome {
        let r = self.reference;
        let m = self.reported(report);
        WaitOutcome {
            reference: r.name.clone(),
            reference_png: r.path.clone(),
            matched: m.is_some_and(|m| r.accepts(&m)),
            rect: m.map(|m| m.rect),
            score: m.map(|m| m.score),
            threshold: r.sidecar.threshold,
            failure_png,
        }
    }

    /// How far the reported match is above its threshold (negative: short
    /// of it).
    fn margin(&self, report: Report) -> f32 {
        self.reported(report).map_or(f32::NEG_INFINITY, |m| {
            m.score - self.reference.sidecar.threshold
        })
    }
}

/// Poll `source` until `decide` settles the wait, skipping identical
/// frames; on a timeout, save the failure PNG and report the tracker
/// closest to passing.
async fn poll<S, T>(
    source: &mut S,
    what: &str,
    timeout: Duration,
    trackers: &mut [Tracker<'_>],
    report: Report,
    artifacts: &Path,
    mut decide: impl FnMut(
        &mut [Tracker<'_>],
        &RgbImage,
        Option<Rect>,
    ) -> Result<Option<T>, WaitScreenError>,
) -> Result<T, WaitScreenError>
where
    S: FrameSource,
{
    if trackers.is_empty() {
        return Err(WaitScreenError::NoReferences);
    }
    // The same loop as `wait::wait_until`, written out because each poll
    // needs mutable access to the frame source and the trackers.
    let timeout = wait::scaled(timeout);
    let start = Instant::now();
    let mut progress = wait::Progress::new(what, timeout);
    let mut last_frame: Option<RgbImage> = None;
    loop {
        let frame = source.frame().await.map_err(|e| WaitScreenError::Frame {
            what: what.to_owned(),
            source: Box::new(e),
        })?;
        // An identical frame cannot change the verdict: skip the matching.
        if last_frame.as_ref() != Some(&frame) {
            let changed = last_frame.as_ref().and_then(|l| changed_area(l, &frame));
            if let Some(v) = decide(trackers, &frame, changed)? {
                tracing::debug!(what, elapsed = ?start.elapsed(), "seen");
                return Ok(v);
            }
            last_frame = Some(frame);
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            break;
        }
        progress.tick(Some(&describe(trackers, report)));
        tokio::time::sleep(POLL_INTERVAL.min(timeout - elapsed)).await;
    }
    let seen = describe(trackers, report);
    let timeout = Box::new(Timeout {
        what: what.to_owned(),
        waited: start.elapsed(),
        // The error says what was seen; the timeout need not repeat it.
        last_error: None,
    });
    let artifact = artifacts.join(format!("{}-failed.png", file_stem(what)));
    let (first, others) = trackers
        .split_first()
        .ok_or(WaitScreenError::NoReferences)?;
    let closest = others.iter().fold(first, |c, t| {
        if t.margin(report) > c.margin(report) {
            t
        } else {
            c
        }
    });
    match save_failure(&artifact, last_frame.as_ref(), trackers, report) {
        Ok(()) => Err(WaitScreenError::NotSeen {
            what: what.to_owned(),
            seen,
            outcome: Box::new(closest.outcome(report, Some(artifact.clone()))),
            artifact,
            timeout,
        }),
        Err(e) => Err(WaitScreenError::NotSeenUnsaved {
            what: what.to_owned(),
            seen,
            outcome: Box::new(closest.outcome(report, None)),
            artifact,
            save_error: e.to_string(),
            timeout,
        }),
    }
}

/// The smallest rectangle holding every pixel that differs between two
/// frames of one size; `None` when their sizes differ (or nothing does).
fn changed_area(old: &RgbImage, new: &RgbImage) -> Option<Rect> {
    if old.dimensions() != new.dimensions() {
        return None;
    }
    let stride = new.width() as usize * 3;
    let rows = old
        .as_raw()
        .chunks_exact(stride)
        .zip(new.as_raw().chunks_exact(stride));
    let (mut x0, mut x1, mut y0, mut y1) = (usize::MAX, 0, usize::MAX, 0);
    for (y, (a, b)) in rows.enumerate() {
        if a == b {
            continue;
        }
        // First and last differing byte of the row, in pixels.
        let first = a.iter().zip(b).position(|(p, q)| p != q).unwrap_or(0) / 3;
        let last = (stride
            - 1
            - a.iter()
                .rev()
                .zip(b.iter().rev())
                .position(|(p, q)| p != q)
                .unwrap_or(0))
            / 3;
        (x0, x1) = (x0.min(first), x1.max(last + 1));
        (y0, y1) = (y0.min(y), y + 1);
    }
    (y0 < y1).then(|| Rect::new(x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32))
}

fn describe(trackers: &[Tracker<'_>], report: Report) -> String {
    trackers
        .iter()
        .map(|t| t.describe(report))
        .collect::<Vec<_>>()
        .join("; ")
}

fn file_stem(what: &str) -> String {
    what.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Wait until `reference` is on the screen; the outcome holds the match
/// ([`WaitOutcome::found`]).
pub async fn wait_for<S: FrameSource>(
    source: &mut S,
    reference: &Reference,
    timeout: Duration,
    artifacts: &Path,
) -> Result<WaitOutcome, WaitScreenError> {
    wait_for_any(source, &[reference], timeout, artifacts)
        .await
        .map(|(_, outcome)| outcome)
}

/// Wait until any of `references` is on the screen; which one (its index)
/// and its outcome. When several are, the best score wins.
pub async fn wait_for_any<S: FrameSource>(
    source: &mut S,
    references: &[&Reference],
    timeout: Duration,
    artifacts: &Path,
) -> Result<(usize, WaitOutcome), WaitScreenError> {
    let names: Vec<&str> = references.iter().map(|r| r.name.as_str()).collect();
    let what = match names.as_slice() {
        [one] => format!("screen showing {one}"),
        _ => format!("screen showing any of {}", names.join(", ")),
    };
    let mut trackers: Vec<Tracker> = references.iter().map(|r| Tracker::new(r)).collect();
    poll(
        source,
        &what,
        timeout,
        &mut trackers,
        Report::Best,
        artifacts,
        |ts, frame, changed| {
            let mut found: Option<(usize, Match)> = None;
            for (i, t) in ts.iter_mut().enumerate() {
                let m = t.search(frame, changed)?;
                if t.reference.accepts(&m) && found.is_none_or(|(_, f)| m.score > f.score) {
                    found = Some((i, m));
                }
            }
            Ok(found.map(|(i, _)| (i, ts[i].outcome(Report::Last, None))))
        },
    )
    .await
}

/// Wait until `reference` is no longer on the screen; the outcome says
/// where its best candidate was on the last screen.
pub async fn wait_gone<S: FrameSource>(
    source: &mut S,
    reference: &Reference,
    timeout: Duration,
    artifacts: &Path,
) -> Result<WaitOutcome, WaitScreenError> {
    let what = format!("{} to leave the screen", reference.name);
    let mut trackers = [Tracker::new(reference)];
    poll(
        source,
        &what,
        timeout,
        &mut trackers,
        Report::Last,
        artifacts,
        |ts, frame, changed| {
            let m = ts[0].search(frame, changed)?;
            Ok((!ts[0].reference.accepts(&m)).then(|| ts[0].outcome(Report::Last, None)))
        },
    )
    .await
}

/// The last frame with each reference's reported candidate boxed (green
/// when it scored at least its threshold, red when not), and the references
/// to its right.
fn save_failure(
    path: &Path,
    frame: Option<&RgbImage>,
    trackers: &[Tracker<'_>],
    report: Report,
) -> Result<(), image::ImageError> {
    let Some(frame) = frame else {
        return Err(image::ImageError::IoError(std::io::Error::other(
            "no screen was captured",
        )));
    };
    let refs_w = trackers
        .iter()
        .map(|t| t.reference.pattern.width())
        .max()
        .unwrap_or(0);
    let refs_h: u32 = trackers
        .iter()
        .map(|t| t.reference.pattern.height() + 8)
        .sum();
    let (fw, fh) = frame.dimensions();
    let mut out = RgbImage::from_pixel(fw + 8 + refs_w, fh.max(refs_h), Rgb([64, 64, 64]));
    image::imageops::replace(&mut out, frame, 0, 0);
    let mut y = 0;
    for t in trackers {
        if let Some(m) = t.reported(report) {
            let colour = if t.reference.accepts(&m) {
                Rgb([0, 200, 0])
            } else {
                Rgb([255, 0, 0])
            };
            draw_box(&mut out, m.rect, colour);
        }
        image::imageops::replace(
            &mut out,
            t.reference.pattern.image(),
            (fw + 8) as i64,
            y as i64,
        );
        y += t.reference.pattern.height() + 8;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    out.save(path)
}

/// A 2-pixel frame just outside `r`, clipped to the image.
fn draw_box(img: &mut RgbImage, r: Rect, colour: Rgb<u8>) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x0, y0) = (r.x as i64 - 2, r.y as i64 - 2);
    let (x1, y1) = (r.right() as i64 + 1, r.bottom() as i64 + 1);
    let mut put = |x: i64, y: i64| {
        if (0..w).contains(&x) && (0..h).contains(&y) {
            img.put_pixel(x as u32, y as u32, colour);
        }
    };
    for x in x0..=x1 {
        for d in 0..2 {
            put(x, y0 + d);
            put(x, y1 - d);
        }
    }
    for y in y0..=y1 {
        for d in 0..2 {
            put(x0 + d, y);
            put(x1 - d, y);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::screen::reference::Sidecar;

    /// Frames from a list; the last one repeats.
    struct Script {
        frames: Vec<RgbImage>,
        taken: usize,
    }

    /// A source that shows `frames` in turn, then the last one for ever.
    fn script(frames: Vec<RgbImage>) -> Script {
        Script { frames, taken: 0 }
    }

    #[derive(Debug, thiserror::Error)]
    #[error("no frame")]
    struct NoFrame;

    impl FrameSource for Script {
        type Error = NoFrame;
        async fn frame(&mut self) -> Result<RgbImage, NoFrame> {
            let i = self
                .taken
                .min(self.frames.len().checked_sub(1).ok_or(NoFrame)?);
            self.taken += 1;
            Ok(self.frames[i].clone())
        }
    }

    fn button() -> RgbImage {
        RgbImage::from_fn(40, 16, |x, y| {
            // Glyph-like strokes one to three pixels wide: detail that the
            // pyramid's coarse levels blur and alias.
            if (3..13).contains(&y) && (x * 7 + y / 4) % 11 < 3 {
                Rgb([20, 20, 20])
            } else {
                Rgb([200, 210, 220])
            }
        })
    }

    /// At (10, 10) the button sits two pixels off the 4x4 grid of the
    /// pyramid level the coarse search uses, where its strokes alias into
    /// another picture: the coarse search alone found only the background
    /// there (best 0.09). The bounded search behind it must find it.
    #[test]
    fn finds_the_button_off_the_coarse_grid() {
        let r = reference();
        let m = r.find(&screen_with(Some((10, 10)))).unwrap();
        assert_eq!((m.rect.x, m.rect.y), (10, 10), "{m:?}");
    }

    fn screen_with(at: Option<(u32, u32)>) -> RgbImage {
        let mut s = RgbImage::from_fn(200, 120, |x, y| {
            Rgb([(x % 50) as u8 + 90, (y % 30) as u8 + 90, 120])
        });
        if let Some((x, y)) = at {
            image::imageops::replace(&mut s, &button(), x as i64, y as i64);
        }
        s
    }

    fn reference() -> Reference {
        Reference::new(
            "button".into(),
            "screenshots/button.png".into(),
            button(),
            Sidecar::defaults(40, 16),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn waits_until_the_reference_appears() {
        let mut src = script(vec![
            screen_with(None),
            screen_with(None),
            screen_with(Some((120, 70))),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let seen = wait_for(&mut src, &reference(), Duration::from_secs(5), dir.path())
            .await
            .unwrap();
        let m = seen.found().unwrap();
        assert_eq!((m.rect.x, m.rect.y), (120, 70));
        assert!(src.taken >= 3);
        assert_eq!(seen.reference, "button");
        assert_eq!(seen.reference_png, PathBuf::from("screenshots/button.png"));
        assert!(seen.matched && seen.failure_png.is_none(), "{seen:?}");
        assert_eq!(seen.threshold, 0.95);
    }

    #[tokio::test]
    async fn timeout_names_best_and_saves_the_screen() {
        let mut src = script(vec![screen_with(None)]);
        let dir = tempfile::tempdir().unwrap();
        let err = wait_for(
            &mut src,
            &reference(),
            Duration::from_millis(100),
            dir.path(),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        let outcome = err.outcome().unwrap().clone();
        let WaitScreenError::NotSeen { artifact, .. } = err else {
            panic!("{text}")
        };
        // The reference, its best score and place, and the artifact.
        let best = outcome.rect.unwrap();
        for part in [
            "screen showing button did not happen",
            "screenshots/button.png",
            &format!("scoring {:.3}", outcome.score.unwrap()),
            &format!("at ({}, {})", best.x, best.y),
            &artifact.display().to_string(),
        ] {
            assert!(text.contains(part), "{part:?} not in {text}");
        }
        assert!(
            !outcome.matched && outcome.score.unwrap() < 0.95,
            "{outcome:?}"
        );
        assert_eq!(outcome.failure_png.as_ref(), Some(&artifact));
        assert!(artifact.starts_with(dir.path()));
        let saved = image::open(&artifact).unwrap();
        assert_eq!(saved.width(), 200 + 8 + 40);
    }

    #[tokio::test]
    async fn any_reports_which_and_gone_waits_for_absence() {
        let other = Reference::new(
            "other".into(),
            "screenshots/other.png".into(),
            RgbImage::from_fn(20, 20, |x, y| Rgb([(x * 12) as u8, (y * 12) as u8, 0])),
            Sidecar::defaults(20, 20),
        )
        .unwrap();
        let r = reference();
        let dir = tempfile::tempdir().unwrap();
        let mut src = script(vec![screen_with(Some((60, 40)))]);
        let (i, seen) = wait_for_any(&mut src, &[&other, &r], Duration::from_secs(5), dir.path())
            .await
            .unwrap();
        let m = seen.found().unwrap();
        assert_eq!((i, m.rect.x, m.rect.y), (1, 60, 40));
        assert_eq!(seen.reference, "button");

        let mut src = script(vec![
            screen_with(Some((10, 10))),
            screen_with(Some((60, 40))),
            screen_with(None),
        ]);
        let gone = wait_gone(&mut src, &r, Duration::from_secs(5), dir.path())
            .await
            .unwrap();
        assert_eq!(src.taken, 3);
        assert!(!gone.matched && gone.score.unwrap() < 0.95, "{gone:?}");
    }

    #[tokio::test]
    async fn a_reference_that_stays_is_reported_where_it_stays() {
        let dir = tempfile::tempdir().unwrap();
        let mut src = script(vec![screen_with(Some((60, 40)))]);
        let err = wait_gone(
            &mut src,
            &reference(),
            Duration::from_millis(100),
            dir.path(),
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("button to leave the screen did not happen")
                && text.contains("last seen button")
                && text.contains("at (60, 40)"),
            "{text}"
        );
        let outcome = err.outcome().unwrap();
        assert!(outcome.matched, "{outcome:?}");
        assert_eq!(outcome.rect.map(|r| (r.x, r.y)), Some((60, 40)));
    }

    #[test]
    fn changed_area_bounds_every_changed_pixel() {
        let a = screen_with(None);
        let mut b = a.clone();
        assert_eq!(changed_area(&a, &b), None);
        b.put_pixel(7, 30, Rgb([0, 0, 0]));
        b.put_pixel(150, 12, Rgb([0, 0, 0]));
        assert_eq!(changed_area(&a, &b), Some(Rect::new(7, 12, 144, 19)));
        assert_eq!(changed_area(&a, &RgbImage::new(20, 20)), None);
    }

    /// Once the button is known to be absent, the next frames are searched
    /// only where they changed: the button appearing there (off the
    /// pyramid's grid, the hard case) must still be found, and a change
    /// elsewhere must not hide it.
    #[tokio::test]
    async fn a_reference_appearing_where_the_screen_changed_is_found() {
        let mut scribbled = screen_with(None);
        for x in 150..190 {
            scribbled.put_pixel(x, 100, Rgb([255, 255, 255]));
        }
        let mut both = scribbled.clone();
        image::imageops::replace(&mut both, &button(), 10, 10);
        let mut src = script(vec![screen_with(None), scribbled, both]);
        let dir = tempfile::tempdir().unwrap();
        let seen = wait_for(&mut src, &reference(), Duration::from_secs(5), dir.path())
            .await
            .unwrap();
        assert_eq!(seen.rect.map(|r| (r.x, r.y)), Some((10, 10)));
        assert_eq!(src.taken, 3);
    }

    #[tokio::test]
    async fn no_reference_is_an_error() {
        let mut src = script(vec![screen_with(None)]);
        let dir = tempfile::tempdir().unwrap();
        let err = wait_for_any(&mut src, &[], Duration::from_secs(1), dir.path())
            .await
            .unwrap_err();
        assert!(matches!(err, WaitScreenError::NoReferences), "{err}");
    }
}
