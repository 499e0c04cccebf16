//! The run report in a real browser. Headless Chromium, in a network
//! namespace of its own (no route anywhere, so it cannot reach the network
//! whatever the page says), opens `index.html` from disk; a copy of the
//! page with a small checking script added says whether every image
//! loaded. Chromium is required: without it these tests fail and say how
//! to install it (`scripts/setup-host.sh` does).
//!
//! No VM is needed except for the last test (`--features vm`): the report
//! of a synthetic run (real PNGs, a real capture's verdict) and of a run of
//! a feature whose step fails without a computer.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use harness::net::analysis::{self, Format, Timestamp};
use harness::net::policy::Policy;
use harness::net::synth;
use image::{Rgb, RgbImage};
use steps::report::evidence::{Evidence, Rect, ScreenWait, TrafficVerdict};
use steps::report::html::{self, RunInfo};
use steps::report::{save_shot, Records, ScenarioRecord, Status, StepRecord, StepScreen};

/// A feature run uses process-wide state (the run's settings, the
/// evidence journal): one at a time in this test binary.
static ONE_RUN_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const INSTALL_HINT: &str = "Chromium is needed to check the HTML report in a real browser: \
     install it with `apt-get install chromium` (scripts/setup-host.sh installs it)";

fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{INSTALL_HINT}; `chromium` is not on PATH"))
}

/// What Chromium made of a page.
struct Loaded {
    /// The DOM after the load event.
    dom: String,
    /// Chromium's log (console messages included).
    log: String,
}

/// Injected into a copy of the page (beside it, so relative URLs resolve
/// the same): after the load event, mark the body with the images that
/// did not load.
const CHECKER: &str = "<script>window.addEventListener('load',()=>{\
const bad=[...document.images].filter(i=>!(i.complete&&i.naturalWidth>0)).map(i=>i.getAttribute('src'));\
document.body.setAttribute('data-broken',bad.join(' '));\
document.body.setAttribute('data-checked','yes');});</script>";

/// Open `page` in headless Chromium without any network, and check that
/// it loaded: the load event came, every image decoded, no script error
/// or failed load was logged, and no link or image points off the disk.
fn check_page(page: &Path) -> Result<Loaded, String> {
    let html = std::fs::read_to_string(page).map_err(|e| format!("{}: {e}", page.display()))?;
    for attr in ["src=\"", "href=\""] {
        for value in html.split(attr).skip(1).filter_map(|r| r.split('"').next()) {
            if value.contains("://") || value.starts_with("//") {
                return Err(format!(
                    "{} points off the disk: {attr}{value}",
                    page.display()
                ));
            }
        }
    }
    let dir = page.parent().expect("a page in a folder");
    let copy = dir.join(".chromium-check.html");
    let checked = match html.rfind("</body>") {
        Some(i) => format!("{}{CHECKER}{}", &html[..i], &html[i..]),
        None => format!("{html}{CHECKER}"),
    };
    std::fs::write(&copy, checked).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}", copy.display());
    let mut cmd = Command::new("unshare");
    // A fresh network namespace: only a loopback that is down.
    if nix::unistd::geteuid().is_root() {
        cmd.arg("--net");
    } else {
        cmd.args(["--map-root-user", "--net"]);
    }
    cmd.arg(chromium()).args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--enable-logging=stderr",
        "--log-level=0",
        "--v=0",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", &url]);
    let out = cmd.output().map_err(|e| format!("running {cmd:?}: {e}"))?;
    let _ = std::fs::remove_file(&copy);
    let loaded = Loaded {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    if !out.status.success() {
        return Err(format!("Chromium failed ({}):\n{}", out.status, loaded.log));
    }
    if !loaded.dom.contains("data-checked=\"yes\"") {
        return Err(format!(
            "the page did not finish loading in Chromium (no load event); log:\n{}",
            loaded.log
        ));
    }
    let broken = loaded
        .dom
        .split("data-broken=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("?");
    if !broken.is_empty() {
        return Err(format!("images that did not load in Chromium: {broken}"));
    }
    for bad in ["Uncaught", "Failed to load resource", "net::ERR_"] {
        if let Some(line) = loaded.log.lines().find(|l| l.contains(bad)) {
            return Err(format!("Chromium logged `{bad}`: {line}"));
        }
    }
    Ok(loaded)
}

/// `src` values of the `<img>` elements of `html`.
fn image_sources(html: &str) -> Vec<String> {
    html.split("<img ")
        .skip(1)
        .filter_map(|tag| tag.split("src=\"").nth(1)?.split('"').next())
        .map(str::to_owned)
        .collect()
}

fn screen(seed: u8) -> RgbImage {
    RgbImage::from_fn(640, 400, |x, y| {
        Rgb([(x / 3) as u8 ^ seed, (y / 2) as u8, seed.wrapping_mul(40)])
    })
}

fn step(text: &str, status: Status, screen: Option<StepScreen>) -> StepRecord {
    StepRecord {
        text: text.into(),
        background: false,
        offset: Duration::from_millis(100),
        duration: Duration::from_millis(1500),
        status,
        error: None,
        screen,
        evidence: vec![],
    }
}

fn scenario(name: &str, dir: &Path, steps: Vec<StepRecord>) -> ScenarioRecord {
    ScenarioRecord {
        feature: "Reports".into(),
        name: name.into(),
        file: "features/report.feature".into(),
        line: 3,
        attempt: 1,
        duration: Duration::from_secs(4),
        steps,
        dir: Some(dir.to_owned()),
        hook_error: None,
        evidence: vec![],
        interrupted: false,
        rerun: None,
    }
}

/// The error text of the synthetic failed step: markup in it must come out
/// as text.
const FAILURE: &str = "screen showing <greeter> did not happen: best was greeter scoring 0.412 \
    (needs 0.950) at 200x80+300+150 & \"more\"";

/// A run with a passing scenario (a matched reference) and a failing one
/// (a screen wait that timed out, a DNS leak in the capture).
fn synthetic_run(run_dir: &Path, references: &Path) -> Records {
    // The passing scenario: thumbnails only, a match drawn as a box.
    let passing = run_dir.join("passing-line3");
    let mut shot = save_shot(&screen(1), &passing.join("steps"), 1).unwrap();
    std::fs::remove_file(shot.full.take().unwrap()).unwrap();
    let reference_png = references.join("greeter.png");
    let reference = image::imageops::crop_imm(&screen(2), 300, 150, 200, 80).to_image();
    reference.save(&reference_png).unwrap();
    let mut seen = step(
        "Then I see \"greeter\" within 30 seconds",
        Status::Passed,
        Some(StepScreen::Shot(shot)),
    );
    seen.evidence.push(Evidence::ScreenWait(ScreenWait {
        reference: "greeter".into(),
        reference_png: reference_png.clone(),
        matched: true,
        rect: Some(Rect::new(300, 150, 200, 80)),
        score: Some(0.991),
        threshold: 0.95,
        failure_png: None,
    }));
    let passing = scenario(
        "A greeter appears",
        &passing,
        vec![
            step(
                "Given a computer at checkpoint \"greeter\"",
                Status::Passed,
                None,
            ),
            seen,
        ],
    );

    // The failing scenario: full-size screens, the failure picture, logs.
    let failing_dir = run_dir.join("failing-line9");
    let first = save_shot(&screen(3), &failing_dir.join("steps"), 1).unwrap();
    let last = save_shot(&screen(4), &failing_dir.join("steps"), 2).unwrap();
    std::fs::write(failing_dir.join("serial.log"), "boot\nlogin:\n").unwrap();
    let failure_png = failing_dir.join("screen_showing_greeter-failed.png");
    screen(4).save(&failure_png).unwrap();
    let mut failed = step(
        "Then I see \"greeter\" within 30 seconds",
        Status::Failed,
        Some(StepScreen::Shot(last)),
    );
    failed.error = Some(FAILURE.into());
    failed.evidence.push(Evidence::ScreenWait(ScreenWait {
        reference: "greeter".into(),
        reference_png,
        matched: false,
        rect: Some(Rect::new(300, 150, 200, 80)),
        score: Some(0.412),
        threshold: 0.95,
        failure_png: Some(failure_png),
    }));
    let guest = synth::Station::new(
        "02:00:00:aa:bb:cc".parse().unwrap(),
        "02:00:00:00:00:01".parse().unwrap(),
    );
    let me = "10.203.0.57".parse().unwrap();
    let relay = ("10.203.0.1".parse().unwrap(), 5001);
    let frames = vec![
        (
            Timestamp::from_nanos(1_700_000_000_000_000_000),
            guest.tcp_syn((me, 40000), relay),
        ),
        (
            Timestamp::from_nanos(1_700_000_001_000_000_000),
            guest.dns_query(
                (me, 40001),
                ("10.203.0.1".parse().unwrap(), 53),
                &["leak.example"],
            ),
        ),
    ];
    let capture = analysis::analyse_bytes(&synth::capture(Format::Pcap, &frames)).unwrap();
    let policy = Policy::new(
        ["10.203.0.1:5001".parse().unwrap()],
        Some("10.203.0.1".parse().unwrap()),
    );
    let verdict = policy.no_dns(&capture);
    let mut traffic = step(
        "Then no DNS left the guest outside Tor",
        Status::Skipped,
        None,
    );
    traffic.evidence.push(Evidence::Traffic(TrafficVerdict::new(
        &verdict, &capture, &policy,
    )));
    let failing = scenario(
        "A greeter that never comes",
        &failing_dir,
        vec![
            step(
                "Given a computer at checkpoint \"lab-greeter\"",
                Status::Passed,
                Some(StepScreen::Shot(first)),
            ),
            failed,
            traffic,
        ],
    );
    Records {
        scenarios: vec![passing, failing],
    }
}

#[test]
fn report_of_a_failed_run_loads_in_chromium_and_shows_the_failure() {
    let run = tempfile::tempdir().unwrap();
    let references = tempfile::tempdir().unwrap();
    let records = synthetic_run(run.path(), references.path());
    let info = RunInfo {
        run_id: "20261125-120000-1".into(),
        started: SystemTime::now(),
        wall: Duration::from_secs(70),
        interrupted: false,
    };
    let page = html::write(run.path(), &info, &records).unwrap();
    assert_eq!(page, run.path().join("index.html"));
    let html = std::fs::read_to_string(&page).unwrap();

    let loaded = check_page(&page).unwrap_or_else(|e| panic!("{e}"));

    // Every image is a file inside the run folder.
    let sources = image_sources(&html);
    assert!(
        sources.len() >= 5,
        "three thumbnails, reference, candidate: {sources:?}"
    );
    for src in &sources {
        let file = run.path().join(src.replace("%20", " "));
        assert!(
            file.is_file(),
            "<img src=\"{src}\"> is not a file in the run folder"
        );
    }
    // The reference came from outside the run folder: it was copied in.
    assert!(
        sources
            .iter()
            .any(|s| s.starts_with("report-files/") && s.ends_with("greeter.png")),
        "{sources:?}"
    );

    // The failed step, with its error as text (not markup) and its screen.
    let dom = &loaded.dom;
    assert!(dom.contains("FAIL"), "{dom}");
    assert!(
        dom.contains("Then I see \"greeter\" within 30 seconds")
            || dom.contains("Then I see &quot;greeter&quot; within 30 seconds"),
        "the failed step's text: {dom}"
    );
    assert!(
        dom.contains("screen showing &lt;greeter&gt; did not happen"),
        "the error, escaped: {dom}"
    );
    assert!(
        !dom.contains("<greeter>"),
        "markup from an error must not become an element"
    );
    let failed_row = dom
        .split("<tr class=\"failed\" id=\"")
        .nth(1)
        .expect("a failed step row")
        .split("</tr>")
        .next()
        .unwrap();
    assert!(
        failed_row.contains("failing-line9/steps/02-thumb.png")
            && failed_row.contains("href=\"failing-line9/steps/02.png\""),
        "the failed step's thumbnail, linking its full screen: {failed_row}"
    );
    assert!(
        failed_row.contains("best candidate at") && failed_row.contains("reference greeter"),
        "the candidate next to the reference: {failed_row}"
    );
    // The matched reference is boxed on the passing step's thumbnail.
    assert!(dom.contains("class=\"box\""), "a match box: {dom}");
    assert!(dom.contains("class=\"box miss\""), "a candidate box: {dom}");
    // The traffic verdict names the leaking flow.
    assert!(
        dom.contains("leak.example") && dom.contains("LEAK"),
        "{dom}"
    );
    // The scenario's artifacts are linked.
    assert!(dom.contains("href=\"failing-line9/serial.log\""), "{dom}");
}

/// What the browser check says of a page made of `body`.
fn check_body(body: &str) -> Result<Loaded, String> {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("index.html");
    std::fs::write(
        &page,
        format!("<!DOCTYPE html><html><body>{body}</body></html>"),
    )
    .unwrap();
    check_page(&page)
}

#[test]
fn the_browser_check_catches_a_missing_image() {
    let err = check_body("<p>x</p><img src=\"steps/01-thumb.png\" alt=\"gone\">")
        .err()
        .expect("a page with a missing image passed the check");
    assert!(err.contains("steps/01-thumb.png"), "{err}");
}

#[test]
fn the_browser_check_catches_an_external_address() {
    let err = check_body("<a href=\"https://example.org/\">x</a>")
        .err()
        .expect("an external link was let through");
    assert!(err.contains("off the disk"), "{err}");
}

/// A real run through the runner: a feature whose step fails without a
/// computer. The report is written, names the step and its error, and
/// loads.
#[tokio::test]
async fn a_run_writes_its_report() {
    let _one = ONE_RUN_AT_A_TIME.lock().await;
    let root = tempfile::tempdir().unwrap();
    let features = root.path().join("features");
    std::fs::create_dir_all(&features).unwrap();
    std::fs::write(
        features.join("report.feature"),
        "Feature: Report\n\n  Scenario: Typing without a computer\n    When I type \"hello <b>\"\n",
    )
    .unwrap();
    let artifacts = root.path().join("artifacts");
    let args = steps::runner::RunArgs {
        features,
        artifacts: artifacts.clone(),
        ..steps::runner::RunArgs::in_project(root.path())
    };
    let (summary, records) = steps::runner::run_recorded(args).await.unwrap();
    assert_eq!((summary.passed, summary.failed), (0, 1), "{summary:?}");
    let run_dirs: Vec<PathBuf> = std::fs::read_dir(&artifacts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(run_dirs.len(), 1, "one run folder: {run_dirs:?}");
    let page = run_dirs[0].join("index.html");
    assert!(page.is_file(), "no report at {}", page.display());
    let step = &records.scenarios[0].steps[0];
    assert_eq!(step.status, Status::Failed);
    assert!(
        step.screen.is_none(),
        "no computer, no screenshot: {:?}",
        step.screen
    );
    let loaded = check_page(&page).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.dom.contains("When I type"), "{}", loaded.dom);
    assert!(loaded.dom.contains("hello &lt;b&gt;"), "{}", loaded.dom);
    assert!(
        loaded.dom.contains("no computer is running"),
        "{}",
        loaded.dom
    );
}

/// With a real VM: every step gets its screen, a passing scenario keeps
/// thumbnails only, a failing one its full screens, and the page loads.
#[cfg(feature = "vm")]
#[tokio::test]
async fn a_vm_run_has_a_screen_after_every_step() {
    let _one = ONE_RUN_AT_A_TIME.lock().await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("bash")
        .arg(root.join("tests/images/build-smoke-iso.sh"))
        .arg(root.join(".cache/smoke.iso"))
        .status()
        .unwrap();
    assert!(status.success(), "building the smoke ISO: {status}");
    let tmp = tempfile::tempdir().unwrap();
    let features = tmp.path().join("features");
    std::fs::create_dir_all(&features).unwrap();
    std::fs::write(
        features.join("screens.feature"),
        "Feature: Screens in the report\n\
         \n  Background:\n    Given a computer at checkpoint \"smoke-shell\"\n\
         \n  Scenario: Typed text shows up\n\
         \x20   When I type \"clear; echo 'Tailor: READY!' | tr R r\"\n\
         \x20   And I press \"Return\"\n\
         \x20   Then I see \"smoke-ready\" within 30 seconds\n\
         \n  Scenario: A screen that never comes\n\
         \x20   Then I see \"smoke-ready\" within 2 seconds\n\
         \n  Scenario: The step before a reboot keeps its screen\n\
         \x20   When I type \"clear; echo 'Tailor: READY!' | tr R r\"\n\
         \x20   And I press \"Return\"\n\
         \x20   Then I see \"smoke-ready\" within 30 seconds\n\
         \x20   Given the computer boots from \"smoke\"\n\
         \x20   Then the serial console shows \"TAILOR-SMOKE-SHELL\" within 90 seconds\n",
    )
    .unwrap();
    let artifacts = tmp.path().join("artifacts");
    let args = steps::runner::RunArgs {
        features,
        artifacts: artifacts.clone(),
        ..steps::runner::RunArgs::in_project(root)
    };
    let (summary, records) = steps::runner::run_recorded(args).await.unwrap();
    assert_eq!((summary.passed, summary.failed), (2, 1), "{summary:?}");
    let shots = |s: &ScenarioRecord| -> Vec<steps::report::Shot> {
        s.steps
            .iter()
            .map(|st| match &st.screen {
                Some(StepScreen::Shot(shot)) => shot.clone(),
                other => panic!(
                    "step `{}` of `{}` has no screen: {other:?}",
                    st.text, s.name
                ),
            })
            .collect()
    };
    let passing: Vec<_> = records.scenarios.iter().filter(|s| !s.failed()).collect();
    // The reboot scenario: the screen before the VM was replaced is kept.
    let lengths: Vec<usize> = passing.iter().map(|s| shots(s).len()).collect();
    // Every scenario ends with the judge step the runner appends.
    assert_eq!(
        lengths,
        [5, 7],
        "background, three steps and the judge; five and the judge"
    );
    for shot in passing.iter().flat_map(|s| shots(s)) {
        assert!(shot.thumb.is_file() && shot.full.is_none(), "{shot:?}");
    }
    // The shell's screen, up to the reboot (a new boot starts at 640x480).
    for shot in shots(passing[0]).iter().chain(&shots(passing[1])[..4]) {
        assert_eq!((shot.width, shot.height), (1024, 768), "{shot:?}");
    }
    let failing = records.scenarios.iter().find(|s| s.failed()).unwrap();
    let failing_shots = shots(failing);
    assert_eq!(failing_shots.len(), 2);
    for shot in &failing_shots {
        assert!(shot.full.as_ref().is_some_and(|f| f.is_file()), "{shot:?}");
    }
    let run_dir = std::fs::read_dir(&artifacts)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let loaded = check_page(&run_dir.join("index.html")).unwrap_or_else(|e| panic!("{e}"));
    let failed_row = loaded
        .dom
        .split("<tr class=\"failed\" id=\"")
        .nth(1)
        .expect("a failed step row")
        .split("</tr>")
        .next()
        .unwrap();
    assert!(
        failed_row.contains("smoke-ready") && failed_row.contains("steps/02-thumb.png"),
        "{failed_row}"
    );
}
