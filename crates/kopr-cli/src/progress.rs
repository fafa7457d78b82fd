//! The progress bar of `kopr snapshot create` on a terminal, and the time-left estimate behind it.
//!
//! A thread polls the upload's atomic counters ten times a second and redraws one line: bytes
//! and files done against the estimate (the previous snapshot's totals until the background
//! pre-walk has counted the source), hashed and cached (unchanged, not read) files, throughput
//! and time left. Nothing is drawn when stderr is not a terminal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kopr_repo::snapshot::{Progress, ProgressCounters};

use crate::units;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns progress output on or off for this process (`--[no-]progress`).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether progress output is wanted (by default: stderr is a terminal).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Throughput and time left from samples of bytes hashed (read and stored).
///
/// Only hashed bytes count towards the rate: unchanged files are skipped at the speed of a
/// `stat`, and counting them would promise an early finish whenever a run starts with a burst
/// of them. The time left is the bytes left over that rate, so it errs long when many of the
/// files left turn out unchanged. The rate is an exponentially weighted average of the rates
/// between samples, with weights halving every `half_life`, so it follows a change of speed
/// (other disks, compressible data) within a few half-lives.
#[derive(Debug, Clone)]
pub struct Eta {
    half_life: f64,
    min_window: f64,
    first: Option<f64>,
    last: Option<(f64, u64)>,
    rate: Option<f64>,
}

impl Eta {
    /// An estimator whose rate forgets half its history every `half_life` and that reports
    /// nothing until samples span `min_window`.
    pub fn new(half_life: Duration, min_window: Duration) -> Self {
        Eta {
            half_life: half_life.as_secs_f64().max(1e-3),
            min_window: min_window.as_secs_f64(),
            first: None,
            last: None,
            rate: None,
        }
    }

    /// Records that `done` bytes were hashed by time `at` (since any fixed start).
    pub fn sample(&mut self, at: Duration, done: u64) {
        let t = at.as_secs_f64();
        let Some((lt, ld)) = self.last else {
            self.first = Some(t);
            self.last = Some((t, done));
            return;
        };
        let dt = t - lt;
        if dt <= 0.0 {
            return;
        }
        let inst = done.saturating_sub(ld) as f64 / dt;
        let alpha = 1.0 - 0.5f64.powf(dt / self.half_life);
        self.rate = Some(match self.rate {
            None => inst,
            Some(r) => r + alpha * (inst - r),
        });
        self.last = Some((t, done));
    }

    /// Bytes per second, once the samples span the minimum window.
    pub fn rate(&self) -> Option<f64> {
        let (first, (last, _)) = (self.first?, self.last?);
        if last - first < self.min_window {
            return None;
        }
        self.rate
    }

    /// Time to process `left` bytes: `None` when that or the rate is not known (or the rate is
    /// zero), zero when nothing is left.
    pub fn remaining(&self, left: Option<u64>) -> Option<Duration> {
        let left = left?;
        if left == 0 {
            return Some(Duration::ZERO);
        }
        let rate = self.rate().filter(|r| *r > 0.0)?;
        Some(Duration::from_secs_f64((left as f64 / rate).min(1e9)))
    }
}

/// The total to measure against: the estimate once the pre-walk is done, or while it still
/// exceeds what was done; unknown otherwise.
fn total_of(p: &Progress) -> Option<u64> {
    if p.estimate_done || p.estimated_bytes > p.done_bytes() {
        Some(p.estimated_bytes.max(p.done_bytes()))
    } else {
        None
    }
}

/// Go-style duration, rounded to the second: `1h2m3s`, `45s`.
fn short_duration(d: Duration) -> String {
    units::duration(chrono::Duration::seconds(d.as_secs_f64().round() as i64))
}

/// The text after the bar.
pub fn describe(p: &Progress, eta: &Eta) -> String {
    let approx = if p.estimate_done { "" } else { "~" };
    let mut s = String::new();
    s.push_str(&units::bytes(p.done_bytes() as i64));
    if p.estimated_bytes > 0 {
        s.push_str(&format!(
            " / {approx}{}",
            units::bytes(p.estimated_bytes.max(p.done_bytes()) as i64)
        ));
    }
    s.push_str(&format!(", {}", p.done_files()));
    if p.estimated_files > 0 {
        s.push_str(&format!(
            "/{approx}{}",
            p.estimated_files.max(p.done_files())
        ));
    }
    s.push_str(&format!(
        " files ({} hashed, {} cached",
        p.hashed_files, p.cached_files
    ));
    if p.errors > 0 {
        s.push_str(&format!(", {} errors", p.errors));
    }
    s.push(')');
    if let Some(r) = eta.rate() {
        s.push_str(&format!(", {}/s", units::bytes(r as i64)));
    }
    let left = total_of(p).map(|t| t.saturating_sub(p.done_bytes()));
    match eta.remaining(left) {
        Some(left) => s.push_str(&format!(", {} left", short_duration(left))),
        None if !p.estimate_done => s.push_str(", estimating"),
        None => {}
    }
    s
}

/// A progress bar on stderr driven by polling `counters` until [`SnapshotBar::finish`].
pub struct SnapshotBar {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SnapshotBar {
    /// Starts drawing.
    pub fn start(counters: Arc<ProgressCounters>) -> Self {
        let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr_with_hz(10));
        let style = ProgressStyle::with_template("{spinner} [{bar:25}] {wide_msg}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut eta = Eta::new(Duration::from_secs(3), Duration::from_secs(1));
                loop {
                    let p = counters.get();
                    eta.sample(started.elapsed(), p.hashed_bytes);
                    let total = total_of(&p).unwrap_or(0).max(p.done_bytes()).max(1);
                    bar.set_length(total);
                    bar.set_position(p.done_bytes());
                    bar.set_message(describe(&p, &eta));
                    bar.tick();
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                bar.finish_and_clear();
            })
        };
        SnapshotBar {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops and erases the bar.
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for SnapshotBar {
    fn drop(&mut self) {
        self.stop_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn steady_rate_gives_remaining_bytes_over_rate() {
        let mut e = Eta::new(Duration::from_secs(3), Duration::from_secs(1));
        for i in 0..=30 {
            e.sample(at(i * 100), i * MB); // 10 MB/s
        }
        let r = e.rate().unwrap();
        assert!((r - 10.0 * MB as f64).abs() < 1.0, "{r}");
        let left = e.remaining(Some(70 * MB)).unwrap();
        assert!((left.as_secs_f64() - 7.0).abs() < 1e-6, "{left:?}");
    }

    #[test]
    fn nothing_is_promised_before_the_window_or_without_a_total() {
        let mut e = Eta::new(Duration::from_secs(3), Duration::from_secs(1));
        assert_eq!(e.rate(), None);
        e.sample(at(0), 0);
        e.sample(at(500), 5 * MB);
        assert_eq!(e.rate(), None, "half a second is too little to tell");
        assert_eq!(e.remaining(Some(95 * MB)), None);
        e.sample(at(1000), 10 * MB);
        assert_eq!(e.remaining(Some(90 * MB)), Some(Duration::from_secs(9)));
        assert_eq!(e.remaining(None), None, "unknown total");
        assert_eq!(e.remaining(Some(0)), Some(Duration::ZERO));
        // A stalled upload has no finishing time, not an infinite one.
        let mut s = Eta::new(Duration::from_secs(1), Duration::ZERO);
        s.sample(at(0), 0);
        s.sample(at(2000), 0);
        assert_eq!(s.remaining(Some(MB)), None);
        // Repeated or backward timestamps are ignored.
        s.sample(at(2000), 50 * MB);
        s.sample(at(1000), 60 * MB);
        assert_eq!(s.rate(), Some(0.0));
    }

    #[test]
    fn a_change_of_speed_is_followed_within_a_few_half_lives() {
        let mut e = Eta::new(Duration::from_secs(2), Duration::from_secs(1));
        // Fast disk at 100 MB/s for 10 s, then a slow one at 10 MB/s.
        let mut done = 0;
        for i in 0..=100 {
            e.sample(at(i * 100), done);
            done += 10 * MB;
        }
        done -= 10 * MB;
        for i in 1..=100 {
            done += MB;
            e.sample(at(10_000 + i * 100), done);
        }
        // Ten seconds are five half-lives: the fast past weighs 1/32.
        let r = e.rate().unwrap();
        let expected = (10 * MB) as f64 + (90 * MB) as f64 / 32.0;
        assert!((r / expected - 1.0).abs() < 0.01, "{r} vs {expected}");
        for i in 101..=300 {
            done += MB;
            e.sample(at(10_000 + i * 100), done);
        }
        let r = e.rate().unwrap();
        assert!((r / (10 * MB) as f64 - 1.0).abs() < 0.001, "{r}");
        let left = e.remaining(Some(600 * MB)).unwrap();
        assert!((left.as_secs_f64() - 60.0).abs() < 0.1, "{left:?}");
    }

    #[test]
    fn description_shows_done_estimate_hashed_cached_rate_and_time_left() {
        let mut e = Eta::new(Duration::from_secs(3), Duration::from_secs(1));
        for i in 0..=20 {
            e.sample(at(i * 100), i * 2 * MB); // hashing at 20 MB/s
        }
        let p = Progress {
            hashed_files: 3,
            hashed_bytes: 30 * MB,
            cached_files: 5,
            cached_bytes: 10 * MB,
            errors: 1,
            hashing_files: 1,
            estimated_files: 20,
            estimated_bytes: 100 * MB,
            estimate_done: true,
        };
        assert_eq!(
            describe(&p, &e),
            "40 MB / 100 MB, 8/20 files (3 hashed, 5 cached, 1 errors), 20 MB/s, 3s left"
        );
        let walking = Progress {
            estimate_done: false,
            estimated_bytes: 0,
            estimated_files: 0,
            ..p.clone()
        };
        assert_eq!(
            describe(&walking, &e),
            "40 MB, 8 files (3 hashed, 5 cached, 1 errors), 20 MB/s, estimating"
        );
        let stand_in = Progress {
            estimate_done: false,
            ..p
        };
        assert!(
            describe(&stand_in, &e).starts_with("40 MB / ~100 MB, 8/~20 files"),
            "{}",
            describe(&stand_in, &e)
        );
    }
}
