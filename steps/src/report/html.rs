//! The run report: `artifacts/<run>/index.html`, one static page that a
//! browser opens from disk (no server, no script, no external address).
//!
//! It shows every scenario attempt and its steps: status, timing, the
//! error of a failed step, a thumbnail of the screen after each step (a
//! click opens the full screen where it was kept) with the reference a
//! screen wait matched drawn as a box, and beside a failed wait the
//! reference next to the best candidate. Traffic checks show their verdict
//! and every flow of the capture, offences marked. Each scenario links its
//! artifact files (serial and QEMU logs, capture, last screen, guest logs).
//!
//! Every path in the page is relative to the run folder, so the folder can
//! be copied or zipped whole: files from elsewhere (reference images) are
//! copied into `report-files/`, with the candidates cut out of failed
//! screens. The page is rendered with `maud`, which escapes every value
//! spliced into it by construction.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use maud::{html, Markup, PreEscaped, DOCTYPE};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::evidence::{Evidence, Rect, ScreenWait, TrafficVerdict};
use super::records::{Records, ScenarioRecord, Status, StepRecord, StepScreen};

/// The report's file name in the run folder.
pub const INDEX: &str = "index.html";
/// Where copies and cut-outs go, in the run folder.
pub const FILES: &str = "report-files";

/// About the run as a whole.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub run_id: String,
    pub started: SystemTime,
    pub wall: Duration,
    /// The run was cut short: scenarios still running are marked so.
    pub interrupted: bool,
}

/// Write the report into `run_dir` (created if needed); its path.
pub fn write(run_dir: &Path, info: &RunInfo, records: &Records) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(run_dir)?;
    let run_dir = std::path::absolute(run_dir)?;
    let mut assets = Assets {
        run_dir: run_dir.clone(),
        copied: BTreeMap::new(),
        next: 0,
    };
    let markup = page(info, records, &mut assets);
    let path = run_dir.join(INDEX);
    std::fs::write(&path, markup.into_string())?;
    Ok(path)
}

/// What a URL path component keeps as it is: RFC 3986's unreserved set.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A relative path as a URL path: each byte outside the unreserved set
/// percent-encoded, `/` between components.
fn url(rel: &Path) -> String {
    rel.components()
        .map(|part| {
            utf8_percent_encode(&part.as_os_str().to_string_lossy(), UNRESERVED).to_string()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// "850 ms", "12.3 s", "4 min 05 s".
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} min {:02} s", ms / 60_000, ms / 1000 % 60)
    }
}

fn utc(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Files the page points at, all made relative to the run folder.
struct Assets {
    run_dir: PathBuf,
    /// Source path -> URL of its copy.
    copied: BTreeMap<PathBuf, String>,
    next: usize,
}

impl Assets {
    /// A URL for `path`: relative if it is in the run folder, else of a
    /// copy in `report-files/`. `None` if there is no such file.
    fn link(&mut self, path: &Path) -> Option<String> {
        let abs = std::path::absolute(path).ok()?;
        if !abs.is_file() {
            return None;
        }
        if let Some(rel) = self.relative(&abs) {
            return Some(url(&rel));
        }
        if let Some(u) = self.copied.get(&abs) {
            return Some(u.clone());
        }
        let name = abs.file_name()?.to_string_lossy().into_owned();
        let rel = self.fresh(&name);
        std::fs::copy(&abs, self.run_dir.join(&rel)).ok()?;
        let u = url(&rel);
        self.copied.insert(abs, u.clone());
        Some(u)
    }

    /// `path` relative to the run folder, if inside it (no `..`).
    fn relative(&self, abs: &Path) -> Option<PathBuf> {
        let rel = abs.strip_prefix(&self.run_dir).ok()?;
        rel.components()
            .all(|c| matches!(c, Component::Normal(_)))
            .then(|| rel.to_owned())
    }

    /// A new file name in `report-files/`.
    fn fresh(&mut self, name: &str) -> PathBuf {
        self.next += 1;
        let _ = std::fs::create_dir_all(self.run_dir.join(FILES));
        Path::new(FILES).join(format!("{:03}-{name}", self.next))
    }

    /// Cut `rect` out of the image at `source` into `report-files/`.
    fn cut(&mut self, source: &Path, rect: Rect, name: &str) -> Option<String> {
        let image = image::open(source).ok()?.into_rgb8();
        let (w, h) = image.dimensions();
        if rect.x >= w || rect.y >= h || rect.is_empty() {
            return None;
        }
        let cw = rect.w.min(w - rect.x);
        let ch = rect.h.min(h - rect.y);
        let part = image::imageops::crop_imm(&image, rect.x, rect.y, cw, ch).to_image();
        let rel = self.fresh(&format!("{name}.png"));
        part.save(self.run_dir.join(&rel)).ok()?;
        Some(url(&rel))
    }
}

const STYLE: &str = "
body{font-family:sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;text-align:left}
th{background:#f0f0f0}
.num{text-align:right;white-space:nowrap}
.badge{display:inline-block;padding:0 .4em;border-radius:3px;color:#fff;font-weight:bold;font-size:.85em}
.badge.passed{background:#2a7d2a}
.badge.failed{background:#c0392b}
.badge.skipped{background:#8a6d00}
table.steps{width:100%;table-layout:fixed}
table.steps th.n{width:2.5em}table.steps th.t{width:5.5em}table.steps th.screen{width:340px}
.scroll{overflow-x:auto}
tr.failed>td{background:#fdecea}
tr.skipped>td{background:#fff8e1}
section.scenario{border-top:3px solid #2a7d2a;margin-top:2em}
section.scenario.failed{border-top-color:#c0392b}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:.5em;margin:.3em 0}
pre.error{background:#fdecea;border-left:4px solid #c0392b}
.shot{position:relative;display:inline-block;line-height:0}
.shot img{width:320px;height:auto;border:1px solid #999}
.box{position:absolute;border:2px solid #0a0;box-sizing:border-box}
.box.miss{border-color:#e00}
.nothumb{color:#777;font-size:.9em}
figure{display:inline-block;margin:.3em 1em .3em 0;vertical-align:top}
figure img{max-width:100%;border:1px solid #999;image-rendering:pixelated}
figcaption{font-size:.85em;color:#444}
table.flows{font-size:.85em}
table.flows tr.offence>td{background:#fdecea;font-weight:bold}
.verdict{margin:.5em 0 1em 0}
.muted{color:#666;font-size:.9em}
code.rerun{background:#f6f6f6;padding:.1em .3em;overflow-wrap:anywhere}
";

/// The whole page.
fn page(info: &RunInfo, records: &Records, assets: &mut Assets) -> Markup {
    let failed = records.final_outcomes().filter(|s| s.failed()).count();
    let passed = records.final_outcomes().count() - failed;
    let retried = records.scenarios.iter().filter(|s| s.attempt > 1).count();
    let overall = if failed == 0 && !info.interrupted {
        "passed"
    } else {
        "failed"
    };
    let verdict = if info.interrupted {
        "INTERRUPTED"
    } else if failed == 0 {
        "PASS"
    } else {
        "FAIL"
    };
    let scenarios: Vec<Markup> = records
        .scenarios
        .iter()
        .enumerate()
        .map(|(i, s)| scenario(i, s, assets))
        .collect();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Tailor run " (info.run_id) ": " (passed) " passed, " (failed) " failed" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Tailor run " (info.run_id) }
                p {
                    span class={ "badge " (overall) } { (verdict) } " "
                    (passed) " passed, " (failed) " failed, " (retried) " retried; wall time "
                    (duration(info.wall)) "; started " (utc(info.started))
                }
                @if info.interrupted {
                    p { strong { "The run was interrupted" } ": scenarios that were still running are marked as such." }
                }
                (index(records))
                (slowest(records))
                @for s in &scenarios { (s) }
                p.muted {
                    "Each step's screen is taken through QEMU's observer monitor as the report writer \
                     sees the step end (the next step may have begun; the last step of a scenario is \
                     waited for, and a VM's last screen is kept when a step replaces the VM). Passing \
                     scenarios keep thumbnails only; failed ones keep full-size screens."
                }
            }
        }
    }
}

/// The table of scenarios, each linking to its first failed step.
fn index(records: &Records) -> Markup {
    if records.scenarios.is_empty() {
        return html! { p { "No scenario ran." } };
    }
    html! {
        h2 { "Scenarios" }
        table.index {
            tr { th { "result" } th { "scenario" } th { "feature" } th { "where" } th { "attempt" } th { "time" } }
            @for (i, s) in records.scenarios.iter().enumerate() {
                @let target = match s.steps.iter().position(|st| st.status != Status::Passed) {
                    Some(j) => format!("#s{i}-{}", j + 1),
                    None => format!("#s{i}"),
                };
                tr class=(scenario_class(s)) {
                    td { span class={ "badge " (scenario_class(s)) } { (scenario_label(s)) } }
                    td { a href=(target) { (s.name) } }
                    td { (s.feature) }
                    td { (short_path(&s.file)) ":" (s.line) }
                    td.num { (s.attempt) }
                    td.num { (duration(s.duration)) }
                }
            }
        }
    }
}

/// The five slowest steps of the run.
fn slowest(records: &Records) -> Markup {
    let positions: BTreeMap<*const StepRecord, String> = records
        .scenarios
        .iter()
        .enumerate()
        .flat_map(|(i, s)| {
            s.steps
                .iter()
                .enumerate()
                .map(move |(j, st)| (st as *const StepRecord, format!("#s{i}-{}", j + 1)))
        })
        .collect();
    let steps = records.slowest_steps();
    if steps.is_empty() {
        return html! {};
    }
    html! {
        h2 { "Slowest steps" }
        table {
            tr { th { "time" } th { "step" } th { "scenario" } }
            @for (sc, st) in steps.into_iter().take(5) {
                tr {
                    td.num { (duration(st.duration)) }
                    td { a href=(positions.get(&(st as *const StepRecord)).cloned().unwrap_or_default()) { (st.text) } }
                    td { (sc.name) }
                }
            }
        }
    }
}

fn scenario(i: usize, s: &ScenarioRecord, assets: &mut Assets) -> Markup {
    let class = scenario_class(s);
    let artifacts = s.dir.as_deref().map(|dir| artifacts(dir, assets));
    let steps: Vec<Markup> = s
        .steps
        .iter()
        .enumerate()
        .map(|(j, step)| step_rows(i, j + 1, step, assets))
        .collect();
    let after: Vec<Markup> = s
        .evidence
        .iter()
        .map(|e| match e {
            Evidence::ScreenWait(w) => screen_wait(w, None, "after", assets),
            Evidence::Traffic(v) => traffic(v),
        })
        .collect();
    html! {
        section class={ "scenario " (class) } id={ "s" (i) } {
            h2 { span class={ "badge " (class) } { (scenario_label(s)) } " " (s.name) }
            p {
                "Feature: " (s.feature) "; " (short_path(&s.file)) ":" (s.line)
                "; attempt " (s.attempt) "; " (duration(s.duration))
            }
            @if let Some(command) = &s.rerun {
                p { "Run it again: " code.rerun { (command) } }
            }
            @if let Some(a) = artifacts { (a) }
            @if let Some(e) = &s.hook_error { pre.error { (e) } }
            @if s.interrupted {
                p { strong { "Interrupted" } " while this scenario ran." }
            }
            @if !steps.is_empty() {
                table.steps {
                    tr {
                        th.n { "#" } th { "step" } th.t { "started" } th.t { "took" }
                        th.screen { "screen after the step" }
                    }
                    @for row in &steps { (row) }
                }
            }
            @if !after.is_empty() {
                h3 { "After the last step" }
                @for e in &after { (e) }
            }
        }
    }
}

/// Links to the files in the scenario's folder.
fn artifacts(dir: &Path, assets: &mut Assets) -> Markup {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return html! {};
    };
    let mut files: Vec<(String, PathBuf, u64)> = entries
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    e.path(),
                    meta.len(),
                )
            })
        })
        .collect();
    if files.is_empty() {
        return html! {};
    }
    files.sort();
    let links: Vec<(String, Option<String>, u64)> = files
        .into_iter()
        .map(|(name, path, size)| (name, assets.link(&path), size))
        .collect();
    let folder = assets.relative(dir);
    html! {
        p {
            "Artifacts: "
            @for (k, (name, link, size)) in links.iter().enumerate() {
                @if k > 0 { ", " }
                @if let Some(u) = link {
                    a href=(u) { (name) } " " span.muted { "(" (size_text(*size)) ")" }
                } @else {
                    (name)
                }
            }
            @if let Some(rel) = folder {
                " " span.muted { "in " (rel.display()) "/" }
            }
        }
    }
}

/// A step's row, and a row under it for each traffic verdict (they are
/// wide).
fn step_rows(i: usize, n: usize, step: &StepRecord, assets: &mut Assets) -> Markup {
    let class = match step.status {
        Status::Passed => "passed",
        Status::Failed => "failed",
        Status::Skipped => "skipped",
    };
    let full = match &step.screen {
        Some(StepScreen::Shot(shot)) => shot.full.clone(),
        _ => None,
    };
    let waits: Vec<Markup> = step
        .evidence
        .iter()
        .enumerate()
        .filter_map(|(k, e)| match e {
            Evidence::ScreenWait(w) => Some(screen_wait(
                w,
                full.as_deref(),
                &format!("s{i}-{n}-{k}"),
                assets,
            )),
            Evidence::Traffic(_) => None,
        })
        .collect();
    let screen = screen(n, step, assets);
    html! {
        tr class=(class) id={ "s" (i) "-" (n) } {
            td.num { (n) }
            td {
                span class={ "badge " (class) } { (class.to_uppercase()) } " " (step.text)
                @if step.background { " " span.muted { "(background)" } }
                @if let Some(e) = &step.error { pre.error { (e) } }
                @for w in &waits { (w) }
            }
            td.num { "+" (duration(step.offset)) }
            td.num { (duration(step.duration)) }
            td.screen { (screen) }
        }
        @for e in &step.evidence {
            @if let Evidence::Traffic(v) = e {
                tr class=(class) { td {} td colspan="4" { (traffic(v)) } }
            }
        }
    }
}

/// The thumbnail of the screen after a step, with the boxes of its screen
/// waits, linking to the full screen where it was kept.
fn screen(n: usize, step: &StepRecord, assets: &mut Assets) -> Markup {
    let shot = match &step.screen {
        None if step.status == Status::Skipped => return html! { span.nothumb { "not run" } },
        None => return html! { span.nothumb { "no computer running" } },
        Some(StepScreen::Missing(why)) => return html! { span.nothumb { "no screenshot: " (why) } },
        Some(StepScreen::Shot(shot)) => shot,
    };
    let Some(thumb) = assets.link(&shot.thumb) else {
        return html! { span.nothumb { "screenshot file missing" } };
    };
    let target = shot
        .full
        .as_deref()
        .and_then(|f| assets.link(f))
        .unwrap_or_else(|| thumb.clone());
    let pct = |v: u32, of: u32| 100.0 * v as f64 / of.max(1) as f64;
    html! {
        a.shot href=(target) {
            img src=(thumb) alt={ "screen after step " (n) };
            @for e in &step.evidence {
                @if let Evidence::ScreenWait(w) = e {
                    @if let Some(r) = w.rect {
                        span class=(if w.matched { "box" } else { "box miss" })
                            title=(wait_caption(w))
                            style=(format!(
                                "left:{:.3}%;top:{:.3}%;width:{:.3}%;height:{:.3}%",
                                pct(r.x, shot.width),
                                pct(r.y, shot.height),
                                pct(r.w, shot.width),
                                pct(r.h, shot.height)
                            )) {}
                    }
                }
            }
        }
        @if shot.full.is_some() {
            br;
            span.muted { "click for the full screen" }
        }
    }
}

/// A screen wait: its caption, and for a miss the reference beside the
/// best candidate.
fn screen_wait(w: &ScreenWait, step_full: Option<&Path>, id: &str, assets: &mut Assets) -> Markup {
    let (mut reference, mut cut, mut failure) = (None, None, None);
    if !w.matched {
        reference = assets.link(&w.reference_png);
        // The candidate from the frame the matcher saw (the failure
        // picture starts with it), else from the step's screen.
        let source = w
            .failure_png
            .as_deref()
            .filter(|p| p.is_file())
            .or(step_full);
        if let (Some(source), Some(rect)) = (source, w.rect) {
            cut = assets
                .cut(source, rect, &format!("candidate-{id}"))
                .map(|u| (u, rect));
        }
        failure = w.failure_png.as_deref().and_then(|p| assets.link(p));
    }
    html! {
        div.wait {
            p.muted { (wait_caption(w)) }
            @if let Some(reference) = reference {
                figure {
                    img src=(reference) alt={ "reference " (w.reference) };
                    figcaption { "reference " (w.reference) " (needs " (format!("{:.3}", w.threshold)) ")" }
                }
            }
            @if let Some((cut, rect)) = cut {
                figure {
                    img src=(cut) alt={ "best candidate for " (w.reference) };
                    figcaption {
                        "best candidate at " (rect)
                        @if let Some(score) = w.score { ", score " (format!("{score:.3}")) }
                    }
                }
            }
            @if let Some(fail) = failure {
                p { a href=(fail) { "the last screen with the best candidate boxed" } }
            }
        }
    }
}

/// A traffic check's verdict with every flow of its capture.
fn traffic(v: &TrafficVerdict) -> Markup {
    let offences = v.flows.iter().filter(|f| f.offence).count() + v.other_offences.len();
    let class = if v.passed { "passed" } else { "failed" };
    html! {
        div.verdict {
            h3 {
                span class={ "badge " (class) } { (if v.passed { "PASS" } else { "FAIL" }) }
                " traffic check: " (v.check)
            }
            p.muted {
                (v.packets) " packets in " (v.flows.len() + v.flows_omitted) " flows; "
                (offences) " offence(s); capture " (v.capture)
            }
            @if !v.other_offences.is_empty() {
                ul { @for o in &v.other_offences { li { (o) } } }
            }
            @if !v.flows.is_empty() {
                div.scroll {
                    table.flows {
                        tr {
                            th { "protocol" } th { "source" } th { "destination" } th { "port" }
                            th { "first packet" } th { "packets" } th { "bytes" } th { "class" }
                            th { "verdict" } th { "DNS names" }
                        }
                        @for f in &v.flows {
                            tr class=(if f.offence { "offence" } else { "ok" }) {
                                td { (f.protocol) }
                                td {
                                    (f.src)
                                    @if let Some(p) = f.src_port { ":" (p) }
                                }
                                td { (f.dst) }
                                td.num { @if let Some(p) = f.dst_port { (p) } }
                                td { (f.first) " " span.muted { "(+" (format!("{:.3}", f.offset)) " s)" } }
                                td.num { (f.packets) }
                                td.num { (f.bytes) }
                                td { (f.class) }
                                td { (if f.offence { "LEAK" } else { "ok" }) }
                                td { (f.dns_names.join(", ")) }
                            }
                        }
                    }
                }
            }
            @if v.flows_omitted > 0 {
                p.muted {
                    (v.flows_omitted)
                    " more flows not shown (none of them an offence); the capture has them all."
                }
            }
            details { summary { "verdict as text" } pre { (v.text) } }
        }
    }
}

fn wait_caption(w: &ScreenWait) -> String {
    let score = w
        .score
        .map(|s| format!(" scoring {s:.3}"))
        .unwrap_or_default();
    match (w.matched, w.rect) {
        (true, Some(r)) => format!(
            "{} on screen at {r}{score} (needs {:.3})",
            w.reference, w.threshold
        ),
        (true, None) => format!("{} on screen{score}", w.reference),
        (false, Some(r)) => format!(
            "{} not on screen: best candidate at {r}{score} (needs {:.3})",
            w.reference, w.threshold
        ),
        (false, None) => format!("{} not on screen", w.reference),
    }
}

fn scenario_class(s: &ScenarioRecord) -> &'static str {
    if s.failed() {
        "failed"
    } else {
        "passed"
    }
}

fn scenario_label(s: &ScenarioRecord) -> &'static str {
    if s.interrupted {
        "INTERRUPTED"
    } else if s.failed() {
        "FAIL"
    } else {
        "PASS"
    }
}

/// The feature file's path from `features/` on, when it has one.
fn short_path(file: &str) -> String {
    match file.rfind("/features/") {
        Some(i) => file[i + 1..].to_owned(),
        None => file.to_owned(),
    }
}

fn size_text(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.0} KB", b as f64 / 1024.0),
        b => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_run_is_escaped() {
        let markup = "<script>alert(\"x\")</script> & 'y'";
        let records = Records {
            scenarios: vec![ScenarioRecord {
                feature: markup.into(),
                name: markup.into(),
                file: "features/a.feature".into(),
                line: 3,
                attempt: 1,
                duration: Duration::ZERO,
                steps: vec![],
                dir: None,
                hook_error: Some(markup.into()),
                evidence: vec![],
                interrupted: false,
                rerun: Some(format!("tailor run {markup}")),
            }],
        };
        let info = RunInfo {
            run_id: markup.into(),
            started: SystemTime::UNIX_EPOCH,
            wall: Duration::ZERO,
            interrupted: false,
        };
        let run = tempfile::tempdir().unwrap();
        let mut assets = Assets {
            run_dir: run.path().to_owned(),
            copied: BTreeMap::new(),
            next: 0,
        };
        let page = page(&info, &records, &mut assets).into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; 'y'"),
            "{page}"
        );
        assert!(page.contains("started 1970-01-01 00:00:00 UTC"), "{page}");
    }

    #[test]
    fn urls_are_percent_encoded_per_component() {
        assert_eq!(url(Path::new("a b/#1?.png")), "a%20b/%231%3F.png");
        assert_eq!(url(Path::new("steps/01-thumb.png")), "steps/01-thumb.png");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_millis(850)), "850 ms");
        assert_eq!(duration(Duration::from_millis(12_340)), "12.3 s");
        assert_eq!(duration(Duration::from_secs(245)), "4 min 05 s");
    }

    #[test]
    fn files_outside_the_run_folder_are_copied_in() {
        let run = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let inside = run.path().join("sc/serial.log");
        std::fs::create_dir_all(inside.parent().unwrap()).unwrap();
        std::fs::write(&inside, "x").unwrap();
        let outside = elsewhere.path().join("ref one.png");
        std::fs::write(&outside, "png").unwrap();
        let mut assets = Assets {
            run_dir: run.path().to_owned(),
            copied: BTreeMap::new(),
            next: 0,
        };
        assert_eq!(assets.link(&inside).as_deref(), Some("sc/serial.log"));
        let copy = assets.link(&outside).unwrap();
        assert_eq!(copy, "report-files/001-ref%20one.png");
        assert!(run.path().join("report-files/001-ref one.png").is_file());
        assert_eq!(assets.link(&outside).unwrap(), copy, "copied once");
        assert_eq!(assets.link(&run.path().join("nope.png")), None);
    }
}
