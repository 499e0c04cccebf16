//! The guest's screen: screendumps decoded into `image::RgbImage`, change
//! detection, and finding reference images on it.
//!
//! - [`matcher`]: where a reference image is on a screen, by normalized
//!   cross-correlation: a fast pyramid search, and a bound over every
//!   window behind it, so that a window scoring the threshold is never
//!   missed.
//! - [`reference`](mod@reference): `screenshots/NAME.png` with its sidecar
//!   (`NAME.toml`: threshold, search region, click point, excluded areas).
//! - [`waiting`]: waits for references to appear or leave, over any
//!   [`waiting::FrameSource`] (a [`crate::vm::Vm`] is one), with a
//!   failure picture and a [`waiting::WaitOutcome`] for reports.

pub mod matcher;
pub mod reference;
pub mod waiting;

use image::RgbImage;

/// Decode the PPM that QMP `screendump` writes.
pub fn decode_ppm(bytes: &[u8]) -> Result<RgbImage, String> {
    let decoder = image::codecs::pnm::PnmDecoder::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a PPM image ({} bytes): {e}", bytes.len()))?;
    let image = image::DynamicImage::from_decoder(decoder)
        .map_err(|e| format!("PPM image could not be decoded: {e}"))?;
    Ok(image.into_rgb8())
}

/// How many pixels differ between two screens; `None` if their sizes
/// differ (a mode switch counts as a change).
pub fn changed_pixels(a: &RgbImage, b: &RgbImage) -> Option<usize> {
    if a.dimensions() != b.dimensions() {
        return None;
    }
    Some(
        a.as_raw()
            .chunks_exact(3)
            .zip(b.as_raw().chunks_exact(3))
            .filter(|(p, q)| p != q)
            .count(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppm_round_trip() {
        let mut ppm = b"P6\n2 1\n255\n".to_vec();
        ppm.extend_from_slice(&[255, 0, 0, 0, 0, 255]);
        let img = decode_ppm(&ppm).unwrap();
        assert_eq!(img.dimensions(), (2, 1));
        assert_eq!(img.get_pixel(1, 0).0, [0, 0, 255]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_ppm(b"hello").is_err());
    }

    #[test]
    fn change_counting() {
        let a = RgbImage::new(4, 4);
        let mut b = a.clone();
        b.put_pixel(1, 1, image::Rgb([1, 2, 3]));
        assert_eq!(changed_pixels(&a, &b), Some(1));
        assert_eq!(changed_pixels(&a, &RgbImage::new(2, 2)), None);
    }
}
