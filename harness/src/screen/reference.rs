//! Reference images: `screenshots/NAME.png` and an optional sidecar
//! `screenshots/NAME.toml` saying how to match it.
//!
//! ```toml
//! # All keys are optional.
//! threshold = 0.95               # similarity needed, in (0, 1]; default 0.95
//! region = [1040, 740, 240, 60]  # search only here: x, y, w, h on the screen
//! click = [48, 13]               # where to click, from the reference's top-left;
//!                                # default: its centre
//! exclude = [[60, 2, 30, 12]]    # x, y, w, h in the reference: not compared
//! ```
//!
//! The sidecar is parsed (syntax, types) and then validated against the
//! image (ranges, rectangles inside the reference), each with its own error
//! that names the file and the field.

use std::path::{Path, PathBuf};

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::matcher::{Match, MatchError, Pattern, Rect};

/// Similarity a match needs when the sidecar does not say: high enough that
/// a colour change or a different word fails, low enough for anti-aliasing
/// and small rendering differences.
pub const DEFAULT_THRESHOLD: f32 = 0.95;

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("cannot read reference image {path}")]
    ReadImage {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
    #[error("cannot read sidecar {path}")]
    ReadSidecar {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sidecar {path} is not valid TOML for a reference")]
    ParseSidecar {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("sidecar {path}: `{field}` should be {expected}, found {found}")]
    Field {
        path: PathBuf,
        field: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("reference {path} cannot be searched for")]
    Pattern {
        path: PathBuf,
        #[source]
        source: MatchError,
    },
}

/// The sidecar as written: types checked, values not yet.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSidecar {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<Vec<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub click: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<Vec<i64>>,
}

impl RawSidecar {
    pub fn parse(text: &str, path: &Path) -> Result<RawSidecar, ReferenceError> {
        toml::from_str(text).map_err(|source| ReferenceError::ParseSidecar {
            path: path.to_owned(),
            source,
        })
    }

    /// Check every value against the `w`x`h` reference image.
    pub fn validate(&self, w: u32, h: u32, path: &Path) -> Result<Sidecar, ReferenceError> {
        let bad = |field, expected, found: String| ReferenceError::Field {
            path: path.to_owned(),
            field,
            expected,
            found,
        };
        let threshold = match self.threshold {
            None => DEFAULT_THRESHOLD,
            Some(t) if t > 0.0 && t <= 1.0 => t as f32,
            Some(t) => return Err(bad("threshold", "a number in (0, 1]", t.to_string())),
        };
        let region = match &self.region {
            None => None,
            Some(v) => Some(rect(v).filter(|r| r.w >= w && r.h >= h).ok_or_else(|| {
                bad(
                    "region",
                    "[x, y, w, h] of non-negative integers, at least as large as the reference",
                    format!("{v:?}"),
                )
            })?),
        };
        let click = match &self.click {
            None => (w / 2, h / 2),
            Some(v) => match v[..] {
                [x, y] if (0..w as i64).contains(&x) && (0..h as i64).contains(&y) => {
                    (x as u32, y as u32)
                }
                _ => {
                    return Err(bad(
                        "click",
                        "[x, y] inside the reference image",
                        format!("{v:?} for a {w}x{h} image"),
                    ))
                }
            },
        };
        let whole = Rect::new(0, 0, w, h);
        let exclude = self
            .exclude
            .iter()
            .map(|v| {
                rect(v).filter(|r| whole.contains(r)).ok_or_else(|| {
                    bad(
                        "exclude",
                        "a list of [x, y, w, h] rectangles inside the reference image",
                        format!("{v:?} for a {w}x{h} image"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Sidecar {
            threshold,
            region,
            click,
            exclude,
        })
    }
}

/// `[x, y, w, h]` with non-negative position and positive size.
fn rect(v: &[i64]) -> Option<Rect> {
    let [x, y, w, h] = v[..] else { return None };
    let u = |n: i64| u32::try_from(n).ok();
    let r = Rect::new(u(x)?, u(y)?, u(w)?, u(h)?);
    (!r.is_empty() && r.right() <= u32::MAX as u64 && r.bottom() <= u32::MAX as u64).then_some(r)
}

/// A validated sidecar.
#[derive(Debug, Clone, PartialEq)]
pub struct Sidecar {
    pub threshold: f32,
    pub region: Option<Rect>,
    /// Click point, relative to the reference's top-left corner.
    pub click: (u32, u32),
    pub exclude: Vec<Rect>,
}

impl Sidecar {
    /// The sidecar for a `w`x`h` reference with every default spelled out,
    /// so whoever edits it sees the knobs.
    pub fn defaults(w: u32, h: u32) -> Sidecar {
        Sidecar {
            threshold: DEFAULT_THRESHOLD,
            region: None,
            click: (w / 2, h / 2),
            exclude: Vec::new(),
        }
    }

    pub fn to_toml(&self) -> String {
        let raw = RawSidecar {
            threshold: Some((self.threshold as f64 * 1000.0).round() / 1000.0),
            region: self
                .region
                .map(|r| vec![r.x as i64, r.y as i64, r.w as i64, r.h as i64]),
            click: Some(vec![self.click.0 as i64, self.click.1 as i64]),
            exclude: self
                .exclude
                .iter()
                .map(|r| vec![r.x as i64, r.y as i64, r.w as i64, r.h as i64])
                .collect(),
        };
        // Serializing plain numbers and arrays cannot fail.
        toml::to_string(&raw).unwrap_or_default()
    }
}

/// A reference image ready to be searched for.
#[derive(Debug, Clone)]
pub struct Reference {
    /// File stem, as used in features and messages.
    pub name: String,
    pub path: PathBuf,
    pub pattern: Pattern,
    pub sidecar: Sidecar,
}

impl Reference {
    /// `DIR/NAME.png` with `DIR/NAME.toml` if present.
    pub fn load(dir: &Path, name: &str) -> Result<Reference, ReferenceError> {
        Reference::from_png(&dir.join(format!("{name}.png")))
    }

    /// A PNG and the sidecar next to it (same stem, `.toml`), if any.
    pub fn from_png(path: &Path) -> Result<Reference, ReferenceError> {
        let image = image::open(path)
            .map_err(|source| ReferenceError::ReadImage {
                path: path.to_owned(),
                source,
            })?
            .to_rgb8();
        let toml_path = path.with_extension("toml");
        let raw = match std::fs::read_to_string(&toml_path) {
            Ok(text) => RawSidecar::parse(&text, &toml_path)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RawSidecar::default(),
            Err(source) => {
                return Err(ReferenceError::ReadSidecar {
                    path: toml_path,
                    source,
                })
            }
        };
        let sidecar = raw.validate(image.width(), image.height(), &toml_path)?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Reference::new(name, path.to_owned(), image, sidecar)
    }

    pub fn new(
        name: String,
        path: PathBuf,
        image: RgbImage,
        sidecar: Sidecar,
    ) -> Result<Reference, ReferenceError> {
        let pattern =
            Pattern::new(image, &sidecar.exclude).map_err(|source| ReferenceError::Pattern {
                path: path.clone(),
                source,
            })?;
        Ok(Reference {
            name,
            path,
            pattern,
            sidecar,
        })
    }

    /// The best match in the sidecar's region, whatever its score; when any
    /// window there reaches the sidecar's threshold, so does this match.
    pub fn find(&self, screen: &RgbImage) -> Result<Match, MatchError> {
        self.pattern
            .find(screen, self.sidecar.region, self.sidecar.threshold)
    }

    /// [`Reference::find`] as the first search of a reference costs: the
    /// reference is prepared again from its pixels and sidecar (gray
    /// pyramid, blocks, excluded areas) and the whole region searched,
    /// nothing reused. `tailor match --bench` and the matcher benchmark
    /// time this.
    pub fn find_cold(&self, screen: &RgbImage) -> Result<Match, ReferenceError> {
        let fail = |source| ReferenceError::Pattern {
            path: self.path.clone(),
            source,
        };
        Pattern::new(self.pattern.image().clone(), &self.sidecar.exclude)
            .map_err(fail)?
            .find(screen, self.sidecar.region, self.sidecar.threshold)
            .map_err(fail)
    }

    /// [`Reference::find`] among the windows that overlap `changed` (in
    /// screen coordinates); `None` when no window of the search region
    /// does. After a screen where no window reached the threshold, only
    /// those can reach it on the next screen if nothing else changed.
    pub fn find_overlapping(
        &self,
        screen: &RgbImage,
        changed: Rect,
    ) -> Result<Option<Match>, MatchError> {
        let (w, h) = (self.pattern.width() as u64, self.pattern.height() as u64);
        let (sw, sh) = screen.dimensions();
        let whole = self.sidecar.region.unwrap_or(Rect::new(0, 0, sw, sh));
        // The pixels covered by windows that share a pixel with `changed`.
        let x0 = (changed.x as u64 + 1).saturating_sub(w).max(whole.x as u64);
        let y0 = (changed.y as u64 + 1).saturating_sub(h).max(whole.y as u64);
        let x1 = (changed.right() + w - 1).min(whole.right());
        let y1 = (changed.bottom() + h - 1).min(whole.bottom());
        if x1 < x0 + w || y1 < y0 + h {
            return Ok(None);
        }
        let area = Rect::new(x0 as u32, y0 as u32, (x1 - x0) as u32, (y1 - y0) as u32);
        self.pattern
            .find(screen, Some(area), self.sidecar.threshold)
            .map(Some)
    }

    /// [`Reference::find`] among the windows within `radius` pixels of
    /// `near` (a top-left corner): the warm search of a wait loop.
    pub fn find_near(
        &self,
        screen: &RgbImage,
        near: (u32, u32),
        radius: u32,
    ) -> Result<Match, MatchError> {
        self.pattern.find_near(
            screen,
            self.sidecar.region,
            near,
            radius,
            self.sidecar.threshold,
        )
    }

    /// Whether a match is good enough for this reference.
    pub fn accepts(&self, m: &Match) -> bool {
        m.score >= self.sidecar.threshold
    }

    /// Where to click for a match, in screen coordinates.
    pub fn click_point(&self, m: &Match) -> (u32, u32) {
        (
            m.rect.x + self.sidecar.click.0,
            m.rect.y + self.sidecar.click.1,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<Sidecar, ReferenceError> {
        let p = Path::new("screenshots/x.toml");
        RawSidecar::parse(text, p)?.validate(40, 20, p)
    }

    fn field_of(e: ReferenceError) -> String {
        match e {
            ReferenceError::Field { field, .. } => field.to_owned(),
            other => format!("{other:#?}"),
        }
    }

    #[test]
    fn empty_sidecar_means_defaults() {
        assert_eq!(check("").unwrap(), Sidecar::defaults(40, 20));
    }

    #[test]
    fn full_sidecar_round_trips() {
        let text = "threshold = 0.9\nregion = [10, 10, 100, 50]\nclick = [3, 4]\nexclude = [[0, 0, 5, 5], [30, 10, 10, 10]]\n";
        let s = check(text).unwrap();
        assert_eq!(s.threshold, 0.9);
        assert_eq!(s.region, Some(Rect::new(10, 10, 100, 50)));
        assert_eq!(s.click, (3, 4));
        assert_eq!(s.exclude.len(), 2);
        assert_eq!(check(&s.to_toml()).unwrap(), s);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(field_of(check("threshold = 1.5").unwrap_err()), "threshold");
        assert_eq!(field_of(check("threshold = 0").unwrap_err()), "threshold");
        assert_eq!(field_of(check("region = [1, 2, 3]").unwrap_err()), "region");
        assert_eq!(
            field_of(check("region = [0, 0, 10, 10]").unwrap_err()),
            "region"
        );
        assert_eq!(
            field_of(check("region = [-1, 0, 100, 100]").unwrap_err()),
            "region"
        );
        assert_eq!(field_of(check("click = [40, 0]").unwrap_err()), "click");
        assert_eq!(
            field_of(check("exclude = [[35, 0, 10, 5]]").unwrap_err()),
            "exclude"
        );
        assert_eq!(
            field_of(check("exclude = [[0, 0, 0, 5]]").unwrap_err()),
            "exclude"
        );
        let msg = check("click = [40, 0]").unwrap_err().to_string();
        assert!(
            msg.contains("click") && msg.contains("40x20") && msg.contains("x.toml"),
            "{msg}"
        );
    }

    #[test]
    fn syntax_and_type_errors_name_the_key() {
        for (text, key) in [
            ("threshold = \"high\"", "threshold"),
            ("tresholt = 0.9", "tresholt"),
            ("click = 3", "click"),
        ] {
            let e = check(text).unwrap_err();
            assert!(matches!(e, ReferenceError::ParseSidecar { .. }));
            let chain = format!("{e}: {}", std::error::Error::source(&e).unwrap());
            assert!(chain.contains(key), "{chain}");
        }
    }

    #[test]
    fn load_reads_png_and_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let img = RgbImage::from_fn(30, 10, |x, y| image::Rgb([x as u8 * 8, y as u8 * 20, 7]));
        img.save(dir.path().join("button.png")).unwrap();
        std::fs::write(dir.path().join("button.toml"), "click = [1, 2]\n").unwrap();
        let r = Reference::load(dir.path(), "button").unwrap();
        assert_eq!(r.name, "button");
        assert_eq!(r.sidecar.click, (1, 2));
        let m = r.find(&img).unwrap();
        assert!(r.accepts(&m));
        assert_eq!(r.click_point(&m), (1, 2));
    }

    #[test]
    fn cold_search_matches_and_names_the_reference_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let img = RgbImage::from_fn(30, 10, |x, y| image::Rgb([x as u8 * 8, y as u8 * 20, 7]));
        img.save(dir.path().join("button.png")).unwrap();
        std::fs::write(dir.path().join("button.toml"), "region = [0, 0, 60, 40]\n").unwrap();
        let r = Reference::load(dir.path(), "button").unwrap();
        let mut screen = RgbImage::new(80, 50);
        image::imageops::replace(&mut screen, &img, 12, 7);
        assert_eq!(r.find_cold(&screen).unwrap(), r.find(&screen).unwrap());
        // The sidecar's region does not fit this smaller screen.
        let e = r.find_cold(&RgbImage::new(40, 20)).unwrap_err();
        assert!(matches!(e, ReferenceError::Pattern { .. }), "{e}");
        assert!(e.to_string().contains("button.png"), "{e}");
    }

    #[test]
    fn overlapping_search_looks_only_where_windows_touch_the_change() {
        let img = RgbImage::from_fn(30, 10, |x, y| image::Rgb([x as u8 * 8, y as u8 * 20, 7]));
        let r = Reference::new(
            "button".into(),
            "button.png".into(),
            img.clone(),
            Sidecar::defaults(30, 10),
        )
        .unwrap();
        let mut screen = RgbImage::new(100, 60);
        image::imageops::replace(&mut screen, &img, 40, 20);
        // A change at the button's last pixel: its window touches it.
        let m = r
            .find_overlapping(&screen, Rect::new(69, 29, 1, 1))
            .unwrap()
            .unwrap();
        assert_eq!((m.rect.x, m.rect.y, r.accepts(&m)), (40, 20, true));
        // One pixel further: no window touching it is the button.
        let m = r
            .find_overlapping(&screen, Rect::new(70, 30, 1, 1))
            .unwrap()
            .unwrap();
        assert!(!r.accepts(&m), "{m:?}");
        // A change outside the sidecar's region: nothing to search.
        let mut limited = r.clone();
        limited.sidecar.region = Some(Rect::new(0, 0, 50, 30));
        assert_eq!(
            limited
                .find_overlapping(&screen, Rect::new(90, 50, 5, 5))
                .unwrap(),
            None
        );
    }

    #[test]
    fn bad_png_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("broken.png"), b"not a png").unwrap();
        let e = Reference::load(dir.path(), "broken").unwrap_err();
        assert!(matches!(e, ReferenceError::ReadImage { .. }), "{e}");
        let e = Reference::load(dir.path(), "missing").unwrap_err();
        assert!(e.to_string().contains("missing.png"), "{e}");
    }
}
