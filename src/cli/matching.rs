//! `tailor match` (find a reference in a screenshot, optionally timed) and
//! `tailor crop` (make a reference and its sidecar from a screenshot).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use harness::screen::matcher::Rect;
use harness::screen::reference::{Reference, Sidecar};

#[derive(clap::Args)]
pub struct MatchArgs {
    /// The screenshot to search.
    pub screenshot: PathBuf,
    /// The reference image; its sidecar (same name, .toml) is used if present.
    pub reference: PathBuf,
    /// Repeat the cold search N times and print the median time.
    #[arg(long, value_name = "N")]
    pub bench: Option<u32>,
}

#[derive(clap::Args)]
pub struct CropArgs {
    /// The screenshot to cut from (e.g. a failure's last screenshot).
    pub screenshot: PathBuf,
    /// The area to cut: X,Y,W,H in screenshot pixels.
    #[arg(long, value_parser = parse_rect)]
    pub rect: Rect,
    /// Where to write the reference, e.g. screenshots/NAME.png; the sidecar
    /// goes next to it as NAME.toml.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing reference.
    #[arg(long)]
    pub force: bool,
}

fn parse_rect(s: &str) -> Result<Rect, String> {
    let parts: Vec<&str> = s.split(',').map(str::trim).collect();
    let nums: Result<Vec<u32>, _> = parts.iter().map(|p| p.parse::<u32>()).collect();
    match nums.as_deref() {
        Ok([x, y, w, h]) if *w > 0 && *h > 0 => Ok(Rect::new(*x, *y, *w, *h)),
        _ => Err(format!(
            "expected X,Y,W,H (non-negative integers, W and H > 0), found {s:?}"
        )),
    }
}

fn load_screen(path: &PathBuf) -> anyhow::Result<image::RgbImage> {
    Ok(image::open(path)
        .with_context(|| format!("cannot read screenshot {}", path.display()))?
        .to_rgb8())
}

pub fn run_match(args: MatchArgs) -> anyhow::Result<ExitCode> {
    let screen = load_screen(&args.screenshot)?;
    let reference = Reference::from_png(&args.reference)?;
    let start = Instant::now();
    let m = reference.find(&screen).with_context(|| {
        format!(
            "cannot search {} for {}",
            args.screenshot.display(),
            args.reference.display()
        )
    })?;
    let first = start.elapsed();
    let verdict = if reference.accepts(&m) {
        "found"
    } else {
        "not found"
    };
    println!(
        "{verdict}: {} at ({}, {}) size {}x{} score {:.4} (threshold {:.3}) click ({}, {}) in {}",
        reference.name,
        m.rect.x,
        m.rect.y,
        m.rect.w,
        m.rect.h,
        m.score,
        reference.sidecar.threshold,
        reference.click_point(&m).0,
        reference.click_point(&m).1,
        ms(first),
    );
    if let Some(n) = args.bench {
        if n == 0 {
            bail!("--bench needs at least one repetition");
        }
        let mut times = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let t = Instant::now();
            std::hint::black_box(reference.find_cold(&screen)?);
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "cold search x{n}: median {} (min {}, max {})",
            ms(times[times.len() / 2]),
            ms(times[0]),
            ms(times[times.len() - 1])
        );
    }
    Ok(if reference.accepts(&m) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

pub fn run_crop(args: CropArgs) -> anyhow::Result<ExitCode> {
    let screen = load_screen(&args.screenshot)?;
    let (w, h) = screen.dimensions();
    let r = args.rect;
    if !Rect::new(0, 0, w, h).contains(&r) {
        bail!("--rect {r} is not inside the {w}x{h} screenshot");
    }
    if args.out.extension().and_then(|e| e.to_str()) != Some("png") {
        bail!(
            "--out should name a .png file, found {}",
            args.out.display()
        );
    }
    let sidecar_path = args.out.with_extension("toml");
    if !args.force {
        for p in [&args.out, &sidecar_path] {
            if p.exists() {
                bail!("{} exists; pass --force to replace it", p.display());
            }
        }
    }
    let piece = image::imageops::crop_imm(&screen, r.x, r.y, r.w, r.h).to_image();
    piece
        .save(&args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let sidecar = Sidecar::defaults(r.w, r.h);
    let text = format!(
        "# Cut from {} at {},{},{},{}.\n{}",
        args.screenshot.display(),
        r.x,
        r.y,
        r.w,
        r.h,
        sidecar.to_toml()
    );
    std::fs::write(&sidecar_path, text)
        .with_context(|| format!("cannot write {}", sidecar_path.display()))?;
    println!(
        "wrote {} ({}x{}) and {}",
        args.out.display(),
        r.w,
        r.h,
        sidecar_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
