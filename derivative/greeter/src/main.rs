//! The reference derivative's greeter, drawn on the Linux framebuffer.
//!
//! Screens: a welcome screen with the derivative's title and two choices,
//! "Start" and "Additional settings"; the settings screen where an
//! administration password is typed; after Start, a progress screen that
//! runs the start script (`/etc/tailor/start`: MAC spoofing, firewall,
//! network, tor) and follows tor's bootstrap in its log until "Tor is ready"
//! (or, for the VPN variant, the VPN's state: see [`online`]).
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
mod font;
mod online;
mod pointer;
mod sys;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use canvas::{Canvas, Rgb};
use font::Font;
use pointer::{Pointer, PointerEvent};
use sys::{Framebuffer, Key, Terminal};

const FONT: &str = "/usr/share/tailor/font.psf";
const BRANDING: &str = "/etc/tailor/branding";
const STATUS: &str = "/run/tailor/status";
const START_SCRIPT: &str = "/etc/tailor/start";

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
    Progress {
        lines: Vec<String>,
        online: online::Progress,
    },
}

struct Ui {
    font: Font,
    branding: Branding,
    width: usize,
    height: usize,
}

const GREEN: Rgb = Rgb(0x3f, 0xc0, 0x5a);

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
            Screen::Welcome { .. } => WELCOME_BUTTONS_Y
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
            Screen::Progress { lines, online } => {
                let mut y = 200;
                for line in lines.iter().rev().take(8).rev() {
                    c.text(f, 112, y, line, 1, b.foreground);
                    y += f.height + 8;
                }
                let (x, y, w, h) = (112, 520, 800, 32);
                c.frame(x, y, w, h, 2, b.foreground);
                let filled = (w - 8) * online.percent.min(100) as usize / 100;
                c.fill_rect(
                    x + 4,
                    y + 4,
                    filled,
                    h - 8,
                    if online.ready { GREEN } else { b.accent },
                );
                if online.ready {
                    c.text_centered(f, 600, &online.text, 2, GREEN);
                } else {
                    c.text_centered(f, 600, &online.text, 1, b.foreground);
                }
            }
        }
        c
    }
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

fn start_system() -> std::io::Result<Child> {
    // The start script's output goes where ours goes: the console.
    Command::new("/bin/sh")
        .arg(START_SCRIPT)
        .stdin(Stdio::null())
        .spawn()
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
    loop {
        if shown.as_ref() != Some(&screen) {
            fb.show(&ui.draw(&screen))?;
            // Markers go out once the screen shows what they announce, so
            // the harness can match the screen as soon as it reads them.
            match (&screen, &shown) {
                (Screen::Welcome { .. }, None) => eprintln!("tailor-greeter: welcome screen shown"),
                (Screen::Progress { online, .. }, Some(Screen::Progress { online: was, .. }))
                    if online.ready == was.ready => {}
                (Screen::Progress { online, .. }, _) if online.ready => {
                    network.on_ready();
                    eprintln!("tailor-greeter: {}", online.text);
                }
                (Screen::Progress { online, .. }, Some(Screen::Progress { .. })) => {
                    eprintln!("tailor-greeter: {}", online.text);
                }
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
                    starter = Some(start_system()?);
                    Screen::Progress {
                        lines: Vec::new(),
                        online: online::Progress {
                            percent: 0,
                            ready: false,
                            text: String::new(),
                        },
                    }
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
        if let Screen::Progress { online: now, .. } = &screen {
            if !now.ready || network.keeps_watching() {
                let lines: Vec<String> = std::fs::read_to_string(STATUS)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect();
                screen = Screen::Progress {
                    lines,
                    online: network.progress(),
                };
            }
        }
        if let Some(child) = starter.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!("tailor-greeter: start script exited: {status}");
                starter = None;
            }
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
                "usage: greeter --snapshot OUT.ppm welcome|settings|progress|ready|vpn-progress|vpn-ready|vpn-lost"
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
                online: online::Network::Tor.sample(false),
            },
            "ready" => Screen::Progress {
                lines: vec![],
                online: online::Network::Tor.sample(true),
            },
            "vpn-progress" => Screen::Progress {
                lines: vec![
                    "Spoofing MAC addresses".into(),
                    "Loading the firewall".into(),
                    "Connecting to the network".into(),
                    "Starting the VPN client".into(),
                ],
                online: online::Network::Vpn.sample(false),
            },
            "vpn-ready" => Screen::Progress {
                lines: vec![],
                online: online::Network::Vpn.sample(true),
            },
            "vpn-lost" => Screen::Progress {
                lines: vec![],
                online: online::vpn_progress("state=reconnecting\n"),
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
}
