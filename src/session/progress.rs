//! A headless run's progress on stderr, when stderr is a terminal: for a replay, the capture's records and
//! bytes read of its size, frames per second and the time left; for a simulation, its virtual time of
//! `--max-time` and the packets traced. A `Watch` that never stops the run: pair it with one that may
//! (`(ProgressOnStderr, signals)`). Redrawn at most 10 times a second, and cleared when it is dropped, so the
//! summary printed after the run stands alone.
//!
//! When stderr is not a terminal (a pipe, a file, a test) it writes nothing at all.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::report::{fmt_ns, per_second};
use super::watch::{Keep, Progress, Watch};

/// Redraws a second at most (indicatif's rate limit: updates between two draws only change the numbers).
const DRAWS_PER_SECOND: u8 = 10;

/// The progress display of a headless sim or replay on stderr.
pub struct ProgressOnStderr {
    /// None: stderr is not a terminal, and nothing is shown.
    bar: Option<Bar>,
}

struct Bar {
    /// Made on the first batch, when the run's kind (and a replay's capture size) is known.
    shown: Option<ProgressBar>,
    started: Instant,
}

impl ProgressOnStderr {
    /// Progress on stderr if it is a terminal; else a watcher that shows nothing.
    pub fn new() -> ProgressOnStderr {
        ProgressOnStderr {
            bar: std::io::stderr().is_terminal().then(|| Bar {
                shown: None,
                started: Instant::now(),
            }),
        }
    }
}

impl Default for ProgressOnStderr {
    fn default() -> Self {
        ProgressOnStderr::new()
    }
}

impl Watch for ProgressOnStderr {
    fn batch(&mut self, progress: &Progress) -> Keep {
        if let Some(bar) = self.bar.as_mut() {
            let (position, message) = show(progress, bar.started.elapsed());
            match &bar.shown {
                // Each setter may draw: the message first, so that the position's draw shows both anew.
                Some(shown) => {
                    shown.set_message(message);
                    shown.set_position(position);
                }
                None => bar.shown = Some(new_bar(progress, position, message)),
            }
        }
        Keep::Going
    }
}

impl Drop for ProgressOnStderr {
    /// Leave no bar behind: the summary (or an error) comes next.
    fn drop(&mut self) {
        if let Some(shown) = self.bar.as_ref().and_then(|b| b.shown.as_ref()) {
            shown.finish_and_clear();
        }
    }
}

/// The bar for this run: a replay's measures bytes of its capture (or only counts them, when the capture has
/// no size), a simulation's measures virtual time up to `--max-time`.
/// Its first draw already shows `position` and `message`.
fn new_bar(p: &Progress, position: u64, message: String) -> ProgressBar {
    let (length, template) = layout(p);
    let bar = ProgressBar::with_draw_target(length, ProgressDrawTarget::hidden());
    // The templates are fixed: one that did not parse would be a bug caught by the tests, never a panic here.
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(message);
    bar.set_position(position);
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(DRAWS_PER_SECOND));
    bar.tick();
    bar
}

/// The bar's length (none: it only counts) and its template.
fn layout(p: &Progress) -> (Option<u64>, &'static str) {
    match (p.records_read, p.capture_size, p.max_time_ns) {
        // The bar takes what the line leaves of the terminal's width.
        (Some(_), Some(size), _) => (
            Some(size),
            "replay {bytes}/{total_bytes}, {msg}, ETA {eta} [{wide_bar}]",
        ),
        (Some(_), None, _) => (None, "replay {spinner} {bytes} read, {msg}"),
        (None, _, Some(max)) => (Some(max), "sim {msg} [{wide_bar}]"),
        (None, _, None) => (None, "{spinner} {msg}"),
    }
}

/// Where the bar stands and what its message says.
fn show(p: &Progress, wall: Duration) -> (u64, String) {
    let rate = per_second(p.frames_in, wall);
    match (p.records_read, p.max_time_ns) {
        (Some(records), _) => (
            p.bytes_read.unwrap_or(0),
            format!("{records} records, {rate} frames/s"),
        ),
        (None, Some(max)) => (
            p.now_ns.min(max),
            format!(
                "{} of {} virtual, {} packets, {rate} frames/s",
                fmt_ns(p.now_ns),
                fmt_ns(max),
                p.packets
            ),
        ),
        (None, None) => (p.now_ns, format!("{} packets, {rate} frames/s", p.packets)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_shows_records_and_bytes_and_a_sim_its_virtual_time() {
        let replay = Progress {
            frames_in: 500,
            records_read: Some(1000),
            bytes_read: Some(64_000),
            capture_size: Some(128_000),
            ..Progress::default()
        };
        assert_eq!(
            show(&replay, Duration::from_millis(100)),
            (64_000, "1000 records, 5.0k frames/s".to_string())
        );
        let sim = Progress {
            now_ns: 1_500_000_000,
            frames_in: 30,
            packets: 42,
            max_time_ns: Some(120_000_000_000),
            ..Progress::default()
        };
        assert_eq!(
            show(&sim, Duration::from_secs(2)),
            (
                1_500_000_000,
                "1.500 s of 120.000 s virtual, 42 packets, 15 frames/s".to_string()
            )
        );
    }

    #[test]
    fn every_template_parses() {
        for p in [
            Progress {
                records_read: Some(0),
                capture_size: Some(1),
                ..Progress::default()
            },
            Progress {
                records_read: Some(0),
                ..Progress::default()
            },
            Progress {
                max_time_ns: Some(1),
                ..Progress::default()
            },
            Progress::default(),
        ] {
            let (_, template) = layout(&p);
            assert!(
                ProgressStyle::with_template(template).is_ok(),
                "{p:?}: {template}"
            );
        }
    }
}
