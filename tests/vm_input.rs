//! Keyboard input reaches the guest exactly: every printable ASCII
//! character through the US keymap, Shift included, at the default rate.
//! With TAILOR_MEASURE_TYPING=1 it also tries faster and slower rates and
//! prints which ones the guest kept up with (figures in BENCHMARKS.md).
#![cfg(feature = "vm")]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::input::TypingRate;
use harness::vm::{Vm, VmConfig, VmOptions};

fn smoke_config() -> VmConfig {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new("bash")
        .arg(root.join("tests/images/build-smoke-iso.sh"))
        .arg(root.join(".cache/smoke.iso"))
        .status()
        .expect("run build-smoke-iso.sh");
    assert!(status.success(), "building the smoke ISO failed");
    VmConfig::load(&root.join("vm-configs/smoke.toml")).expect("smoke vm-config")
}

/// Every printable ASCII character, in an order that alternates shifted
/// and unshifted keys (where Shift bleeding would show).
fn all_printable() -> String {
    let mut chars: Vec<char> = (0x21u8..0x7f).map(char::from).collect();
    chars.sort_by_key(|c| {
        harness::input::keymap::char_stroke(*c)
            .map(|s| s.shift)
            .unwrap_or(false)
    });
    let (plain, shifted) = chars.split_at(
        chars
            .iter()
            .position(|c| harness::input::keymap::char_stroke(*c).unwrap().shift)
            .unwrap(),
    );
    let mut out = String::new();
    for i in 0..plain.len().max(shifted.len()) {
        out.extend(plain.get(i));
        out.extend(shifted.get(i));
    }
    out
}

/// Type `text` into `cat > /dev/ttyS0` and return what reached the serial
/// console, and how long the typing took.
async fn type_through_cat(vm: &mut Vm, text: &str) -> (String, Duration) {
    vm.type_text("cat > /dev/ttyS0\n").await.unwrap();
    let mark = vm.serial_len();
    let start = Instant::now();
    vm.type_text(text).await.unwrap();
    let took = start.elapsed();
    vm.type_text("\n").await.unwrap();
    vm.press("ctrl+d").await.unwrap();
    // The line arrives whole (canonical tty mode); wait for its newline.
    let seen = vm
        .wait_serial_since(mark, "\n", Duration::from_secs(30))
        .await;
    let out = vm.serial_text();
    let line = out
        .get(mark..)
        .unwrap_or("")
        .lines()
        .next()
        .unwrap_or("")
        .trim_end_matches('\r')
        .to_owned();
    seen.map(|_| (line, took))
        .unwrap_or_else(|e| (format!("<nothing: {e}>"), took))
}

#[tokio::test]
async fn every_printable_character_arrives_exactly() {
    let mut vm = Vm::start(&smoke_config(), VmOptions::default())
        .await
        .unwrap();
    vm.wait_serial("TAILOR-SMOKE-SHELL", Duration::from_secs(90))
        .await
        .unwrap();
    let text = all_printable();
    let (got, took) = type_through_cat(&mut vm, &text).await;
    assert_eq!(
        got,
        text,
        "typed at the default rate {:?}",
        vm.typing_rate()
    );
    println!("default rate: {} keys in {took:.2?}", text.len());

    if std::env::var_os("TAILOR_MEASURE_TYPING").is_some() {
        for (hold, gap) in [(0, 0), (2, 2), (5, 5), (10, 10), (20, 20), (40, 120)] {
            vm.set_typing_rate(TypingRate {
                hold: Duration::from_millis(hold),
                gap: Duration::from_millis(gap),
            });
            let mut exact = 0;
            let runs = 3;
            let mut total = Duration::ZERO;
            for _ in 0..runs {
                let (got, took) = type_through_cat(&mut vm, &text).await;
                total += took;
                exact += usize::from(got == text);
            }
            vm.set_typing_rate(TypingRate::default());
            println!(
                "MEASURE hold={hold}ms gap={gap}ms: {exact}/{runs} exact, {:.1} keys/s",
                (text.len() * runs) as f64 / total.as_secs_f64()
            );
        }
    }
    vm.shutdown().await.unwrap();
}
