//! The reference derivative's greeter, drawn on the Linux framebuffer.
//!
//! Screens: a welcome screen with the derivative's title and two choices,
//! "Start" and "Additional settings"; the settings screen where an
//! administration password is typed; after Start, a progress screen that
//! runs the start script (`/etc/tailor/start`: MAC spoofing, firewall,
//! network, tor) and follows tor's bootstrap in its log until "Tor is ready".
//! A derivative with default bridges first asks how to connect to Tor
//! (directly, or through the default bridges), and the progress screen says
//! so when Tor cannot connect: see [`connection`]. The VPN variant follows
//! its VPN's state instead, also once connected: see [`online`].
//!
//! Keyboard: arrows or Tab move, Enter chooses, Escape goes back. Mouse (an
//! absolute pointer such as QEMU's usb-tablet): a click on a button chooses
//! it; the settings screen has Save and Back buttons for that.
//! Markers for the harness's serial log go to stderr (the init points it at
//! the console) prefixed `tailor-greeter:`.
//!
//! `greeter --snapshot OUT.ppm SCREEN` renders a screen to a file instead,
//! for looking at the design without booting.

mod canvas;
mod connection;
mod font;
mod online;
mod pointer;
mod sys;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use canvas::{Canvas, Rgb};
use font::Font;
use pointer::{Pointer, PointerEvent};
use sys::{Framebuffer, Key, Terminal};

const FONT: &str = "/usr/share/tailor/font.psf";
const BRANDING: &str = "/etc/tailor/branding";
const STATUS: &str = "/run/tailor/status";
const TOR_LOG: &str = "/var/log/tor/notices.log";
const TOR_READY: &str = "/run/tailor/tor-ready";
const START_SCRIPT: &str = "/etc/tailor/start";
/// One line per start of tor, naming how it connects (written by
/// `/etc/tailor/tor-connect`).
const CONNECTION_LOG: &str = "/run/tailor/connection";

struct Branding {
    title: String,
    background: Rgb,
    foreground: Rgb,
    accent: Rgb,
}

impl Branding {
    /// `KEY=value` lines written by the image builder; missing keys keep
    /// the defaults.
    fn load(path: &str) -> Branding {
        let mut b = Branding {
            title: "Tailor Live".into(),
            background: Rgb(0x1e, 0x1e, 0x2e),
            foreground: Rgb(0xf0, 0xf0, 0xf0),
            accent: Rgb(0x7d, 0x4c, 0xdb),
        };
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim() {
                "TITLE" => b.title = value.to_owned(),
                "BACKGROUND" => b.background = Rgb::parse(value).unwrap_or(b.background),
                "FOREGROUND" => b.foreground = Rgb::parse(value).unwrap_or(b.foreground),
                "ACCENT" => b.accent = Rgb::parse(value).unwrap_or(b.accent),
                _ => {}
            }
        }
        b
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Screen {
    Welcome {
        focus: usize,
        note: Option<String>,
    },
    Settings {
        password: String,
    },
    /// After Start, when there are default bridges to offer.
    Connection {
        focus: usize,
    },
    Progress {
        lines: Vec<String>,
        percent: u32,
        ready: bool,
        /// Why Tor could not connect, once the greeter gave up waiting.
        failure: Option<String>,
        /// The failure screen offers the default bridges.
        offer_default_bridges: bool,
        /// For a VPN derivative: its state, shown instead of Tor's.
        vpn: Option<online::Progress>,
    },
}

impl Screen {
    fn progress() -> Screen {
        Screen::Progress {
            lines: Vec::new(),
            percent: 0,
            ready: false,
            failure: None,
            offer_default_bridges: false,
            vpn: None,
        }
    }

    /// The progress screen of a VPN derivative.
    fn vpn_progress(lines: Vec<String>, vpn: online::Progress) -> Screen {
        Screen::Progress {
            lines,
            percent: vpn.percent,
            ready: vpn.ready,
            failure: None,
            offer_default_bridges: false,
            vpn: Some(vpn),
        }
    }
}

struct Ui {
    font: Font,
    branding: Branding,
    width: usize,
    height: usize,
}

const GREEN: Rgb = Rgb(0x3f, 0xc0, 0x5a);
const RED: Rgb = Rgb(0xf0, 0x5a, 0x4f);

/// A rectangle on the screen: x, y, width, height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Area(usize, usize, usize, usize);

impl Area {
    fn contains(&self, x: usize, y: usize) -> bool {
        x >= self.0 && x < self.0 + self.2 && y >= self.1 && y < self.1 + self.3
    }
}

/// What a key press or a click asks the current screen to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Move the focus to the other welcome button.
    Toggle,
    /// Put the focus on this welcome button.
    Focus(usize),
    /// The focused button, or Save on the settings screen.
    Choose,
    Back,
    Type(char),
    Erase,
}

fn key_action(key: Key) -> Action {
    match key {
        Key::Up | Key::Down | Key::Tab | Key::BackTab => Action::Toggle,
        Key::Enter => Action::Choose,
        Key::Escape => Action::Back,
        Key::Backspace => Action::Erase,
        Key::Char(ch) => Action::Type(ch),
    }
}

const WELCOME_BUTTONS_Y: [usize; 2] = [300, 400];
/// The failure screen's "Use the default bridges".
const FAILURE_BUTTON_Y: usize = 650;
const SETTINGS_SAVE_Y: usize = 450;
const SMALL_BUTTON_W: usize = 250;

impl Ui {
    /// A full-width button's area at height `y`.
    fn button_area(&self, y: usize) -> Area {
        let (w, h) = (520, 72);
        Area((self.width - w) / 2, y, w, h)
    }

    /// The settings screen's Save (left) and Back (right) buttons.
    fn settings_buttons(&self) -> [Area; 2] {
        let full = self.button_area(SETTINGS_SAVE_Y);
        [
            Area(full.0, full.1, SMALL_BUTTON_W, full.3),
            Area(
                full.0 + full.2 - SMALL_BUTTON_W,
                full.1,
                SMALL_BUTTON_W,
                full.3,
            ),
        ]
    }

    /// What a click at (x, y) does on `screen`, if it hits a button.
    fn click_actions(&self, screen: &Screen, x: usize, y: usize) -> Vec<Action> {
        match screen {
            Screen::Welcome { .. } | Screen::Connection { .. } => WELCOME_BUTTONS_Y
                .iter()
                .position(|&by| self.button_area(by).contains(x, y))
                .map(|i| vec![Action::Focus(i), Action::Choose])
                .unwrap_or_default(),
            Screen::Settings { .. } => {
                let [save, back] = self.settings_buttons();
                if save.contains(x, y) {
                    vec![Action::Choose]
                } else if back.contains(x, y) {
                    vec![Action::Back]
                } else {
                    Vec::new()
                }
            }
            Screen::Progress {
                failure: Some(_),
                offer_default_bridges: true,
                ..
            } if self.button_area(FAILURE_BUTTON_Y).contains(x, y) => vec![Action::Choose],
            Screen::Progress { .. } => Vec::new(),
        }
    }

    fn button(&self, c: &mut Canvas, y: usize, label: &str, focused: bool) {
        let Area(x, y, w, h) = self.button_area(y);
        self.button_in(c, Area(x, y, w, h), label, focused);
    }

    fn button_in(&self, c: &mut Canvas, Area(x, y, w, h): Area, label: &str, focused: bool) {
        if focused {
            c.fill_rect(x, y, w, h, self.branding.accent);
        }
        c.frame(x, y, w, h, 3, self.branding.foreground);
        let ty = y + (h - self.font.height) / 2;
        let tw = self.font.width * label.chars().count();
        c.text(
            &self.font,
            x + w.saturating_sub(tw) / 2,
            ty,
            label,
            1,
            self.branding.foreground,
        );
    }

    fn draw(&self, screen: &Screen) -> Canvas {
        let b = &self.branding;
        let mut c = Canvas::new(self.width, self.height, b.background);
        let f = &self.font;
        c.fill_rect(0, 0, self.width, 8, b.accent);
        c.text_centered(f, 80, &b.title, 2, b.foreground);
        match screen {
            Screen::Welcome { focus, note } => {
                c.text_centered(f, 200, "Welcome", 1, b.foreground);
                self.button(&mut c, WELCOME_BUTTONS_Y[0], "Start", *focus == 0);
                self.button(
                    &mut c,
                    WELCOME_BUTTONS_Y[1],
                    "Additional settings",
                    *focus == 1,
                );
                if let Some(note) = note {
                    c.text_centered(f, 520, note, 1, GREEN);
                }
                c.text_centered(
                    f,
                    690,
                    "Arrows/Tab: move   Enter or click: choose",
                    1,
                    b.foreground,
                );
            }
            Screen::Settings { password } => {
                c.text_centered(f, 200, "Additional settings", 1, b.foreground);
                c.text(f, 252, 300, "Administration password", 1, b.foreground);
                let (x, y, w, h) = (252, 350, 520, 64);
                c.fill_rect(x, y, w, h, Rgb(0xff, 0xff, 0xff));
                c.frame(x, y, w, h, 3, b.accent);
                let stars: String = "*".repeat(password.chars().count().min(30));
                c.text(f, x + 16, y + (h - f.height) / 2, &stars, 1, Rgb(0, 0, 0));
                let [save, back] = self.settings_buttons();
                self.button_in(&mut c, save, "Save", false);
                self.button_in(&mut c, back, "Back", false);
                c.text_centered(f, 690, "Enter: save   Esc: back", 1, b.foreground);
            }
            Screen::Connection { focus } => {
                c.text_centered(
                    f,
                    200,
                    "How do you want to connect to Tor?",
                    1,
                    b.foreground,
                );
                self.button(
                    &mut c,
                    WELCOME_BUTTONS_Y[0],
                    "Connect directly",
                    *focus == 0,
                );
                self.button(
                    &mut c,
                    WELCOME_BUTTONS_Y[1],
                    "Use the default bridges",
                    *focus == 1,
                );
                c.text_centered(
                    f,
                    520,
                    "Bridges hide from this network that you use Tor",
                    1,
                    b.foreground,
                );
                c.text_centered(
                    f,
                    690,
                    "Arrows/Tab: move   Enter or click: choose",
                    1,
                    b.foreground,
                );
            }
            Screen::Progress {
                lines,
                percent,
                ready,
                failure,
                offer_default_bridges,
                vpn,
            } => {
                let mut y = 200;
                for line in lines.iter().rev().take(8).rev() {
                    c.text(f, 112, y, line, 1, b.foreground);
                    y += f.height + 8;
                }
                let (x, y, w, h) = (112, 520, 800, 32);
                c.frame(x, y, w, h, 2, b.foreground);
                let filled = (w - 8) * (*percent).min(100) as usize / 100;
                c.fill_rect(
                    x + 4,
                    y + 4,
                    filled,
                    h - 8,
                    if *ready { GREEN } else { b.accent },
                );
                if let Some(vpn) = vpn {
                    let (size, colour) = if vpn.ready {
                        (2, GREEN)
                    } else {
                        (1, b.foreground)
                    };
                    c.text_centered(f, 600, &vpn.text, size, colour);
                } else if *ready {
                    c.text_centered(f, 600, "Tor is ready", 2, GREEN);
                } else if let Some(why) = failure {
                    c.text_centered(f, 566, "Tor could not connect", 1, RED);
                    c.text_centered(f, 604, why, 1, b.foreground);
                    if *offer_default_bridges {
                        self.button(&mut c, FAILURE_BUTTON_Y, "Use the default bridges", true);
                    }
                } else {
                    let text = format!("Connecting to Tor: {percent}%");
                    c.text_centered(f, 600, &text, 1, b.foreground);
                }
            }
        }
        c
    }
}

/// The last "Bootstrapped N%" in tor's log.
fn bootstrap_percent(log: &str) -> Option<u32> {
    log.lines().rev().find_map(|line| {
        let rest = line.split("Bootstrapped ").nth(1)?;
        rest.split('%').next()?.trim().parse().ok()
    })
}

/// Set root's password with busybox `mkpasswd` (SHA-512) in /etc/shadow.
fn set_admin_password(password: &str) -> Result<(), String> {
    let out = Command::new("mkpasswd")
        .args(["-m", "sha512", password])
        .output()
        .map_err(|e| format!("mkpasswd: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mkpasswd failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let shadow = std::fs::read_to_string("/etc/shadow").map_err(|e| format!("/etc/shadow: {e}"))?;
    let updated: Vec<String> = shadow
        .lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(':').collect();
            if fields.first() == Some(&"root") && fields.len() > 1 {
                fields[1] = &hash;
            }
            fields.join(":")
        })
        .collect();
    std::fs::write("/etc/shadow", updated.join("\n") + "\n")
        .map_err(|e| format!("/etc/shadow: {e}"))
}

/// Run the start script; it starts tor `plan`'s way, or leaves that to
/// the greeter while the person is asked.
fn start_system(plan: connection::Plan) -> std::io::Result<Child> {
    let how = match plan {
        connection::Plan::Use(mode) => mode.arg(),
        connection::Plan::Ask => "ask",
    };
    // The start script's output goes where ours goes: the console.
    Command::new("/bin/sh")
        .arg(START_SCRIPT)
        .env("TAILOR_CONNECTION", how)
        .stdin(Stdio::null())
        .spawn()
}

/// The starts of tor so far, and how the last one connects.
fn tor_starts() -> (usize, Option<String>) {
    let text = std::fs::read_to_string(CONNECTION_LOG).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    (lines.len(), lines.last().map(|l| l.trim().to_owned()))
}

fn run(ui: &Ui, fb: &Framebuffer, term: &Terminal) -> std::io::Result<()> {
    let network = online::Network::of_this_system();
    let mut pointer = Pointer::new(ui.width, ui.height);
    let mut screen = Screen::Welcome {
        focus: 0,
        note: None,
    };
    let mut shown: Option<Screen> = None;
    let mut starter: Option<Child> = None;
    // The start script's outcome, once it has exited.
    let mut started: Option<bool> = None;
    // Chosen while the start script still runs: tor starts after it.
    let mut pending: Option<connection::Mode> = None;
    let limits = connection::Limits::from_settings();
    // The last start of tor seen: (count, when seen, how it connects).
    let mut tor_start: (usize, Option<(Instant, String)>) = (tor_starts().0, None);
    loop {
        if shown.as_ref() != Some(&screen) {
            fb.show(&ui.draw(&screen))?;
            // Markers go out once the screen shows what they announce, so
            // the harness can match the screen as soon as it reads them.
            match (&screen, &shown) {
                (Screen::Welcome { .. }, None) => eprintln!("tailor-greeter: welcome screen shown"),
                // A VPN's state, each time it changes (connected, lost).
                (
                    Screen::Progress { vpn: Some(now), .. },
                    Some(Screen::Progress { vpn: was, .. }),
                ) if now.ready == was.as_ref().is_some_and(|w| w.ready) => {}
                (Screen::Progress { vpn: Some(now), .. }, _) if now.ready => {
                    network.on_ready();
                    eprintln!("tailor-greeter: {}", now.text);
                }
                (Screen::Progress { vpn: Some(now), .. }, Some(Screen::Progress { .. })) => {
                    eprintln!("tailor-greeter: {}", now.text);
                }
                (Screen::Progress { vpn: Some(_), .. }, _) => {}
                (Screen::Progress { ready: true, .. }, _) => {
                    let _ = std::fs::write(TOR_READY, "");
                    eprintln!("tailor-greeter: Tor is ready");
                }
                (Screen::Connection { .. }, Some(Screen::Welcome { .. })) => {
                    eprintln!("tailor-greeter: asking how to connect to Tor")
                }
                (
                    Screen::Progress {
                        failure: Some(why), ..
                    },
                    Some(Screen::Progress { failure: None, .. }),
                ) => eprintln!("tailor-greeter: Tor could not connect: {why}"),
                _ => {}
            }
            shown = Some(screen.clone());
        }
        // Poll so the progress screen follows tor's log between key presses.
        if !pointer.has_devices() {
            pointer.rescan();
        }
        let keys = term.read_keys(Duration::from_millis(250), &pointer.fds())?;
        let mut actions: Vec<Action> = keys.into_iter().map(key_action).collect();
        for PointerEvent::Click { x, y } in pointer.read_events() {
            let hit = ui.click_actions(&screen, x, y);
            eprintln!(
                "tailor-greeter: click at {x},{y}{}",
                if hit.is_empty() { " (no button)" } else { "" }
            );
            actions.extend(hit);
        }
        for action in actions {
            screen = match (screen, action) {
                (Screen::Welcome { focus, note }, Action::Toggle) => Screen::Welcome {
                    focus: 1 - focus,
                    note,
                },
                (Screen::Welcome { note, .. }, Action::Focus(focus)) => {
                    Screen::Welcome { focus, note }
                }
                (Screen::Welcome { focus: 0, .. }, Action::Choose) => {
                    eprintln!("tailor-greeter: start chosen");
                    let plan = connection::plan();
                    starter = Some(start_system(plan)?);
                    match plan {
                        connection::Plan::Ask => Screen::Connection { focus: 0 },
                        connection::Plan::Use(_) => Screen::progress(),
                    }
                }
                (Screen::Connection { focus }, Action::Toggle) => {
                    Screen::Connection { focus: 1 - focus }
                }
                (Screen::Connection { .. }, Action::Focus(focus)) => Screen::Connection { focus },
                (Screen::Connection { focus }, Action::Choose) => {
                    let mode = if focus == 0 {
                        connection::Mode::Direct
                    } else {
                        connection::Mode::DefaultBridges
                    };
                    eprintln!("tailor-greeter: chose to connect to Tor: {}", mode.arg());
                    pending = Some(mode);
                    Screen::progress()
                }
                (
                    Screen::Progress {
                        failure: Some(_),
                        offer_default_bridges: true,
                        ..
                    },
                    Action::Choose,
                ) => {
                    eprintln!("tailor-greeter: chose the default bridges after the failure");
                    let mode = connection::Mode::DefaultBridges;
                    connection::connect(mode)?;
                    // The old tor's timer must not fail the new one.
                    tor_start.1 = Some((Instant::now(), mode.arg().to_owned()));
                    Screen::progress()
                }
                (Screen::Welcome { .. }, Action::Choose) => Screen::Settings {
                    password: String::new(),
                },
                (Screen::Settings { .. }, Action::Back) => Screen::Welcome {
                    focus: 1,
                    note: None,
                },
                (Screen::Settings { mut password }, Action::Type(ch)) => {
                    password.push(ch);
                    Screen::Settings { password }
                }
                (Screen::Settings { mut password }, Action::Erase) => {
                    password.pop();
                    Screen::Settings { password }
                }
                (Screen::Settings { password }, Action::Choose) if !password.is_empty() => {
                    let note = match set_admin_password(&password) {
                        Ok(()) => {
                            eprintln!("tailor-greeter: admin password set");
                            "Administration password set".to_owned()
                        }
                        Err(e) => {
                            eprintln!("tailor-greeter: admin password NOT set: {e}");
                            "Could not set the password".to_owned()
                        }
                    };
                    Screen::Welcome {
                        focus: 0,
                        note: Some(note),
                    }
                }
                (other, _) => other,
            };
        }
        if let Some(child) = starter.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!("tailor-greeter: start script exited: {status}");
                started = Some(status.success());
                starter = None;
            }
        }
        // Tor starts after the firewall and the network, never before.
        if started == Some(true) {
            if let Some(mode) = pending.take() {
                connection::connect(mode)?;
                tor_start.1 = Some((Instant::now(), mode.arg().to_owned()));
            }
        }
        let (count, last) = tor_starts();
        if count > tor_start.0 {
            tor_start = (count, last.map(|how| (Instant::now(), how)));
        }
        if network.keeps_watching() {
            if let Screen::Progress { .. } = screen {
                let lines: Vec<String> = std::fs::read_to_string(STATUS)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect();
                screen = Screen::vpn_progress(lines, network.progress());
            }
        } else if let Screen::Progress { ready: false, .. } = screen {
            let lines: Vec<String> = std::fs::read_to_string(STATUS)
                .unwrap_or_default()
                .lines()
                .map(str::to_owned)
                .collect();
            let percent = bootstrap_percent(&std::fs::read_to_string(TOR_LOG).unwrap_or_default())
                .unwrap_or(0);
            let ready = percent >= 100;
            let (failure, offer_default_bridges) = match &tor_start.1 {
                Some((since, how)) if !ready => (
                    connection::failure(percent, since.elapsed(), limits),
                    how != connection::Mode::DefaultBridges.arg()
                        && connection::has_default_bridges(),
                ),
                _ => (None, false),
            };
            screen = Screen::Progress {
                lines,
                percent,
                ready,
                failure,
                offer_default_bridges,
                vpn: None,
            };
        }
    }
}

fn load_font(path: &str) -> Result<Font, String> {
    let data = std::fs::read(path).map_err(|e| format!("cannot read font {path}: {e}"))?;
    Font::parse(&data).map_err(|e| format!("{path}: {e}"))
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let font_path = std::env::var("GREETER_FONT").unwrap_or_else(|_| FONT.to_owned());
    let font = match load_font(&font_path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("tailor-greeter: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let branding =
        Branding::load(&std::env::var("GREETER_BRANDING").unwrap_or_else(|_| BRANDING.to_owned()));
    if args.get(1).map(String::as_str) == Some("--snapshot") {
        let (Some(out), Some(which)) = (args.get(2), args.get(3)) else {
            eprintln!(
                "usage: greeter --snapshot OUT.ppm welcome|settings|progress|ready|connection|failed|vpn-progress|vpn-ready|vpn-lost"
            );
            return std::process::ExitCode::FAILURE;
        };
        let ui = Ui {
            font,
            branding,
            width: 1024,
            height: 768,
        };
        let screen = match which.as_str() {
            "settings" => Screen::Settings {
                password: "secret".into(),
            },
            "progress" => Screen::Progress {
                lines: vec!["Spoofing MAC addresses".into(), "Starting Tor".into()],
                percent: 45,
                ready: false,
                failure: None,
                offer_default_bridges: false,
                vpn: None,
            },
            "ready" => Screen::Progress {
                lines: vec![],
                percent: 100,
                ready: true,
                failure: None,
                offer_default_bridges: false,
                vpn: None,
            },
            "vpn-progress" => Screen::vpn_progress(
                vec![
                    "Spoofing MAC addresses".into(),
                    "Loading the firewall".into(),
                    "Connecting to the network".into(),
                    "Starting the VPN client".into(),
                ],
                online::Network::Vpn.sample(false),
            ),
            "vpn-ready" => Screen::vpn_progress(vec![], online::Network::Vpn.sample(true)),
            "vpn-lost" => {
                Screen::vpn_progress(vec![], online::vpn_progress("state=reconnecting\n"))
            }
            "connection" => Screen::Connection { focus: 0 },
            "failed" => Screen::Progress {
                lines: vec!["Connecting to Tor directly".into()],
                percent: 5,
                ready: false,
                failure: connection::failure(
                    5,
                    Duration::from_secs(20),
                    connection::Limits {
                        sign_of_life: Duration::from_secs(20),
                        bootstrap: Duration::from_secs(300),
                    },
                ),
                offer_default_bridges: true,
                vpn: None,
            },
            _ => Screen::Welcome {
                focus: 0,
                note: None,
            },
        };
        return match std::fs::write(Path::new(out), ui.draw(&screen).to_ppm()) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("greeter: {out}: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let fb = match Framebuffer::open("/dev/fb0") {
        Ok(fb) => fb,
        Err(e) => {
            eprintln!("tailor-greeter: /dev/fb0: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let term = match Terminal::open("/dev/tty1") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tailor-greeter: /dev/tty1: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let ui = Ui {
        font,
        branding,
        width: fb.width,
        height: fb.height,
    };
    match run(&ui, &fb, &term) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tailor-greeter: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ui() -> Ui {
        Ui {
            font: Font::blank(16, 32),
            branding: Branding::load("/nonexistent"),
            width: 1024,
            height: 768,
        }
    }

    #[test]
    fn clicks_choose_the_button_under_the_pointer() {
        let ui = ui();
        let welcome = Screen::Welcome {
            focus: 1,
            note: None,
        };
        assert_eq!(
            ui.click_actions(&welcome, 512, 336),
            vec![Action::Focus(0), Action::Choose]
        );
        assert_eq!(
            ui.click_actions(&welcome, 260, 471),
            vec![Action::Focus(1), Action::Choose]
        );
        assert!(ui.click_actions(&welcome, 10, 10).is_empty());
        let settings = Screen::Settings {
            password: "x".into(),
        };
        assert_eq!(ui.click_actions(&settings, 300, 480), vec![Action::Choose]);
        assert_eq!(ui.click_actions(&settings, 700, 480), vec![Action::Back]);
        assert!(ui.click_actions(&settings, 512, 480).is_empty());
    }

    #[test]
    fn the_connection_question_and_the_failure_take_clicks() {
        let ui = ui();
        let question = Screen::Connection { focus: 0 };
        assert_eq!(
            ui.click_actions(&question, 512, 436),
            vec![Action::Focus(1), Action::Choose]
        );
        let failed = |offer| Screen::Progress {
            lines: vec![],
            percent: 5,
            ready: false,
            failure: Some("x".into()),
            offer_default_bridges: offer,
            vpn: None,
        };
        assert_eq!(
            ui.click_actions(&failed(true), 512, 686),
            vec![Action::Choose]
        );
        assert!(ui.click_actions(&failed(false), 512, 686).is_empty());
        assert!(ui.click_actions(&Screen::progress(), 512, 686).is_empty());
    }

    #[test]
    fn finds_the_last_bootstrap_percent() {
        let log = "[notice] Bootstrapped 5% (conn): x\n[notice] Bootstrapped 100% (done): Done\n";
        assert_eq!(bootstrap_percent(log), Some(100));
        assert_eq!(bootstrap_percent("nothing"), None);
    }
}
