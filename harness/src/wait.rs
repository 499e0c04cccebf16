//! One way to wait: poll a check until it succeeds or a named timeout runs
//! out, logging progress on long waits. Every timeout is multiplied by one
//! scale factor (like openQA's TIMEOUT_SCALE) so a slow TCG host can be given
//! more time with one setting: `TAILOR_TIMEOUT_SCALE=3`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    let mut next_report = Duration::from_secs(10);
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
        if elapsed >= next_report {
            tracing::info!(
                "waiting for {what}: {:.0}s of {:.0}s",
                elapsed.as_secs_f64(),
                timeout.as_secs_f64()
            );
            next_report += Duration::from_secs(10);
        }
        tokio::time::sleep(interval.min(timeout.saturating_sub(elapsed))).await;
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
}
