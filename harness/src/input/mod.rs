//! Keyboard and mouse, as a person would use them, through QMP
//! `input-send-event`.
//!
//! Each key goes down and up in separate events with a hold time and a gap,
//! Shift wrapped around the key it modifies. Sending press and release as
//! explicit events (rather than `send-key`, whose release is scheduled by a
//! QEMU timer) keeps Shift from bleeding into the next key, the failure the
//! Tails suite works around with 40 ms holds and 120 ms gaps. The pacing is
//! configurable; `tests/vm_input.rs` measures what the guest keeps up with.

pub mod keymap;

use std::time::Duration;

use qapi::qmp::{
    self, InputAxis, InputBtnEvent, InputButton, InputEvent, InputKeyEvent, InputMoveEvent,
    KeyValue, QKeyCode,
};

use crate::qmp::Qmp;
pub use keymap::KeymapError;

/// How fast keys are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypingRate {
    /// Time between a key's press and its release.
    pub hold: Duration,
    /// Time between a release and the next press.
    pub gap: Duration,
}

impl Default for TypingRate {
    /// 10 ms hold + 10 ms gap (about 35 keys/s, near openQA's 30 keys/s
    /// cap). Measured here (BENCHMARKS.md, `tests/vm_input.rs`): the
    /// console guest got all 94 printable characters exact even with no
    /// pauses at all (~180 keys/s, bounded by QMP round trips), so this
    /// leaves a wide margin for slower guest software.
    fn default() -> Self {
        TypingRate {
            hold: Duration::from_millis(10),
            gap: Duration::from_millis(10),
        }
    }
}

/// Errors from keyboard or mouse input.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(transparent)]
    Keymap(#[from] KeymapError),
    #[error("sending input to QEMU failed")]
    Qmp(#[from] crate::qmp::Error),
    #[error("pointer position ({x}, {y}) is outside the {width}x{height} screen")]
    OffScreen {
        x: u32,
        y: u32,
        width: u32,
        height: u32,
    },
}

fn key_event(key: QKeyCode, down: bool) -> InputEvent {
    InputEvent::key(
        InputKeyEvent {
            down,
            key: KeyValue::qcode(key.into()),
        }
        .into(),
    )
}

async fn send(qmp: &Qmp, events: Vec<InputEvent>) -> Result<(), InputError> {
    qmp.execute(qmp::input_send_event {
        device: None,
        head: None,
        events,
    })
    .await?;
    Ok(())
}

/// Type `text` on the US keymap at `rate`. Checks every character first, so
/// an untypeable one types nothing.
pub async fn type_text(qmp: &Qmp, text: &str, rate: TypingRate) -> Result<(), InputError> {
    for stroke in keymap::text_strokes(text)? {
        let mut down = Vec::with_capacity(2);
        let mut up = Vec::with_capacity(2);
        if stroke.shift {
            down.push(key_event(QKeyCode::shift, true));
        }
        down.push(key_event(stroke.key, true));
        up.push(key_event(stroke.key, false));
        if stroke.shift {
            up.push(key_event(QKeyCode::shift, false));
        }
        send(qmp, down).await?;
        tokio::time::sleep(rate.hold).await;
        send(qmp, up).await?;
        tokio::time::sleep(rate.gap).await;
    }
    Ok(())
}

/// Press a combo like "ctrl+alt+t" or "Return": keys down in order, held,
/// released in reverse order.
pub async fn press(qmp: &Qmp, combo: &str, rate: TypingRate) -> Result<(), InputError> {
    let keys = keymap::parse_combo(combo)?;
    send(qmp, keys.iter().map(|key| key_event(*key, true)).collect()).await?;
    tokio::time::sleep(rate.hold).await;
    send(
        qmp,
        keys.iter()
            .rev()
            .map(|key| key_event(*key, false))
            .collect(),
    )
    .await?;
    tokio::time::sleep(rate.gap).await;
    Ok(())
}

/// QEMU's absolute pointer range is 0..=0x7fff on each axis.
const ABS_MAX: u64 = 0x7fff;

fn abs_events(x: u32, y: u32, width: u32, height: u32) -> Result<Vec<InputEvent>, InputError> {
    if x >= width || y >= height {
        return Err(InputError::OffScreen {
            x,
            y,
            width,
            height,
        });
    }
    let scale = |v: u32, size: u32| (v as u64 * ABS_MAX / (size.max(2) as u64 - 1)) as i64;
    Ok(vec![
        InputEvent::abs(
            InputMoveEvent {
                axis: InputAxis::x,
                value: scale(x, width),
            }
            .into(),
        ),
        InputEvent::abs(
            InputMoveEvent {
                axis: InputAxis::y,
                value: scale(y, height),
            }
            .into(),
        ),
    ])
}

fn button_event(button: InputButton, down: bool) -> InputEvent {
    InputEvent::btn(InputBtnEvent { button, down }.into())
}

/// Move the absolute pointer (usb-tablet) to pixel (x, y) of a
/// `width`x`height` screen.
pub async fn move_to(qmp: &Qmp, x: u32, y: u32, width: u32, height: u32) -> Result<(), InputError> {
    send(qmp, abs_events(x, y, width, height)?).await
}

/// Click `button` `count` times at the pointer's position.
pub async fn click(
    qmp: &Qmp,
    button: InputButton,
    count: u32,
    rate: TypingRate,
) -> Result<(), InputError> {
    for _ in 0..count {
        send(qmp, vec![button_event(button, true)]).await?;
        tokio::time::sleep(rate.hold).await;
        send(qmp, vec![button_event(button, false)]).await?;
        tokio::time::sleep(rate.gap).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_coordinates_span_the_range() {
        let ev = abs_events(1023, 767, 1024, 768).unwrap();
        let json = serde_json::to_string(&ev).unwrap();
        assert!(json.contains("32767"), "{json}");
        let ev = abs_events(0, 0, 1024, 768).unwrap();
        let json = serde_json::to_string(&ev).unwrap();
        assert!(json.contains("\"value\":0"), "{json}");
        assert!(matches!(
            abs_events(1024, 0, 1024, 768),
            Err(InputError::OffScreen { .. })
        ));
    }
}
