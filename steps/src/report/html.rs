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
//! screens. All text is escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

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
    let mut page = Page {
        assets: Assets {
            run_dir: run_dir.clone(),
            copied: BTreeMap::new(),
            next: 0,
        },
        out: String::new(),
    };
    page.render(info, records);
    let path = run_dir.join(INDEX);
    std::fs::write(&path, page.out)?;
    Ok(path)
}

/// Text for HTML (element content and quoted attribute values).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A relative path as a URL path: each byte outside the unreserved set
/// percent-encoded, `/` between components.
fn url(rel: &Path) -> String {
    let mut out = String::new();
    for (i, part) in rel.components().enumerate() {
        if i > 0 {
            out.push('/');
        }
        let text = part.as_os_str().to_string_lossy();
        for b in text.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                out.push(b as char);
            } else {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
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

struct Page {
    assets: Assets,
    out: String,
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
";

impl Page {
    fn push(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn render(&mut self, info: &RunInfo, records: &Records) {
        let failed = records.final_outcomes().filter(|s| s.failed()).count();
        let passed = records.final_outcomes().count() - failed;
        let retried = records.scenarios.iter().filter(|s| s.attempt > 1).count();
        let _ = write!(
            self.out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>Tailor run {id}: {passed} passed, {failed} failed</title>\
             <style>{STYLE}</style></head><body>\n\
             <h1>Tailor run {id}</h1>\n<p><span class=\"badge {overall}\">{verdict}</span> \
             {passed} passed, {failed} failed, {retried} retried; wall time {wall}; started {start}</p>\n",
            id = esc(&info.run_id),
            overall = if failed == 0 && !info.interrupted { "passed" } else { "failed" },
            verdict = if info.interrupted {
                "INTERRUPTED"
            } else if failed == 0 {
                "PASS"
            } else {
                "FAIL"
            },
            wall = duration(info.wall),
            start = utc(info.started),
        );
        if info.interrupted {
            self.push("<p><strong>The run was interrupted</strong>: scenarios that were still running are marked as such.</p>\n");
        }
        self.index(records);
        self.slowest(records);
        for (i, scenario) in records.scenarios.iter().enumerate() {
            self.scenario(i, scenario);
        }
        self.push(
            "<p class=\"muted\">Each step's screen is taken through QEMU's observer monitor as the \
             report writer sees the step end (the next step may have begun; the last step of a \
             scenario is waited for, and a VM's last screen is kept when a step replaces the VM). Passing scenarios keep thumbnails only; failed ones keep \
             full-size screens.</p>\n</body></html>\n",
        );
    }

    fn index(&mut self, records: &Records) {
        if records.scenarios.is_empty() {
            self.push("<p>No scenario ran.</p>\n");
            return;
        }
        self.push("<h2>Scenarios</h2>\n<table class=\"index\"><tr><th>result</th><th>scenario</th><th>feature</th><th>where</th><th>attempt</th><th>time</th></tr>\n");
        for (i, s) in records.scenarios.iter().enumerate() {
            let target = match s.steps.iter().position(|st| st.status != Status::Passed) {
                Some(j) => format!("s{i}-{}", j + 1),
                None => format!("s{i}"),
            };
            let _ = writeln!(
                self.out,
                "<tr class=\"{class}\"><td><span class=\"badge {class}\">{label}</span></td>\
                 <td><a href=\"#{target}\">{name}</a></td><td>{feature}</td><td>{file}:{line}</td>\
                 <td class=\"num\">{attempt}</td><td class=\"num\">{time}</td></tr>",
                class = scenario_class(s),
                label = scenario_label(s),
                name = esc(&s.name),
                feature = esc(&s.feature),
                file = esc(&short_path(&s.file)),
                line = s.line,
                attempt = s.attempt,
                time = duration(s.duration),
            );
        }
        self.push("</table>\n");
    }

    fn slowest(&mut self, records: &Records) {
        let positions: BTreeMap<*const StepRecord, String> = records
            .scenarios
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.steps
                    .iter()
                    .enumerate()
                    .map(move |(j, st)| (st as *const StepRecord, format!("s{i}-{}", j + 1)))
            })
            .collect();
        let steps = records.slowest_steps();
        if steps.is_empty() {
            return;
        }
        self.push(
            "<h2>Slowest steps</h2>\n<table><tr><th>time</th><th>step</th><th>scenario</th></tr>\n",
        );
        for (sc, st) in steps.into_iter().take(5) {
            let anchor = positions
                .get(&(st as *const StepRecord))
                .cloned()
                .unwrap_or_default();
            let _ = writeln!(
                self.out,
                "<tr><td class=\"num\">{}</td><td><a href=\"#{anchor}\">{}</a></td><td>{}</td></tr>",
                duration(st.duration),
                esc(&st.text),
                esc(&sc.name),
            );
        }
        self.push("</table>\n");
    }

    fn scenario(&mut self, i: usize, s: &ScenarioRecord) {
        let _ = write!(
            self.out,
            "<section class=\"scenario {class}\" id=\"s{i}\">\n<h2><span class=\"badge {class}\">{label}</span> {name}</h2>\n\
             <p>Feature: {feature}; {file}:{line}; attempt {attempt}; {time}</p>\n",
            class = scenario_class(s),
            label = scenario_label(s),
            name = esc(&s.name),
            feature = esc(&s.feature),
            file = esc(&short_path(&s.file)),
            line = s.line,
            attempt = s.attempt,
            time = duration(s.duration),
        );
        if let Some(dir) = &s.dir {
            self.artifacts(dir);
        }
        if let Some(e) = &s.hook_error {
            let _ = writeln!(self.out, "<pre class=\"error\">{}</pre>", esc(e));
        }
        if s.interrupted {
            self.push("<p><strong>Interrupted</strong> while this scenario ran.</p>\n");
        }
        if !s.steps.is_empty() {
            self.push("<table class=\"steps\"><tr><th class=\"n\">#</th><th>step</th><th class=\"t\">started</th><th class=\"t\">took</th><th class=\"screen\">screen after the step</th></tr>\n");
            for (j, step) in s.steps.iter().enumerate() {
                self.step(i, j + 1, step);
            }
            self.push("</table>\n");
        }
        if !s.evidence.is_empty() {
            self.push("<h3>After the last step</h3>\n");
            for e in &s.evidence {
                self.evidence(e, None, "after");
            }
        }
        self.push("</section>\n");
    }

    /// Links to the files in the scenario's folder.
    fn artifacts(&mut self, dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
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
            return;
        }
        files.sort();
        self.push("<p>Artifacts: ");
        for (k, (name, path, size)) in files.iter().enumerate() {
            if k > 0 {
                self.push(", ");
            }
            match self.assets.link(path) {
                Some(u) => {
                    let _ = write!(
                        self.out,
                        "<a href=\"{u}\">{}</a> <span class=\"muted\">({})</span>",
                        esc(name),
                        size_text(*size)
                    );
                }
                None => self.push(&esc(name)),
            }
        }
        if let Some(rel) = self.assets.relative(dir) {
            let _ = write!(
                self.out,
                " <span class=\"muted\">in {}/</span>",
                esc(&rel.display().to_string())
            );
        }
        self.push("</p>\n");
    }

    fn step(&mut self, i: usize, n: usize, step: &StepRecord) {
        let class = match step.status {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        };
        let _ = write!(
            self.out,
            "<tr class=\"{class}\" id=\"s{i}-{n}\"><td class=\"num\">{n}</td><td><span class=\"badge {class}\">{label}</span> {text}{bg}",
            label = class.to_uppercase(),
            text = esc(&step.text),
            bg = if step.background {
                " <span class=\"muted\">(background)</span>"
            } else {
                ""
            },
        );
        if let Some(e) = &step.error {
            let _ = write!(self.out, "<pre class=\"error\">{}</pre>", esc(e));
        }
        let full = match &step.screen {
            Some(StepScreen::Shot(shot)) => shot.full.clone(),
            _ => None,
        };
        for (k, e) in step.evidence.iter().enumerate() {
            if let Evidence::ScreenWait(w) = e {
                self.screen_wait(w, full.as_deref(), &format!("s{i}-{n}-{k}"));
            }
        }
        let _ = write!(
            self.out,
            "</td><td class=\"num\">+{}</td><td class=\"num\">{}</td><td class=\"screen\">",
            duration(step.offset),
            duration(step.duration)
        );
        self.screen(n, step);
        self.push("</td></tr>\n");
        // Verdict tables are wide: a row of their own, under the step.
        for e in &step.evidence {
            if let Evidence::Traffic(v) = e {
                let _ = write!(
                    self.out,
                    "<tr class=\"{class}\"><td></td><td colspan=\"4\">"
                );
                self.traffic(v);
                self.push("</td></tr>\n");
            }
        }
    }

    fn screen(&mut self, n: usize, step: &StepRecord) {
        let shot = match &step.screen {
            None if step.status == Status::Skipped => {
                self.push("<span class=\"nothumb\">not run</span>");
                return;
            }
            None => {
                self.push("<span class=\"nothumb\">no computer running</span>");
                return;
            }
            Some(StepScreen::Missing(why)) => {
                let _ = write!(
                    self.out,
                    "<span class=\"nothumb\">no screenshot: {}</span>",
                    esc(why)
                );
                return;
            }
            Some(StepScreen::Shot(shot)) => shot,
        };
        let Some(thumb) = self.assets.link(&shot.thumb) else {
            self.push("<span class=\"nothumb\">screenshot file missing</span>");
            return;
        };
        let target = shot
            .full
            .as_deref()
            .and_then(|f| self.assets.link(f))
            .unwrap_or_else(|| thumb.clone());
        let _ = write!(
            self.out,
            "<a class=\"shot\" href=\"{target}\"><img src=\"{thumb}\" alt=\"screen after step {n}\">"
        );
        for e in &step.evidence {
            if let Evidence::ScreenWait(w) = e {
                if let Some(r) = w.rect {
                    let pct = |v: u32, of: u32| 100.0 * v as f64 / of.max(1) as f64;
                    let _ = write!(
                        self.out,
                        "<span class=\"box{miss}\" title=\"{title}\" style=\"left:{l:.3}%;top:{t:.3}%;width:{w:.3}%;height:{h:.3}%\"></span>",
                        miss = if w.matched { "" } else { " miss" },
                        title = esc(&wait_caption(w)),
                        l = pct(r.x, shot.width),
                        t = pct(r.y, shot.height),
                        w = pct(r.w, shot.width),
                        h = pct(r.h, shot.height),
                    );
                }
            }
        }
        self.push("</a>");
        if shot.full.is_some() {
            self.push("<br><span class=\"muted\">click for the full screen</span>");
        }
    }

    fn evidence(&mut self, e: &Evidence, step_full: Option<&Path>, id: &str) {
        match e {
            Evidence::ScreenWait(w) => self.screen_wait(w, step_full, id),
            Evidence::Traffic(v) => self.traffic(v),
        }
    }

    fn screen_wait(&mut self, w: &ScreenWait, step_full: Option<&Path>, id: &str) {
        let _ = write!(
            self.out,
            "<div class=\"wait\"><p class=\"muted\">{}</p>",
            esc(&wait_caption(w))
        );
        if !w.matched {
            if let Some(reference) = self.assets.link(&w.reference_png) {
                let _ = write!(
                    self.out,
                    "<figure><img src=\"{reference}\" alt=\"reference {name}\"><figcaption>reference {name} (needs {t:.3})</figcaption></figure>",
                    name = esc(&w.reference),
                    t = w.threshold
                );
            }
            // The candidate from the frame the matcher saw (the failure
            // picture starts with it), else from the step's screen.
            let source = w
                .failure_png
                .as_deref()
                .filter(|p| p.is_file())
                .or(step_full);
            if let (Some(source), Some(rect)) = (source, w.rect) {
                if let Some(cut) = self.assets.cut(source, rect, &format!("candidate-{id}")) {
                    let _ = write!(
                        self.out,
                        "<figure><img src=\"{cut}\" alt=\"best candidate for {name}\"><figcaption>best candidate at {rect}{score}</figcaption></figure>",
                        name = esc(&w.reference),
                        rect = esc(&rect.to_string()),
                        score = w
                            .score
                            .map(|s| format!(", score {s:.3}"))
                            .unwrap_or_default(),
                    );
                }
            }
            if let Some(fail) = w.failure_png.as_deref().and_then(|p| self.assets.link(p)) {
                let _ = write!(
                    self.out,
                    "<p><a href=\"{fail}\">the last screen with the best candidate boxed</a></p>"
                );
            }
        }
        self.push("</div>");
    }

    fn traffic(&mut self, v: &TrafficVerdict) {
        let offences = v.flows.iter().filter(|f| f.offence).count() + v.other_offences.len();
        let _ = write!(
            self.out,
            "<div class=\"verdict\"><h3><span class=\"badge {class}\">{label}</span> traffic check: {check}</h3>\
             <p class=\"muted\">{packets} packets in {flows} flows; {offences} offence(s); capture {capture}</p>",
            class = if v.passed { "passed" } else { "failed" },
            label = if v.passed { "PASS" } else { "FAIL" },
            check = esc(&v.check),
            packets = v.packets,
            flows = v.flows.len() + v.flows_omitted,
            capture = esc(&v.capture),
        );
        if !v.other_offences.is_empty() {
            self.push("<ul>");
            for o in &v.other_offences {
                let _ = write!(self.out, "<li>{}</li>", esc(o));
            }
            self.push("</ul>");
        }
        if !v.flows.is_empty() {
            self.push("<div class=\"scroll\"><table class=\"flows\"><tr><th>protocol</th><th>source</th><th>destination</th><th>port</th><th>first packet</th><th>packets</th><th>bytes</th><th>class</th><th>verdict</th><th>DNS names</th></tr>");
            for f in &v.flows {
                let src = match f.src_port {
                    Some(p) => format!("{}:{p}", f.src),
                    None => f.src.clone(),
                };
                let _ = write!(
                    self.out,
                    "<tr class=\"{row}\"><td>{proto}</td><td>{src}</td><td>{dst}</td><td class=\"num\">{port}</td>\
                     <td>{first} <span class=\"muted\">(+{offset:.3} s)</span></td><td class=\"num\">{packets}</td><td class=\"num\">{bytes}</td>\
                     <td>{class}</td><td>{verdict}</td><td>{dns}</td></tr>",
                    row = if f.offence { "offence" } else { "ok" },
                    proto = esc(&f.protocol),
                    src = esc(&src),
                    dst = esc(&f.dst),
                    port = f.dst_port.map(|p| p.to_string()).unwrap_or_default(),
                    first = esc(&f.first),
                    offset = f.offset,
                    packets = f.packets,
                    bytes = f.bytes,
                    class = esc(&f.class),
                    verdict = if f.offence { "LEAK" } else { "ok" },
                    dns = esc(&f.dns_names.join(", ")),
                );
            }
            self.push("</table></div>");
        }
        if v.flows_omitted > 0 {
            let _ = write!(
                self.out,
                "<p class=\"muted\">{} more flows not shown (none of them an offence); the capture has them all.</p>",
                v.flows_omitted
            );
        }
        let _ = write!(
            self.out,
            "<details><summary>verdict as text</summary><pre>{}</pre></details></div>",
            esc(&v.text)
        );
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
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
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
