//! Text and key names to QEMU key codes (qcodes), US layout.
//!
//! QMP delivers scancodes, not characters, so typing "A" means Shift + `a`;
//! the guest's keymap turns them back into text. Names in key combos follow
//! the xdotool/openQA habit ("ctrl+alt+t", "Return", "F2") and QEMU's own
//! qcode names ("ret", "esc") both work.

use qapi::qmp::QKeyCode;

/// One key press: the key and whether Shift is held for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stroke {
    pub key: QKeyCode,
    pub shift: bool,
}

/// Errors from turning text or combos into keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeymapError {
    #[error("cannot type {ch:?} (U+{:04X}): the US keymap has no key for it", *ch as u32)]
    UntypeableChar { ch: char },
    #[error("unknown key `{name}` in `{combo}` (try names like ctrl, alt, shift, super, Return, Tab, Escape, F1..F12, Up, a..z, 0..9)")]
    UnknownKey { name: String, combo: String },
    #[error("empty key combo")]
    EmptyCombo,
}

/// The stroke that types `ch` on a US keyboard.
pub fn char_stroke(ch: char) -> Result<Stroke, KeymapError> {
    let plain = |name: &str| key(name).map(|key| Stroke { key, shift: false });
    let shifted = |name: &str| key(name).map(|key| Stroke { key, shift: true });
    let stroke = match ch {
        'a'..='z' | '0'..='9' => plain(ch.encode_utf8(&mut [0; 4])),
        'A'..='Z' => shifted(ch.to_ascii_lowercase().encode_utf8(&mut [0; 4])),
        ' ' => plain("spc"),
        '\n' => plain("ret"),
        '\t' => plain("tab"),
        '-' => plain("minus"),
        '=' => plain("equal"),
        '[' => plain("bracket_left"),
        ']' => plain("bracket_right"),
        '\\' => plain("backslash"),
        ';' => plain("semicolon"),
        '\'' => plain("apostrophe"),
        '`' => plain("grave_accent"),
        ',' => plain("comma"),
        '.' => plain("dot"),
        '/' => plain("slash"),
        '!' => shifted("1"),
        '@' => shifted("2"),
        '#' => shifted("3"),
        '$' => shifted("4"),
        '%' => shifted("5"),
        '^' => shifted("6"),
        '&' => shifted("7"),
        '*' => shifted("8"),
        '(' => shifted("9"),
        ')' => shifted("0"),
        '_' => shifted("minus"),
        '+' => shifted("equal"),
        '{' => shifted("bracket_left"),
        '}' => shifted("bracket_right"),
        '|' => shifted("backslash"),
        ':' => shifted("semicolon"),
        '"' => shifted("apostrophe"),
        '~' => shifted("grave_accent"),
        '<' => shifted("comma"),
        '>' => shifted("dot"),
        '?' => shifted("slash"),
        _ => None,
    };
    stroke.ok_or(KeymapError::UntypeableChar { ch })
}

/// Every stroke needed to type `text`; fails before typing anything if one
/// character cannot be typed.
pub fn text_strokes(text: &str) -> Result<Vec<Stroke>, KeymapError> {
    text.chars().map(char_stroke).collect()
}

/// The keys of a combo like "ctrl+alt+t" or "Return", in press order.
pub fn parse_combo(combo: &str) -> Result<Vec<QKeyCode>, KeymapError> {
    let combo = combo.trim();
    if combo.is_empty() {
        return Err(KeymapError::EmptyCombo);
    }
    // A lone "+" or a trailing "+" (as in "ctrl++") means the plus key.
    let mut names: Vec<String> = Vec::new();
    let mut rest = combo;
    while !rest.is_empty() {
        match rest.find('+') {
            Some(0) => {
                names.push("+".into());
                rest = rest[1..].strip_prefix('+').unwrap_or(&rest[1..]);
            }
            Some(i) => {
                names.push(rest[..i].into());
                rest = &rest[i + 1..];
            }
            None => {
                names.push(rest.into());
                rest = "";
            }
        }
    }
    names
        .iter()
        .map(|name| {
            key_by_name(name).ok_or_else(|| KeymapError::UnknownKey {
                name: name.clone(),
                combo: combo.into(),
            })
        })
        .collect()
}

fn key_by_name(name: &str) -> Option<QKeyCode> {
    let lower = name.trim().to_ascii_lowercase();
    let alias = match lower.as_str() {
        "return" | "enter" => "ret",
        "escape" => "esc",
        "space" => "spc",
        "ctrl" | "control" | "ctrl_l" => "ctrl",
        "alt" | "alt_l" => "alt",
        "altgr" => "alt_r",
        "super" | "win" | "meta" | "super_l" => "meta_l",
        "backspace" => "backspace",
        "del" => "delete",
        "ins" => "insert",
        "pageup" | "page_up" | "prior" => "pgup",
        "pagedown" | "page_down" | "next" => "pgdn",
        "menu" => "menu",
        "-" => "minus",
        "=" => "equal",
        "+" => "equal",
        "," => "comma",
        "." => "dot",
        "/" => "slash",
        other => other,
    };
    key(alias)
}

fn key(qcode_name: &str) -> Option<QKeyCode> {
    qcode_name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_digits_and_shift() {
        assert_eq!(
            char_stroke('a').unwrap(),
            Stroke {
                key: QKeyCode::a,
                shift: false
            }
        );
        assert_eq!(
            char_stroke('Z').unwrap(),
            Stroke {
                key: QKeyCode::z,
                shift: true
            }
        );
        assert_eq!(
            char_stroke('7').unwrap(),
            Stroke {
                key: QKeyCode::_7,
                shift: false
            }
        );
        assert_eq!(
            char_stroke('&').unwrap(),
            Stroke {
                key: QKeyCode::_7,
                shift: true
            }
        );
    }

    #[test]
    fn every_printable_ascii_char_is_typeable() {
        for ch in (0x20u8..0x7f).map(char::from) {
            char_stroke(ch).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn punctuation_pairs() {
        for (plain, shifted) in [
            ('-', '_'),
            ('=', '+'),
            ('[', '{'),
            (']', '}'),
            ('\\', '|'),
            (';', ':'),
            ('\'', '"'),
            ('`', '~'),
            (',', '<'),
            ('.', '>'),
            ('/', '?'),
        ] {
            let a = char_stroke(plain).unwrap();
            let b = char_stroke(shifted).unwrap();
            assert_eq!(a.key, b.key, "{plain} and {shifted} share a key");
            assert!(!a.shift && b.shift);
        }
    }

    #[test]
    fn untypeable_char_is_an_error() {
        assert_eq!(
            text_strokes("héllo").unwrap_err(),
            KeymapError::UntypeableChar { ch: 'é' }
        );
    }

    #[test]
    fn combos() {
        assert_eq!(
            parse_combo("ctrl+alt+t").unwrap(),
            vec![QKeyCode::ctrl, QKeyCode::alt, QKeyCode::t]
        );
        assert_eq!(parse_combo("Return").unwrap(), vec![QKeyCode::ret]);
        assert_eq!(parse_combo("F2").unwrap(), vec![QKeyCode::f2]);
        assert_eq!(
            parse_combo("shift+Tab").unwrap(),
            vec![QKeyCode::shift, QKeyCode::tab]
        );
        assert_eq!(parse_combo("super").unwrap(), vec![QKeyCode::meta_l]);
        assert_eq!(
            parse_combo("ctrl++").unwrap(),
            vec![QKeyCode::ctrl, QKeyCode::equal]
        );
        assert_eq!(parse_combo("Up").unwrap(), vec![QKeyCode::up]);
    }

    #[test]
    fn unknown_key_names_the_key() {
        let err = parse_combo("ctrl+hyper").unwrap_err().to_string();
        assert!(err.contains("hyper") && err.contains("ctrl+hyper"), "{err}");
        assert_eq!(parse_combo("  ").unwrap_err(), KeymapError::EmptyCombo);
    }
}
