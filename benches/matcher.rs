//! Screen matching benchmark: Tailor's matcher against OpenCV on the corpus
//! in `benches/corpus/pairs.toml`, in the same run.
//!
//!     cargo bench --bench matcher [-- --repeat N]
//!
//! For each pair: Tailor's median cold search (`Reference::find_cold`:
//! reference prepared and whole screen searched from scratch every time, as
//! `tailor match --bench` does),
//! its median warm search (a few pixels around the last hit, as a wait loop
//! does first), and OpenCV's median cold search through
//! `scripts/opencv_match.py` (grayscale TM_CCOEFF_NORMED, like the Tails
//! suite). Prints a Markdown table for BENCHMARKS.md.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use harness::screen::reference::Reference;

#[derive(serde::Deserialize)]
struct Corpus {
    pair: Vec<Pair>,
}

#[derive(serde::Deserialize)]
struct Pair {
    name: String,
    screen: PathBuf,
    reference: PathBuf,
    expect: Option<[u32; 2]>,
}

#[derive(serde::Deserialize)]
struct OpenCv {
    name: String,
    x: u32,
    y: u32,
    score: f64,
    median_ms: f64,
    threads: u32,
    version: String,
}

/// The Tails suite's OpenCV threshold, for the "found" column.
const OPENCV_THRESHOLD: f64 = 0.9;
/// How far around the last hit the warm search looks.
const WARM_RADIUS: u32 = 8;

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let repeat: usize = args
        .iter()
        .position(|a| a == "--repeat")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(30);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus_file = root.join("benches/corpus/pairs.toml");
    let corpus: Corpus = toml::from_str(&std::fs::read_to_string(&corpus_file)?)?;
    let base = corpus_file.parent().ok_or("corpus has no folder")?;

    struct Row {
        tailor: (u32, u32, f32, bool),
        cold_ms: f64,
        warm_ms: f64,
    }
    let mut rows = Vec::new();
    for p in &corpus.pair {
        let screen = image::open(base.join(&p.screen))?.to_rgb8();
        let reference = Reference::from_png(&base.join(&p.reference))?;
        let mut cold = Vec::with_capacity(repeat);
        let mut hit = None;
        for _ in 0..repeat {
            let t = Instant::now();
            let m = reference.find_cold(&screen)?;
            cold.push(t.elapsed());
            hit = Some(m);
        }
        let m = hit.ok_or("no repetition ran")?;
        let mut warm = Vec::with_capacity(repeat);
        for _ in 0..repeat {
            let t = Instant::now();
            let w = reference.find_near(&screen, (m.rect.x, m.rect.y), WARM_RADIUS)?;
            warm.push(t.elapsed());
            std::hint::black_box(w);
        }
        rows.push(Row {
            tailor: (m.rect.x, m.rect.y, m.score, reference.accepts(&m)),
            cold_ms: median(cold),
            warm_ms: median(warm),
        });
    }

    let out = Command::new("python3")
        .arg(root.join("scripts/opencv_match.py"))
        .arg(&corpus_file)
        .arg("--repeat")
        .arg(repeat.to_string())
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "scripts/opencv_match.py failed ({}); is opencv-python-headless installed? {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let mut opencv: HashMap<String, OpenCv> = HashMap::new();
    for line in String::from_utf8(out.stdout)?.lines() {
        let r: OpenCv = serde_json::from_str(line)?;
        opencv.insert(r.name.clone(), r);
    }

    let first = opencv.values().next().ok_or("OpenCV printed nothing")?;
    println!(
        "\n{} pairs, {} repetitions each, OpenCV {} with {} threads, Tailor single-threaded.\n",
        rows.len(),
        repeat,
        first.version,
        first.threads
    );
    println!("| pair | truth | Tailor at (score) | OpenCV at (score) | same place | Tailor cold ms | OpenCV ms | speed-up | Tailor warm ms |");
    println!("| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |");
    let (mut worst, mut all_same, mut all_right) = (f64::INFINITY, true, true);
    for (p, r) in corpus.pair.iter().zip(&rows) {
        let cv = opencv
            .get(&p.name)
            .ok_or_else(|| format!("OpenCV has no result for {}", p.name))?;
        let (tx, ty, ts, found) = r.tailor;
        let same = (tx, ty) == (cv.x, cv.y);
        let right = match p.expect {
            Some([x, y]) => found && (tx, ty) == (x, y),
            None => !found,
        };
        all_right &= right;
        // Where the reference is absent there is no right place to agree on.
        if p.expect.is_some() {
            all_same &= same;
        }
        let speedup = cv.median_ms / r.cold_ms;
        worst = worst.min(speedup);
        let truth = match p.expect {
            Some([x, y]) => format!("({x}, {y})"),
            None => "absent".to_owned(),
        };
        let verdict = |f: bool| if f { "found" } else { "not found" };
        println!(
            "| {} | {} | ({}, {}) {:.3} {} | ({}, {}) {:.3} {} | {} | {:.2} | {:.2} | {:.1}x | {:.3} |",
            p.name,
            truth,
            tx,
            ty,
            ts,
            verdict(found),
            cv.x,
            cv.y,
            cv.score,
            verdict(cv.score >= OPENCV_THRESHOLD),
            if same { "yes" } else { "no" },
            r.cold_ms,
            cv.median_ms,
            speedup,
            r.warm_ms,
        );
    }
    println!(
        "\nslowest speed-up {worst:.1}x; same place as OpenCV on every present reference: {}; Tailor right on every pair (found where expected, not found where absent): {}",
        if all_same { "yes" } else { "NO" },
        if all_right { "yes" } else { "NO" },
    );
    Ok(())
}
