//! One way to wait: poll a check until it succeeds or a named timeout runs
//! out, logging progress on long waits. Every timeout is multiplied by one
//! scale factor (like openQA's TIMEOUT_SCALE) so a slow TCG host can be given
//! more time with one setting: `TAILOR_TIMEOUT_SCALE=3`.
//!
//! Progress: every wait that can last long says every 10 s what it waits
//! for, how long it has waited and its timeout ("waiting for X: 20 s of
//! 90 s"), at `info` level (the CLI logs to stderr). Polling loops call
//! [`Progress::tick`]; a single long call (a `savevm`, a QMP event) runs
//! under [`reporting`].

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often a long wait reports.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);

const SCALE_ONE: u64 = 1000;
static SCALE_MILLI: AtomicU64 = AtomicU64::new(0);

/// The factor every timeout is multiplied by: `TAILOR_TIMEOUT_SCALE` from the
/// environment, or what [`set_timeout_scale`] set, else 1.
pub fn timeout_scale() -> f64 {
    let milli = SCALE_MILLI.load(Ordering::Relaxed);
    if milli != 0 {
        return milli as f64 / SCALE_ONE as f64;
    }
    let scale = std::env::var("TAILOR_TIMEOUT_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    SCALE_MILLI.store((scale * SCALE_ONE as f64) as u64, Ordering::Relaxed);
    scale
}

/// Override the timeout scale for this process (the CLI's `--timeout-scale`).
pub fn set_timeout_scale(scale: f64) {
    if scale.is_finite() && scale > 0.0 {
        SCALE_MILLI.store((scale * SCALE_ONE as f64) as u64, Ordering::Relaxed);
    }
}

/// `base` multiplied by the timeout scale.
pub fn scaled(base: Duration) -> Duration {
    base.mul_f64(timeout_scale())
}

/// What a wait that ran out reports: what it waited for, for how long, and
/// the last reason the check gave for not being done yet.
#[derive(Debug, Clone, thiserror::Error)]
#[error("timed out after {waited:.1?} waiting for {what}{}", last_error.as_ref().map(|e| format!(" (last seen: {e})")).unwrap_or_default())]
pub struct Timeout {
    pub what: String,
    pub waited: Duration,
    pub last_error: Option<String>,
}

/// Outcome of one check in [`wait_until`].
pub enum Check<T, E> {
    /// Done, with a value.
    Ready(T),
    /// Not yet; the string says what was seen, for the timeout message.
    NotYet(String),
    /// Give up at once (the thing waited on can never happen now).
    Fatal(E),
}

/// Error of [`wait_until`]: a timeout or a fatal error from the check.
#[derive(Debug, thiserror::Error)]
pub enum WaitError<E: std::error::Error + 'static> {
    #[error(transparent)]
    Timeout(#[from] Timeout),
    #[error(transparent)]
    Fatal(E),
}

/// Poll `check` every `interval` until it is ready, it fails fatally, or
/// `timeout` (already scaled by the caller) passes. Logs progress every 10 s.
pub async fn wait_until<T, E, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut check: F,
) -> Result<T, WaitError<E>>
where
    E: std::error::Error + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Check<T, E>>,
{
    let start = Instant::now();
    let mut progress = Progress::new(what, timeout);
    loop {
        let seen = match check().await {
            Check::Ready(v) => {
                tracing::debug!(what, elapsed = ?start.elapsed(), "wait done");
                return Ok(v);
            }
            Check::Fatal(e) => return Err(WaitError::Fatal(e)),
            Check::NotYet(seen) => seen,
        };
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(Timeout {
                what: what.to_owned(),
                waited: elapsed,
                last_error: Some(seen),
            }
            .into());
        }
        progress.tick(Some(&seen));
        tokio::time::sleep(interval.min(timeout.saturating_sub(elapsed))).await;
    }
}

/// Progress of one long wait: [`Progress::tick`] logs "waiting for WHAT:
/// 20 s of 90 s" once per [`PROGRESS_EVERY`], and nothing before the first
/// 10 s, so short waits stay quiet.
#[derive(Debug, Clone)]
pub struct Progress {
    what: String,
    timeout: Duration,
    start: Instant,
    next: Duration,
}

impl Progress {
    /// Start timing a wait for `what` (as in "waiting for WHAT") that gives
    /// up after `timeout` (already scaled).
    pub fn new(what: impl Into<String>, timeout: Duration) -> Self {
        Progress {
            what: what.into(),
            timeout,
            start: Instant::now(),
            next: PROGRESS_EVERY,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Log the progress line if one is due; `seen` is what the last check
    /// saw, when there is something to say.
    pub fn tick(&mut self, seen: Option<&str>) {
        if let Some(line) = self.due(self.start.elapsed(), seen) {
            tracing::info!("{line}");
        }
    }

    /// The line to log at `elapsed`, if one is due (and schedule the next).
    fn due(&mut self, elapsed: Duration, seen: Option<&str>) -> Option<String> {
        if elapsed < self.next {
            return None;
        }
        while self.next <= elapsed {
            self.next += PROGRESS_EVERY;
        }
        Some(format!(
            "waiting for {}: {:.0} s of {:.0} s{}",
            self.what,
            elapsed.as_secs_f64(),
            self.timeout.as_secs_f64(),
            seen.map(|s| format!(" (last seen: {s})"))
                .unwrap_or_default()
        ))
    }
}

/// Run `future` (one long operation with its own timeout, e.g. a QMP
/// command or event) and log its progress every 10 s while it runs.
pub async fn reporting<F: Future>(what: &str, timeout: Duration, future: F) -> F::Output {
    let mut progress = Progress::new(what, timeout);
    tokio::pin!(future);
    loop {
        let wake = tokio::time::sleep(progress.next.saturating_sub(progress.elapsed()));
        tokio::select! {
            out = &mut future => return out,
            _ = wake => progress.tick(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    struct Never;

    #[tokio::test]
    async fn timeout_names_what_and_last_seen() {
        let err = wait_until::<(), Never, _, _>(
            "the moon",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || async { Check::NotYet("clouds".into()) },
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("the moon") && text.contains("clouds"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn ready_after_a_few_polls() {
        let mut n = 0;
        let v = wait_until::<_, Never, _, _>(
            "three polls",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                n += 1;
                let done = n >= 3;
                async move {
                    if done {
                        Check::Ready(7)
                    } else {
                        Check::NotYet("not yet".into())
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 7);
    }

    #[test]
    fn progress_lines_every_ten_seconds() {
        let mut p = Progress::new("the screen showing login", Duration::from_secs(90));
        assert_eq!(p.due(Duration::from_secs(3), None), None);
        assert_eq!(
            p.due(Duration::from_millis(20_400), Some("best 0.62"))
                .as_deref(),
            Some("waiting for the screen showing login: 20 s of 90 s (last seen: best 0.62)")
        );
        // Reported up to 20 s: the next line is due at 30 s.
        assert_eq!(p.due(Duration::from_secs(25), None), None);
        assert!(p.due(Duration::from_secs(30), None).is_some());
    }

    #[tokio::test]
    async fn reporting_returns_the_output() {
        let v = reporting("a quick thing", Duration::from_secs(5), async { 42 }).await;
        assert_eq!(v, 42);
    }
}
